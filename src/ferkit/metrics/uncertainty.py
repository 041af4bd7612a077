"""Selective prediction: risk-coverage curve, AURC, accuracy at fixed coverage, error-detection AUROC,
and abstention above an uncertainty threshold.

Risk-coverage and AURC follow Geifman & El-Yaniv ("Selective Classification for Deep Neural Networks",
NeurIPS 2017) and Geifman et al. ("Bias-Reduced Uncertainty Estimation for Deep Neural Classifiers",
ICLR 2019): accept the samples whose uncertainty is at most a threshold; coverage = accepted fraction,
risk = error rate among the accepted.
"""

from __future__ import annotations

import numpy as np


def default_uncertainty(probs: np.ndarray) -> np.ndarray:
    """1 - max_c p_c for probs (N, C): the uncertainty used when a method has no evidential u."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)


def risk_coverage(uncertainty: np.ndarray, correct: np.ndarray) -> dict:
    """Risk-coverage curve over every threshold (ties in uncertainty are accepted together).

    Sort by uncertainty ascending; for each distinct value t, coverage(t) = #{u <= t} / N and
    risk(t) = #{wrong, u <= t} / #{u <= t}. AURC = sum_k risk_k * (coverage_k - coverage_{k-1}), which
    without ties equals (1/N) sum_{k=1}^{N} risk@k, the definition of Geifman et al. (2019).
    Args: uncertainty (N,) float; correct (N,) bool.
    Returns dict with arrays "coverage", "risk", "threshold" and the float "aurc".
    """
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    wrong = ~np.asarray(correct, dtype=bool).ravel()
    if u.shape != wrong.shape or u.size == 0:
        raise ValueError("uncertainty and correct must be non-empty arrays of the same length")
    order = np.argsort(u, kind="stable")
    u_sorted, err_cum = u[order], np.cumsum(wrong[order])                  # (N,), (N,)
    last_of_tie = np.r_[u_sorted[1:] != u_sorted[:-1], True]               # (N,) end of each tie group
    accepted = np.flatnonzero(last_of_tie) + 1                             # (T,) counts accepted
    coverage = accepted / u.size                                           # (T,)
    risk = err_cum[accepted - 1] / accepted                                # (T,)
    aurc = float(np.sum(risk * np.diff(np.r_[0.0, coverage])))
    return {"coverage": coverage, "risk": risk, "threshold": u_sorted[accepted - 1], "aurc": aurc}


def oracle_aurc(num_samples: int, num_errors: int) -> float:
    """The smallest AURC any ordering can reach: all correct samples first, then the m errors.

    AURC* = (1/N) sum_{k=N-m+1}^{N} (k - N + m) / k; for large N this tends to r + (1 - r) ln(1 - r),
    r = m / N (Geifman et al. 2019).
    """
    n, m = int(num_samples), int(num_errors)
    k = np.arange(n - m + 1, n + 1, dtype=np.float64)                      # (m,)
    return float(np.sum((k - n + m) / k) / n)


def accuracy_at_coverage(uncertainty: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ceil(coverage * N) least uncertain samples (stable order among ties)."""
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    k = max(1, int(np.ceil(coverage * u.size - 1e-9)))
    keep = np.argsort(u, kind="stable")[:k]
    return float(ok[keep].mean())


def error_detection_auroc(uncertainty: np.ndarray, correct: np.ndarray) -> float | None:
    """AUROC of separating wrong (positive) from right predictions by uncertainty (higher = wrong).

    Equals P(u_wrong > u_right) + 0.5 P(u_wrong = u_right) (sklearn ``roc_auc_score``); None when all
    predictions are right or all are wrong (the AUROC is undefined then).
    """
    from sklearn.metrics import roc_auc_score

    wrong = ~np.asarray(correct, dtype=bool).ravel()
    if wrong.all() or not wrong.any():
        return None
    return float(roc_auc_score(wrong.astype(int), np.asarray(uncertainty, dtype=np.float64).ravel()))


def abstention(probs: np.ndarray, labels: np.ndarray, uncertainty: np.ndarray, abstain_above: float) -> dict:
    """Predictions with uncertainty > ``abstain_above`` abstain; accuracy on the rest and the coverage.

    Returns {"threshold", "abstained" (count), "answered", "coverage" = answered / N,
    "accuracy_answered" (None when nothing is answered)}.
    """
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    correct = np.asarray(probs).argmax(axis=1) == np.asarray(labels).ravel()
    answer = u <= abstain_above
    n_ans = int(answer.sum())
    return {
        "threshold": float(abstain_above),
        "abstained": int(u.size - n_ans),
        "answered": n_ans,
        "coverage": n_ans / u.size,
        "accuracy_answered": float(correct[answer].mean()) if n_ans else None,
    }


def uncertainty_metrics(probs: np.ndarray, labels: np.ndarray, uncertainty: np.ndarray | None = None) -> dict:
    """AURC, accuracy at 80 % and 90 % coverage, and error-detection AUROC.

    ``uncertainty`` (N,) is the method's own (the evidential u = C/S for UA-FER); None uses 1 - max p.
    probs (N, C), labels (N,). The returned "source" says which uncertainty was used.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    source = "method" if uncertainty is not None else "1 - max p"
    u = default_uncertainty(probs) if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    correct = probs.argmax(axis=1) == labels
    rc = risk_coverage(u, correct)
    return {
        "uncertainty_source": source,
        "aurc": rc["aurc"],
        "aurc_oracle": oracle_aurc(labels.size, int((~correct).sum())),
        "acc@80": accuracy_at_coverage(u, correct, 0.8),
        "acc@90": accuracy_at_coverage(u, correct, 0.9),
        "auroc_error": error_detection_auroc(u, correct),
        "mean_uncertainty_right": float(u[correct].mean()) if correct.any() else None,
        "mean_uncertainty_wrong": float(u[~correct].mean()) if (~correct).any() else None,
    }
