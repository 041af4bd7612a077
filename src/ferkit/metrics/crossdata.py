"""Cross-dataset evaluation through canonical labels (``LabelSpace.mapping_to``).

A model trained on label space A is scored on a dataset in label space B over the classes both share:
probabilities of A's classes that B lacks are dropped and the rest renormalised; samples of B's classes
that A lacks are excluded and counted per class, never guessed.
"""

from __future__ import annotations

import numpy as np

from ferkit.data.labels import LabelSpace


def map_to_dataset(probs: np.ndarray, labels: np.ndarray, model_space: LabelSpace,
                   data_space: LabelSpace) -> dict:
    """Express predictions of a ``model_space`` model on a ``data_space`` dataset over shared classes.

    Shared classes S are the dataset's classes the model also has, in the dataset's order.
        probs'[n, j] = p[n, a(j)] / sum_{j'} p[n, a(j')]   for j in S, a(j) = model index of class j
    (a row whose shared mass is 0 becomes uniform over S and is counted in "zero_mass_rows").
    Args: probs (N, C_model) rows summing to 1; labels (N,) ints in data_space.
    Returns {"probs" (N', |S|), "labels" (N',) in 0..|S|-1, "keep" (N,) bool, "classes" (names of S),
    "dropped_model_classes", "excluded_counts" {class name: count} for dataset samples the model
    cannot name, "num_excluded", "zero_mass_rows"}.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if probs.ndim != 2 or probs.shape[1] != model_space.num_classes or probs.shape[0] != labels.size:
        raise ValueError(f"probs must be (N, {model_space.num_classes}) with N = {labels.size}, got {probs.shape}")
    data_to_model = data_space.mapping_to(model_space)                    # data idx -> model idx
    shared = sorted(data_to_model)                                         # data indices, dataset order
    if not shared:
        raise ValueError(f"label spaces {model_space.name!r} and {data_space.name!r} share no class")
    model_cols = np.array([data_to_model[j] for j in shared])             # (S,)
    data_to_shared = np.full(data_space.num_classes, -1)
    data_to_shared[shared] = np.arange(len(shared))
    keep = data_to_shared[labels] >= 0                                     # (N,)
    p = probs[keep][:, model_cols]                                         # (N', S)
    mass = p.sum(axis=1, keepdims=True)                                    # (N', 1)
    zero = mass[:, 0] <= 0
    p = np.where(zero[:, None], 1.0 / len(shared), p / np.where(mass > 0, mass, 1.0))
    excluded = {data_space.classes[c]: int(np.sum(labels == c))
                for c in range(data_space.num_classes) if data_to_shared[c] < 0 and np.any(labels == c)}
    return {
        "probs": p,
        "labels": data_to_shared[labels[keep]],
        "keep": keep,
        "classes": [data_space.classes[j] for j in shared],
        "dropped_model_classes": [c for c in model_space.classes if c not in data_space.classes],
        "excluded_counts": excluded,
        "num_excluded": int((~keep).sum()),
        "zero_mass_rows": int(zero.sum()),
    }


def same_space(a: LabelSpace, b: LabelSpace) -> bool:
    """True when both label spaces list the same classes in the same order (no mapping needed)."""
    return tuple(a.classes) == tuple(b.classes)
