"""The pieces of the training loop that are about data: position, data order, batches, per-epoch stats.

Data order of one epoch = a permutation seeded by (seed, phase, epoch) (or a class-balanced draw with
replacement when the phase asks for it), padded to a multiple of the number of processes and sharded
``order[rank::world]`` exactly as ``DistributedSampler`` with ``set_epoch`` does. Because the order is a
function of the position only, resuming needs just (phase, epoch, batch): the same batches are rebuilt
and the first ``batch`` of them are skipped without being loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ferkit.engine.seeding import derive_seed, sample_rng
from ferkit.errors import ConfigError


@dataclass
class Position:
    """Where training is: the next batch to run is ``batch`` of ``epoch`` of phase ``phase``."""

    phase: int = 0
    epoch: int = 0
    batch: int = 0
    global_step: int = 0


@dataclass
class EpochStats:
    """Running means of the scalars a method's step returns (non-finite values are counted, not averaged)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    steps: int = 0                      # batches stepped on (refused ones included)
    skipped: int = 0                    # loader batches the method could not use (LoaderSplit)
    refused_terms: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def add(self, scalars: dict[str, float], refused: bool) -> None:
        self.refused += int(refused)
        self.steps += 1
        self.last = scalars
        for k, v in scalars.items():
            if math.isfinite(v):
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}


class _SeededItems(torch.utils.data.Dataset):
    """Items keyed (epoch, position, index); each one is built under its own seeded RNG (see seeding.py)."""

    def __init__(self, base, seed: int, phase_index: int):
        self.base, self.seed, self.phase_index = base, seed, phase_index

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        epoch, position, index = key
        with sample_rng(derive_seed(self.seed, self.phase_index, epoch, position, index)):
            return self.base[index]


class TrainData:
    """The training dataset of one phase (transform, extra views, pairs) and its per-epoch loaders."""

    def __init__(self, method, phase, phase_index: int, split, cfg, info):
        from ferkit.data.torch_dataset import FERDataset
        from ferkit.data.transforms import build_transform

        self.phase, self.phase_index, self.cfg, self.info = phase, phase_index, cfg, info
        self.seed = int(cfg.train.seed)
        transform = build_transform(method.preprocessing(), train=True, augment=method.train_augment(phase))
        views = method.extra_views() or None
        base = FERDataset(split, transform, extra_views=views, cache_dir=cache_root(cfg),
                          progress=info.is_main)
        if phase.batch_kind == "pairs":
            from ferkit.data.pairs import PairDataset

            base = PairDataset(base, seed=self.seed)
        elif phase.batch_kind != "single":
            raise ConfigError(f"Phase '{phase.name}' has batch_kind '{phase.batch_kind}'; use single or pairs.")
        self.dataset = base
        self.items = _SeededItems(base, self.seed, phase_index)
        self.labels = split.expressions
        self.n = len(split)

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(global positions, sample indices) of this rank for ``epoch``."""
        seed = derive_seed(self.seed, self.phase_index, epoch)
        if self.phase.sampler == "shuffle":
            perm = np.random.default_rng(seed).permutation(self.n)                     # (N,)
        elif self.phase.sampler == "class_balanced":
            from ferkit.data.samplers import ClassBalancedSampler

            sampler = ClassBalancedSampler(self.labels, num_samples=self.n, seed=derive_seed(self.seed, self.phase_index))
            sampler.set_epoch(epoch)
            perm = np.fromiter(iter(sampler), dtype=np.int64)
        else:
            raise ConfigError(f"Phase '{self.phase.name}' has sampler '{self.phase.sampler}'; use shuffle or "
                              "class_balanced.")
        world = self.info.world_size
        total = math.ceil(len(perm) / world) * world
        if total > len(perm):
            perm = np.concatenate([perm, np.resize(perm, total - len(perm))])      # pad like DistributedSampler
        positions = np.arange(total)[self.info.rank::world]
        return positions, perm[self.info.rank::world]

    def loader(self, plan: list[list[tuple[int, int, int]]], epoch: int):
        """A DataLoader over the given batches of keys (the augmentation RNG never touches the global one)."""
        from torch.utils.data import DataLoader

        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.phase_index, epoch, 7))
        workers = int(self.cfg.data.num_workers)
        return DataLoader(self.items, batch_sampler=plan, num_workers=workers, generator=gen,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)


def cache_root(cfg) -> str | None:
    """Where prepared image caches go: $FERKIT_CACHE_DIR, else ``.cache`` beside the run folder (shared
    by runs and folds; each cache is named by a hash of its images and preprocessing). None when off."""
    import os
    from pathlib import Path

    if not cfg.data.cache:
        return None
    return os.environ.get("FERKIT_CACHE_DIR") or str(Path(cfg.train.out).resolve().parent / ".cache")


def batch_plan(data: TrainData, epoch: int, batch_size: int, limit: int | None, info) -> list[list[tuple]]:
    """The epoch's batches of item keys for this rank (a trailing batch of one sample joins the previous
    batch, so BatchNorm never sees a batch of one and no sample is dropped)."""
    positions, indices = data.order(epoch)
    keys = [(epoch, int(p), int(i)) for p, i in zip(positions, indices, strict=True)]
    if batch_size < 1:
        raise ConfigError(f"train.batch_size must be at least 1, got {batch_size}.")
    plan = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
    if len(plan) >= 2 and len(plan[-1]) == 1 and batch_size > 1:
        last = plan.pop()
        plan[-1] = plan[-1] + last
    if limit is not None:
        plan = plan[:max(1, int(limit))]
    return plan


def move_batch(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
