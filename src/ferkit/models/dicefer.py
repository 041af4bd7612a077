"""DICE-FER networks (METHODS.md A.1): four ResNet-18 encoders, statistics networks, discriminators, classifier.

Networks by checkpoint name (each an nn.Module; ``build_networks`` returns them in this order):
  exp_encoders   {m, n}  expression encoders psi_M, psi_N: image -> (feature map F^exp, E in R^d)
  id_encoders    {m, n}  identity encoders eta_M, eta_N:   image -> (feature map F^id, I in R^d)
  s1_critics     {global_m, global_n, local_m, local_n}  stage-1 statistics nets on (F^exp, E)
  s2_critics     {global_m, global_n, local_m, local_n}  stage-2 statistics nets on ([F^exp; F^id], [E; I])
  discriminators {m, n}  D_rho on (E, I), three FC layers
  classifier     two hidden FC layers on E -> K logits
"""

from __future__ import annotations

import torch
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models.critics import (
    Discriminator,
    GlobalStatistics,
    LocalStatistics,
    SeparableGlobalStatistics,
    SeparableLocalStatistics,
)
from ferkit.models.resnet import ResNet18Trunk

TAP_CHANNELS = {"layer3": 256, "layer4": 512}


class DiceEncoder(nn.Module):
    """ResNet-18 trunk with a feature-map tap and a linear head to a ``code_dim`` code.

    code_from="pooled": code = Linear(C, d)(global-average-pool(F)); "flatten": code = Linear(C*h*w, d)(flatten(F))
    (Sanchez's BaseEncoder). Returns (F (B, C, h, w), code (B, d)).
    """

    def __init__(self, in_channels: int, image_size: int, code_dim: int = 64, tap: str = "layer4",
                 code_from: str = "pooled", gray_mode: str = "replicate"):
        super().__init__()
        if tap not in TAP_CHANNELS:
            raise ConfigError(f"DICE-FER feature tap must be one of {', '.join(TAP_CHANNELS)}, got {tap!r}.")
        if code_from not in ("pooled", "flatten"):
            raise ConfigError(f"DICE-FER code_from must be 'pooled' or 'flatten', got {code_from!r}.")
        self.tap, self.code_from = tap, code_from
        self.trunk = ResNet18Trunk(in_channels, gray_mode)
        side = ResNet18Trunk.feature_size(image_size, tap)
        self.map_shape = (TAP_CHANNELS[tap], side, side)
        n_in = TAP_CHANNELS[tap] * (1 if code_from == "pooled" else side * side)
        self.head = nn.Linear(n_in, code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.trunk(x, stop_at=self.tap)[self.tap]                        # (B, C, h, w)
        flat = fmap.mean(dim=(2, 3)) if self.code_from == "pooled" else fmap.flatten(1)
        return fmap, self.head(flat)                                            # (B, C, h, w), (B, d)


class ExpressionClassifier(nn.Module):
    """E (B, d) -> logits (B, K) through two hidden FC layers with ReLU (sizes are [INFERRED])."""

    def __init__(self, code_dim: int, num_classes: int, hidden: tuple[int, int] = (128, 64)):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], num_classes))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)                                                   # (B, K)


def _critics(channels: int, side: int, code_dim: int, hidden: int, form: str = "concat") -> nn.ModuleDict:
    glob, loc = ((SeparableGlobalStatistics, SeparableLocalStatistics) if form == "separable"
                 else (GlobalStatistics, LocalStatistics))
    return nn.ModuleDict({
        "global_m": glob(channels, (side, side), code_dim, hidden),
        "global_n": glob(channels, (side, side), code_dim, hidden),
        "local_m": loc(channels, code_dim, hidden),
        "local_n": loc(channels, code_dim, hidden),
    })


def dlib_identity_encoder(m, side: int) -> nn.Module:
    """dlib's face recognizer as eta (``ferkit.models.dlib_resnet.DlibIdentityEncoder``), without its weights
    (the method loads them): needs RGB crops without whitening, aligned to the five-point template."""
    from ferkit.data.dlib_chip import MTCNN_FIT, MTCNN_IN_DLIB_FACE, chip_points
    from ferkit.data.faces import similarity_transform, template_landmarks
    from ferkit.models.dlib_resnet import DlibIdentityEncoder

    if m.channels != 3 or m.whitening != "none":
        raise ConfigError("model.identity_encoder=dlib-resnet needs RGB crops without whitening (the face recognizer "
                          "sees pixels as dlib does): set model.channels=3 and model.whitening=none.")
    idx = list(MTCNN_FIT)
    crop_to_chip = similarity_transform(template_landmarks(m.image_size, m.template)[idx],
                                        chip_points(MTCNN_IN_DLIB_FACE[idx]))           # (2, 3)
    return DlibIdentityEncoder(m.image_size, side, crop_to_chip)


def build_networks(model_cfg, num_classes: int) -> dict[str, nn.Module]:
    """All DICE-FER networks from a ``DiceFerConfig`` (see ``ferkit.methods.dicefer``)."""
    m = model_cfg
    d = m.feature_dim

    def encoder() -> DiceEncoder:
        return DiceEncoder(m.channels, m.image_size, d, m.tap, m.code_from, m.gray_mode)

    exp = nn.ModuleDict({"m": encoder(), "n": encoder()})
    c, side, _ = exp["m"].map_shape
    if getattr(m, "identity_encoder", "resnet18") == "dlib-resnet":
        idn = nn.ModuleDict({"m": dlib_identity_encoder(m, side), "n": dlib_identity_encoder(m, side)})
        c_id, d_id = idn["m"].map_channels, idn["m"].code_dim
    else:
        idn = nn.ModuleDict({"m": encoder(), "n": encoder()})
        c_id, d_id = c, d
    return {
        "exp_encoders": exp,
        "id_encoders": idn,
        "s1_critics": _critics(c, side, d, m.critic_hidden, m.critic_form),
        "s2_critics": _critics(c + c_id, side, d + d_id, m.critic_hidden),
        "discriminators": nn.ModuleDict({"m": Discriminator(d + d_id, tuple(m.disc_hidden)),
                                         "n": Discriminator(d + d_id, tuple(m.disc_hidden))}),
        "classifier": ExpressionClassifier(d, num_classes, tuple(m.classifier_hidden)),
    }
