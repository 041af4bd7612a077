"""dlib's aligned face chips (``get_face_chip``): the 150 px, padding 0.25 crops dlib's face recognizer embeds.

``dlib::get_face_chip_details`` (``dlib/image_transforms/interpolation.h``) fits the similarity transform
taking template points, given in a unit face box, to the detected landmarks; each template point p is
first moved to (padding + p) / (1 + 2 padding) and scaled by the chip's side. For dlib's 5-point landmarks
(shape_predictor_5_face_landmarks: the two corners of each eye, outer first, then the bottom of the nose)
the template is `DLIB_5_POINTS`, copied from that function.

ferkit's MTCNN gives other points (eye centres, nose tip, mouth corners), so `MTCNN_IN_DLIB_FACE` places
them in the same unit face box from dlib's 68-point mean face (the same function's ``mean_face_shape``):
an eye centre is the mean of its six eye points (36-41, 42-47), the nose tip is point 30, the mouth corners
points 48 and 54. The fit weighs the points as dlib's does: dlib's five are two per eye and one nose, so
`mtcnn_chip` fits each eye centre twice and the nose tip once (`MTCNN_FIT`) and leaves the mouth out. The
chip of an MTCNN face is then dlib's chip up to the two detectors' landmark differences (on 10 faces of
real photos the descriptors' cosine to dlib's own pipeline is 0.993 to 0.999; with all five points
equally weighted it falls to 0.983 on one).

`extract_chip` repeats ``dlib::extract_image_chip`` step by step (its image pyramid for faces more than
twice the chip's size, its corner mapping, its bilinear sampling truncated to uint8): given dlib's own
five landmarks it cuts the same pixels as ``dlib.get_face_chip`` (the parity test checks it).
"""

from __future__ import annotations

import numpy as np

from ferkit.data.faces import _as_rgb, similarity_transform

CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: dlib's 5-point template in the unit face box (get_face_chip_details, num_parts == 5), parts 0-4
DLIB_5_POINTS = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                          [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                          [0.4901123135679, 0.6277975316475]])

_MEAN_FACE = {   # dlib's mean_face_shape (x, y) of the 68-point parts used below
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852), 39: (0.334606, 0.231733),
    40: (0.260918, 0.245099), 41: (0.182743, 0.244077), 42: (0.645647, 0.231733), 43: (0.714428, 0.179852),
    44: (0.793132, 0.178758), 45: (0.858516, 0.216423), 46: (0.79751, 0.244077), 47: (0.719335, 0.245099),
    30: (0.490127, 0.515625), 48: (0.254149, 0.780233), 54: (0.726104, 0.780233)}

#: MTCNN's five points (left eye, right eye, nose, mouth left, mouth right; "left" = smaller x) in dlib's box
MTCNN_IN_DLIB_FACE = np.array([np.mean([_MEAN_FACE[i] for i in range(36, 42)], axis=0),
                               np.mean([_MEAN_FACE[i] for i in range(42, 48)], axis=0),
                               _MEAN_FACE[30], _MEAN_FACE[48], _MEAN_FACE[54]])


#: rows of MTCNN_IN_DLIB_FACE the chip's similarity is fitted to: each eye twice, the nose once (dlib's weights)
MTCNN_FIT = (0, 0, 1, 1, 2)


