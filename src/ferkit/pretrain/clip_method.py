"""CLIP contrastive pretraining as an engine method (``ferkit pretrain clip`` runs it through the engine).

One step: the batch's images, half of them mirrored, and one caption per image written from its class and
metadata (``pretrain/captions.py``; a mirrored image's caption swaps left and right), through both towers;
open_clip's ``ClipLoss`` with the learnable logit scale (clamped at 100 after each step, as open_clip does);
AdamW with a linear warmup then a cosine decay of the lr, set every step from the position. The mirroring
and the captions are drawn from (seed, global step), so a step is a function of its position: the same
seed writes the same weights, and resuming is exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.engine.seeding import derive_seed


class ClipPretrainMethod(Method):
    """Both CLIP towers and the logit scale, trained on ``split``'s images and captions (``cfg.model`` is a
    ``ClipPretrainConfig``); ``monitor``, a split of other people, gets its zero-shot accuracy after each epoch."""

    name = "pretrain_clip"

    def __init__(self, cfg, label_space, device: torch.device, split, monitor=None, log=None, on_epoch=None):
        from open_clip.loss import ClipLoss

        from ferkit.models.clip import build_clip
        from ferkit.pretrain.clip_towers import _images

        super().__init__(cfg, label_space, device)
        m = cfg.model
        self.model = build_clip(m.model_size, quick_gelu=m.quick_gelu, seed=m.seed).to(device)
        self.metas = [dict(s.meta or {}) for s in split.samples]
        self.names = [label_space.classes[e] for e in split.expressions]
        self.monitor = monitor if monitor is not None and len(monitor) else None
        self.monitor_images = _images(self.monitor, m.model_size) if self.monitor is not None else None
        self.monitor_rows: dict[int, dict] = {}
        self.log, self.on_epoch = log, on_epoch
        self.loss_fn = ClipLoss()
        self._phases = None

    def networks(self) -> dict[str, nn.Module]:
        return {"clip": self.model}

    def phases(self) -> list[Phase]:
        if self._phases is None:
            m = self.cfg.model
            named = list(self.model.named_parameters())
            decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
            others = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": m.weight_decay},
                                     {"params": others, "weight_decay": 0.0}], lr=m.lr, betas=(0.9, 0.98), eps=1e-6)
            self._phases = [Phase("train", m.epochs, {"adamw": opt})]
        return self._phases

    def train_augment(self, phase: Phase) -> str:
        return "none"                      # the step mirrors images itself: their captions must know it

    def lr_at(self, step: int, total: int) -> float:
        """Linear warmup over ``warmup_fraction`` of all steps, then half-cosine to 0."""
        m = self.cfg.model
        warmup = max(1, int(m.warmup_fraction * total))
        if step < warmup:
            return m.lr * (step + 1) / warmup
        return 0.5 * m.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        from ferkit.models.clip import tokenize
        from ferkit.pretrain.captions import CAPTION_STYLES
        from ferkit.pretrain.clip_towers import encode_image, encode_text

        m = self.cfg.model
        step = ctx.epoch * ctx.iters_per_epoch + ctx.iteration
        lr = self.lr_at(step, phase.epochs * ctx.iters_per_epoch)
        for g in phase.optimizers["adamw"].param_groups:
            g["lr"] = lr
        idx = batch["index"].tolist()
        gen = torch.Generator().manual_seed(derive_seed(m.seed, 7, ctx.global_step))
        flips = (torch.rand(len(idx), generator=gen) < 0.5) if m.flip else torch.zeros(len(idx), dtype=torch.bool)
        x = batch["image"]
        x = torch.where(flips.to(x.device)[:, None, None, None], x.flip(-1), x)              # (B, 3, S, S)
        rng = np.random.default_rng([m.seed, 7, ctx.global_step])
        caption = CAPTION_STYLES[m.captions]
        texts = [caption(self.names[i], self.metas[i], rng, bool(f)) for i, f in zip(idx, flips.tolist(), strict=True)]
        tokens = tokenize(texts, self.model.context_length).to(x.device)                    # (B, 77)
        with ctx.autocast():
            img = encode_image(self.model, x)                                                # (B, D)
            txt = encode_text(self.model, tokens)                                            # (B, D)
        img, txt = F.normalize(img.float(), dim=-1), F.normalize(txt.float(), dim=-1)
        loss = self.loss_fn(img, txt, self.model.logit_scale.exp())                          # fp32
        ctx.step({"loss": loss}, ["adamw"])
        with torch.no_grad():                                   # open_clip clamps the scale at 100
            self.model.logit_scale.clamp_(0, math.log(100))
        return {"loss": loss.item(), "logit_scale": float(self.model.logit_scale.detach().exp()), "lr": lr}

    def on_epoch_end(self, phase: Phase, epoch: int) -> None:
        """Zero-shot accuracy of the monitor people (class name, and UA-FER's paper template)."""
        from ferkit.methods.uafer import PAPER_TEMPLATE
        from ferkit.pretrain.clip_towers import zero_shot_accuracy

        if self.monitor is not None:
            row = {"zero_shot_name": zero_shot_accuracy(self.model, self.monitor, "{}", self.monitor_images),
                   "zero_shot_template": zero_shot_accuracy(self.model, self.monitor, PAPER_TEMPLATE,
                                                            self.monitor_images)}
            self.monitor_rows[epoch + 1] = row
            if self.log:
                self.log(f"pretrain clip epoch {epoch + 1}/{phase.epochs}: zero-shot on {len(self.monitor)} "
                         f"held-out images {row['zero_shot_name']:.3f} (class name) / "
                         f"{row['zero_shot_template']:.3f} (template)")
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, self.model)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        """Zero-shot class probabilities with the class names as prompts (logit scale x cosine)."""
        from ferkit.models.clip import encode_prompts
        from ferkit.pretrain.clip_towers import encode_image

        text = F.normalize(encode_prompts(self.model, list(self.label_space.classes)), dim=-1)     # (K, D)
        f = F.normalize(encode_image(self.model, images.to(self.device)).float(), dim=-1)          # (B, D)
        return Prediction(probs=torch.softmax(self.model.logit_scale.exp() * f @ text.t(), dim=1))

    def preprocessing(self) -> Preprocessing:
        from ferkit.pretrain.clip_towers import preprocessing

        return preprocessing(self.cfg.model.model_size)

    def describe(self) -> dict:
        m = self.cfg.model
        return {"task": f"contrastive image-caption pretraining (open_clip ClipLoss), {m.captions} captions",
                "model": f"CLIP {m.model_size}, random init (seed {m.seed})"}
