"""The baseline network: a ResNet-18 trunk and one linear layer over its 512-d pooled features."""

from __future__ import annotations

import torch
from torch import nn

from ferkit.models.resnet import ResNet18Trunk


class BaselineNet(nn.Module):
    """ResNet-18 (torchvision layout, no fc) + ``Linear(512, num_classes)``; returns logits and the embedding."""

    def __init__(self, num_classes: int, in_channels: int = 1, gray_mode: str = "replicate"):
        super().__init__()
        self.trunk = ResNet18Trunk(in_channels=in_channels, gray_mode=gray_mode)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.trunk(x)["pooled"]          # (B, 512)
        logits = self.head(pooled)                # (B, C)
        return {"logits": logits, "embedding": pooled}
