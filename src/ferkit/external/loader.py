"""The one place external models enter ferkit: built-in names, spec files, and imported checkpoints.

``load_method(ref, device, spec)`` here is what every command that takes a model calls (predict,
evaluate, crossdata, serve, export, ``ferkit.load_model``); it sits above the engine, which knows only
ferkit's own checkpoints (``ferkit.engine.checkpoint.load_method``). ``external_method`` returns an
``ExternalMethod`` for

- a built-in name (``fer-minixception``; ``ferkit models`` lists them),
- a spec file (``.yaml``/``.yml``/``.json``) whose ``model`` key names the model file,
- any model file together with ``spec=`` (the Python API: ``ferkit.load_model("m.onnx", spec="s.yaml")``),

and None for anything else (a ferkit checkpoint, read as before). A checkpoint written by ``ferkit
import`` carries ``method: "external"`` and is rebuilt by ``method_from_checkpoint``.

``import_model`` writes such a checkpoint: the torch weights as safetensors (ResNets, mini-Xception),
or, for ONNX models, which have no torch form here, the ONNX file copied beside it as
``<out stem>.model.onnx`` and named (with its SHA-256) in the metadata. It runs the model once first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ferkit.data.io import file_sha256
from ferkit.errors import CheckpointError
from ferkit.external.builtin import BUILTIN_MODELS, builtin_weights, get_builtin, looks_like_name
from ferkit.external.method import ExternalMethod, run_once
from ferkit.external.spec import SPEC_SUFFIXES, ModelSpec, find_spec, read_spec, spec_from_dict

ONNX_SIDE_SUFFIX = ".model.onnx"


def is_external_ref(ref: str | Path) -> bool:
    """A built-in name or a spec file (what ``external_method`` accepts without ``spec=``)."""
    return str(ref) in BUILTIN_MODELS or Path(str(ref)).suffix.lower() in SPEC_SUFFIXES or looks_like_name(ref)


def external_method(ref: str | Path, device: torch.device, spec: str | Path | None = None) -> ExternalMethod | None:
    """An ExternalMethod for a built-in name, a spec file, or ``ref`` + ``spec``; None for other paths."""
    if spec is not None:
        s = read_spec(find_spec(spec))
        return method_from_spec(s, Path(ref), device)
    name = str(ref)
    if name in BUILTIN_MODELS:
        b = get_builtin(name)
        s = read_spec(find_spec(b.spec))
        return method_from_spec(s, builtin_weights(name), device, provenance={"built-in": name, "provenance": b.provenance})
    if Path(name).suffix.lower() in SPEC_SUFFIXES:
        s = read_spec(name)
        if s.model is None:
            raise CheckpointError(f"Model spec {name} names no 'model' file; add model: PATH to it, or run "
                                  f"`ferkit import MODEL --spec {name} --out model.safetensors`.")
        return method_from_spec(s, Path(s.model), device)
    if looks_like_name(name):
        get_builtin(name)                                       # raises: an unknown built-in name
    return None


def load_method(ref: str | Path, device: str = "auto", spec: str | Path | None = None):
    """Any model ferkit runs: an external one (built-in name, spec file, ``ref`` + ``spec``, a checkpoint
    written by ``ferkit import``) or a ferkit checkpoint, rebuilt in eval mode."""
    from ferkit.engine.checkpoint import method_from_checkpoint as own_method
    from ferkit.engine.checkpoint import read_checkpoint
    from ferkit.engine.devices import resolve_device

    external = external_method(ref, resolve_device(device), spec=spec)
    if external is not None:
        return external
    ckpt = read_checkpoint(ref)
    if ckpt.meta.get("method") == "external":
        return method_from_checkpoint(ckpt, resolve_device(device))
    return own_method(ckpt, device)


def build_net(spec: ModelSpec, model_path: Path, device: torch.device):
    """The network for ``spec.format``: an OnnxNet, a ResNetClassifier, or the HDF5 mini-Xception."""
    from ferkit.external.networks import OnnxNet, read_state_dict, resnet_from_state_dict

    kind = spec.format
    if kind == "minixception_hdf5":
        from ferkit.models.minixception import load_keras_hdf5

        return load_keras_hdf5(model_path)
    if kind == "onnx":
        return OnnxNet(model_path, spec, device=str(device))
    return resnet_from_state_dict(read_state_dict(model_path), spec, f"State dict {model_path}")


def method_from_spec(spec: ModelSpec, model_path: Path, device: torch.device,
                     provenance: dict | None = None) -> ExternalMethod:
    """Build, check once, and attach the checkpoint metadata inference and reports read."""
    net = build_net(spec, model_path, device)
    method = ExternalMethod(spec, net, device, provenance={"weights": str(model_path), **(provenance or {})})
    run_once(method)
    method.checkpoint_meta = external_meta(method)
    return method


def external_meta(method: ExternalMethod) -> dict:
    """What a ferkit checkpoint's metadata holds, for an external model."""
    from ferkit import __version__

    spec = {k: v for k, v in method.spec.to_dict().items() if k != "model"}
    return {"method": "external", "ferkit_version": __version__, "label_space": method.label_space.to_dict(),
            "preprocessing": method.preprocessing().to_dict(), "describe": method.describe(),
            "external": {"spec": spec}}


