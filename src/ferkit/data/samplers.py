"""Class-balanced sampling (UA-FER's ImbalancedDatasetSampler for AffectNet, METHODS.md B.3).

Each sample gets weight 1 / count(its class); ``num_samples`` indices (default: the dataset size) are
drawn by ``torch.multinomial`` with replacement from a generator seeded with (seed, epoch), so every
class is drawn equally often in expectation. Under DDP each process takes every ``num_replicas``-th
index of the same draw, starting at ``rank``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class ClassBalancedSampler(Sampler[int]):
    """Multinomial sampling with replacement, weight 1/count(class) per sample; ``set_epoch`` reshuffles."""

    def __init__(self, labels: Sequence[int] | np.ndarray, num_samples: int | None = None, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("ClassBalancedSampler needs a non-empty 1-D sequence of labels")
        counts = np.bincount(labels - labels.min())
        self.weights = torch.as_tensor(1.0 / counts[labels - labels.min()], dtype=torch.double)   # (N,)
        self.num_samples = int(num_samples) if num_samples is not None else len(labels)
        self.seed = int(seed)
        self.epoch = 0
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self) -> torch.Tensor:
        """All ``num_samples`` indices of this epoch (before splitting between processes)."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)  # (num_samples,)

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw()[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.num_replicas))
