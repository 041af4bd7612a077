"""FERModel: a trained checkpoint (or an exported ONNX file) ready to predict on photos and videos.

Each image goes through what the checkpoint records in ``preprocessing``: MTCNN detection, 5-point
similarity alignment to the same template at the same size, then ``preprocess_batch`` (channels,
normalisation, whitening). Checkpoints trained on pre-aligned data (``align="none"``, e.g. SynthFER)
are still detected and aligned to their template, so ordinary photos work; pass ``aligned=True`` when
the inputs already are aligned crops, which then skip detection and are only resized.

Photos are detected in groups of ``batch_size`` (MTCNN runs them together whatever their sizes, each with
its per-photo results; ``data/mtcnn_batch.py``), in a worker thread that decodes and detects the next
group while the model classifies the faces of the previous one, in batches of ``batch_size`` faces (one
forward pass each). ``min_face_size="auto"`` (opt-in) searches each photo for faces of at least 1/12 of
its shorter side at a reduced resolution (``FaceDetector``).
Uncertainty is the evidential u = C / S for models that have it (UA-FER), else 1 - max_c p_c;
``info()["uncertainty"]`` says which.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import CheckpointError, FerkitError
from ferkit.inference.engines import OnnxEngine, TorchEngine
from ferkit.inference.pending import PendingFaces
from ferkit.inference.prefetch import prefetch
from ferkit.inference.rows import error_row
from ferkit.inference.video import predict_video

#: Preprocessing.align values that crop the detector's box instead of warping to a landmark template
BOX_CROPS = ("box", "square_box")

UNCERTAINTY_KINDS = {
    "evidential": "evidential u = C / S of the Dirichlet (UA-FER); in [0, 1], higher is less certain",
    "max_prob": "1 - max_c p_c (the model has no uncertainty head); in [0, 1 - 1/C]",
}


def load_model(path: str | Path | None = None, device: str = "auto", engine: str | None = None,
               precision: str = "fp32", min_face_size: int | str = 20, spec: str | Path | None = None,
               detector: str = "mtcnn", detector_size: int = 416) -> FERModel:
    """Load a ferkit checkpoint (``.safetensors`` or run folder), a ``ferkit export`` ``.onnx`` file, a
    built-in model by name (``"fer-minixception"``, the default when ``path`` is None), a model spec
    file, or an external model file with its ``spec`` (see ``ferkit.external``).

    engine: "torch", "onnx", or None / "auto" (by the file's suffix: onnx for a .onnx file, else torch, the
    faster of the two on CPUs for ferkit's models). ``engine="onnx"`` with a ``.safetensors`` checkpoint exports
    it to a temporary ONNX file first. precision: "fp32" (the default: the reference numbers), "bf16" (torch
    autocast; changes numbers) or "auto" (opt-in: bf16 where :func:`auto_precision` finds it measured harmless for
    the model and faster on the hardware, else fp32). detector: "mtcnn" (the default) or "tiny" (face-api's
    tiny detector at ``detector_size``, after ``ferkit install face-api``; ``ferkit.data.detectors``).
    """
    from ferkit.external.builtin import DEFAULT_MODEL

    path = DEFAULT_MODEL if path is None else path
    p = Path(path)
    is_onnx = p.suffix.lower() == ".onnx" and spec is None
    engine = ("onnx" if is_onnx else "torch") if engine in (None, "auto") else engine
    if engine not in ("torch", "onnx"):
        raise FerkitError(f"Unknown engine '{engine}'; use torch or onnx.")
    if engine == "torch" and is_onnx:
        raise CheckpointError(f"{p} is an ONNX file; run it with --engine onnx, or pass the .safetensors checkpoint.")
    if engine == "onnx":
        if is_onnx:
            eng = OnnxEngine.load(p, device=device)
        else:
            from ferkit.export import export_onnx

            with tempfile.TemporaryDirectory(prefix="ferkit-onnx-") as tmp:   # the session keeps the graph
                export_onnx(p, Path(tmp) / "model.onnx", check=False, spec=spec)
                eng = OnnxEngine.load(Path(tmp) / "model.onnx", device=device)
    else:
        from ferkit.external.loader import load_method

        method = load_method(path, device=device, spec=spec)
        eng = TorchEngine(method, precision=auto_precision(method) if precision == "auto" else precision)
    return FERModel(eng, source=str(path), device=device, min_face_size=min_face_size, detector=detector,
                    detector_size=detector_size)


#: the methods whose bf16 inference was measured harmless against fp32 on their own trained weights: the baseline
#: and DICE-FER (ResNet-18s), 8 paired seeds at each of 3 confounding levels, accuracy and agreement of the
#: predicted class (benchmarks/studies/inference_precision.py -> benchmarks/results/inference_precision/, the
#: docs' results page "bf16 at inference"; tests/test_inference_precision.py holds this list to those rows)
BF16_MEASURED = ("baseline", "dicefer")


def auto_precision(method) -> str:
    """What ``precision="auto"`` runs ``method`` in: bf16 where its bf16 inference is measured harmless
    (``BF16_MEASURED``) and its device runs it faster (a GPU with bf16; a CPU with AMX or Arm BF16, or AVX512-BF16
    for these convolutional networks: ``cpu_bf16_convs_are_faster``), else fp32 (UA-FER, the built-in and
    imported models: not measured)."""
    import torch

    from ferkit.engine.devices import cpu_bf16_convs_are_faster

    if method.name not in BF16_MEASURED:
        return "fp32"
    if method.device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if method.device.type == "cpu" and cpu_bf16_convs_are_faster() else "fp32"


def model_from_method(method, precision: str = "fp32", device: str = "auto") -> FERModel:
    """A FERModel over a method already in memory (e.g. just trained); its metadata is built from it."""
    from ferkit import __version__

    if not getattr(method, "checkpoint_meta", None):
        method.checkpoint_meta = {
            "method": method.name, "config": method.cfg.to_dict(), "ferkit_version": __version__,
            "label_space": method.label_space.to_dict(), "preprocessing": method.preprocessing().to_dict(),
            "describe": method.describe()}
    method.eval_mode()
    precision = auto_precision(method) if precision == "auto" else precision
    return FERModel(TorchEngine(method, precision=precision), source=f"<{method.name} in memory>",
                    device=device)


class FERModel:
    """A loaded model: ``predict(inputs)`` returns one row (dict) per face; see ``ferkit.inference.rows``."""

    def __init__(self, engine: TorchEngine | OnnxEngine, source: str = "", device: str = "auto",
                 min_face_size: int | str = 20, detector: str = "mtcnn", detector_size: int = 416):
        from ferkit.data.detectors import DETECTORS

        if detector not in DETECTORS:
            raise FerkitError(f"Unknown face detector '{detector}'; use one of {', '.join(DETECTORS)}.")
        if detector == "tiny":                     # refused now, not at the first photo
            from ferkit.data.faceapi_weights import faceapi_weights_dir

            faceapi_weights_dir()
            from ferkit.data.tiny_face import check_input_size

            check_input_size(detector_size)
        self.engine = engine
        self.meta: dict = engine.meta
        self.source = source
        try:
            self.classes: tuple[str, ...] = tuple(self.meta["label_space"]["classes"])
            self.preprocessing = Preprocessing.from_dict(self.meta["preprocessing"])
            self.method: str = str(self.meta["method"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source} lacks or has a malformed '{e}' entry; it is damaged.") from None
        self.uncertainty_kind = engine.uncertainty_kind
        self._device = device
        self._min_face = min_face_size
        self._detector_kind, self._detector_size = detector, int(detector_size)
        self._detector = None
        #: decode and detect the next photos in a worker while the model runs: True, False, or None (auto: only
        #: where the worker has cores of its own, see ``use_prefetch``)
        self.prefetch: bool | None = None

    # --- description --------------------------------------------------------------------------------
    def info(self) -> dict:
        """Classes, method, preprocessing, versions, engine, and what "uncertainty" means."""
        from ferkit import __version__

        return {"classes": list(self.classes), "method": self.method,
                "preprocessing": self.preprocessing.to_dict(),
                "version": self.meta.get("ferkit_version"), "ferkit_version": __version__,
                "engine": self.engine.name, "uncertainty": UNCERTAINTY_KINDS[self.uncertainty_kind],
                "uncertainty_kind": self.uncertainty_kind, "source": self.source,
                "alignment": self._alignment_note(),
                "describe": self.meta.get("describe", {})}

    def _alignment_note(self) -> str:
        from ferkit.data.detectors import detector_label

        pre = self.preprocessing
        det = detector_label(self._detector_kind)
        if pre.align in BOX_CROPS:
            return (f"photos: {det} detection, the {'squared ' if pre.align == 'square_box' else ''}face box "
                    f"widened by {pre.box_margin:g} of its side, resized to {pre.size} px ({pre.resize}); "
                    "--aligned crops are only resized")
        note = (f"photos: {det} detection, 5-point similarity alignment to the '{pre.template}' template at "
                f"{pre.size} px; --aligned crops are only resized")
        if pre.align == "none":
            note += " (the model was trained on pre-aligned images; photos are aligned to its template)"
        return note

    @property
    def detector(self):
        if self._detector is None:
            from ferkit.data.detectors import make_detector
            from ferkit.engine.devices import resolve_device

            self._detector = make_detector(self._detector_kind, device=str(resolve_device(self._device)),
                                           min_face_size=self._min_face, input_size=self._detector_size)
        return self._detector

    # --- the forward pass on crops -------------------------------------------------------------------
    def predict_crops(self, crops: list[np.ndarray], batch_size: int = 32) -> dict[str, np.ndarray | None]:
        """Aligned uint8 crops -> "probs" (N, C), "uncertainty" (N,), "embedding" (N, D) or None."""
        from ferkit.data.transforms import preprocess_batch

        out: dict[str, list] = {"probs": [], "uncertainty": [], "embedding": []}
        for i in range(0, len(crops), batch_size):
            x = preprocess_batch(crops[i:i + batch_size], self.preprocessing)   # (B, C, S, S)
            res = self.engine.forward(x)
            for k in out:
                if res.get(k) is not None:
                    out[k].append(res[k])
        return {k: (np.concatenate(v) if v else None) for k, v in out.items()}

    def align(self, image: np.ndarray, aligned: bool = False) -> tuple[list, list[np.ndarray]]:
        """Faces (or [None] when ``aligned``) and their crops as the checkpoint's preprocessing says."""
        return self.align_batch([image], aligned)[0]

    def align_batch(self, images: list[np.ndarray], aligned: bool = False) -> list[tuple[list, list[np.ndarray]]]:
        """``align`` for several images of any sizes, detected together."""
        from ferkit.data.faces import align_face, crop_box

        if aligned:
            return [([None], [image]) for image in images]
        pre = self.preprocessing

        def crops(image, faces):
            if pre.align in BOX_CROPS:
                return [crop_box(image, f.box, pre.box_margin, pre.align == "square_box") for f in faces]
            return [align_face(image, f.landmarks, pre.size, pre.template) for f in faces]

        return [(faces, crops(image, faces)) for image, faces in zip(images, self.detector.detect_batch(images),
                                                                     strict=True)]

    # --- rows ---------------------------------------------------------------------------------------
    def _identity_embedder(self, name: str):
        """The identity network ``name`` (loaded once per model) for ``people``."""
        cached = getattr(self, "_people", None)
        if cached is None or cached.name != name:
            from ferkit.external.identity import IdentityEmbedder

            self._people = IdentityEmbedder(name, device=self._device)
        return self._people

    def predict(self, inputs: Any, aligned: bool = False, abstain_above: float | None = None,
                batch_size: int = 32, every: int = 1, smooth: float = 0.0, people: str | None = None) -> list[dict]:
        """One row per face for image paths, folders, videos, PIL images or uint8 arrays (see module doc).

        ``people``: a built-in identity network (``"dlib-resnet"``) that joins each video's face tracks
        into people by identity, filling the rows' ``person`` (``ferkit.inference.people``)."""
        return list(self.iter_predict(inputs, aligned=aligned, abstain_above=abstain_above,
                                      batch_size=batch_size, every=every, smooth=smooth, people=people))

    def iter_predict(self, inputs: Any, aligned: bool = False, abstain_above: float | None = None,
                     batch_size: int = 32, every: int = 1, smooth: float = 0.0,
                     people: str | None = None) -> Iterator[dict]:
        """``predict`` as a stream: rows come out in input order as each batch of faces is classified. Where
        ``use_prefetch()`` says so, the next photos are decoded and detected in a worker thread while the model
        runs on the faces of the previous ones."""
        if batch_size < 1 or every < 1:
            raise FerkitError("--batch-size and --every must be at least 1.")
        embedder = self._identity_embedder(people) if people else None
        pending = PendingFaces(self, batch_size, abstain_above)
        steps = self._detected(inputs, aligned, batch_size)
        for kind, name, entries in (prefetch(steps) if self.use_prefetch() else steps):
            if kind == "video":
                yield from pending.flush()
                yield from predict_video(self, entries, name, aligned=aligned, abstain_above=abstain_above,
                                         batch_size=batch_size, every=every, smooth=smooth, people=embedder)
                continue
            for row, crop in entries:
                pending.add(row, crop)
                if pending.full():
                    yield from pending.flush()
        yield from pending.flush()

    def use_prefetch(self) -> bool:
        """Whether the decode-and-detect worker runs: ``self.prefetch`` when set, else only where it has cores
        of its own: the model on a GPU, or more CPU cores than torch's threads use. Where torch's threads fill
        every core, the worker's detection and the model's pass contend for them, and predict was slower with
        it than without: without it 1.14-1.55x faster on photos for 4 detectors and 2 models; on video 0.96-1.20x
        (2-core EPYC, interleaved: ``benchmarks/results/speed/detectors.json``)."""
        if self.prefetch is not None:
            return bool(self.prefetch)
        import os

        import torch

        from ferkit.engine.devices import resolve_device

        if resolve_device(self._device).type == "cuda":
            return True
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cores >= torch.get_num_threads() + 2                # the cores this process may use (cgroups, taskset)

    def _detected(self, inputs: Any, aligned: bool, batch_size: int) -> Iterator[tuple[str, str, Any]]:
        """("photos", "", [(row, crop or None)]) per group of up to ``batch_size`` decoded, detected and aligned
        photos (errors between them as rows), or ("video", name, path), in input order."""
        group: list[tuple[str, str, Any]] = []       # photos (and errors between them) awaiting detection

        def detect_group() -> list[tuple[dict, np.ndarray | None]]:
            images = [obj for _, kind, obj in group if kind == "image"]
            found = iter(self.align_batch(images, aligned))
            out: list[tuple[dict, np.ndarray | None]] = []
            for name, kind, obj in group:
                if kind == "error":
                    out.append((error_row(name, obj), None))
                    continue
                faces, crops = next(found)
                if not faces:
                    out.append((error_row(name, "no face found", status="no_face"), None))
                for k, (face, crop) in enumerate(zip(faces, crops, strict=True)):
                    out.append(({"file": name, "face": k, "_face": face}, crop))
            group.clear()
            return out

        for name, kind, obj in _sources(inputs):
            if kind == "video":
                if group:
                    yield "photos", "", detect_group()
                yield "video", name, obj
                continue
            group.append((name, kind, obj))
            if sum(k == "image" for _, k, _ in group) >= batch_size:
                yield "photos", "", detect_group()
        if group:
            yield "photos", "", detect_group()


def _sources(inputs: Any) -> Iterable[tuple[str, str, Any]]:
    """(name, kind, payload): kind "image" (RGB array), "video" (path) or "error" (one sentence)."""
    from ferkit.data.io import read_image, to_rgb_array
    from ferkit.errors import ImageReadError
    from ferkit.inference.inputs import expand_inputs

    if isinstance(inputs, (str, Path, np.ndarray)) or hasattr(inputs, "getpixel"):
        inputs = [inputs]
    for i, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            try:
                yield f"<array {i}>", "image", _array_to_rgb(item)
            except FerkitError as e:
                yield f"<array {i}>", "error", str(e)
            continue
        if hasattr(item, "getpixel"):                                   # a PIL image
            try:
                yield f"<image {i}>", "image", to_rgb_array(item, f"<image {i}>")
            except FerkitError as e:
                yield f"<image {i}>", "error", str(e)
            continue
        items, notes = expand_inputs([item])
        for note in notes:
            warnings.warn(note, stacklevel=3)
        for it in items:
            name = str(it.path)
            if it.kind == "missing":
                yield name, "error", f"{name} does not exist; check the path."
            elif it.kind == "video":
                yield name, "video", it.path
            else:
                try:
                    yield name, "image", read_image(it.path)
                except ImageReadError as e:
                    yield name, "error", str(e)


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise FerkitError(f"Arrays must be uint8 images, got {a.dtype}; scale to 0..255 and convert.")
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return np.ascontiguousarray(a[:, :, :3])
    if a.ndim == 3 and a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    raise FerkitError(f"Arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) images, got {a.shape}.")
