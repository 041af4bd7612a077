"""Face detection (MTCNN, real pretrained weights) and 5-point similarity alignment to a template.

Detection uses the three-stage MTCNN of Zhang et al. 2016 ("Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks") as ported by facenet-pytorch, whose P/R/O-Net weights ship
inside that package (no download). Each face comes with a box and five landmarks in the order
[left eye, right eye, nose, mouth left, mouth right], "left" meaning the image's left (smaller x).

Alignment estimates the least-squares similarity transform (rotation, uniform scale, translation;
Umeyama 1991) that maps the five detected points onto a template, then warps the image with it. The
"default" template is the ArcFace/InsightFace 112x112 five-point template (Deng et al. 2019), stored
normalised to [0, 1] so any output size scales it: eye centres at (0.342, 0.462) and (0.657, 0.460),
nose tip at (0.500, 0.641), mouth corners at (0.371, 0.825) and (0.631, 0.824). At 112 px that is the
eyes at (38.3, 51.7) and (73.5, 51.5); at 224 px twice that. "wide" is the same shape shrunk by 0.8
about the centre (more forehead and chin, as looser FER crops have).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

#: ArcFace 112x112 five-point template, in pixels of a 112x112 crop.
_ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

#: name -> (5, 2) landmark positions normalised to [0, 1] of the output square.
TEMPLATES: dict[str, np.ndarray] = {
    "default": _ARCFACE_112 / 112.0,
    "wide": 0.5 + (_ARCFACE_112 / 112.0 - 0.5) * 0.8,
}

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Face:
    """One detected face: box (4,) x1, y1, x2, y2 in pixels; landmarks (5, 2) x, y; detector score."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box],
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
                "score": round(float(self.score), 5)}


