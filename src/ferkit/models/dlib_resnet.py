"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``), in PyTorch, read from dlib's ``.dat``.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp`` (Davis King, 2017; weights
trained on about 3 million faces by metric learning, LFW accuracy 99.38% as dlib reports it):

    input_rgb_image_sized<150>        (pixel - (122.782, 117.001, 104.298)) / 256, channels R, G, B
    con<32,7,7,2,2>, affine, relu      7x7/2 convolution, no padding (dlib pads only stride-1 layers)
    max_pool<3,3,2,2>                  3x3/2, no padding
    alevel4: 3 x ares<32>; alevel3: ares_down<64> + 3 x ares<64>; alevel2: ares_down<128> + 2 x ares<128>;
    alevel1: ares_down<256> + 2 x ares<256>; alevel0: ares_down<256>
    avg_pool_everything, fc_no_bias<128>

``ares<N>`` is relu(x + affine(con3x3(relu(affine(con3x3(x)))))); ``ares_down<N>`` makes the first
convolution 3x3/2 (no padding) and adds avg_pool<2,2,2,2>(x) instead of x. dlib's ``add_prev`` adds tensors
of different sizes by zero-extending the smaller one at the end of each axis (more channels; and on the
8 -> 3 vs 4 step, a larger pooled skip): `_add_prev` does the same. ``affine`` is batch norm frozen into
a per-channel scale and shift; here it is folded into the preceding convolution (w * gamma, b * gamma + beta).

`read_dlib_resnet` parses the ``.dat`` in the order dlib's ``deserialize`` reads it (``dlib/dnn/core.h``
``add_layer``/``add_tag_layer``/``add_skip_layer``, ``dlib/dnn/layers.h`` ``con_``, ``affine_``, ``relu_``,
``max_pool_``, ``avg_pool_``, ``add_prev_``, ``fc_``, ``dlib/dnn/input.h``, ``dlib/dnn/loss.h``
``loss_metric_``): the loss, then each layer's header from the output inwards, then the input layer, then
each layer's parameters from the input outwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.models.dlib_format import DlibReader

INPUT_SIZE = 150
EMBED_DIM = 128
#: (width, number of blocks, first block downsamples), input side first: alevel4 .. alevel0
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))

_ARES = ["relu", "add_prev", "affine", "con", "relu", "affine", "con", "tag"]
_ARES_DOWN = ["relu", "add_prev", "avg_pool", "skip", "tag", "affine", "con", "relu", "affine", "con", "tag"]


def _layer_kinds() -> list[str]:
    """The network's layers from the output inwards, as they nest in the ``.dat`` (tags and skips included)."""
    kinds = ["fc", "avg_pool"]
    for _width, n, down in reversed(LEVELS):
        kinds += _ARES * (n - 1 if down else n) + (_ARES_DOWN if down else [])
    return kinds + ["max_pool", "relu", "affine", "con"]


def _details(r: DlibReader, kind: str) -> dict:
    """One layer's own serialized fields (the ``details`` of its ``add_layer``)."""
    if kind == "con":
        v = r.expect("con_4", "con_5", "con_6")
        params = r.tensor()
        d = {"num_filters": r.int(), "nr": r.int(), "nc": r.int(), "stride": (r.int(), r.int()),
             "padding": (r.int(), r.int()), "filters": r.alias_tensor(), "biases": r.alias_tensor()}
        for _ in range(4):
            r.float()                                               # learning-rate / weight-decay multipliers
        d["use_bias"] = r.bool() if v in ("con_5", "con_6") else True
        if v == "con_6" and r.bool():
            raise r.fail("a convolution with a fused relu")
        n_w = int(np.prod(d["filters"]))
        d["weight"] = params.reshape(-1)[:n_w].reshape(d["filters"])                    # (O, I, kh, kw)
        d["bias"] = params.reshape(-1)[n_w:n_w + d["num_filters"]] if d["use_bias"] else np.zeros(d["num_filters"],
                                                                                                 np.float32)
        return d
    if kind == "affine":
        v = r.expect("affine_", "affine_2")
        params = r.tensor().reshape(-1)
        k = int(np.prod(r.alias_tensor()))
        r.alias_tensor()
        if r.int() != 0:                                             # CONV_MODE: one scale per channel
            raise r.fail("an affine layer not in convolution mode")
        if v == "affine_2" and r.bool():
            raise r.fail("a disabled affine layer")
        return {"gamma": params[:k], "beta": params[k:2 * k]}
    if kind == "relu":
        if r.expect("relu_", "relu_2") == "relu_2" and r.bool():
            raise r.fail("a disabled relu layer")
        return {}
    if kind in ("max_pool", "avg_pool"):
        r.expect(f"{kind}_2")
        return {"size": (r.int(), r.int()), "stride": (r.int(), r.int()), "padding": (r.int(), r.int())}
    if kind == "add_prev":
        r.expect("add_prev_")
        return {}
    if kind == "fc":
        v = r.expect("fc_2", "fc_3")
        n_out, n_in = r.int(signed=False), r.int(signed=False)
        params = r.tensor().reshape(-1)
        r.alias_tensor()
        r.alias_tensor()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if v == "fc_3":
            r.bool()
        if bias_mode != 1:                                           # FC_NO_BIAS
            raise r.fail("a fully connected layer with a bias")
        return {"weight": params[:n_in * n_out].reshape(n_in, n_out)}                  # (in, out): x @ W
    raise AssertionError(kind)


