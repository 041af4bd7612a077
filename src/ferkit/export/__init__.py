"""ONNX export of a trained checkpoint, self-describing and checked against PyTorch.

The graph takes "image" float32 (B, C, S, S), already preprocessed (aligned, normalised) with a dynamic
batch axis, and returns "probs" (B, C), "uncertainty" (B,) (evidential u for UA-FER, 1 - max p
otherwise), "embedding" (B, D) where the method has one, and the method's extra outputs by their
names (UA-FER: "belief", the per-class belief masses). Only what predicting expressions needs is in the graph:
DICE-FER's identity encoder, which no expression output uses, is left out (its weights too) unless
``outputs=("identity",)`` (``ferkit export --outputs identity``) asks for the identity code "identity".
The checkpoint's metadata (classes, preprocessing, method, config) is stored in the model's
metadata_props under "ferkit", and the export facts under "ferkit_export", so ``ferkit predict
model.onnx ...`` needs nothing but the .onnx file.

The export uses the TorchScript tracer (``dynamo=False``): for these feed-forward models it gives the
same graph as the torch.export path (parity 1e-7 on the baseline either way) in a tenth of the time
(about 2 s against 27 s for a ResNet-18 on this CPU); PyTorch marks it deprecated, so its notice is muted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.export.metadata import attach_metadata

DEFAULT_OPSET = 17


#: outputs that cost networks of their own, exported only when asked (``outputs=``): output -> predict keyword
OPTIONAL_OUTPUTS = {"identity": "identity"}


def _predict_kwargs(method, outputs: tuple[str, ...]) -> dict:
    """The keywords that make ``method.predict`` run what ``outputs`` asks for and nothing more; refuses an
    optional output the method cannot give."""
    import inspect

    params = inspect.signature(method.predict).parameters
    unknown = [o for o in outputs if o not in OPTIONAL_OUTPUTS]
    if unknown:
        raise FerkitError(f"Unknown export output '{unknown[0]}'; optional outputs are: {', '.join(OPTIONAL_OUTPUTS)}.")
    missing = [o for o in outputs if OPTIONAL_OUTPUTS[o] not in params]
    if missing:
        raise FerkitError(f"This model has no '{missing[0]}' output to export (only DICE-FER has an identity code).")
    return {kw: (name in outputs) for name, kw in OPTIONAL_OUTPUTS.items() if kw in params}


def _wrapper(method, predict_kwargs: dict):
    """An nn.Module whose forward is the method's predict, returning a tuple of the outputs. The tracer records
    only the networks the forward runs, so weights of networks left out never reach the graph."""
    import torch
    from torch import nn

    class ExportedFER(nn.Module):
        def __init__(self):
            super().__init__()
            self.nets = nn.ModuleDict(method.networks())     # the weights the traced forward may use

        def forward(self, image: torch.Tensor):
            pred = method.predict(image, **predict_kwargs)
            probs = pred.probs.float()                                             # (B, C)
            if pred.uncertainty is not None:
                unc = pred.uncertainty.float()                                     # (B,)
            else:
                unc = 1.0 - probs.max(dim=1).values                                # (B,)
            outs = (probs, unc)
            if pred.embedding is not None:
                outs = outs + (pred.embedding.float(),)                            # (B, D)
            return outs + tuple(pred.extra[k].float() for k in sorted(pred.extra))  # e.g. identity (B, D)

    return ExportedFER().eval()


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = DEFAULT_OPSET, check: bool = True,
                check_batch: int = 3, seed: int = 0, spec: str | Path | None = None,
                outputs: tuple[str, ...] = ()) -> dict:
    """Write ``out`` (.onnx) from ``checkpoint``; with ``check``, compare onnxruntime with PyTorch.

    ``checkpoint`` may also be an external model (a built-in name, a spec file, or a file with ``spec``).
    ``outputs``: optional outputs to add to the expression path's (``OPTIONAL_OUTPUTS``: "identity").

    Returns {"path", "outputs", "uncertainty_kind", "opset", "max_abs_diff" (per output, when checked)}.
    """
    from ferkit.external.loader import load_method

    if Path(out).suffix.lower() != ".onnx":
        raise FerkitError(f"--out {out} must end in .onnx.")
    return export_method_onnx(load_method(checkpoint, device="cpu", spec=spec), out, opset, check, check_batch,
                              seed, outputs)


def export_method_onnx(method, out: str | Path, opset: int = DEFAULT_OPSET, check: bool = True,
                       check_batch: int = 3, seed: int = 0, outputs: tuple[str, ...] = ()) -> dict:
    """``export_onnx`` for a method already in memory (on CPU, eval mode, ``checkpoint_meta`` set)."""
    import torch

    if opset < 17:
        raise FerkitError(f"--opset {opset} is too old; use 17 or newer.")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise FerkitError(f"--out {out} must end in .onnx.")
    if getattr(method, "onnx_net", None) is not None:      # an external ONNX model: its graph, wrapped
        if outputs:
            raise FerkitError("An external ONNX model exports its probabilities only; drop --outputs.")
        from ferkit.export.external import export_external_onnx

        return export_external_onnx(method, out, check, check_batch, seed)
    pre = method.preprocessing()
    kwargs = _predict_kwargs(method, tuple(outputs))
    model = _wrapper(method, kwargs)
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, pre.channels, pre.size, pre.size, generator=gen)      # (2, C, S, S)
    with torch.no_grad():
        pred = method.predict(example, **kwargs)
    names = ["probs", "uncertainty"] + (["embedding"] if pred.embedding is not None else [])
    names += sorted(pred.extra)
    kind = "evidential" if pred.uncertainty is not None else "max_prob"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    dynamic = {"image": {0: "batch"}, **{n: {0: "batch"} for n in names}}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's fused inference kernel (_native_multi_head_attention) has no ONNX
        # symbolic; the unfused path computes the same attention and exports (CLIP ViT-B/16)
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings():      # the TorchScript exporter's deprecation notice (see module doc)
            warnings.simplefilter("ignore", DeprecationWarning)
            # shape arithmetic frozen by the tracer; the parity check runs another batch size to catch it
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=names,
                              dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
        attach_metadata(tmp, getattr(method, "checkpoint_meta", {}) or {},
                         {"outputs": names, "uncertainty_kind": kind, "opset": opset,
                          "input": {"name": "image", "shape": ["batch", pre.channels, pre.size, pre.size]}})
        tmp.replace(out)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if tmp.exists():
            tmp.unlink()
    info = {"path": str(out), "outputs": names, "uncertainty_kind": kind, "opset": opset}
    if check:
        info["max_abs_diff"] = parity(method, model, out, check_batch, seed + 1)
    return info


def parity(method, model, onnx_path: str | Path, batch: int = 3, seed: int = 1) -> dict[str, float]:
    """Max absolute difference per output between onnxruntime and PyTorch on a random batch (its size
    differs from the export example's, so a batch size frozen into the graph shows up here)."""
    import torch

    from ferkit.inference.engines import OnnxEngine

    pre = method.preprocessing()
    x = torch.randn(batch, pre.channels, pre.size, pre.size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    eng = OnnxEngine.load(onnx_path, device="cpu")
    got = eng.session.run(None, {eng.input_name: x.numpy()})
    return {name: float(np.abs(r - g).max()) for name, r, g in zip(eng.output_names, ref, got, strict=True)}
