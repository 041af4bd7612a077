"""ResNet-18 trunk (torchvision layout, no fc) and loading of user-supplied pretrained weights.

Used by DICE-FER (four encoders) and the baseline. A 112x112 input gives layer3 = (B, 256, 7, 7),
layer4 = (B, 512, 4, 4) and pooled = (B, 512).

Grayscale: a face ResNet usually has a 3-channel conv1. With ``in_channels=1`` the trunk has a 1-channel
conv1, and 3-channel weights are folded into it when loaded:
    gray_mode="replicate": W1 = sum_c W3[:, c]  (exactly the same as feeding the gray image in all three channels)
    gray_mode="mean":      W1 = mean_c W3[:, c] (the gray value taken as the average of R, G, B)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ferkit.errors import CheckpointError, ConfigError

GRAY_MODES = ("replicate", "mean")
#: prefixes that training frameworks put in front of backbone keys; stripped (repeatedly) when loading
PREFIXES = ("module.", "backbone.", "model.", "encoder.", "base.", "resnet.")


class ResNet18Trunk(nn.Module):
    """torchvision ``resnet18`` without its fc layer; ``forward`` returns layer3, layer4 and pooled features."""

    def __init__(self, in_channels: int = 1, gray_mode: str = "replicate"):
        super().__init__()
        from torchvision.models import resnet18

        if in_channels not in (1, 3):
            raise ConfigError(f"ResNet18Trunk in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}.")
        if gray_mode not in GRAY_MODES:
            raise ConfigError(f"ResNet18Trunk gray_mode must be one of {', '.join(GRAY_MODES)}, got {gray_mode!r}.")
        self.in_channels = in_channels
        self.gray_mode = gray_mode
        net = resnet18(weights=None)
        if in_channels == 1:
            net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.weights_source = "random init"   # replaced by load_backbone_weights

    @staticmethod
    def feature_size(image_size: int, layer: str) -> int:
        """Side of the layer3/layer4 map for a square input (each stride-2 stage maps s -> floor((s-1)/2)+1)."""
        s = image_size
        for _ in range({"layer3": 4, "layer4": 5}[layer]):
            s = (s - 1) // 2 + 1
        return s

    def forward(self, x: torch.Tensor, stop_at: str = "layer4") -> dict[str, torch.Tensor]:
        """Features by name; ``stop_at="layer3"`` skips layer4 (and "pooled") when only layer3 is needed."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer2(self.layer1(x))                       # (B, 128, H/8, W/8)
        f3 = self.layer3(x)                                   # (B, 256, H/16, W/16)
        if stop_at == "layer3":
            return {"layer3": f3}
        f4 = self.layer4(f3)                                  # (B, 512, H/32, W/32)
        pooled = f4.mean(dim=(2, 3))                          # (B, 512)
        return {"layer3": f3, "layer4": f4, "pooled": pooled}


def _read_state_dict(path: Path) -> dict:
    """The raw mapping in a weights file (torch pickle read with weights_only=True, or safetensors)."""
    if not path.is_file():
        raise CheckpointError(f"Backbone weights file {path} does not exist; give the path of a local ResNet-18 "
                              "state dict or leave train.backbone_weights empty for random init.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - any decoding failure is the file's fault
            raise CheckpointError(f"Backbone weights file {path} is not a readable safetensors file "
                                  f"({type(e).__name__}); check that it was copied completely.") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip errors, refused globals, truncation
        raise CheckpointError(f"Backbone weights file {path} cannot be read as plain PyTorch weights "
                              f"({type(e).__name__}); give a torchvision-style ResNet-18 state dict.") from None
    return obj


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers."""
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in ("state_dict", "model", "model_state_dict", "net") if k in obj
                          and isinstance(obj[k], dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"Backbone weights file {path} holds no state dict of tensors; give a "
                              "torchvision-style ResNet-18 state dict (optionally wrapped as {'state_dict': ...}).")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def load_backbone_weights(trunk: ResNet18Trunk, path: str | Path) -> dict:
    """Load a torchvision-style ResNet-18 state dict into ``trunk``; returns a report.

    Accepted: a plain state dict, ``{"state_dict": ...}`` (e.g. ``resnet18_msceleb.pth``), keys prefixed with
    ``module.``/``backbone.``/``model.``; ``fc.*`` is ignored; a 3-channel conv1 is folded into a 1-channel trunk
    per ``trunk.gray_mode``. Report keys: "loaded", "missing", "ignored" (lists of names), "source" (path).
    Raises CheckpointError (one sentence) when the file is missing, unreadable, or not ResNet-18 weights.
    """
    path = Path(path)
    raw = _unwrap(_read_state_dict(path), path)
    own = trunk.state_dict()
    new: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        name = _strip(key)
        if name not in own:
            ignored.append(key)
            continue
        target = own[name]
        if name == "conv1.weight" and value.dim() == 4 and value.shape[1] != target.shape[1]:
            if value.shape[1] == 3 and target.shape[1] == 1:
                value = value.sum(1, keepdim=True) if trunk.gray_mode == "replicate" else value.mean(1, keepdim=True)
            else:
                raise CheckpointError(f"Backbone weights file {path} has a conv1 with {value.shape[1]} input "
                                      f"channels, which cannot feed a {target.shape[1]}-channel trunk.")
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(f"Backbone weights file {path} has '{key}' of shape {tuple(value.shape)} where "
                                  f"ResNet-18 needs {tuple(target.shape)}; it is not ResNet-18 weights.")
        new[name] = value.to(target.dtype)
    if not new:
        raise CheckpointError(f"Backbone weights file {path} contains no ResNet-18 keys (conv1, layer1..4); give "
                              "a torchvision-style ResNet-18 state dict.")
    missing = sorted(k for k in own if k not in new)
    trunk.load_state_dict(new, strict=False)
    trunk.weights_source = str(path)
    return {"loaded": sorted(new), "missing": missing, "ignored": sorted(ignored), "source": str(path)}
