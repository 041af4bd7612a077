"""face-api's tiny face detector and tiny 68-point landmark net, in torch, with their released weights.

The second real detector next to MTCNN (``data/faces.py``): Vladimir Mandic's ``@vladmandic/face-api`` (MIT,
npm; the maintained fork of Vincent Mühler's face-api.js) ships a Tiny-YOLOv2-style face detector with
depthwise-separable convolutions (``tiny_face_detector_model``, 190 KB, one 13 x 13 grid of 5 anchors at its
default 416 px input) and a 68-point landmark regressor (``face_landmark_68_tiny_model``, 77 KB, 112 px
crops). Their weights are tfjs weight files: a JSON manifest of names, shapes and uint8 quantisation
(value = q * scale + min, in doubles) over one binary. ``ferkit install face-api`` puts them in place from the npm
registry (``weights.py`` of this package: the tarball's sha256 is checked); nothing is fetched at run time.

Each step follows face-api's own code on a tensor input, so the boxes are the ones face-api finds
(``tests/test_tiny_face.py`` compares them with face-api run in Node on the same photos):

- detector input: the photo zero-padded at its bottom or right to a square, resized to ``input_size`` with
  TF's legacy bilinear sampling (no half-pixel centres), minus the mean RGB (117.001, 114.697, 97.404), / 255 (this fork's value; face-api.js divided by 256);
- network: 3x3 'valid' conv, then separable 3x3 convs (padded by 1) each followed by a 2x2 max-pool ('same'
  padding; the last with stride 1), every layer a leaky ReLU of slope 0.1, and a 1x1 conv to 5 x 5 outputs;
- decoding: per cell and anchor, sigmoid(score), centre (cell + sigmoid(t)) / cells, size exp(t) x anchor /
  cells, in units of the padded square, corrected to the photo; greedy NMS at IoU 0.4;
- landmarks: each box (clipped to the photo, floored) cropped, zero-padded to a centred square, resized to
  112 px, minus the mean RGB (122.782, 117.001, 104.298), / 255, through three dense blocks of separable
  convs, a 14 x 14 average pool and a linear layer to 68 relative points, shifted to where the crop began
  (face-api shifts by the unclipped box: one deliberate difference, for faces cut by the left or top edge).

The five points ferkit aligns with are taken from the 68 (iBUG-300W order): the centres of points 36-41 and
42-47 (the eyes), 30 (nose tip), 48 and 54 (mouth corners).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

DETECTOR_FILES = ("tiny_face_detector_model-weights_manifest.json", "tiny_face_detector_model.bin")
LANDMARK_FILES = ("face_landmark_68_tiny_model-weights_manifest.json", "face_landmark_68_tiny_model.bin")

#: face-api's TinyFaceDetector constants (src/tinyFaceDetector/const.ts)
ANCHORS = np.array([[1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061], [4.266906, 5.178857],
                    [9.041765, 10.66308]], dtype=np.float64)
DETECTOR_MEAN_RGB = (117.001, 114.697, 97.404)
IOU_THRESHOLD = 0.4
LANDMARK_MEAN_RGB = (122.782, 117.001, 104.298)
LANDMARK_SIZE = 112
#: the largest detector input accepted (face-api's own sizes go to 608; larger only costs memory, 16 x S^2 floats)
MAX_INPUT_SIZE = 2048

#: the 68-point indices of ferkit's five points: (eye, eye, nose, mouth corner, mouth corner), image-left first
FIVE_FROM_68 = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))


def read_tfjs_weights(manifest: Path, binary: Path) -> dict[str, np.ndarray]:
    """A tfjs weights manifest and its binary as name -> float32 array (tfjs's own shapes, HWIO for convs);
    uint8/uint16 quantised entries are dequantised as tfjs does (q * scale + min)."""
    try:
        groups = json.loads(Path(manifest).read_text())
        data = Path(binary).read_bytes()
    except (OSError, json.JSONDecodeError) as e:
        raise FerkitError(f"Cannot read the face-api weights {manifest} / {binary} ({e}); reinstall them with "
                          "`ferkit install face-api`.") from None
    out, offset = {}, 0
    for group in groups:
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            dtype = np.dtype(q["dtype"] if q else w["dtype"])
            if offset + n * dtype.itemsize > len(data):
                offset += n * dtype.itemsize
                continue
            raw = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
            offset += n * dtype.itemsize
            # tfjs dequantises in JS doubles, then stores float32
            vals = (raw * float(q["scale"]) + float(q["min"])).astype(np.float32) if q else raw.astype(np.float32)
            out[w["name"]] = vals.reshape(w["shape"])
    if offset != len(data):
        raise FerkitError(f"The face-api weights {binary} hold {len(data)} bytes where {manifest} describes {offset}; "
                          "reinstall them with `ferkit install face-api`.")
    return out


def _conv(w: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))        # HWIO -> OIHW


def _depthwise(w: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(w[:, :, :, 0].transpose(2, 0, 1)[:, None]))   # (C, 1, 3, 3)


def _bias(b: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(b))


def _leaky(x):
    """face-api's leaky(), relu(x - 0.1 x) + 0.1 x, i.e. a leaky ReLU of slope 0.1 (one in-place pass here; the
    two differ by rounding only)."""
    import torch.nn.functional as F

    return F.leaky_relu(x, 0.10000000149011612, inplace=True)


def _max_pool_2x2(x, stride: int):
    """TF's 2x2 max-pool with 'same' padding: at stride 2 an extra row/column at the bottom/right where the
    side is odd (``ceil_mode``), at stride 1 one -inf row and column there."""
    import torch.nn.functional as F

    if stride == 1:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, 1)
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class TinyFaceDetectorNet:
    """The detector's network on NCHW float input already normalised (see ``detector_input``)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.conv0 = (_conv(weights["conv0/filters"]), _bias(weights["conv0/bias"]))
        self.sep = [(_depthwise(weights[f"conv{i}/depthwise_filter"]), _conv(weights[f"conv{i}/pointwise_filter"]),
                     _bias(weights[f"conv{i}/bias"])) for i in range(1, 6)]
        self.conv8 = (_conv(weights["conv8/filters"]), _bias(weights["conv8/bias"]))

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        x = x.contiguous(memory_format=torch.channels_last)       # NHWC: oneDNN's convs and pools run far faster
        x = _max_pool_2x2(_leaky(F.conv2d(x, *self.conv0)), 2)
        for i, (dw, pw, b) in enumerate(self.sep):
            x = _leaky(F.conv2d(F.conv2d(x, dw, padding=1, groups=dw.shape[0]), pw, b))
            x = _max_pool_2x2(x, 2 if i < 4 else 1)                 # the last pool: stride 1
        return F.conv2d(x, *self.conv8)


