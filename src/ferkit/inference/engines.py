"""The forward pass behind FERModel: PyTorch (fp32 or bf16 autocast) or onnxruntime.

Both take a preprocessed batch (B, C, S, S) and return numpy arrays: "probs" (B, C), "uncertainty"
(B,) and, where the model has one, "embedding" (B, D). Models without an uncertainty head report
1 - max_c p_c; ``uncertainty_kind`` is "evidential" or "max_prob".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ferkit.errors import CheckpointError, FerkitError

#: metadata_props keys in an exported ONNX model
ONNX_META_KEY = "ferkit"
ONNX_EXPORT_KEY = "ferkit_export"


class TorchEngine:
    """A ferkit Method in eval mode; ``precision`` "fp32" or "bf16" (autocast on the method's device).

    Rows need probabilities, uncertainty and the expression embedding only, so a method whose ``predict``
    takes ``identity`` (DICE-FER) is called with ``identity=False``: its identity encoder does not run.
    Audits that need the identity code (``ferkit evaluate``) call ``method.predict`` themselves.
    ``channels_last`` puts the networks' weights and each batch in channels-last memory order, which the
    CPU's convolution kernels run faster (ResNet-18 at 112 px, fp32, 2 threads: 1.8x; see
    benchmarks/speed/bench_inference.py); ``lean=False`` and ``channels_last=False`` give the plain path."""

    def __init__(self, method, precision: str = "fp32", channels_last: bool = True, lean: bool = True):
        import inspect

        import torch

        if precision not in ("fp32", "bf16"):
            raise FerkitError(f"Unknown precision '{precision}'; use fp32 or bf16.")
        self.method = method
        takes_identity = "identity" in inspect.signature(method.predict).parameters
        self._lean = {"identity": False} if lean and takes_identity else {}
        self.channels_last = channels_last
        if channels_last:
            for net in method.networks().values():
                net.to(memory_format=torch.channels_last)          # 4-D weights only; the others stay
        self.precision = precision
        self.name = "torch" if precision == "fp32" else "torch-bf16"
        self.meta: dict = dict(getattr(method, "checkpoint_meta", {}) or {})
        pre = method.preprocessing()
        probe = self.forward(np.zeros((1, pre.channels, pre.size, pre.size), np.float32), _probe=True)
        self.uncertainty_kind = "evidential" if probe["_has_uncertainty"] else "max_prob"

    def forward(self, x, _probe: bool = False) -> dict:
        import contextlib

        import torch

        xt = torch.as_tensor(x, dtype=torch.float32).to(self.method.device)       # (B, C, S, S)
        if self.channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast(device_type=self.method.device.type, dtype=torch.bfloat16)
               if self.precision == "bf16" else contextlib.nullcontext())
        with torch.no_grad(), ctx:
            pred = self.method.predict(xt, **self._lean)
        probs = pred.probs.float().cpu().numpy()                                 # (B, C)
        has_u = pred.uncertainty is not None
        unc = (pred.uncertainty.float().cpu().numpy() if has_u else 1.0 - probs.max(axis=1))  # (B,)
        emb = pred.embedding.float().cpu().numpy() if pred.embedding is not None else None
        out = {"probs": probs, "uncertainty": unc.astype(np.float32), "embedding": emb}
        if _probe:
            out["_has_uncertainty"] = has_u
        return out


class OnnxEngine:
    """An ONNX model written by ``ferkit export`` (metadata_props carry the checkpoint's metadata)."""

    def __init__(self, session, meta: dict, export_info: dict):
        self.session = session
        self.meta = meta
        self.export_info = export_info
        self.name = "onnx"
        self.uncertainty_kind = str(export_info.get("uncertainty_kind", "max_prob"))
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> OnnxEngine:
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"ONNX model {p} does not exist; write one with `ferkit export`.")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") or (device == "auto" and "CUDAExecutionProvider" in ort.get_available_providers()):
            providers.insert(0, "CUDAExecutionProvider")
        from ferkit.engine.devices import onnx_session_options

        try:
            session = ort.InferenceSession(str(p), sess_options=onnx_session_options(), providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several types for a bad file
            first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise CheckpointError(f"{p} is not a readable ONNX model ({first}); export it again.") from None
        props = session.get_modelmeta().custom_metadata_map
        try:
            meta = json.loads(props[ONNX_META_KEY])
            export_info = json.loads(props.get(ONNX_EXPORT_KEY, "{}"))
        except (KeyError, json.JSONDecodeError):
            raise CheckpointError(f"{p} is an ONNX model without ferkit metadata; describe it with a model spec "
                                  "(`ferkit import MODEL --spec SPEC`) or export it with `ferkit export`.") from None
        return cls(session, meta, export_info)

    def forward(self, x) -> dict:
        arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))              # (B, C, S, S)
        outs = dict(zip(self.output_names, self.session.run(None, {self.input_name: arr}), strict=True))
        return {"probs": outs["probs"], "uncertainty": outs["uncertainty"], "embedding": outs.get("embedding")}
