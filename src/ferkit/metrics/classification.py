"""Classification metrics over a whole dataset (never averaged per batch).

Definitions follow scikit-learn's ``precision_recall_fscore_support`` (macro = unweighted mean over
classes) and the row-normalised confusion matrix of DICE-FER Fig. 5. Mean class accuracy is the
unweighted average recall (UAR), the "mean class accuracy" FER papers report.
"""

from __future__ import annotations

import numpy as np


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts C[i, j] = #{n : y_true[n] = i and y_pred[n] = j}; shape (num_classes, num_classes)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    flat = y_true * num_classes + y_pred                                   # (N,)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows of classes with no samples stay 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, mean class accuracy, macro and per-class precision/recall/F1, confusion matrices.

    With confusion counts C (rows = true class, columns = predicted class):
        accuracy            = trace(C) / sum(C)
        recall_c            = C[c, c] / sum_j C[c, j]          (0 for a class with no samples)
        precision_c         = C[c, c] / sum_i C[i, c]          (0 for a class never predicted)
        f1_c                = 2 p_c r_c / (p_c + r_c)          (0 when p_c + r_c = 0)
        mean_class_accuracy = mean of recall_c over classes present in y_true (UAR)
        macro_*             = unweighted mean over all num_classes classes (sklearn ``average="macro"``,
                              ``zero_division=0``)
    Args: y_true, y_pred int arrays (N,) in 0..num_classes-1.
    Returns a dict of floats and lists (JSON-ready); ``confusion`` is row-normalised, ``confusion_counts``
    the raw counts.
    """
    counts = confusion_counts(y_true, y_pred, num_classes)                 # (C, C)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("classification_metrics needs at least one sample")
    tp = np.diag(counts).astype(np.float64)                                # (C,)
    support = counts.sum(axis=1).astype(np.float64)                        # (C,) true per class
    predicted = counts.sum(axis=0).astype(np.float64)                      # (C,) predicted per class
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "num_samples": n,
        "accuracy": float(tp.sum() / n),
        "mean_class_accuracy": float(recall[present].mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": support.astype(int).tolist(),
        },
        "confusion": row_normalise(counts).tolist(),
        "confusion_counts": counts.astype(int).tolist(),
    }