class TinyLandmarkNet:
    """face-api's FaceLandmark68TinyNet on (N, 3, 112, 112) normalised crops: (N, 136) relative x, y pairs."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.first = (_conv(weights["dense0/conv0/filters"]), _bias(weights["dense0/conv0/bias"]))
        self.blocks = []
        for d in range(3):
            convs = [None if (d == 0 and c == 0) else
                     (_depthwise(weights[f"dense{d}/conv{c}/depthwise_filter"]),
                      _conv(weights[f"dense{d}/conv{c}/pointwise_filter"]), _bias(weights[f"dense{d}/conv{c}/bias"]))
                     for c in range(3)]
            self.blocks.append(convs)
        self.fc = (_bias(weights["fc/weights"]), _bias(weights["fc/bias"]))

    @staticmethod
    def _sep(x, p, stride: int):
        import torch.nn.functional as F

        dw, pw, b = p
        if stride == 1:                                             # 'same' at stride 1 is 1 on every side
            return F.conv2d(F.conv2d(x, dw, padding=1, groups=dw.shape[0]), pw, b)
        return F.conv2d(F.conv2d(_same_pad(x, 3, stride), dw, stride=stride, groups=dw.shape[0]), pw, b)

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        x = x.contiguous(memory_format=torch.channels_last)        # NHWC, as the detector: ~1.5x faster here
        for d, convs in enumerate(self.blocks):
            if d == 0:
                out1 = torch.relu(F.conv2d(_same_pad(x, 3, 2), self.first[0], self.first[1], stride=2))
            else:
                out1 = torch.relu(self._sep(x, convs[0], 2))
            out2 = self._sep(out1, convs[1], 1)
            out3 = self._sep(torch.relu(out1 + out2), convs[2], 1)
            x = torch.relu(out1 + (out2 + out3))
        x = F.avg_pool2d(x, 14, 2)                                  # (N, 128, 1, 1) at 112 px
        w, b = self.fc
        return x.flatten(1) @ w + b


def _same_pad(x, k: int, stride: int):
    """TF 'same' padding for a k x k window at ``stride`` (the extra row/column at the bottom/right)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph = max(0, (-(-h // stride) - 1) * stride + k - h)
    pw = max(0, (-(-w // stride) - 1) * stride + k - w)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def tf_resize_square(image: np.ndarray, size: int, centre: bool) -> np.ndarray:
    """face-api's padToSquare then TF's legacy ``resize_bilinear`` (align_corners=False, half_pixel_centers=False:
    source = destination x side / size, no half-pixel offset), without building the padded square: each output
    row and column gathers its two source rows/columns from the photo, zero where they fall in the padding.
    (H, W, 3) uint8 -> (size, size, 3) float32 tensor. The padding goes after the photo (bottom/right), or, with
    ``centre``, is split with the larger part after it (JS Math.round of half the difference)."""
    h, w = image.shape[:2]
    side = max(h, w)
    diff = side - min(h, w)
    before = (diff - int(np.floor(diff * 0.5 + 0.5))) if centre else 0
    off_y, off_x = (before, 0) if w > h else (0, before)

    def axis(n: int, offset: int):
        src = np.arange(size, dtype=np.float64) * (side / size)
        lo = np.minimum(np.floor(src).astype(np.int64), side - 1)
        hi = np.minimum(lo + 1, side - 1)
        frac = (src - lo).astype(np.float32)
        lo, hi = lo - offset, hi - offset
        return (np.clip(lo, 0, n - 1), ((lo >= 0) & (lo < n)).astype(np.float32), np.clip(hi, 0, n - 1),
                ((hi >= 0) & (hi < n)).astype(np.float32), frac)

    import torch

    x0, m0, x1, m1, fx = axis(w, off_x)
    y0, n0, y1, n1, fy = axis(h, off_y)
    # the two source rows of every output row gathered first (numpy: torch's index_select of uint8 rows is far
    # slower), then both source columns of every output column in one gather, on those 2 x size rows only; each
    # output value sees TF's float32 operations: top = tl + (tr - tl) * fx, bottom likewise, out = top +
    # (bottom - top) * fy; sources in the padding read zero
    rows = torch.from_numpy(np.ascontiguousarray(image[np.concatenate([y0, y1])]))    # (2 size, w, 3) uint8
    both = rows.index_select(1, torch.from_numpy(np.concatenate([x0, x1]))).float()  # (2 size, 2 size, 3)
    col_mask, row_mask = np.concatenate([m0, m1]), np.concatenate([n0, n1])
    if not col_mask.all():
        both.mul_(torch.from_numpy(col_mask).view(1, -1, 1))
    left, right = both[:, :size], both[:, size:]
    across = (right - left).mul_(torch.from_numpy(fx).view(1, -1, 1)).add_(left)       # (2 size, size, 3)
    if not row_mask.all():
        across.mul_(torch.from_numpy(row_mask).view(-1, 1, 1))
    top, bottom = across[:size], across[size:]
    return (bottom - top).mul_(torch.from_numpy(fy).view(-1, 1, 1)).add_(top)


def _normalise(batch, mean: tuple[float, float, float], divide: float):
    import torch

    return (batch - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) / divide


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.maximum(0.0, np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]))
    h = np.maximum(0.0, np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]))
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = IOU_THRESHOLD) -> list[int]:
    """face-api's greedy NMS: highest score first, dropping boxes whose IoU with it exceeds ``iou``."""
    order = list(np.argsort(scores, kind="stable"))             # ascending, popped from the end as face-api does
    keep = []
    while order:
        cur = order.pop()
        keep.append(int(cur))
        if order:
            o = _iou(boxes[cur], boxes[np.array(order)])
            order = [i for i, v in zip(order, o, strict=True) if v <= iou]
    return keep


def decode(out: np.ndarray, width: int, height: int, input_size: int, score_threshold: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """One image's (25, cells, cells) output as (boxes (n, 4) x1 y1 x2 y2 in the photo's pixels, scores (n,))
    after NMS, highest score first."""
    cells = out.shape[-1]
    o = out.astype(np.float64).reshape(len(ANCHORS), 5, cells, cells)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    score = sig(o[:, 4])                                            # (anchors, rows, cols)
    r, c, a = np.nonzero(score.transpose(1, 2, 0) > score_threshold)   # face-api's order: row, column, anchor
                                                                    # (it decides NMS ties between equal scores)
    if a.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    scale = input_size / max(width, height)
    cx_f = input_size / np.floor(width * scale + 0.5)               # face-api's correction to the reshaped image
    cy_f = input_size / np.floor(height * scale + 0.5)              # (JS Math.round: halves up, not to even)
    cx = (c + sig(o[a, 0, r, c])) / cells * cx_f
    cy = (r + sig(o[a, 1, r, c])) / cells * cy_f
    bw = np.exp(o[a, 2, r, c]) * ANCHORS[a, 0] / cells * cx_f
    bh = np.exp(o[a, 3, r, c]) * ANCHORS[a, 1] / cells * cy_f
    rel = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    s = score[a, r, c]
    keep = nms(rel, s)
    return rel[keep] * np.array([width, height, width, height], dtype=np.float64), s[keep]


def detector_input(images: list[np.ndarray], input_size: int):
    """(N, 3, input_size, input_size) normalised detector input from RGB uint8 photos of any sizes."""
    import torch

    batch = torch.stack([tf_resize_square(img, input_size, centre=False) for img in images])
    return _normalise(batch.permute(0, 3, 1, 2), DETECTOR_MEAN_RGB, 255.0)   # an NCHW view of NHWC memory


def landmark_input(image: np.ndarray, boxes: np.ndarray):
    """(n, 3, 112, 112) normalised landmark-net input: each box clipped to the photo, floored, cropped,
    padded to a centred square and resized; also each crop's (x, y, w, h) after clipping."""
    import torch

    h, w = image.shape[:2]
    crops, dims = [], []
    for x1, y1, x2, y2 in boxes:
        cx, cy = max(x1, 0.0), max(y1, 0.0)
        cw, ch = min(x2 - cx, w - cx), min(y2 - cy, h - cy)
        cx, cy, cw, ch = int(np.floor(cx)), int(np.floor(cy)), int(np.floor(cw)), int(np.floor(ch))
        crops.append(tf_resize_square(image[cy:cy + ch, cx:cx + cw], LANDMARK_SIZE, centre=True))
        dims.append((cw, ch))
    batch = torch.stack(crops).permute(0, 3, 1, 2)
    return _normalise(batch.contiguous(), LANDMARK_MEAN_RGB, 255.0), dims


def landmarks_to_image(rel: np.ndarray, dims: list[tuple[int, int]], boxes: np.ndarray) -> np.ndarray:
    """(n, 136) relative outputs as (n, 68, 2) points in the photo: face-api's postProcess, then the shift to
    where the crop began. face-api shifts by the unclipped box, which puts the points of a face cut by the
    photo's left or top edge off by the clipped amount (outside the photo); ferkit shifts by the clipped box,
    the same for every box inside the photo."""
    out = np.zeros((len(dims), 68, 2))
    for i, ((cw, ch), box) in enumerate(zip(dims, boxes, strict=True)):
        s = LANDMARK_SIZE / max(cw, ch)
        iw, ih = cw * s, ch * s
        px = abs(iw - ih) / 2 if iw < ih else 0.0
        py = abs(iw - ih) / 2 if ih < iw else 0.0
        p = rel[i].astype(np.float64).reshape(68, 2)
        pts = np.stack([(p[:, 0] * LANDMARK_SIZE - px) / iw, (p[:, 1] * LANDMARK_SIZE - py) / ih], 1)
        out[i] = pts * np.array([cw, ch]) + np.maximum(box[:2], 0.0)
    return out


def five_points(points68: np.ndarray) -> np.ndarray:
    """(n, 68, 2) -> (n, 5, 2): eye centres, nose tip, mouth corners (``FIVE_FROM_68``)."""
    return np.stack([points68[:, list(idx)].mean(1) for idx in FIVE_FROM_68], 1)


def overlaps_photo(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n,) True where an (x1, y1, x2, y2) box overlaps the width x height photo by at least 1 px each way (the
    landmark net needs a crop of at least 1 x 1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (np.minimum(boxes[:, 2], width) - np.maximum(boxes[:, 0], 0) >= 1) & \
           (np.minimum(boxes[:, 3], height) - np.maximum(boxes[:, 1], 0) >= 1)


def check_input_size(size: int, what: str = "--detector-size") -> None:
    """FerkitError unless ``size`` is a multiple of 32 from 32 to ``MAX_INPUT_SIZE``; ``what`` names it."""
    if size < 32 or size % 32 or size > MAX_INPUT_SIZE:
        raise FerkitError(f"{what} must be a multiple of 32 from 32 to {MAX_INPUT_SIZE} (e.g. 416, 320, 224), "
                          f"not {size}.")


class TinyFaceDetector:
    """face-api's tiny face detector + tiny 68-point landmarks, with the ``FaceDetector`` interface: ``detect``
    and ``detect_batch`` give each photo's faces (box, five landmarks, score), largest first.

    input_size:      the detector's square input side, a multiple of 32 (face-api's default 416; 320, 224 and
                     160 are faster and find fewer small faces).
    score_threshold: detection score kept (face-api's default 0.5).
    weights_dir:     where ``ferkit install face-api`` put the model files (default: ``faceapi_weights_dir()``).

    It runs on the CPU whatever the model's device (a few milliseconds a photo; ``device`` is accepted for the
    detectors' common signature).
    """

    name = "tiny"
    chunk = 2                                 # photos per forward pass

    def __init__(self, input_size: int = 416, score_threshold: float = 0.5, weights_dir: str | Path | None = None,
                 device: str = "cpu"):
        from ferkit.data.faceapi_weights import faceapi_weights_dir

        check_input_size(input_size, "The tiny face detector's input size")
        if not 0.0 < score_threshold < 1.0:
            raise FerkitError(f"The tiny face detector's score threshold must lie in (0, 1), not {score_threshold}.")
        d = Path(weights_dir) if weights_dir is not None else faceapi_weights_dir()
        self.input_size, self.score_threshold = int(input_size), float(score_threshold)
        self.net = TinyFaceDetectorNet(read_tfjs_weights(d / DETECTOR_FILES[0], d / DETECTOR_FILES[1]))
        self.landmarks = TinyLandmarkNet(read_tfjs_weights(d / LANDMARK_FILES[0], d / LANDMARK_FILES[1]))

    def detect(self, image: np.ndarray):
        return self.detect_batch([image])[0]

    def detect_boxes(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(boxes (n, 4), scores (n,)) per photo, face-api's order (highest score first); photos of any sizes go
        through the network together (each is padded and resized to the one input square)."""
        import torch

        from ferkit.data.faces import _as_rgb

        imgs = [_as_rgb(im) for im in images]
        found: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros((0, 4)), np.zeros(0)) for _ in imgs]
        idx = [i for i, im in enumerate(imgs) if min(im.shape[:2]) >= 2]       # an empty photo has no face
        with torch.no_grad():                 # a few photos at a time: larger batches leave the caches (slower)
            for a in range(0, len(idx), self.chunk):
                part = idx[a:a + self.chunk]
                out = self.net(detector_input([imgs[i] for i in part], self.input_size)).numpy()
                for i, o in zip(part, out, strict=True):
                    found[i] = decode(o, imgs[i].shape[1], imgs[i].shape[0], self.input_size, self.score_threshold)
        return found

    def detect_landmarks(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(n, 68, 2) landmarks of the faces in ``boxes`` (face-api's withFaceLandmarks(useTinyModel=True))."""
        from ferkit.data.faces import _as_rgb

        return self.landmarks_of([_as_rgb(image)], [boxes])[0]

    def landmarks_of(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """(n_i, 68, 2) landmarks per RGB photo, the faces of all photos through the landmark net together (a
        face's points do not depend on what shares its batch beyond float rounding, ~1e-5 px)."""
        import torch

        crops, dims, flat = [], [], []
        for img, bx in zip(images, boxes, strict=True):
            h, w = img.shape[:2]
            bx = np.asarray(bx, dtype=np.float64).reshape(-1, 4)
            inside = overlaps_photo(bx, w, h)
            if not inside.all():
                raise FerkitError(f"A face box must overlap the {w}x{h} photo by at least 1 px; "
                                  f"{bx[~inside][0].round(1).tolist()} does not.")
            flat.append(bx)
            if len(bx):
                x, d = landmark_input(img, bx)
                crops.append(x)
                dims.extend(d)
        if not crops:
            return [np.zeros((0, 68, 2)) for _ in images]
        with torch.no_grad():
            rel = self.landmarks(torch.cat(crops)).numpy()
        points = landmarks_to_image(rel, dims, np.concatenate(flat))
        ends = np.cumsum([len(bx) for bx in flat])
        return list(np.split(points, ends[:-1]))

    def detect_batch(self, images: list[np.ndarray], max_pixels: int | None = None):
        from ferkit.data.faces import Face, _as_rgb

        images = [_as_rgb(im) for im in images]
        found = []
        for im, (boxes, scores) in zip(images, self.detect_boxes(images), strict=True):
            h, w = im.shape[:2]
            ok = overlaps_photo(boxes, w, h)
            found.append((boxes[ok], scores[ok]))                  # boxes (almost) outside the photo: no face
        points = self.landmarks_of(images, [b for b, _ in found])
        out = []
        for (boxes, scores), p68 in zip(found, points, strict=True):
            pts = five_points(p68) if len(boxes) else np.zeros((0, 5, 2))
            faces = [Face(box=boxes[i], landmarks=pts[i], score=float(scores[i])) for i in range(len(boxes))]
            faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            out.append(faces)
        return out
