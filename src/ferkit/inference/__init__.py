"""Running a trained ferkit checkpoint on photos and videos.

    model = ferkit.load_model("runs/x/checkpoints/best.safetensors")   # or an exported .onnx file
    rows = model.predict(["photo.jpg", "folder/"])                    # one dict per face

Modules: ``model`` (FERModel, load_model), ``inputs`` (files/folders/videos), ``rows`` (row building
and writers), ``video`` (frames, tracking, smoothing), ``annotate`` (drawing). Imported lazily.
"""

from __future__ import annotations

import importlib

_LAZY = {"load_model": "ferkit.inference.model", "FERModel": "ferkit.inference.model"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferkit.inference' has no attribute {name!r}")