def chip_points(template: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """Template points (n, 2) of the unit face box in pixels of a ``size`` chip with ``padding``."""
    return (padding + np.asarray(template, dtype=np.float64)) / (2 * padding + 1) * size


def chip_to_photo(landmarks: np.ndarray, template: np.ndarray, size: int = CHIP_SIZE,
                  padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's ``find_similarity_transform(chip_points, landmarks)``: the (2, 3) map from chip to photo pixels."""
    return similarity_transform(chip_points(template, size, padding),
                                np.asarray(landmarks, dtype=np.float64).reshape(-1, 2))


def _rect_down(rect: np.ndarray) -> np.ndarray:
    """``pyramid_down<2>::rect_down`` of a (left, top, right, bottom) drectangle."""
    return np.array([rect[0] / 2 - 1.25, rect[1] / 2 - 0.75, rect[2] / 2 - 1.25, rect[3] / 2 - 0.75])


def _area(rect: np.ndarray) -> float:
    w, h = rect[2] - rect[0] + 1, rect[3] - rect[1] + 1              # dlib's inclusive widths
    return 0.0 if w <= 0 or h <= 0 else float(w * h)


def _pyramid_down(img: np.ndarray) -> np.ndarray:
    """``pyramid_down<2>`` on RGB: 5x5 binomial [1 4 6 4 1]^2 / 256 (integer division) at every other pixel."""
    h, w = img.shape[:2]
    a = img.astype(np.int32)
    nc, nr = (w - 3) // 2, (h - 3) // 2
    k = (1, 4, 6, 4, 1)
    rows = sum(k[j] * a[:, j:j + 2 * nc:2] for j in range(5))           # (h, nc, 3): columns 2c .. 2c+4
    out = sum(k[i] * rows[i:i + 2 * nr:2] for i in range(5))            # (nr, nc, 3): rows 2r .. 2r+4
    return (out // 256).astype(np.uint8)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear at points (x, y): truncated to uint8, 0 where a neighbour is outside."""
    h, w = img.shape[:2]
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    lc, tc = np.clip(left, 0, max(w - 2, 0)), np.clip(top, 0, max(h - 2, 0))
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    f = img.astype(np.float64)
    val = (1 - fy) * ((1 - fx) * f[tc, lc] + fx * f[tc, lc + 1]) + fy * ((1 - fx) * f[tc + 1, lc] + fx * f[tc + 1, lc + 1])
    return np.where(inside[..., None], val, 0.0).astype(np.uint8)


def extract_chip(image: np.ndarray, chip_to_photo_matrix: np.ndarray, size: int = CHIP_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` RGB uint8 chip, cut as dlib's ``extract_image_chip`` cuts it.

    From the chip->photo similarity: dlib's chip_details (a rectangle of side size * scale about the
    image of the chip's centre, and an angle); the photo cropped to the rectangle's rotated bounds (grown
    2 px per pyramid level, 2 * grow + 2); halved with ``pyramid_down<2>`` while the halved rectangle is
    still larger than the chip; then the chip's corners (0, 0), (size-1, 0), (0, size-1) mapped onto the
    rotated rectangle's corners, and every chip pixel sampled bilinearly there.
    """
    img = _as_rgb(image)
    m = np.asarray(chip_to_photo_matrix, dtype=np.float64)
    p = m[:, :2] @ np.array([1.0, 0.0])
    scale, angle = float(np.hypot(*p)), float(np.arctan2(p[1], p[0]))
    c = m[:, :2] @ np.array([size / 2.0, size / 2.0]) + m[:, 2]
    half = (size * scale - 1) / 2
    rect = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = (np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]], [rect[2], rect[3]]]) - c) @ rot.T + c

    depth, grow, down = 0, 2.0, _rect_down(rect)
    while _area(down) > size * size:
        down, depth, grow = _rect_down(down), depth + 1, grow * 2 + 2
    h, w = img.shape[:2]
    lo, hi = corners.min(0) - grow, corners.max(0) + grow
    bl, bt = int(np.round(max(lo[0], 0))), int(np.round(max(lo[1], 0)))          # intersect, then lround
    br, bb = int(np.round(min(hi[0], w - 1))), int(np.round(min(hi[1], h - 1)))
    if br < bl or bb < bt:
        return np.zeros((size, size, 3), np.uint8)
    level_img = img[bt:bb + 1, bl:br + 1]
    rect = rect - np.array([bl, bt, bl, bt])
    while _area(_rect_down(rect)) > size * size:
        level_img, rect = _pyramid_down(level_img), _rect_down(rect)
    rc = np.array([(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2])
    to = (np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]]]) - rc) @ rot.T + rc
    frm = np.array([[0.0, 0.0], [size - 1.0, 0.0], [0.0, size - 1.0]])
    affine = np.linalg.solve(np.c_[frm, np.ones(3)], to).T                          # (2, 3): chip -> level image
    cc, rr = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    x = affine[0, 0] * cc + affine[0, 1] * rr + affine[0, 2]
    y = affine[1, 0] * cc + affine[1, 1] * rr + affine[1, 2]
    return _bilinear(level_img, x, y)


def mtcnn_chip(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE,
               padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's chip of one face from ferkit's MTCNN five points (5, 2)."""
    idx = list(MTCNN_FIT)
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)[idx]
    return extract_chip(image, chip_to_photo(lm, MTCNN_IN_DLIB_FACE[idx], size, padding), size)


def dlib5_chip(image: np.ndarray, parts: np.ndarray, size: int = CHIP_SIZE,
               padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's chip from dlib's own 5 landmark parts (5, 2), as ``dlib.get_face_chip`` cuts it."""
    return extract_chip(image, chip_to_photo(parts, DLIB_5_POINTS, size, padding), size)
