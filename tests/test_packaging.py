"""What `pip install ferkit` installs, read from a wheel built here: declared dependencies, floors, package data.

The wheel is built from this source tree (``pip wheel --no-deps --no-build-isolation``, a few seconds, no
network) and its METADATA and RECORD are read: every third-party module that src/ imports is declared, the
floors are at least what the code calls, facenet-pytorch is declared nowhere (its pins cannot be satisfied
beside ours), and every package-data pattern matches files that end up in the wheel.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

#: distribution -> (the lowest version the code can run on, the call that needs it)
FLOORS = {
    "torch": ("2.5", "torch.onnx.export(dynamo=False) in export.py; fused CPU AdamW (2.4) in uafer_optim.py"),
    "torchvision": ("0.20", "the torchvision paired with torch 2.5"),
    "scikit-learn": ("1.5", "TSNE(max_iter=) in metrics/leakage.py (n_iter before 1.5)"),
    "threadpoolctl": ("3.1", "threadpool_limits(user_api='openmp') in metrics/leakage.py"),
}

#: imported by src/ but deliberately not declared: facenet-pytorch pins torch<2.3 and numpy<2, so face
#: detection asks for `pip install --no-deps facenet-pytorch` at first use and `ferkit doctor` checks it;
#: pyarrow writes `ferkit embed --out x.parquet` only where it is installed (else one sentence: install it, or
#: write .npz / .csv), so a user who never asks for parquet never needs it
UNDECLARED_ON_PURPOSE = {"facenet_pytorch", "pyarrow"}


def _tomllib():
    try:
        import tomllib
    except ModuleNotFoundError:                                     # Python 3.10: pip's vendored copy
        from pip._vendor import tomli as tomllib
    return tomllib


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """ferkit's wheel, built from a copy of this tree (so no build/ or egg-info lands in the checkout)."""
    src = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("ferkit-*.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile):
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return Parser().parsestr(wheel.read(name).decode())


def _requirements(wheel: zipfile.ZipFile) -> list[Requirement]:
    return [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist")]


def _plain(reqs: list[Requirement]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in reqs if r.marker is None}


def _imported_top_level_modules() -> set[str]:
    """Every absolute top-level module name any file in src/ imports, at module level or inside functions."""
    names = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_declared(wheel):
    declared = set(_plain(_requirements(wheel)))
    providers = md.packages_distributions()
    local = {"ferkit", "dice_fer"}
    third_party = {m for m in _imported_top_level_modules() if m not in sys.stdlib_module_names and m not in local}
    assert {"threadpoolctl", "starlette", "torch", "sklearn"} <= third_party     # the scan sees lazy imports
    undeclared = {m: providers.get(m) for m in third_party - UNDECLARED_ON_PURPOSE
                  if not {canonicalize_name(d) for d in providers.get(m, [m])} & declared}
    assert not undeclared, f"imported by src/ but not in [project].dependencies: {undeclared}"


def test_floors_are_what_the_code_calls(wheel):
    plain = _plain(_requirements(wheel))
    for dist, (floor, why) in FLOORS.items():
        req = plain[canonicalize_name(dist)]
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
        assert lows and max(lows) >= Version(floor), f"{req} allows versions below {floor}: {why}"


def test_facenet_pytorch_is_declared_nowhere_and_scipy_stays(wheel):
    reqs = _requirements(wheel)
    assert not [r for r in reqs if canonicalize_name(r.name) == "facenet-pytorch"]    # not even as an extra
    plain = _plain(reqs)
    assert "scipy" in plain                                       # scipy.stats, for `ferkit compare`
    assert "scikit-image" not in plain                            # only the tests' photos come from it
    extras = _metadata(wheel).get_all("Provides-Extra")
    # fer, installed --no-deps (TensorFlow pin); mkdocs for the site; face-recognition-models (dlib-resnet's
    # weights); dlib-bin (its parity tests)
    assert sorted(extras) == ["builtin-models", "docs", "identity", "identity-test", "test"]


def test_package_data_patterns_all_match_and_ship(wheel):
    cfg = _tomllib().loads((ROOT / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["ferkit"]
    files = set(wheel.namelist())
    for pattern in patterns:
        matched = sorted(p for p in (ROOT / "src" / "ferkit").glob(pattern) if p.is_file())
        assert matched, f"package-data pattern {pattern!r} matches no file"
        for p in matched:
            assert p.relative_to(ROOT / "src").as_posix() in files, p
    assert {"ferkit/serve/static/index.html", "ferkit/serve/static/app.js"} <= files
    assert "dice_fer.py" in files
