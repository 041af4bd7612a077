"""Face embeddings of photos and videos: one row per detected face, from any model with an embedding.

    result = ferkit.embed(["photos/", "clip.mp4"], model="dlib-resnet")
    result.embeddings   # (N, D) float32         result.boxes   # (N, 4) x1 y1 x2 y2, pixels
    result.paths        # (N,) the input file    result.frames  # (N,) video frame index, -1 for photos
    result.save("faces.npz")                     # or .csv (one column per component), or .parquet

``model`` is a built-in identity network (``dlib-resnet``: dlib's 128-D face descriptor), a built-in
expression model (``fer-minixception``: its 128-D pooled features), or any ferkit checkpoint or run
folder (its expression embedding; a DICE-FER checkpoint with ``branch="identity"`` gives its identity
code I instead). Faces are found by MTCNN and aligned as the model expects (dlib's 150 px chip for
``dlib-resnet``; the checkpoint's own template and size otherwise).
"""

from __future__ import annotations

import csv
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import FerkitError

BRANCHES = ("expression", "identity")
OUT_SUFFIXES = (".npz", ".csv", ".parquet")


@dataclass
class Embeddings:
    """The rows of `embed`: arrays of N faces, plus the inputs in which no face was found."""

    embeddings: np.ndarray                     # (N, D) float32
    boxes: np.ndarray                          # (N, 4) float32, x1 y1 x2 y2 in pixels
    paths: np.ndarray                          # (N,) str, the input each face came from
    frames: np.ndarray                         # (N,) int64, the video frame; -1 for photos
    faces: np.ndarray                          # (N,) int64, the face's rank in its image (largest first)
    model: str = ""
    branch: str = "expression"
    no_face: list[str] = field(default_factory=list)   # inputs (videos: "path#frame") without a face

    def __len__(self) -> int:
        return len(self.embeddings)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` by its suffix: .npz (the arrays), .csv or .parquet (one column per component)."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in OUT_SUFFIXES:
            raise FerkitError(f"--out {p} has an unknown suffix; use one of {', '.join(OUT_SUFFIXES)}.")
        if suffix == ".parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise FerkitError(f"Writing {p} needs pyarrow, which is not installed; `pip install pyarrow`, or "
                                  "write .npz or .csv instead.") from None
        p.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npz":
            np.savez(p, embeddings=self.embeddings, boxes=self.boxes, paths=self.paths, frames=self.frames,
                     faces=self.faces, model=np.array(self.model), branch=np.array(self.branch))
        elif suffix == ".csv":
            with open(p, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(self._columns())
                for i in range(len(self)):
                    w.writerow([self.paths[i], int(self.frames[i]), int(self.faces[i]),
                                *(f"{v:.2f}" for v in self.boxes[i]), *(f"{v:.8g}" for v in self.embeddings[i])])
        else:
            cols = self._columns()
            data = [list(self.paths), self.frames, self.faces, *self.boxes.T, *self.embeddings.T]
            pq.write_table(pa.table(dict(zip(cols, data, strict=True))), p)
        return p

    def _columns(self) -> list[str]:
        return ["path", "frame", "face", "x1", "y1", "x2", "y2", *(f"e{j}" for j in range(self.embeddings.shape[1]))]


def embed(inputs: Any, model: str | Path = "dlib-resnet", branch: str = "expression", device: str = "auto",
          batch_size: int = 32, every: int = 1, min_face_size: int = 20) -> Embeddings:
    """Embeddings of every face in ``inputs`` (paths, folders, videos, RGB uint8 arrays); see module doc.

    An input that does not exist or cannot be read raises one sentence naming it; one without a face
    contributes no row and is listed in ``no_face``.
    """
    if branch not in BRANCHES:
        raise FerkitError(f"Unknown --branch '{branch}'; use {' or '.join(BRANCHES)}.")
    if batch_size < 1 or every < 1:
        raise FerkitError("--batch-size and --every must be at least 1.")
    embedder = _embedder(model, branch, device, batch_size, min_face_size)
    rows: dict[str, list] = {"e": [], "box": [], "path": [], "frame": [], "face": []}
    no_face: list[str] = []
    for name, frame, image in _images(inputs, every):
        faces = embedder.detector.detect(image)
        if not faces:
            no_face.append(name if frame < 0 else f"{name}#{frame}")
            continue
        rows["e"].append(embedder(image, faces))
        for k, f in enumerate(faces):
            rows["box"].append(np.asarray(f.box[:4], np.float32))
            rows["path"].append(name)
            rows["frame"].append(frame)
            rows["face"].append(k)
    dim = embedder.dim
    emb = np.concatenate(rows["e"]).astype(np.float32) if rows["e"] else np.zeros((0, dim or 0), np.float32)
    return Embeddings(embeddings=emb, boxes=np.asarray(rows["box"], np.float32).reshape(-1, 4),
                      paths=np.asarray(rows["path"], dtype=str), frames=np.asarray(rows["frame"], np.int64),
                      faces=np.asarray(rows["face"], np.int64), model=str(model), branch=branch, no_face=no_face)


class _Embedder:
    """``embedder(image, faces) -> (len(faces), D)`` for one model; ``detector`` finds the faces."""

    def __init__(self, fn, dim: int | None, detector):
        self.fn, self.dim, self.detector = fn, dim, detector

    def __call__(self, image: np.ndarray, faces: list) -> np.ndarray:
        out = np.asarray(self.fn(image, faces), np.float32)
        self.dim = out.shape[1]
        return out


def _embedder(model: str | Path, branch: str, device: str, batch_size: int, min_face_size: int) -> _Embedder:
    from ferkit.external.identity import IDENTITY_MODELS, IdentityEmbedder

    if str(model) in IDENTITY_MODELS:
        if branch != "expression":
            raise FerkitError(f"--branch {branch} is for DICE-FER checkpoints; {model} is an identity network "
                              "whose only embedding is its face descriptor.")
        from ferkit.data.faces import FaceDetector

        net = IdentityEmbedder(str(model), device=device, batch_size=batch_size)
        det = FaceDetector(device=str(net.device), min_face_size=min_face_size)
        return _Embedder(net.embed_faces, net.dim, det)

    from ferkit.inference.model import load_model

    fer = load_model(model, device=device, min_face_size=min_face_size)
    method = getattr(fer.engine, "method", None)
    if branch == "identity":
        if method is None or "identity" not in inspect.signature(method.predict).parameters:
            raise FerkitError(f"--branch identity needs a DICE-FER checkpoint (its identity encoder); {model} is "
                              f"a {fer.method} model.")
    elif fer.engine.forward(_blank(fer)).get("embedding") is None:
        raise FerkitError(f"{model} exposes no embedding (exported ONNX models have none); embed with its "
                          ".safetensors checkpoint instead.")

    def fn(image: np.ndarray, faces: list) -> np.ndarray:
        crops = _crops(fer, image, faces)
        if branch == "expression":
            return fer.predict_crops(crops, batch_size)["embedding"]
        return _identity_codes(fer, method, crops, batch_size)

    return _Embedder(fn, None, fer.detector)


def _blank(fer) -> np.ndarray:
    pre = fer.preprocessing
    return np.zeros((1, pre.channels, pre.size, pre.size), np.float32)


def _crops(fer, image: np.ndarray, faces: list) -> list[np.ndarray]:
    """The checkpoint's own crops of ``faces`` (as FERModel.align_batch makes them)."""
    from ferkit.data.faces import align_face, crop_box
    from ferkit.inference.model import BOX_CROPS

    pre = fer.preprocessing
    if pre.align in BOX_CROPS:
        return [crop_box(image, f.box, pre.box_margin, pre.align == "square_box") for f in faces]
    return [align_face(image, f.landmarks, pre.size, pre.template) for f in faces]


def _identity_codes(fer, method, crops: list[np.ndarray], batch_size: int) -> np.ndarray:
    """DICE-FER's identity code I (B, d) of aligned crops."""
    import torch

    from ferkit.data.transforms import preprocess_batch

    out = []
    for i in range(0, len(crops), batch_size):
        x = preprocess_batch(crops[i:i + batch_size], fer.preprocessing)                # (B, C, S, S)
        with torch.no_grad():
            out.append(method.predict(x, identity=True).extra["identity"].float().cpu().numpy())
    return np.concatenate(out)


def _images(inputs: Any, every: int) -> Iterator[tuple[str, int, np.ndarray]]:
    """(input name, frame or -1, RGB uint8 image) for photos and each ``every``-th frame of videos."""
    from ferkit.inference.model import _sources
    from ferkit.inference.video import iter_frames

    for name, kind, obj in _sources(inputs):
        if kind == "error":
            raise FerkitError(obj)
        if kind == "image":
            yield name, -1, obj
            continue
        n = 0
        for idx, _t, rgb in iter_frames(obj, every):
            n += 1
            yield name, idx, rgb
        if n == 0:
            raise FerkitError(f"Video {name} has no readable frames (empty, truncated or unsupported).")