def template_landmarks(size: int, template: str = "default") -> np.ndarray:
    """The template's five points in pixels of a ``size`` x ``size`` crop, shape (5, 2)."""
    if template not in TEMPLATES:
        raise FerkitError(f"Unknown alignment template '{template}'; use one of {', '.join(TEMPLATES)}.")
    return TEMPLATES[template] * float(size)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` (N, 2) onto ``dst`` (N, 2) (Umeyama 1991).

    Minimises sum_i || s R src_i + t - dst_i ||^2 over rotation R, scale s > 0 and translation t, with
    the reflection-free solution R = U diag(1, det(U V^T)) V^T from the SVD of the cross-covariance.
    Returns the (2, 3) matrix [s R | t] as cv2.warpAffine takes it.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)                  # (2,)
    xs, xd = src - mu_s, dst - mu_d                        # (N, 2)
    var_s = (xs ** 2).sum() / len(src)
    if var_s < 1e-12:
        raise FerkitError("The five landmarks coincide, so no alignment can be estimated from them.")
    cov = xd.T @ xs / len(src)                             # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt                              # (2, 2)
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s                          # (2,)
    return np.concatenate([scale * rot, t[:, None]], axis=1)


def estimate_alignment(landmarks: np.ndarray, size: int, template: str = "default") -> np.ndarray:
    """The (2, 3) similarity matrix taking detected ``landmarks`` (5, 2) to the template at ``size``."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return similarity_transform(lm, template_landmarks(size, template))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (N, 2)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, template: str = "default") -> np.ndarray:
    """Warp ``image`` (H, W, 3) or (H, W) uint8 so the landmarks land on the template: (size, size, 3)."""
    import cv2

    img = _as_rgb(image)
    matrix = estimate_alignment(landmarks, size, template)
    return cv2.warpAffine(img, matrix, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def crop_box(image: np.ndarray, box: np.ndarray, margin: float = 0.0, square: bool = False) -> np.ndarray:
    """The detector box (x1, y1, x2, y2) cut out of ``image`` at its own resolution: uint8 (h, w, 3).

    ``square`` first grows the shorter side about the centre (as the ``fer`` package's ``tosquare``);
    ``margin`` then widens each side by that fraction of the box's side. Parts outside the image repeat
    its border pixels, so the crop keeps the box's shape.
    """
    import cv2

    img = _as_rgb(image)
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    if square:
        side = max(w, h)
        x1, y1, w, h = x1 - (side - w) / 2, y1 - (side - h) / 2, side, side
    x1, y1, w, h = x1 - margin * w, y1 - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)
    left, t = int(round(x1)), int(round(y1))
    r, b = max(left + 1, int(round(x1 + w))), max(t + 1, int(round(y1 + h)))
    H, W = img.shape[:2]
    pad = max(0, -left, -t, r - W, b - H)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(img[t + pad:b + pad, left + pad:r + pad])


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise FerkitError(f"Face images must be uint8 arrays, got {img.dtype}; convert with read_image first.")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise FerkitError(f"Face images must be (H, W) or (H, W, 3) arrays, got shape {img.shape}.")
    return np.ascontiguousarray(img[:, :, :3])


class FaceDetector:
    """MTCNN face + 5-landmark detector with the pretrained weights shipped in facenet-pytorch.

    device:        torch device for the three networks.
    min_face_size: smallest face side in pixels searched for (MTCNN ``minsize``), or "auto": chosen from each
                   photo as ``AUTO_FACE_FRACTION`` of its shorter side (at least 20 px), the photo then
                   searched at the resolution where that face is 20 px (a 1600 x 1200 photo at 400 x 300,
                   faces of 100 px and more; opt-in: smaller faces are missed, boxes move by a few px).
    thresholds:    P/R/O-Net acceptance scores (MTCNN defaults).
    max_side:      images with a longer side are searched at this side and the results scaled back
                   (keeps 12-megapixel photos fast; faces under ``min_face_size`` at that scale are missed).

    ``detect`` returns the faces of one image, largest first.
    """

    def __init__(self, device: str = "cpu", min_face_size: int | str = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 max_side: int = 1600):
        import torch

        self.device = torch.device(device if device != "auto" else "cpu")
        self.auto = min_face_size == "auto"
        self.min_face_size = AUTO_MIN_FACE if self.auto else parse_min_face(min_face_size)
        self.thresholds = [float(t) for t in thresholds]
        self.factor = float(factor)
        self.max_side = int(max_side)
        self._nets = _load_mtcnn(self.device)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB (or gray) uint8 image, sorted by box area, largest first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray], max_pixels: int = 1 << 24) -> list[list[Face]]:
        """``detect`` for each image, all through MTCNN together whatever their sizes (``mtcnn_batch``: each
        image keeps its own pyramid and clipping, so its faces are those ``detect`` finds for it alone), at
        most ``max_pixels`` pixels per P-Net canvas. Images that all share one size (video frames, a server's
        batch) take facenet-pytorch's own batch mode instead, which resizes them in one call: for many small
        photos the per-image steps of the any-size path cost more than they share."""
        import torch

        from ferkit.data.mtcnn_batch import detect_faces_any_size

        prepared = [self._prepare(im) for im in images]
        out: list[list[Face]] = [[] for _ in images]
        idx = [i for i, (img, _) in enumerate(prepared) if img is not None]
        if not idx:
            return out
        shapes = {prepared[i][0].shape for i in idx}
        if len(shapes) == 1:                      # one size: facenet-pytorch's own batch, in canvases of max_pixels
            h, w = next(iter(shapes))[:2]
            per = max(1, max_pixels // (h * w))
            found = []
            for a in range(0, len(idx), per):
                with torch.no_grad():
                    boxes, points = self._nets["detect_face"](
                        np.stack([prepared[i][0] for i in idx[a:a + per]]), self.min_face_size, self._nets["pnet"],
                        self._nets["rnet"], self._nets["onet"], self.thresholds, self.factor, self.device)
                found += list(zip(boxes, points, strict=True))
        else:
            with torch.no_grad():
                found = detect_faces_any_size([prepared[i][0] for i in idx], self.min_face_size, self._nets["pnet"],
                                              self._nets["rnet"], self._nets["onet"], self.thresholds,
                                              self.factor, self.device, max_pixels)
        for i, (boxes, points) in zip(idx, found, strict=True):
            out[i] = _faces(boxes, points, prepared[i][1])
        return out

    def detect_reference(self, image: np.ndarray) -> list[Face]:
        """One image through facenet-pytorch's own ``detect_face`` (the parity reference of ``detect_batch``)."""
        import torch

        img, scale = self._prepare(image)
        if img is None:
            return []
        with torch.no_grad():
            boxes, points = self._nets["detect_face"](img[None], self.min_face_size, self._nets["pnet"],
                                                      self._nets["rnet"], self._nets["onet"], self.thresholds,
                                                      self.factor, self.device)
        return _faces(boxes[0], points[0], scale)

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray | None, float]:
        """(the RGB image at the searched scale, or None when under 12 px; that scale)."""
        import cv2

        img = _as_rgb(image)
        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if self.auto:
            scale = min(scale, AUTO_MIN_FACE / max(AUTO_MIN_FACE, AUTO_FACE_FRACTION * min(h, w)))
        if scale < 1.0:
            img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        return (None if min(img.shape[:2]) < 12 else img), scale


#: ``min_face_size="auto"``: the smallest face searched is this fraction of the photo's shorter side (the
#: smallest face of the real test photos is 0.117 of it: multi_face.jpg), searched for at AUTO_MIN_FACE px
AUTO_FACE_FRACTION = 1 / 12
AUTO_MIN_FACE = 20


def parse_min_face(value) -> int | str:
    """A minimum face size as given on the command line: "auto", or whole pixels >= 1 (FerkitError otherwise)."""
    if value == "auto":
        return value
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = 0
    if v < 1:
        raise FerkitError(f"The minimum face size must be a whole number of pixels (at least 1) or auto, got {value!r}.")
    return v


def _faces(boxes, points, scale: float) -> list[Face]:
    """One image's MTCNN output as Faces in the original image's pixels, largest first."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)          # (n, 5) x1 y1 x2 y2 score
    p = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)      # (n, 5, 2)
    faces = [Face(box=b[i, :4] / scale, landmarks=p[i] / scale, score=float(b[i, 4])) for i in range(len(b))]
    faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return faces


#: the one command that installs the MTCNN weights next to ferkit (facenet-pytorch's own pins, torch<2.3 and
#: numpy<2, cannot be satisfied beside ferkit's, so it goes in without them; ferkit's dependencies cover its imports)
MTCNN_REMEDY = "pip install --no-deps 'facenet-pytorch>=2.5'"


def mtcnn_weights_dir() -> Path:
    """The folder holding facenet-pytorch's pnet.pt, rnet.pt and onet.pt; FerkitError when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FerkitError(f"Face detection needs the MTCNN weights of facenet-pytorch, which is not installed; run "
                          f"`{MTCNN_REMEDY}`, or pass face crops that are already aligned with --aligned.")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _load_mtcnn(device) -> dict:
    """The MTCNN networks with facenet-pytorch's shipped weights (loaded with weights_only=True)."""
    import torch

    data = mtcnn_weights_dir()
    try:
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
        from facenet_pytorch.models.utils.detect_face import detect_face
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise FerkitError(f"facenet-pytorch (face detection) is installed but cannot import {missing}; "
                          f"reinstall ferkit's dependencies and then run `{MTCNN_REMEDY}`.") from None
    nets = {}
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        path = data / f"{name}.pt"
        if not path.is_file():
            raise FerkitError(f"MTCNN weights {path} are missing; reinstall with `{MTCNN_REMEDY} --force-reinstall`.")
        net = cls(pretrained=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net = net.to(device).eval()
        if torch.device(device).type == "cpu":  # NHWC: oneDNN's CPU convolutions and max-pools run ~1.3x faster on it;
            net.to(memory_format=torch.channels_last)   # the boxes move by float rounding (tests/test_detect_batch.py)
        nets[name] = net
    nets["detect_face"] = detect_face
    return nets
