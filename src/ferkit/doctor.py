"""What this installation can run: every declared dependency importable at its floor, and the face detector.

``ferkit doctor`` prints one line per check and exits non-zero when any fails, each failure with the command
that fixes it. The dependencies and their floors are read from the installed ferkit's own metadata
(``Requires-Dist``), so the check is exactly what ``pip install ferkit`` promised. Face detection (MTCNN, for
``predict``, ``serve`` and ``align`` on ordinary photos) needs facenet-pytorch, which cannot be a declared
dependency (its pins, torch<2.3 and numpy<2, cannot sit beside ferkit's), so it is checked apart: installed,
its three weight files present, and the three networks loaded from them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
from dataclasses import dataclass


@dataclass
class Check:
    """One line of the report: what was checked, whether it passed, what was found, and the fix."""

    name: str
    ok: bool
    found: str
    remedy: str = ""
    optional: bool = False     # reported with its fix, never a failure (a part only some commands use)

    def line(self) -> str:
        mark = "ok  " if self.ok else ("opt " if self.optional else "FAIL")
        fix = f"  -> {self.remedy}" if not self.ok and self.remedy else ""
        return f"{mark} {self.name:<24} {self.found}{fix}"


def declared_requirements(dist: str = "ferkit") -> list:
    """The installed distribution's unconditional requirements (no extras) as packaging Requirements."""
    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in (md.requires(dist) or [])]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


@functools.lru_cache(maxsize=1)
def _distributions_of_modules() -> dict[str, list[str]]:
    """importlib.metadata.packages_distributions(), read once (it scans every installed distribution)."""
    return md.packages_distributions()


def _module_of(dist_name: str) -> str:
    """The top-level import name a distribution provides (``scikit-learn`` -> ``sklearn``); where it provides
    several (python-multipart: ``python_multipart`` and a deprecated ``multipart``), the one named after it."""
    from packaging.utils import canonicalize_name

    want = canonicalize_name(dist_name)
    mods = [m for m, dists in _distributions_of_modules().items()
            if any(canonicalize_name(d) == want for d in dists) and not m.startswith("_")]
    own = dist_name.lower().replace("-", "_")
    return own if own in mods or not mods else sorted(mods)[0]


def check_requirement(req) -> Check:
    """The installed version against ``req``'s specifier, then an import of what the distribution provides."""
    remedy = f"pip install '{req}'"
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        return Check(req.name, False, f"not installed (ferkit needs {req.specifier or 'it'})", remedy)
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return Check(req.name, False, f"{version} installed, ferkit needs {req.specifier}", remedy)
    mod = _module_of(req.name)
    try:
        importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 - a broken install can fail in any way; report it, don't crash
        return Check(req.name, False, f"{version} installed but `import {mod}` fails ({type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''})", f"pip install --force-reinstall '{req}'")
    return Check(req.name, True, f"{version} ({req.specifier or 'any version'})")


def check_face_detector() -> Check:
    """facenet-pytorch installed with its MTCNN weights, and the three networks load from them."""
    from ferkit.data.faces import MTCNN_REMEDY, _load_mtcnn
    from ferkit.errors import FerkitError

    name = "facenet-pytorch (MTCNN)"
    try:
        _load_mtcnn("cpu")
    except FerkitError as e:
        return Check(name, False, f"face detection unavailable: {e}", MTCNN_REMEDY)
    return Check(name, True, f"{md.version('facenet-pytorch')}, P/R/O-Net weights load "
                 "(face detection for predict, serve, align)")


def run_checks(dist: str = "ferkit") -> list[Check]:
    """Every declared requirement of ``dist``, then the face detector."""
    try:
        reqs = declared_requirements(dist)
    except md.PackageNotFoundError:
        checks = [Check(dist, False, "not installed as a package, so its declared dependencies are unknown",
                        "pip install -e . (from the source folder)")]
    else:
        checks = [check_requirement(r) for r in reqs]
    return checks + [check_face_detector(), check_tiny_detector()]


def check_tiny_detector() -> Check:
    """face-api's tiny detector (``--detector tiny``): optional, installed by ``ferkit install face-api``."""
    from ferkit.data.faceapi_weights import INSTALL_REMEDY, install_dir, installed

    d = installed()
    if d is not None:
        return Check("face-api tiny detector", True, f"model files in {d}")
    what = "damaged" if install_dir().exists() else "not installed"
    return Check("face-api tiny detector", False, f"{what} in {install_dir()} (optional: --detector tiny)",
                 INSTALL_REMEDY, optional=True)
