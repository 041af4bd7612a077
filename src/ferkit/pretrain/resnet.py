"""A face-recognition ResNet-18: the stand-in for DICE-FER's CASIA-WebFace initialisation (METHODS.md A.1).

DICE-FER's four encoders start from a ResNet-18 trained to recognise faces. No such checkpoint can be
downloaded here, and from random initialisation the stage-1 MI objective finds no signal on small data
(the estimate stays at 0 nats; docs/dicefer-stage1.md). This module trains the same network on the
same task, identity classification with softmax cross-entropy over subjects, on face images whose subjects
are disjoint from the ones the method is evaluated on, and writes it as a torchvision-layout
``{"state_dict": ...}`` file, the format of ``resnet18_msceleb.pth``, that ``--backbone-weights`` reads.

Data: any dataset with subject labels in its shipped layout (``--dataset NAME --data-path PATH``, every
split), or a SynthFER render made on the fly with its own seed (``--synth-seed``; SynthFER identities are
drawn from the seed, so a different seed gives different people).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.data.records import DatasetSplit
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError, DataError


@dataclass
class IdentityPretrainConfig:
    """What ``pretrain_identity_resnet`` does; saved next to the weights."""

    image_size: int = 112          # input side; use the size the method will run at
    channels: int = 1              # 1 = grayscale (DICE-FER's default), 3 = RGB
    whitening: str = "per_image"   # the same input normalisation as DICE-FER
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3               # Adam
    weight_decay: float = 5e-4
    augment: str = "flip"          # flip | none | dicefer14
    seed: int = 0
    precision: str = "fp32"        # fp32 (exact) | bf16 | auto (bf16 where the CPU/GPU has it)
    device: str = "auto"
    channels_last: bool = False    # the trunk's weights in channels-last memory (train.channels_last; opt-in)


def _subject_split(split: DatasetSplit) -> tuple[DatasetSplit, np.ndarray, int]:
    """The split and its subjects remapped to 0..S-1; refuses data without subject labels."""
    subjects = split.subjects
    if len(split) == 0:
        raise DataError("Identity pretraining got no images; check --data-path and the dataset name.")
    if (subjects < 0).any():
        raise DataError(f"Dataset '{split.name}' has images without a subject label; identity pretraining needs "
                        "subjects (CK+, Oulu-CASIA, SynthFER, or a folder layout that names them).")
    uniq, targets = np.unique(subjects, return_inverse=True)
    if uniq.size < 2:
        raise DataError(f"Identity pretraining needs at least 2 subjects; dataset '{split.name}' has {uniq.size}.")
    return split, targets.astype(np.int64), int(uniq.size)


class IdentityPretrainMethod(Method):
    """ResNet-18 trunk + linear head over the subjects of a split, softmax cross-entropy, Adam with a cosine
    decay of the lr over all steps (set every step from the position, so resuming is exact)."""

    name = "pretrain_resnet18"

    def __init__(self, cfg, label_space, device: torch.device, subjects: np.ndarray):
        from ferkit.models.resnet import ResNet18Trunk

        super().__init__(cfg, label_space, device)
        m = cfg.model
        self.subject_ids = torch.as_tensor(np.unique(subjects), dtype=torch.long, device=device)   # (S,)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(m.seed)
            self.trunk = ResNet18Trunk(m.channels).to(device)
            self.head = nn.Linear(512, len(self.subject_ids)).to(device)
        self._phases = None

    def networks(self) -> dict[str, nn.Module]:
        return {"trunk": self.trunk, "head": self.head}

    def phases(self) -> list[Phase]:
        if self._phases is None:
            m = self.cfg.model
            params = list(self.trunk.parameters()) + list(self.head.parameters())
            opt = torch.optim.Adam([{"params": [p for p in params if p.dim() >= 2], "weight_decay": m.weight_decay},
                                    {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=m.lr)
            self._phases = [Phase("train", m.epochs, {"adam": opt})]
        return self._phases

    def train_augment(self, phase: Phase) -> str:
        return self.cfg.model.augment

    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        m = self.cfg.model
        lr = 0.5 * m.lr * (1.0 + math.cos(math.pi * ctx.fractional_epoch / phase.epochs))
        for g in phase.optimizers["adam"].param_groups:
            g["lr"] = lr
        y = torch.searchsorted(self.subject_ids, batch["subject"])                  # (B,) subject ids 0..S-1
        with ctx.autocast():
            logits = self.head(self.trunk(batch["image"])["pooled"])                 # (B, S)
        loss = F.cross_entropy(logits.float(), y)
        ctx.step({"loss": loss}, ["adam"])
        return {"loss": loss.item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        """Probabilities over the training subjects (the task's classes), not expressions."""
        logits = self.head(self.trunk(images.to(self.device))["pooled"]).float()     # (B, S)
        return Prediction(probs=torch.softmax(logits, dim=1))

    def preprocessing(self) -> Preprocessing:
        return preprocessing(self.cfg.model)

    def describe(self) -> dict:
        return {"task": f"identity classification over {len(self.subject_ids)} subjects",
                "weights": f"random init (seed {self.cfg.model.seed})"}


def pretrain_identity_resnet(split: DatasetSplit, cfg: IdentityPretrainConfig | None = None,
                             progress: bool = False, log=print, out: str | Path | None = None,
                             resume: str | None = None):
    """Train a ResNet-18 trunk + linear head to classify the subjects of ``split``, through the engine.

    Returns ``(trunk, history)``: the ``ResNet18Trunk`` (eval mode, CPU) and one dict per epoch with
    ``epoch, loss, accuracy, seconds``. ``out``: keep the engine's run folder there (log, metrics.csv,
    checkpoints; ``resume`` continues one), else a temporary folder. The same seed on the same machine
    writes the same weights: the data order and every image's augmentation are drawn from the seed and
    the sample's position (``engine/loop.py``), never from the global RNG.
    """
    from ferkit.pretrain.engine_run import run_on_engine

    cfg = cfg or IdentityPretrainConfig()
    if cfg.channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {cfg.channels}.")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError("Identity pretraining needs epochs >= 1 and batch size >= 1.")
    split, _, n_subjects = _subject_split(split)
    method, result = run_on_engine(
        IdentityPretrainMethod.name, split, cfg, cfg.batch_size,
        lambda exp, device: IdentityPretrainMethod(exp, split.label_space, device, split.subjects),
        out=out, resume=resume, progress=progress, console=log is not None)
    history, total = [], 0.0
    for row in result.history:
        total += row["seconds"]
        history.append({"epoch": row["epoch"], "loss": row["train_loss"], "accuracy": row["train_accuracy"],
                        "seconds": round(total, 2)})
    if log:
        last = history[-1]
        log(f"pretrain resnet18: loss {last['loss']:.4f}, identity accuracy {last['accuracy']:.3f} "
            f"({n_subjects} subjects, {last['seconds']:.0f} s)")
    method.trunk.eval()
    return method.trunk.cpu(), history


def preprocessing(cfg: IdentityPretrainConfig) -> Preprocessing:
    """DICE-FER's input normalisation (gray or RGB, per-image whitening), no alignment (faces come aligned)."""
    c = cfg.channels
    return Preprocessing(size=cfg.image_size, channels=c, mean=(0.5,) * c, std=(0.5,) * c,
                         whitening=cfg.whitening, align="none")


def save_resnet_weights(trunk, path: str | Path, meta: dict) -> Path:
    """Write ``{"state_dict": torchvision-layout tensors, "ferkit_pretrain": json string}`` with torch.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in trunk.state_dict().items()}
    torch.save({"state_dict": state, "ferkit_pretrain": json.dumps(meta, sort_keys=True)}, str(path))
    return path


def identity_split(dataset: str, data_path: str | None, synth: dict | None = None,
                   options: dict | None = None) -> DatasetSplit:
    """Every image of a dataset (all native splits) with its subject, or a fresh SynthFER render."""
    from ferkit.data.datasets import load_all, select

    result = load_all(dataset, data_path, synth=synth, **(options or {}))
    return select(dataset, result, "all", Path(data_path) if data_path else None)


# --- ferkit pretrain resnet18 ------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="weights file to write (.pth), e.g. resnet18_faceid.pth")
    p.add_argument("--dataset", default="synthetic",
                   help="dataset with subject labels, in its shipped layout (default synthetic)")
    p.add_argument("--data-path", default=None,
                   help="its folder; for synthetic, omit it to render SynthFER on the fly (see --synth-*)")
    p.add_argument("--synth-identities", type=int, default=80,
                   help="identities of the on-the-fly SynthFER render (default 80)")
    p.add_argument("--synth-images", type=int, default=28, help="images per identity of that render (default 28)")
    p.add_argument("--synth-seed", type=int, default=1000,
                   help="seed of that render; use one other than your evaluation render's (default 1000)")
    p.add_argument("--size", type=int, default=112, help="input side in pixels (default 112, DICE-FER's)")
    p.add_argument("--channels", type=int, default=1, choices=(1, 3), help="1 = grayscale (default), 3 = RGB")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine-decayed (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp32"),
                   help="default fp32 (bf16 changes numbers; auto: bf16 where the hardware has it)")
    p.add_argument("--channels-last", action="store_true",
                   help="the trunk's weights in channels-last memory: faster steps on CPUs, numbers moved by float "
                        "rounding (train.channels_last)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".pth", ".pt"):
        raise ConfigError(f"--out {out} should end in .pth or .pt (a PyTorch weights file).")
    synth = {"identities": args.synth_identities, "images_per_identity": args.synth_images,
             "size": args.size, "seed": args.synth_seed}
    split = identity_split(args.dataset, args.data_path, synth=synth)
    cfg = IdentityPretrainConfig(image_size=args.size, channels=args.channels, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 precision=args.precision, device=args.device, channels_last=args.channels_last)
    source = args.data_path or f"SynthFER render {json.dumps(synth, sort_keys=True)}"
    print(f"pretrain resnet18: identity classification on {len(split)} images of "
          f"{np.unique(split.subjects).size} subjects from {args.dataset} ({source})", flush=True)
    trunk, history = pretrain_identity_resnet(split, cfg)
    meta = {"task": "identity classification", "dataset": args.dataset, "source": source,
            "subjects": int(np.unique(split.subjects).size), "images": len(split), "config": asdict(cfg),
            "final": history[-1]}
    save_resnet_weights(trunk, out, meta)
    log_path = out.with_suffix(".csv")
    with open(log_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    print(f"wrote {out} (torchvision ResNet-18 layout; pass it as --backbone-weights) and {log_path}")
    return 0
