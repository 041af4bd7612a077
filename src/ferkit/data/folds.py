"""Subject-independent k-fold splits and validation carving.

Folds are made over *groups*: the subject where it is known, else each image on its own (negative
subject ids). Groups are shuffled with the seed and then dealt, largest first, to the fold that holds the
fewest images so far, so folds have near-equal image counts and no group is in two folds.
"""

from __future__ import annotations

import numpy as np

from ferkit.errors import DataError


def _groups(subjects: np.ndarray) -> np.ndarray:
    """Group id per sample: the subject if >= 0, else a unique id per sample (beyond every subject)."""
    subjects = np.asarray(subjects, dtype=np.int64)
    groups = subjects.copy()
    unknown = subjects < 0
    if unknown.any():
        start = int(subjects.max(initial=-1)) + 1
        groups[unknown] = start + np.arange(int(unknown.sum()))
    return groups


def subject_folds(subjects: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) per sample; every subject lies in exactly one fold (images without a subject are
    their own group). Deterministic in (subjects, k, seed)."""
    groups = _groups(subjects)
    uniq, counts = np.unique(groups, return_counts=True)
    if k < 2:
        raise DataError(f"The number of folds must be at least 2, got {k}.")
    if len(uniq) < k:
        raise DataError(f"Cannot make {k} subject-independent folds from {len(uniq)} subjects; use fewer folds.")
    order = np.random.default_rng(seed).permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]   # largest groups first, ties in seeded order
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += counts[g]
    return fold_of_group[np.searchsorted(uniq, groups)]


def carve_validation(subjects: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the samples moved to validation: a seeded ``fraction`` of the groups (subjects
    where known, else images), at least one group when ``fraction > 0``, never all of them."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {fraction}.")
    groups = _groups(subjects)
    uniq = np.unique(groups)
    if fraction == 0.0 or len(uniq) == 0:
        return np.zeros(len(groups), dtype=bool)
    if len(uniq) < 2:
        raise DataError("Cannot carve a validation set from a single training subject; set val_fraction to 0.")
    n_val = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
    chosen = np.random.default_rng([seed, 1]).choice(uniq, size=n_val, replace=False)
    return np.isin(groups, chosen)


def folds_record(subjects: np.ndarray, fold_ids: np.ndarray, k: int, seed: int, test_fold: int,
                 sources: list[str]) -> dict:
    """A JSON-ready description of the folds (saved by the trainer as ``folds.json``)."""
    subjects = np.asarray(subjects)
    by_subject = bool((subjects >= 0).all())
    record: dict = {"num_folds": int(k), "seed": int(seed), "test_fold": int(test_fold),
                    "by": "subject" if by_subject else "image",
                    "images_per_fold": [int((fold_ids == f).sum()) for f in range(k)]}
    if by_subject:
        record["subjects_per_fold"] = [sorted(int(s) for s in np.unique(subjects[fold_ids == f])) for f in range(k)]
    else:
        record["sources_per_fold"] = [[sources[i] for i in np.flatnonzero(fold_ids == f)] for f in range(k)]
    return record
