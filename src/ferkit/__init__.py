"""ferkit: facial expression recognition toolkit.

Public API (imported lazily, so `import ferkit` does no work):
    DICEFER, UAFER            the two methods with their Python APIs
    load_dataset(name, root, split=..., fold=...)
    load_model(path)          a trained checkpoint ready to predict
    embed(inputs, model=...)  one embedding per face (dlib-resnet, fer-minixception, any checkpoint)
    render_synthfer(...)      SynthFER in memory
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "DICEFER": ("ferkit.api.dicefer", "DICEFER"),
    "UAFER": ("ferkit.api.uafer", "UAFER"),
    "load_dataset": ("ferkit.data.datasets", "load_dataset"),
    "load_model": ("ferkit.inference", "load_model"),
    "embed": ("ferkit.inference.embed", "embed"),
    "render_synthfer": ("ferkit.data.synthetic", "render_synthfer"),
    "FerkitError": ("ferkit.errors", "FerkitError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
