"""Predictions of a method over a split, and the accuracy numbers the trainer logs.

``collect_predictions`` runs ``method.predict`` over a split with the test-time transform of the
method's preprocessing and returns numpy arrays, so the metric functions (which take arrays) never see a
model. Accuracy here is plain top-1 accuracy; mean class accuracy is the unweighted mean of per-class
recall over the classes present in the labels (the AffectNet "mean class acc" of UA-FER's authors).
"""

from __future__ import annotations

import numpy as np
import torch

from ferkit.data.records import DatasetSplit


def collect_predictions(method, split: DatasetSplit, batch_size: int = 64, num_workers: int = 0,
                        amp_dtype: torch.dtype | None = None, progress: bool = False,
                        cache_dir: str | None = None) -> dict:
    """Run ``method.predict`` over ``split`` (test-time transform, no augmentation).

    Returns numpy arrays: "probs" (N, C), "uncertainty" (N,) or None, "embedding" (N, D) or None,
    "identity_embedding" (N, D) or None, "labels" (N,), "subjects" (N,), and "paths" (list[str]).
    """
    from torch.utils.data import DataLoader

    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    method.eval_mode()
    transform = build_transform(method.preprocessing(), train=False)
    dataset = FERDataset(split, transform, cache_dir=cache_dir, progress=progress)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))   # leaves the global RNG untouched
    if progress:
        from ferkit.progress import progress_bar

        loader = progress_bar(loader, len(loader), f"predict {split.split}", unit="batch")
    probs, unc, emb, ident = [], [], [], []
    device = method.device
    with torch.no_grad():
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)   # (B, C, S, S)
            if amp_dtype is not None:
                with torch.autocast(device_type=device.type, dtype=amp_dtype):
                    pred = method.predict(images)
            else:
                pred = method.predict(images)
            probs.append(pred.probs.float().cpu())                    # (B, C)
            if pred.uncertainty is not None:
                unc.append(pred.uncertainty.float().cpu())            # (B,)
            if pred.embedding is not None:
                emb.append(pred.embedding.float().cpu())              # (B, D)
            if pred.extra.get("identity") is not None:
                ident.append(pred.extra["identity"].float().cpu())    # (B, D')

    def cat(parts: list[torch.Tensor]) -> np.ndarray | None:
        return torch.cat(parts).numpy() if parts else None

    n_classes = method.label_space.num_classes
    return {
        "probs": cat(probs) if probs else np.zeros((0, n_classes), dtype=np.float32),
        "uncertainty": cat(unc),
        "embedding": cat(emb),
        "identity_embedding": cat(ident),
        "labels": split.expressions,
        "subjects": split.subjects,
        "paths": [s.source for s in split.samples],
    }


def accuracy_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy and mean class accuracy (mean over classes present in ``labels`` of per-class recall).

    probs: (N, C) scores; labels: (N,) ints. Returns {"accuracy", "mean_class_accuracy", "n"}.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {"accuracy": float("nan"), "mean_class_accuracy": float("nan"), "n": 0}
    pred = np.asarray(probs).argmax(axis=1)                                     # (N,)
    correct = pred == labels
    recalls = [correct[labels == c].mean() for c in np.unique(labels)]
    return {"accuracy": float(correct.mean()), "mean_class_accuracy": float(np.mean(recalls)), "n": int(len(labels))}


def evaluate_split(method, split: DatasetSplit, batch_size: int = 64, num_workers: int = 0,
                   amp_dtype: torch.dtype | None = None, cache_dir: str | None = None) -> dict[str, float]:
    """Accuracy metrics of ``method`` on ``split`` (plus mean uncertainty where the method has one)."""
    out = collect_predictions(method, split, batch_size, num_workers, amp_dtype, cache_dir=cache_dir)
    metrics = accuracy_metrics(out["probs"], out["labels"])
    if out["uncertainty"] is not None and len(out["uncertainty"]):
        metrics["mean_uncertainty"] = float(np.mean(out["uncertainty"]))
    return metrics
