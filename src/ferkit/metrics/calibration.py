"""Calibration metrics: ECE, MCE, NLL, Brier score, and the reliability-diagram bins.

ECE/MCE follow torchmetrics' ``MulticlassCalibrationError(num_classes, n_bins=15, norm="l1" / "max")``
(the top-label calibration error of Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
confidence = max_c p_c, correctness = [argmax_c p_c == y], M equal-width bins over [0, 1].
"""

from __future__ import annotations

import numpy as np


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N, C) with N = {labels.shape[0]} labels, got {probs.shape}")
    if probs.shape[0] == 0:
        raise ValueError("calibration metrics need at least one sample")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}")
    return probs, labels


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15,
                     right_closed: bool = False) -> dict:
    """Per-bin accuracy, mean confidence and sample fraction of the top-label prediction.

    Edges b_m = m / M (m = 0..M). By default samples are assigned as torchmetrics 1.x does
    (``torch.bucketize(conf, edges, right=True) - 1``): bin m holds b_m <= conf < b_{m+1}, and a
    confidence of exactly 1.0 forms one extra bin (index M). ``right_closed=True`` uses Guo et al.'s
    (b_m, b_{m+1}] instead; the two differ only for confidences lying exactly on an edge.
    Args: probs (N, C) rows summing to 1; labels (N,) ints.
    Returns dict of arrays over bins: "accuracy", "confidence", "fraction", "count", and "edges" (M+1,).
    """
    probs, labels = _check(probs, labels)
    conf = probs.max(axis=1)                                               # (N,)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)          # (N,)
    edges = np.linspace(0.0, 1.0, n_bins + 1)                              # (M+1,)
    if right_closed:
        idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
        nb = n_bins
    else:
        idx = np.searchsorted(edges, conf, side="right") - 1               # (N,) in 0..M
        nb = n_bins + 1
    count = np.bincount(idx, minlength=nb).astype(np.float64)              # (nb,)
    conf_sum = np.bincount(idx, weights=conf, minlength=nb)
    acc_sum = np.bincount(idx, weights=correct, minlength=nb)
    nz = count > 0
    return {
        "accuracy": np.divide(acc_sum, count, out=np.zeros(nb), where=nz),
        "confidence": np.divide(conf_sum, count, out=np.zeros(nb), where=nz),
        "fraction": count / count.sum(),
        "count": count.astype(np.int64),
        "edges": edges,
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15,
                               right_closed: bool = False) -> float:
    """ECE = sum_m (|B_m| / N) * |acc(B_m) - conf(B_m)| over equal-width confidence bins.

    Matches torchmetrics ``MulticlassCalibrationError(num_classes, n_bins=15, norm="l1")`` (binning as in
    :func:`reliability_bins`). probs (N, C), labels (N,).
    """
    b = reliability_bins(probs, labels, n_bins, right_closed)
    return float(np.sum(np.abs(b["accuracy"] - b["confidence"]) * b["fraction"]))


def max_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15,
                          right_closed: bool = False) -> float:
    """MCE = max_m |acc(B_m) - conf(B_m)| over non-empty bins (torchmetrics ``norm="max"``).

    torchmetrics takes the max over all bins, but empty bins contribute |0 - 0| = 0, so both agree.
    """
    b = reliability_bins(probs, labels, n_bins, right_closed)
    return float(np.max(np.abs(b["accuracy"] - b["confidence"])))


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """NLL = -(1/N) sum_n log p_{n, y_n} (probabilities clipped below at ``eps``). probs (N, C)."""
    probs, labels = _check(probs, labels)
    p = probs[np.arange(labels.size), labels]                              # (N,)
    return float(-np.mean(np.log(np.clip(p, eps, 1.0))))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multiclass Brier score (Brier 1950) = (1/N) sum_n sum_c (p_{n,c} - [y_n = c])^2, in [0, 2]."""
    probs, labels = _check(probs, labels)
    onehot = np.zeros_like(probs)                                          # (N, C)
    onehot[np.arange(labels.size), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def calibration_metrics(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict:
    """{"ece", "mce", "nll", "brier"} for probs (N, C) and labels (N,); ECE/MCE with ``n_bins`` bins."""
    return {
        "ece": expected_calibration_error(probs, labels, n_bins),
        "mce": max_calibration_error(probs, labels, n_bins),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
        "n_bins": n_bins,
    }
