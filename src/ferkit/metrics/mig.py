"""Mutual Information Gap (Chen et al., "Isolating Sources of Disentanglement in VAEs", NeurIPS 2018),
computed exactly as disentanglement_lib does (``evaluation/metrics/mig.py`` + ``metrics/utils.py``).

    MIG = (1/K) sum_k [ I(z_{j*}; v_k) - I(z_{j°}; v_k) ] / H(v_k)

where j* and j° are the code dimensions with the largest and second-largest discrete mutual information
with factor v_k; each code dimension is discretised into ``num_bins`` equal-width histogram bins
(``_histogram_discretize``: ``np.digitize(z, np.histogram(z, num_bins)[1][:-1])``), MI is sklearn's
``mutual_info_score`` (nats) and H(v_k) = ``mutual_info_score(v_k, v_k)``.

DICE-FER's *modified* MIG, I(E_M; E_N) - I(E_M; I_M), is a different quantity: ``ferkit.metrics.modified_mig``.
"""

from __future__ import annotations

import numpy as np


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Bin index per value, per code dimension: codes (N, D) float -> (N, D) int in 1..num_bins.

    disentanglement_lib ``_histogram_discretize`` (which works on the transposed (D, N) layout): the
    left edges of ``np.histogram(z, num_bins)`` and ``np.digitize``; the maximum lands in the last bin.
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], num_bins)[1][:-1]                 # (num_bins,) left edges
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """m[j, k] = mutual_info_score(factors[:, k], discrete_codes[:, j]) in nats; shape (D, K)."""
    from sklearn.metrics import mutual_info_score

    d, k = discrete_codes.shape[1], factors.shape[1]
    m = np.zeros((d, k))
    for j in range(d):
        for f in range(k):
            m[j, f] = mutual_info_score(factors[:, f], discrete_codes[:, j])
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """H(v_k) = mutual_info_score(v_k, v_k) in nats for factors (N, K); shape (K,)."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, f], factors[:, f]) for f in range(factors.shape[1])])


def _validate(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors)
    if factors.ndim == 1:
        factors = factors[:, None]
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes must be (N, D) and factors (N, K) with the same N; got {codes.shape}, "
                         f"{factors.shape}")
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two code dimensions (it compares the top two)")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes contain NaN or infinite values")
    return codes, factors.astype(np.int64)


def mig_details(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20,
                factor_names: list[str] | None = None) -> dict:
    """MIG with its parts: the (D, K) MI matrix, entropies, per-factor gaps and the top dimensions.

    Factors with zero entropy (a single value) have no defined gap (disentanglement_lib divides by 0
    and returns NaN); they are left out of the average and listed under "skipped_factors".
    codes (N, D) float, factors (N, K) int.
    """
    codes, factors = _validate(codes, factors)
    k = factors.shape[1]
    names = list(factor_names) if factor_names is not None else [f"factor_{i}" for i in range(k)]
    m = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)   # (D, K)
    entropy = discrete_entropy(factors)                                         # (K,)
    sorted_m = np.sort(m, axis=0)[::-1]                                         # (D, K) descending
    valid = entropy > 0
    gaps = np.full(k, np.nan)
    gaps[valid] = (sorted_m[0, valid] - sorted_m[1, valid]) / entropy[valid]
    if not valid.any():
        raise ValueError("every factor is constant, so MIG is undefined")
    return {
        "mig": float(np.mean(gaps[valid])),
        "per_factor": {names[i]: (float(gaps[i]) if valid[i] else None) for i in range(k)},
        "top_dimension": {names[i]: int(np.argmax(m[:, i])) for i in range(k)},
        "mutual_info": m.tolist(),
        "entropy": entropy.tolist(),
        "skipped_factors": [names[i] for i in range(k) if not valid[i]],
        "num_bins": num_bins,
    }


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> float:
    """The Mutual Information Gap of codes (N, D) float w.r.t. factors (N, K) int (see module docstring)."""
    return mig_details(codes, factors, num_bins)["mig"]