def method_from_checkpoint(ckpt, device: torch.device) -> ExternalMethod:
    """Rebuild an imported model from its checkpoint (weights inside, or the ONNX file beside it)."""
    ext = ckpt.meta.get("external") or {}
    try:
        spec = spec_from_dict(dict(ext["spec"]), where=f"Checkpoint {ckpt.path}'s spec")
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"Checkpoint {ckpt.path} lacks or has a malformed external '{e}' entry; "
                              "import the model again.") from None
    if spec.format == "onnx":
        side = ckpt.path.with_name(str(ext.get("onnx_file", "")))
        if not ext.get("onnx_file") or not side.is_file():
            raise CheckpointError(f"Checkpoint {ckpt.path} runs the ONNX file {side.name} beside it, which is "
                                  "missing; copy both files together or import the model again.")
        if ext.get("onnx_sha256") and file_sha256(side) != ext["onnx_sha256"]:
            raise CheckpointError(f"{side} is not the ONNX file {ckpt.path.name} was imported with (SHA-256 "
                                  "differs); import the model again.")
        net = build_net(spec, side, device)
    else:
        if spec.format == "minixception_hdf5":
            from ferkit.models.minixception import MiniXception

            net = MiniXception(len(spec.classes))
        else:
            from ferkit.external.networks import ResNetClassifier

            net = ResNetClassifier(spec.architecture, len(spec.classes))
        from ferkit.engine.checkpoint import load_network_weights

        load_network_weights({"net": net}, ckpt)
    method = ExternalMethod(spec, net, device, provenance={"imported from": ext.get("imported_from", "?")})
    method.checkpoint_meta = ckpt.meta
    return method


def import_model(model: str | Path, spec: str | Path | None, out: str | Path) -> dict:
    """``ferkit import``: check ``model`` against ``spec`` by running it once, then write ``out``.

    ``model`` may be a built-in name (no spec needed). Returns {"path", "format", "classes", "onnx_file",
    "probs"} (probs: the check run's output, (2, K)).
    """
    from ferkit.engine.checkpoint import save_checkpoint

    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise CheckpointError(f"--out {out} must end in .safetensors.")
    device = torch.device("cpu")
    if spec is None:
        method = external_method(model, device)
        if method is None:
            raise CheckpointError(f"{model} is not a built-in model or a spec file; pass --spec SPEC with it.")
    else:
        method = external_method(model, device, spec=spec)
    probs = run_once(method)
    meta = external_meta(method)
    meta["external"]["imported_from"] = str(model)
    onnx_file = None
    if method.onnx_net is not None:
        onnx_file = out.name[: -len(".safetensors")] + ONNX_SIDE_SUFFIX
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(method.onnx_net.path, out.with_name(onnx_file))
        meta["external"].update(onnx_file=onnx_file, onnx_sha256=file_sha256(out.with_name(onnx_file)))
    save_checkpoint(out, method.networks(), meta)
    return {"path": str(out), "format": method.spec.format, "classes": list(method.label_space.classes),
            "onnx_file": onnx_file, "probs": probs}