def _read_layers(r: DlibReader, kinds: list[str], i: int, out: list) -> None:
    """Layer ``kinds[i]`` and everything under it, appending (kind, details) input side first."""
    kind = kinds[i]
    if kind in ("tag", "skip"):                                      # add_tag_layer / add_skip_layer: version 1
        r.version(1)
        _read_layers(r, kinds, i + 1, out)
        out.append((kind, {}))
        return
    innermost = i == len(kinds) - 1
    version = r.version(2, 3) if innermost else r.version(1, 2)
    if innermost:                                                    # add_layer over the input layer
        name = r.expect("input_rgb_image_sized", "input_rgb_image")
        mean = [r.float(), r.float(), r.float()]
        if name == "input_rgb_image_sized":
            r.int(signed=False), r.int(signed=False)
        out.append(("input", {"mean": mean}))
    else:
        _read_layers(r, kinds, i + 1, out)
    details = _details(r, kind)
    for _ in range(3):                                               # setup called, gradient stale, disabled
        r.bool()
    r.tensor(), r.tensor()                                           # x_grad, cached_output
    if innermost or version == 2:
        r.tensor()                                                   # grad_final / params_grad
    if innermost and version == 3:
        r.int(signed=False)                                          # sample expansion factor
    out.append((kind, details))


def read_dlib_resnet(path: str | Path) -> tuple[list[tuple[str, dict]], dict]:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat``: (layers input side first, loss settings)."""
    path = Path(path)
    r = DlibReader(path.read_bytes(), name=str(path))
    r.version(1)                                                     # add_loss_layer
    if r.expect("loss_metric_", "loss_metric_2") == "loss_metric_2":
        loss = {"margin": r.float(), "distance_threshold": r.float()}
    else:
        loss = {"margin": 0.1, "distance_threshold": 0.75}
    layers: list[tuple[str, dict]] = []
    _read_layers(r, _layer_kinds(), 0, layers)
    if not r.at_end():
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    return layers, loss


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum of two (N, C, H, W) tensors, each zero-extended at the end to the larger size."""
    if a.shape == b.shape:
        return a + b
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))
    return grow(a) + grow(b)


