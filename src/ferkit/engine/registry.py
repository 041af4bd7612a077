"""Method registry: name -> Method subclass. Each method module registers itself on import.

The registry lives beside the engine that looks methods up (``train``, ``load_method``), so the engine
never imports ``ferkit.methods``: a method is found by its name. The built-in methods are named in
``BUILTIN`` as module paths and imported on first use; third-party methods call ``register_method``.
"""

from __future__ import annotations

import importlib

from ferkit.errors import ConfigError

METHODS: dict[str, type] = {}

#: where each built-in method lives (imported on first use, so nothing heavy happens at import time)
BUILTIN = {"baseline": "ferkit.methods.baseline", "dicefer": "ferkit.methods.dicefer",
           "uafer": "ferkit.methods.uafer"}


def register_method(name: str):
    def deco(cls: type) -> type:
        cls.name = name
        METHODS[name] = cls
        return cls
    return deco


def get_method(name: str) -> type:
    """The Method subclass registered as ``name`` (importing its module if needed)."""
    if name not in METHODS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in METHODS:
        raise ConfigError(f"Unknown method '{name}'; known: {', '.join(sorted(BUILTIN))}.")
    return METHODS[name]
