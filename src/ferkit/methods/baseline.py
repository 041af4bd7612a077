"""The baseline: ResNet-18 + linear head trained with cross-entropy and Adam.

Loss: L = -1/B sum_i log softmax(W f(x_i) + b)[y_i] (``F.cross_entropy``, optional label smoothing),
with f the ResNet-18 pooled feature (B, 512). Its input matches DICE-FER's by default (112 px grayscale)
so the two are comparable; ``channels: 3`` gives RGB with ImageNet statistics. The trunk starts from a
local pretrained state dict when ``train.backbone_weights`` names one, else from random initialisation
(said in the log and in ``describe()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.config import at_least, between, field_rules, one_of, register_method_config
from ferkit.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from ferkit.data.transforms import AUGMENTS
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError
from ferkit.methods.registry import register_method


@register_method_config("baseline")
@dataclass
class BaselineConfig:
    image_size: int = 112            # input side in pixels (DICE-FER uses 112)
    channels: int = 1                # 1 = grayscale (as DICE-FER), 3 = RGB
    gray_mode: str = "replicate"     # how 3-channel pretrained conv1 weights fold into 1 channel: replicate | mean
    augment: str = "flip"            # training augmentation (ferkit.data.transforms): none | flip | dicefer14 | ...
    whitening: str = "none"          # none | per_image (standardise each image, as DICE-FER)
    align: str = "auto"              # inference alignment: auto (none for SynthFER, else mtcnn5) | mtcnn5 | none
    weight_decay: float = 0.0        # Adam weight decay
    beta1: float = 0.9               # Adam beta1
    beta2: float = 0.999             # Adam beta2
    label_smoothing: float = 0.0     # cross-entropy label smoothing


field_rules(BaselineConfig, image_size=at_least(32), channels=one_of(1, 3), gray_mode=one_of("replicate", "mean"),
            augment=one_of(*AUGMENTS), whitening=one_of("none", "per_image"), align=one_of("auto", "mtcnn5", "none"),
            weight_decay=at_least(0), beta1=between(0, 1, hi_open=True), beta2=between(0, 1, hi_open=True),
            label_smoothing=between(0, 1, hi_open=True))

@register_method("baseline")
class BaselineMethod(Method):
    """ResNet-18 + linear head, cross-entropy, Adam (lr = ``train.lr``, default 1e-4)."""

    def __init__(self, cfg, label_space, device: torch.device):
        super().__init__(cfg, label_space, device)
        from ferkit.models.baseline import BaselineNet
        from ferkit.models.resnet import load_backbone_weights

        m: BaselineConfig = cfg.model
        if m.channels not in (1, 3):
            raise ConfigError(f"model.channels must be 1 (grayscale) or 3 (RGB), got {m.channels}.")
        if m.image_size < 32:
            raise ConfigError(f"model.image_size must be at least 32 pixels for ResNet-18, got {m.image_size}.")
        self.net = BaselineNet(label_space.num_classes, m.channels, m.gray_mode)
        self.weights_report = None
        if cfg.train.backbone_weights:
            self.weights_report = load_backbone_weights(self.net.trunk, cfg.train.backbone_weights)
        self.net.to(device)
        self._phases: list[Phase] | None = None

    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def phases(self) -> list[Phase]:
        if self._phases is None:
            m, t = self.cfg.model, self.cfg.train
            opt = torch.optim.Adam(self.net.parameters(), lr=t.lr, betas=(m.beta1, m.beta2),
                                   weight_decay=m.weight_decay)
            self._phases = [Phase("train", t.epochs, {"adam": opt})]
        return self._phases

    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        images, labels = batch["image"], batch["expression"]        # (B, C, S, S), (B,)
        with ctx.autocast():
            logits = self.net(images)["logits"]                     # (B, K)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.cfg.model.label_smoothing)
        ctx.step({"ce": loss}, ["adam"])
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return {"ce": loss.item(), "acc": acc.item()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        out = self.net(images)
        probs = out["logits"].float().softmax(dim=1)                # (B, K)
        return Prediction(probs=probs, embedding=out["embedding"].float())

    def preprocessing(self) -> Preprocessing:
        m = self.cfg.model
        align = m.align if m.align != "auto" else ("none" if self.cfg.data.dataset == "synthetic" else "mtcnn5")
        if m.channels == 1:
            return Preprocessing(size=m.image_size, channels=1, mean=(0.5,), std=(0.5,), whitening=m.whitening,
                                 align=align)
        return Preprocessing(size=m.image_size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                             whitening=m.whitening, align=align)

    def describe(self) -> dict:
        r = self.weights_report
        weights = (f"pretrained from {r['source']} ({len(r['loaded'])} tensors loaded, {len(r['missing'])} missing)"
                   if r else "random init (no train.backbone_weights given)")
        if getattr(self, "checkpoint_meta", None):
            weights = self.checkpoint_meta.get("describe", {}).get("backbone", weights)
        return {"model": f"ResNet-18 + linear head ({self.label_space.num_classes} classes)",
                "backbone": weights,
                "input": f"{self.cfg.model.image_size} px, {'grayscale' if self.cfg.model.channels == 1 else 'RGB'}",
                "loss": "cross-entropy", "optimizer": f"Adam lr {self.cfg.train.lr}"}
