"""A prepared uint8 image cache, so training epochs do not decode JPEGs again and again.

Each image is decoded once (``io.read_image``), optionally face-aligned (``ferkit.data.faces``, only when
the dataset option ``align`` is true and ``Preprocessing.align == "mtcnn5"``), resized to
(size, size) exactly as the transform's first step does, and stored in one ``np.memmap`` ``.npy`` file
(N, size, size, 3) under ``cache_dir``. The file name is a hash of every sample's source, file size and
modification time, and of the preprocessing, so a changed image or setting makes a new cache. A cache
is written to a temporary name and renamed when complete, with a JSON manifest beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ferkit.data.io import read_image
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.records import Sample

CACHE_VERSION = 1
log = logging.getLogger("ferkit.data.cache")


class Aligner:
    """Detect the largest face (MTCNN) and warp it onto the 5-point template; counts images without a face."""

    def __init__(self, pre: Preprocessing):
        from ferkit.data.faces import FaceDetector

        self.pre = pre
        self.detector = FaceDetector(device="cpu")
        self.no_face = 0

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        from ferkit.data.faces import align_face

        if min(image.shape[:2]) < 2 * self.detector.min_face_size:     # too small for MTCNN's pyramid
            self.no_face += 1
            return None
        faces = self.detector.detect(image)
        if not faces:
            self.no_face += 1
            return None
        face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        return align_face(image, face.landmarks, self.pre.size, self.pre.template)     # (S, S, 3)


def prepare_image(sample: Sample, pre: Preprocessing | None, aligner: Aligner | None = None) -> np.ndarray:
    """Decode (and align) one sample and resize it to ``pre.size``: uint8 (S, S, 3), or (S, S) for a gray
    in-memory array. Without ``pre`` the decoded image is returned at its own size."""
    from ferkit.data.transforms import resize_uint8, to_chw_uint8

    image = read_image(sample.image) if isinstance(sample.image, (str, Path)) else np.asarray(sample.image)
    if pre is None:
        return image
    if aligner is not None:
        aligned = aligner(image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2))
        if aligned is not None:
            return aligned
    out = resize_uint8(to_chw_uint8(image), pre.size, pre.resize)                     # (C, S, S)
    arr = out.permute(1, 2, 0).numpy()                                                   # (S, S, C)
    return np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def cache_key(samples: list[Sample], pre: Preprocessing, align: bool) -> str:
    """sha256 over every source (path, size, mtime; or the array bytes) and the preprocessing."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "pre": pre.to_dict(), "align": align}, sort_keys=True).encode())
    for s in samples:
        if isinstance(s.image, (str, Path)):
            p = Path(s.image)
            st = p.stat() if p.exists() else None
            h.update(f"{p.resolve()}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
        else:
            arr = np.ascontiguousarray(s.image)
            h.update(f"array{arr.shape}".encode())
            h.update(hashlib.sha1(arr.tobytes()).digest())
    return h.hexdigest()


class PreparedCache:
    """Read access to a finished cache: ``cache[i]`` -> uint8 (S, S, 3). Opens the memmap lazily (per
    DataLoader worker) and pickles without it."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self._arr: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def __getitem__(self, i: int) -> np.ndarray:
        if self._arr is None:
            self._arr = np.load(self.path, mmap_mode="r")
        return np.array(self._arr[i])                                                     # (S, S, 3) copy

    def __getstate__(self) -> dict:
        return {"path": self.path, "manifest": self.manifest, "_arr": None}


def prepare_cache(samples: list[Sample], pre: Preprocessing, cache_dir: str | Path, align: bool = False,
                  progress: bool = True, threads: int | None = None) -> PreparedCache:
    """Build (or reuse) the cache for ``samples`` under ``cache_dir``; returns it ready to read."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(samples, pre, align)
    path, manifest_path = cache_dir / f"{key[:24]}.npy", cache_dir / f"{key[:24]}.json"
    if path.is_file() and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and manifest.get("complete"):
            return PreparedCache(path, manifest)
    shape = (len(samples), pre.size, pre.size, 3)
    tmp = cache_dir / f"{key[:24]}.{os.getpid()}.partial.npy"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    aligner = Aligner(pre) if align else None

    def fill(i: int) -> None:
        img = prepare_image(samples[i], pre, aligner)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        arr[i] = img

    from ferkit.progress import progress_bar

    bar = progress_bar(total=len(samples), desc="preparing image cache", unit="img", enabled=progress)
    n_threads = 1 if align else (threads or min(4, os.cpu_count() or 1))
    try:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            for _ in pool.map(fill, range(len(samples))):
                bar.update(1)
    except BaseException:
        bar.close()
        arr = None  # release the memmap before removing the file
        tmp.unlink(missing_ok=True)
        raise
    bar.close()
    arr.flush()
    arr = None  # release the memmap before renaming
    os.replace(tmp, path)
    manifest = {"key": key, "complete": True, "count": len(samples), "shape": list(shape),
                "preprocessing": pre.to_dict(), "align": align,
                "no_face_found": aligner.no_face if aligner else 0}
    if aligner and aligner.no_face:
        log.warning("%d of %d images had no detectable face and were resized whole instead of aligned",
                    aligner.no_face, len(samples))
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return PreparedCache(path, manifest)
