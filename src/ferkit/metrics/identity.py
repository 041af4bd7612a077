"""How much of what a real face recognizer sees a model's embedding keeps, on faces without subject labels.

Two embeddings X (N, D) and Y (N, D') of the same N faces, Y from a face recognizer (e.g. dlib-resnet):

- ``linear_cka``: linear centred kernel alignment (Kornblith, Norouzi, Lee and Hinton 2019, "Similarity
  of Neural Network Representations Revisited", eq. for linear kernels): with X, Y column-centred,
  CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), in [0, 1], 1 for X = Y up to rotation and scale.
  Its plug-in HSIC is biased upwards when N is not much larger than D (independent X and Y do not give
  0), so ``debiased=True`` uses the unbiased HSIC estimator of Song et al. 2012 (JMLR 13, eq. 5), as in
  Kornblith et al.'s debiased CKA; that one is ~0 for independent embeddings.
- ``similarity_rank_correlation``: representational similarity analysis (Kriegeskorte et al. 2008): the
  Spearman correlation between the N(N-1)/2 pairwise cosine similarities under X and under Y.
- ``verification_auc``: where subjects are known, the ROC AUC of same-person vs different-person pairs
  scored by cosine similarity (the Mann-Whitney statistic; ties count half).

``identity_alignment`` reports each with a bootstrap interval over faces (bias-corrected percentile,
resampling faces with replacement; pairs of one face with its own copy are left out of the rank correlation) and a
shuffled control: the same statistic with Y's rows permuted, which breaks the face-to-face
correspondence and keeps everything else; ``p_shuffled`` is the share of permutations at or above the
observed value (with the +1 correction). The debiased CKA gets the shuffled control but no bootstrap
interval: a resample repeats faces, and repeated rows bias the unbiased estimator. Over ``max_faces``
faces the rank correlation (N^2 pairs, each bootstrap round re-ranks them) runs on a seeded subset of
that many faces; the count used is reported.
"""

from __future__ import annotations

import numpy as np


def _centred_gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    return x @ x.T                                                   # (N, N)


