"""Shared by the engine tests: a tiny registered method (with NaN injection) and in-memory splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.config import build_experiment, register_method_config
from ferkit.data.labels import SYNTHFER
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.records import DatasetSplit, Sample
from ferkit.engine.method import Method, Phase, Prediction
from ferkit.methods.registry import register_method


@register_method_config("tiny_test")
@dataclass
class TinyConfig:
    image_size: int = 8                                   # input side
    nan_steps: list[int] = field(default_factory=list)    # global steps whose loss is made NaN
    nan_from: int | None = None                           # every step from this one on is NaN
    augment: str = "flip"                                 # exercised so augmentation seeding matters


@register_method("tiny_test")
class TinyMethod(Method):
    """An MLP over 8x8 gray images; no BatchNorm, so several processes can match one process exactly.

    ``TinyMethod.trace`` records (global step, step accepted, weights changed) for every step."""

    trace: list[tuple[int, bool, bool]] = []
    last = None                                            # the most recently built instance


    def __init__(self, cfg, label_space, device):
        super().__init__(cfg, label_space, device)
        s = cfg.model.image_size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(s * s, 32), nn.ReLU(), nn.Linear(32, label_space.num_classes))
        self.net.to(device)
        self._phases = None
        TinyMethod.last = self

    def networks(self):
        return {"net": self.net}

    def phases(self):
        if self._phases is None:
            opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.train.lr)
            self._phases = [Phase("train", self.cfg.train.epochs, {"adam": opt})]
        return self._phases

    def train_step(self, phase, batch, ctx):
        with ctx.autocast():
            logits = self.net(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["expression"])
        m = self.cfg.model
        if ctx.global_step in m.nan_steps or (m.nan_from is not None and ctx.global_step >= m.nan_from):
            loss = loss * float("nan")
        before = torch.cat([p.detach().reshape(-1).clone() for p in self.net.parameters()])
        ok = ctx.step({"ce": loss}, ["adam"])
        after = torch.cat([p.detach().reshape(-1) for p in self.net.parameters()])
        TinyMethod.trace.append((ctx.global_step, ok, not torch.equal(before, after)))
        return {"ce": loss.item()}

    @torch.no_grad()
    def predict(self, images):
        return Prediction(probs=self.net(images).float().softmax(1))

    def preprocessing(self):
        return Preprocessing(size=self.cfg.model.image_size, channels=1, align="none")


def toy_splits(n_train: int = 56, n_eval: int = 21, size: int = 16, seed: int = 0) -> dict[str, DatasetSplit]:
    """Images whose brightness encodes the class (learnable), random texture on top, 5 subjects."""
    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> DatasetSplit:
        samples = []
        for i in range(n):
            y = i % 7
            img = (rng.integers(0, 60, (size, size, 3)) + y * 28).astype(np.uint8)
            samples.append(Sample(img, y, subject=i % 5))
        return DatasetSplit("toy", name, SYNTHFER, samples)

    return {"train": split("train", n_train), "val": split("val", n_eval), "test": split("test", n_eval)}


def tiny_config(out, **train):
    t = {"epochs": 2, "batch_size": 8, "lr": 1e-2, "precision": "fp32", "device": "cpu", "out": str(out)}
    t.update(train)
    model = t.pop("model", {})
    return build_experiment("tiny_test", {"dataset": "toy"}, t, model)


def weights(path) -> dict[str, torch.Tensor]:
    from ferkit.engine.checkpoint import read_checkpoint

    return read_checkpoint(path).tensors
