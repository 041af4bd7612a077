"""A split given as a loader of ready batches, for the Python API's plain ``(images, labels)`` loaders.

``ferkit train`` hands the engine record splits (``DatasetSplit``) and the engine draws their order and
augmentation itself (``engine/loop.py``). The seed API also takes any torch loader; such a loader is a
``LoaderSplit`` here: the engine runs the same loop over it (checkpoints, validation, selection, the
non-finite rule), turning each raw batch into an engine batch with ``convert(raw, phase, key)``, where
``key = (phase index, epoch, batch)`` seeds whatever the conversion draws (e.g. same-expression partners),
so a step's batch is a function of its position. ``convert`` may return None for a batch it cannot use
(the engine skips it and counts it). The loader's own order is the loader's: resuming mid-epoch is exact
when that order depends only on the epoch (a seeded sampler, or a dataset with ``set_epoch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ferkit.errors import DataError


class LoaderSplit:
    """A loader standing in for a split: ``len`` is its number of samples, ``label_space`` its classes."""

    is_loader = True

    def __init__(self, loader, convert: Callable, label_space, name: str = "train"):
        self.loader, self.convert, self.label_space, self.name = loader, convert, label_space, name
        dataset = getattr(loader, "dataset", None)
        try:
            self.n = len(dataset) if dataset is not None else len(loader)
        except TypeError:
            raise DataError(f"The {name} loader has no length; pass a DataLoader over a sized dataset.") from None

    def __len__(self) -> int:
        return self.n

    def plan(self, epoch: int, limit: int | None) -> list[int]:
        """The epoch's batch numbers (at most ``limit``)."""
        n = len(self.loader)
        return list(range(n if limit is None else min(n, max(1, int(limit)))))

    def batches(self, phase, phase_index: int, epoch: int, start: int, stop: int) -> Iterator[dict | None]:
        """Engine batches ``start``..``stop - 1`` of ``epoch`` (earlier ones are drawn and skipped)."""
        dataset = getattr(self.loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        for b, raw in enumerate(self.loader):
            if b >= stop:
                break
            if b >= start:
                yield self.convert(raw, phase, (phase_index, epoch, b))

    @torch.no_grad()
    def evaluate(self, method, amp_dtype: torch.dtype | None) -> dict[str, float]:
        """Accuracy and mean class accuracy of ``method`` over every batch of the loader."""
        from ferkit.engine.evaluate import accuracy_metrics

        method.eval_mode()
        probs, labels = [], []
        for b, raw in enumerate(self.loader):
            batch = self.convert(raw, None, (-1, 0, b))
            x = batch["image"].to(method.device)                                         # (B, C, S, S)
            if amp_dtype is not None:
                with torch.autocast(device_type=method.device.type, dtype=amp_dtype):
                    pred = method.predict(x)
            else:
                pred = method.predict(x)
            probs.append(pred.probs.float().cpu())                                       # (B, K)
            labels.append(batch["expression"].cpu())
        if not labels:
            raise DataError(f"The {self.name} loader yielded no samples.")
        p, y = torch.cat(probs).numpy(), torch.cat(labels).numpy()
        out = accuracy_metrics(p, y)
        out["n"] = int(len(y))
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}