def _hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. 2012's unbiased HSIC of Gram matrices K, L (N, N), N >= 4 (diagonals set to 0)."""
    n = k.shape[0]
    k, m = k.copy(), m.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    ks, ms = k.sum(axis=0), m.sum(axis=0)
    return float(((k * m).sum() + ks.sum() * ms.sum() / ((n - 1) * (n - 2)) - 2.0 * (ks @ ms) / (n - 2))
                 / (n * (n - 3)))


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA between X (N, D) and Y (N, D') (Kornblith et al. 2019); ``debiased``: unbiased HSIC."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"CKA needs two (N, D) arrays of the same N, got {x.shape} and {y.shape}")
    if len(x) < (4 if debiased else 2):
        raise ValueError(f"CKA needs at least {4 if debiased else 2} faces, got {len(x)}")
    if debiased:
        kx, ky = x @ x.T, y @ y.T
        xy, xx, yy = _hsic_unbiased(kx, ky), _hsic_unbiased(kx, kx), _hsic_unbiased(ky, ky)
        return float(xy / np.sqrt(xx * yy)) if xx > 0 and yy > 0 else 0.0
    x, y = x - x.mean(0), y - y.mean(0)
    num = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else 0.0


def _cosine_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T                                                   # (N, N)


def _pairs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-triangle pairs (i < j) of ``idx`` positions whose original faces differ."""
    a, b = np.triu_indices(len(idx), k=1)
    keep = idx[a] != idx[b]
    return a[keep], b[keep]


def similarity_rank_correlation(x: np.ndarray, y: np.ndarray, _idx: np.ndarray | None = None) -> float:
    """Spearman correlation of pairwise cosine similarities under X (N, D) and Y (N, D') (RSA)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"the rank correlation needs two arrays of the same N >= 3 faces, got {len(x)}, {len(y)}")
    a, b = _pairs(np.arange(len(x)) if _idx is None else _idx)
    sx, sy = _cosine_matrix(x)[a, b], _cosine_matrix(y)[a, b]
    if np.ptp(sx) == 0 or np.ptp(sy) == 0:
        return 0.0
    return float(spearmanr(sx, sy).statistic)


def verification_auc(x: np.ndarray, subjects: np.ndarray) -> dict:
    """Same-person verification ROC AUC of cosine similarity over all pairs of faces of known subjects.

    Args: x (N, D); subjects (N,) int, -1 = unknown. Returns {"auc", "num_same", "num_different"};
    "auc" is None (with "reason") without both kinds of pairs.
    """
    from scipy.stats import rankdata

    s = np.asarray(subjects).ravel()
    known = np.flatnonzero(s >= 0)
    a, b = np.triu_indices(len(known), k=1)
    same = s[known][a] == s[known][b]
    out = {"num_same": int(same.sum()), "num_different": int((~same).sum())}
    if out["num_same"] == 0 or out["num_different"] == 0:
        return {**out, "auc": None, "reason": "needs pairs of the same and of different subjects"}
    scores = _cosine_matrix(np.asarray(x)[known])[a, b]
    ranks = rankdata(scores)                                         # ties get the average rank
    n1, n0 = out["num_same"], out["num_different"]
    auc = (ranks[same].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return {**out, "auc": float(auc)}


def bias_corrected_interval(boots: np.ndarray, value: float, level: float = 0.95) -> list[float]:
    """Efron's bias-corrected percentile interval (BC, no acceleration) of bootstrap values around ``value``.

    z0 = Phi^-1(share of bootstrap values below ``value``, ties counted half); the interval is the
    bootstrap quantiles at Phi(2 z0 -/+ z_{(1+level)/2}). Plain percentiles when the bootstrap is centred
    on the estimate (z0 = 0); shifted when it is not, as for the plug-in CKA, whose upward bias the
    resample's repeated faces increase."""
    from scipy.stats import norm

    b = np.asarray(boots, dtype=np.float64)
    share = (np.sum(b < value) + 0.5 * np.sum(b == value)) / b.size
    share = float(np.clip(share, 0.5 / b.size, 1 - 0.5 / b.size))
    z0, z = norm.ppf(share), norm.ppf(0.5 + level / 2)
    lo, hi = norm.cdf(2 * z0 - z), norm.cdf(2 * z0 + z)
    return [float(np.quantile(b, lo)), float(np.quantile(b, hi))]


def _with_controls(stat, x: np.ndarray, y: np.ndarray, n_boot: int, n_shuffle: int, rng, uses_idx: bool) -> dict:
    n = len(x)
    value = stat(x, y, np.arange(n)) if uses_idx else stat(x, y)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        boots.append(stat(x[idx], y[idx], idx) if uses_idx else stat(x[idx], y[idx]))
    shuffled = []
    for _ in range(n_shuffle):
        perm = rng.permutation(n)
        shuffled.append(stat(x, y[perm], np.arange(n)) if uses_idx else stat(x, y[perm]))
    shuffled = np.asarray(shuffled)
    out = {"value": value}
    if n_boot:
        out["interval"] = bias_corrected_interval(np.asarray(boots), value)
    if n_shuffle:
        out["shuffled_mean"] = float(shuffled.mean())
        out["shuffled_interval"] = [float(np.percentile(shuffled, 2.5)), float(np.percentile(shuffled, 97.5))]
        out["p_shuffled"] = float((1 + (shuffled >= value).sum()) / (1 + n_shuffle))
    return out


def identity_alignment(x: np.ndarray, reference: np.ndarray, subjects: np.ndarray | None = None,
                       n_boot: int = 200, n_shuffle: int = 200, seed: int = 0, max_faces: int = 500) -> dict:
    """CKA (plain and debiased) and similarity rank correlation of X against a recognizer's embedding.

    Args: x (N, D) the model's embedding; reference (N, D') the recognizer's, of the same faces in the
    same order; subjects (N,) optional, -1 = unknown (adds verification AUC of both). Each statistic
    comes as {"value", "interval" (95% bootstrap over faces), "shuffled_mean", "shuffled_interval",
    "p_shuffled"} (see module doc).
    """
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(x) != len(ref):
        raise ValueError(f"the embeddings hold {len(x)} and {len(ref)} faces; they must be the same faces")
    if len(x) < 4:
        raise ValueError(f"an identity alignment needs at least 4 faces, got {len(x)}")
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(x), max_faces, replace=False)) if len(x) > max_faces else np.arange(len(x))
    out = {"num_faces": int(len(x)), "dim": int(x.shape[1]), "reference_dim": int(ref.shape[1]),
           "cka": _with_controls(linear_cka, x, ref, n_boot, n_shuffle, rng, False),
           "cka_debiased": _with_controls(lambda a, b: linear_cka(a, b, debiased=True), x, ref, 0, n_shuffle,
                                          rng, False),
           "similarity_rank_correlation": _with_controls(similarity_rank_correlation, x[sub], ref[sub], n_boot,
                                                         n_shuffle, rng, True)}
    out["similarity_rank_correlation"]["num_faces"] = int(len(sub))
    if subjects is not None:
        out["verification_auc"] = verification_auc(x, subjects)
        out["reference_verification_auc"] = verification_auc(ref, subjects)
    return out
