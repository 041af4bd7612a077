"""Statistics of a paired-seed study: per-configuration summaries and paired differences with intervals.

A study trains every configuration once per seed on the same data and split, so the runs of two
configurations with the same seed form a pair. The difference of a metric, B - A, is taken per seed and
summarised by its mean with two 95% intervals:

* Student-t: mean ± t_{0.975, n-1} · sd / sqrt(n), with sd the sample standard deviation (ddof = 1) of the
  per-seed differences (the paired t interval, ``scipy.stats.t``);
* bootstrap: the percentile interval of the mean over resamples of the per-seed differences
  (``scipy.stats.bootstrap``, 10 000 resamples, a fixed seed so the summary is reproducible).

``wins`` counts the seeds where B is better than A in the metric's own direction (higher accuracy,
lower ECE), ``ties`` those where they are equal.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: metrics where a lower value is better; every other metric is better when higher
LOWER_IS_BETTER = frozenset({"ece", "mce", "nll", "brier", "aurc", "identity_probe_accuracy",
                             "identity_probe_matched", "retrieval_subject", "train_seconds"})

#: the bootstrap's resamples and seed (fixed: the same results give the same summary)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is the better one (accuracy: yes; ECE: no)."""
    return metric not in LOWER_IS_BETTER


def describe(values) -> dict:
    """{"mean", "std" (sample std, ddof 1; 0 for one value), "n"} of the finite numbers in ``values``.

    None and NaN are left out (a metric a run could not compute); with none left, mean and std are None.
    """
    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"mean": float(x.mean()), "std": std, "n": int(x.size)}


def t_interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Student-t interval of the mean of ``diffs`` (n >= 2; (None, None) for fewer)."""
    from scipy import stats

    n = diffs.size
    if n < 2:
        return None, None
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(diffs: np.ndarray, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of ``diffs`` (n >= 2; a constant sample gives a point)."""
    from scipy import stats

    n = diffs.size
    if n < 2:
        return None, None
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # scipy warns on near-degenerate resamples of tiny samples
        res = stats.bootstrap((diffs,), np.mean, n_resamples=resamples, confidence_level=confidence,
                              method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_difference(a: dict, b: dict, metric: str, confidence: float = 0.95) -> dict:
    """B - A over the seeds both have a finite value for.

    Args: a, b: {seed: value or None} for the reference configuration A and the compared one B.
    Returns {"mean", "lo", "hi" (Student-t), "boot_lo", "boot_hi", "n", "wins", "ties", "seeds",
    "excludes_zero"}; the interval keys are None with fewer than two pairs.
    """
    seeds = sorted(s for s in set(a) & set(b)
                   if a[s] is not None and b[s] is not None and math.isfinite(a[s]) and math.isfinite(b[s]))
    d = np.array([b[s] - a[s] for s in seeds], dtype=np.float64)
    if d.size == 0:
        return {"mean": None, "lo": None, "hi": None, "boot_lo": None, "boot_hi": None, "n": 0,
                "wins": 0, "ties": 0, "seeds": [], "excludes_zero": False}
    lo, hi = t_interval(d, confidence)
    boot_lo, boot_hi = bootstrap_interval(d, confidence)
    better = d > 0 if higher_is_better(metric) else d < 0
    excludes = lo is not None and (lo > 0 or hi < 0)
    return {"mean": float(d.mean()), "lo": lo, "hi": hi, "boot_lo": boot_lo, "boot_hi": boot_hi,
            "n": int(d.size), "wins": int(better.sum()), "ties": int((d == 0).sum()), "seeds": seeds,
            "excludes_zero": bool(excludes)}


def verdict(diff: dict, metric: str) -> str:
    """Words for a paired difference: whether its Student-t interval excludes zero, and which way."""
    if diff["n"] < 2 or diff["lo"] is None:
        return "too few paired seeds for an interval"
    if not diff["excludes_zero"]:
        return "interval includes 0: no difference shown"
    better = (diff["mean"] > 0) == higher_is_better(metric)
    return "better (interval excludes 0)" if better else "worse (interval excludes 0)"
