"""The shipped presets: one YAML file per (method, dataset) with the published/released settings.

They are package data (``ferkit/presets/<method>_<dataset>.yaml``), so ``ferkit train --method uafer --dataset
affectnet`` finds the same preset from a wheel, an editable install or a source checkout; this folder is the
only place they live. A preset holds only data (the ``method``/``data``/``train``/``model`` sections a
``--config`` file holds); ``ferkit train`` layers it under ``--config``, flags and ``--set`` and says in the
run log which preset it applied, or that none exists.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ferkit.errors import ConfigError

if TYPE_CHECKING:
    from importlib.abc import Traversable


def preset_name(method: str, dataset: str) -> str:
    """The file name of the preset for ``method`` on ``dataset``."""
    return f"{method}_{dataset}.yaml"


def _root() -> Traversable:
    return resources.files(__name__)


def available() -> list[str]:
    """Names (``<method>_<dataset>``) of every shipped preset, sorted."""
    return sorted(p.name[:-5] for p in _root().iterdir() if p.name.endswith(".yaml"))


def find_preset(method: str, dataset: str) -> Traversable | None:
    """The shipped preset for ``method`` on ``dataset``, or None when there is none."""
    p = _root() / preset_name(method, dataset)
    return p if p.is_file() else None


def load_preset(method: str, dataset: str) -> dict | None:
    """The preset's mapping, or None when there is none; a preset that is not a mapping raises ConfigError."""
    import yaml

    p = find_preset(method, dataset)
    if p is None:
        return None
    d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(d, dict):
        raise ConfigError(f"Preset {preset_name(method, dataset)} must hold a mapping at the top level.")
    return d


def describe(method: str, dataset: str, applied: bool) -> str:
    """The run-log line that says which preset was applied, or that none exists."""
    name = preset_name(method, dataset)
    if applied:
        return f"preset: ferkit/presets/{name} applied (then --config, flags and --set on top)"
    return (f"preset: none for method {method} on dataset {dataset} (no ferkit/presets/{name}); the method's "
            f"defaults apply under --config, flags and --set")
