"""The two kinds of external network: an ONNX classifier (run by onnxruntime) and a torchvision ResNet
state dict with a linear head; both are checked against their spec before anything runs.

Checks: an ONNX model has exactly one input, of rank 4, whose fixed dimensions agree with the spec's
channels, input size and layout; a state dict has exactly the keys of the named torchvision ResNet with
an ``fc`` of as many outputs as the spec has classes. Each mismatch is one sentence naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferkit.errors import CheckpointError
from ferkit.external.spec import ModelSpec


class OnnxNet:
    """An onnxruntime session over a one-input image classifier; ``run`` takes NCHW float32."""

    def __init__(self, path: str | Path, spec: ModelSpec, device: str = "cpu"):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model {self.path} does not exist; check the spec's 'model' or the path.")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        from ferkit.engine.devices import onnx_session_options

        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=onnx_session_options(),
                                                providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several types for a bad file
            first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise CheckpointError(f"{self.path} is not a readable ONNX model ({first}).") from None
        self.spec = spec
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise CheckpointError(f"ONNX model {self.path.name} has {len(inputs)} inputs "
                                  f"({', '.join(i.name for i in inputs)}); ferkit runs classifiers with one "
                                  "image input.")
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        b = inputs[0].shape[0]
        self.fixed_batch = b if isinstance(b, int) and b > 0 else None     # e.g. graphs exported at batch 1
        check_input_shape(list(inputs[0].shape), spec, f"ONNX model {self.path.name}'s input '{self.input_name}'")

    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, C, S, S) float32 -> the first output (B, K)."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if self.spec.layout == "nhwc":
            arr = np.ascontiguousarray(arr.transpose(0, 2, 3, 1))                      # (B, S, S, C)
        step = self.fixed_batch or max(1, len(arr))
        outs = []
        for i in range(0, len(arr), step):
            part = arr[i:i + step]
            n = len(part)
            if self.fixed_batch and n < step:                                          # pad the last chunk
                part = np.concatenate([part, np.repeat(part[-1:], step - n, axis=0)])
            outs.append(np.asarray(self.session.run([self.output_name], {self.input_name: part})[0],
                                   dtype=np.float32).reshape(len(part), -1)[:n])       # (n, K)
        return np.concatenate(outs) if outs else np.zeros((0, len(self.spec.classes)), np.float32)


def check_input_shape(shape: list, spec: ModelSpec, what: str) -> None:
    """Fixed dimensions of a (B, C, H, W) / (B, H, W, C) input must match the spec; symbolic ones pass."""
    if len(shape) != 4:
        raise CheckpointError(f"{what} has shape {shape}; ferkit feeds image batches of rank 4 "
                              f"({spec.layout.upper()}).")
    c, h, w = (shape[1], shape[2], shape[3]) if spec.layout == "nchw" else (shape[3], shape[1], shape[2])
    for dim, want, label in ((c, spec.channels, "channels"), (h, spec.input_size, "height"),
                             (w, spec.input_size, "width")):
        if isinstance(dim, int) and dim > 0 and dim != want:
            raise CheckpointError(f"{what} has shape {shape} but the spec says {label} {want} "
                                  f"(input_size {spec.input_size}, color_order {spec.color_order}, "
                                  f"layout {spec.layout}); fix the spec.")


class ResNetClassifier(nn.Module):
    """A torchvision ResNet whose ``fc`` maps the pooled features to the classes.

    forward: (B, 3, S, S) -> (scores (B, K), pooled features (B, D)).
    """

    def __init__(self, architecture: str, num_classes: int):
        super().__init__()
        import torchvision

        self.net = getattr(torchvision.models, architecture)(weights=None, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.net
        h = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        h = n.layer4(n.layer3(n.layer2(n.layer1(h))))
        feats = torch.flatten(n.avgpool(h), 1)                                         # (B, D)
        return n.fc(feats), feats                                                      # (B, K), (B, D)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt`` (weights_only) or ``.safetensors`` file; a nested "state_dict" or
    "model" entry is unwrapped."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"State dict {p} does not exist; check the spec's 'model' or the path.")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling or format failures: the file is not a state dict
        raise CheckpointError(f"{p} cannot be read as a state dict ({type(e).__name__}); pass a torch "
                              ".pth/.pt or .safetensors file of tensors.") from None
    for key in ("state_dict", "model", "net"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{p} is not a state dict of tensors; pass torch.save(model.state_dict()).")
    return sd


def resnet_from_state_dict(sd: dict[str, torch.Tensor], spec: ModelSpec, where: str) -> ResNetClassifier:
    """A ResNetClassifier with ``sd`` loaded strictly; key or head mismatches raise one sentence."""
    if spec.strip_prefix:
        sd = {(k[len(spec.strip_prefix):] if k.startswith(spec.strip_prefix) else k): v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    model = ResNetClassifier(spec.architecture, len(spec.classes))
    own = {k: v for k, v in model.net.state_dict().items() if not k.endswith("num_batches_tracked")}
    if "fc.weight" in sd and sd["fc.weight"].ndim == 2 and sd["fc.weight"].shape[0] != len(spec.classes):
        raise CheckpointError(f"{where}: its fc layer has {sd['fc.weight'].shape[0]} outputs but the spec lists "
                              f"{len(spec.classes)} classes; fix the spec's classes.")
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        parts = ([f"missing {len(missing)} key(s) such as {', '.join(missing[:3])}"] if missing else []) + \
                ([f"{len(unexpected)} unexpected key(s) such as {', '.join(unexpected[:3])}"] if unexpected else [])
        raise CheckpointError(f"{where} does not match torchvision {spec.architecture} with a linear fc: "
                              f"{'; '.join(parts)} (set strip_prefix or architecture in the spec).")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{where}: {k} has shape {tuple(sd[k].shape)}, torchvision {spec.architecture} "
                                  f"needs {tuple(v.shape)}; check the spec's architecture.")
    model.net.load_state_dict(sd, strict=False)      # num_batches_tracked (bookkeeping only) may be absent
    return model.eval()
