"""The method registry, where methods register: it lives in ``ferkit.engine.registry`` (the engine looks
methods up by name without importing this package); this module keeps the old import path working."""

from ferkit.engine.registry import BUILTIN, METHODS, get_method, register_method

__all__ = ["BUILTIN", "METHODS", "get_method", "register_method"]