class ResBlock(nn.Module):
    """``ares`` / ``ares_down``: two 3x3 convolutions (affine folded in), the identity or 2x2-pooled skip, relu."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_prev(y, skip))


class DlibFaceResNet(nn.Module):
    """The 29-convolution ResNet: (N, 3, 150, 150) RGB floats in 0-255 -> (N, 128) face descriptors."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        blocks, cin = [], 32
        for width, n, down in LEVELS:
            for j in range(n):
                blocks.append(ResBlock(cin, width, down and j == 0))
                cin = width
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, EMBED_DIM, bias=False)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, 150, 150) RGB 0-255 -> (N, 256) pooled features before the last projection."""
        x = (pixels - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)                 # (N, 32, 35, 35)
        for block in self.blocks:
            x = block(x)                                             # ... (N, 256, 2, 2)
        return x.mean(dim=(2, 3))                                    # (N, 256)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(pixels))                        # (N, 128)

    def map_and_code(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 150, 150) RGB 0-255 -> (alevel1's map (N, 256, 4, 4), the descriptor (N, 128))."""
        x = (pixels - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for block in self.blocks[:-1]:
            x = block(x)                                             # ... (N, 256, 4, 4) after alevel1
        fmap = x
        x = self.blocks[-1](x)                                       # (N, 256, 2, 2)
        return fmap, self.fc(x.mean(dim=(2, 3)))


class DlibIdentityEncoder(nn.Module):
    """The face recognizer as a DICE-FER identity encoder: preprocessed crops in, (F^id, I) out, frozen.

    DICE-FER's input x (B, 3, S, S) is an aligned crop normalised as ``(pixel / 255 - mean) / std``
    (whitening none); the pixels are recovered, the crop is warped to dlib's 150 px chip with the fixed
    similarity taking the crop's five template points onto dlib's chip template (``chip_from_crop``,
    given by the caller; outside the crop is black), and the network returns its 256-channel map after
    alevel1, average-pooled to ``side`` x ``side`` (the expression map's size), and its 128-D descriptor.
    Its weights are dlib's (loaded by the method) and never trained.
    """

    map_channels = 256
    code_dim = EMBED_DIM

    def __init__(self, image_size: int, side: int, chip_from_crop: np.ndarray, mean: float = 0.5, std: float = 0.5):
        super().__init__()
        self.net = DlibFaceResNet()
        self.side, self.mean_px, self.std_px = int(side), float(mean), float(std)
        self.register_buffer("grid", _sampling_grid(chip_from_crop, image_size), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = (x.float() * self.std_px + self.mean_px) * 255.0                       # (B, 3, S, S) 0-255
        grid = self.grid.to(x.device).expand(x.shape[0], -1, -1, -1)                    # (B, 150, 150, 2)
        chip = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        fmap, code = self.net.map_and_code(chip)                                        # (B, 256, 4, 4), (B, 128)
        return F.adaptive_avg_pool2d(fmap, self.side), code


def _sampling_grid(chip_from_crop: np.ndarray, size: int) -> torch.Tensor:
    """grid_sample's (1, 150, 150, 2) grid: for each chip pixel centre, where it lies in the crop, in [-1, 1]."""
    m = np.linalg.inv(np.vstack([np.asarray(chip_from_crop, np.float64), [0.0, 0.0, 1.0]]))[:2]   # chip -> crop
    c, r = np.meshgrid(np.arange(INPUT_SIZE, dtype=np.float64), np.arange(INPUT_SIZE, dtype=np.float64))
    x = m[0, 0] * c + m[0, 1] * r + m[0, 2]
    y = m[1, 0] * c + m[1, 1] * r + m[1, 2]
    grid = np.stack([(2 * x + 1) / size - 1, (2 * y + 1) / size - 1], axis=-1)
    return torch.from_numpy(grid[None].astype(np.float32))


def _conv_from(conv: nn.Conv2d, con: dict, affine: dict) -> None:
    """Set ``conv`` to dlib's con followed by affine: weight * gamma, bias * gamma + beta."""
    if tuple(con["weight"].shape) != tuple(conv.weight.shape) or tuple(con["padding"]) != tuple(conv.padding) \
            or tuple(con["stride"]) != tuple(conv.stride):
        raise ValueError(f"a convolution of shape {con['weight'].shape} stride {con['stride']} padding "
                         f"{con['padding']} where {tuple(conv.weight.shape)} was expected")
    g, b = torch.from_numpy(affine["gamma"]), torch.from_numpy(affine["beta"])
    conv.weight.data = torch.from_numpy(con["weight"].copy()) * g.view(-1, 1, 1, 1)
    conv.bias.data = torch.from_numpy(con["bias"].copy()) * g + b


def load_dlib_resnet(path: str | Path) -> DlibFaceResNet:
    """The network with the weights of dlib's ``.dat`` at ``path``, in eval mode."""
    layers, _loss = read_dlib_resnet(path)
    kinds = [k for k, _ in layers]
    net = DlibFaceResNet()
    _, inp = layers[0]
    net.mean.copy_(torch.tensor(inp["mean"]).view(1, 3, 1, 1))
    convs = [d for k, d in layers if k == "con"]
    affines = [d for k, d in layers if k == "affine"]
    pools = [d for k, d in layers if k in ("max_pool", "avg_pool")]
    if len(convs) != 29 or len(affines) != 29 or kinds.count("add_prev") != len(net.blocks):
        raise ValueError("the file does not hold the 29-convolution network")
    if pools[0]["size"] != (3, 3) or pools[0]["padding"] != (0, 0) or pools[-1]["size"] != (0, 0):
        raise ValueError("the pooling layers differ from dnn_face_recognition_ex.cpp's")
    _conv_from(net.stem, convs[0], affines[0])
    for j, block in enumerate(net.blocks):
        _conv_from(block.conv1, convs[1 + 2 * j], affines[1 + 2 * j])
        _conv_from(block.conv2, convs[2 + 2 * j], affines[2 + 2 * j])
    fc = layers[-1][1]["weight"]                                     # (256, 128)
    net.fc.weight.data = torch.from_numpy(np.ascontiguousarray(fc.T))
    return net.eval()
