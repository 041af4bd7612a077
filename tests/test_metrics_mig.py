"""MIG known answers and agreement with disentanglement_lib's computation, step by step."""

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from ferkit.metrics.mig import histogram_discretize, mig, mig_details


def _factors(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 7, n), rng.integers(0, 12, n)], axis=1)   # (N, 2)


def _reference_mig(codes, factors, num_bins=20):
    """disentanglement_lib's compute_mig body on the transposed (D, N)/(K, N) layout."""
    mus, ys = codes.T, factors.T
    disc = np.zeros_like(mus)
    for i in range(mus.shape[0]):
        disc[i, :] = np.digitize(mus[i, :], np.histogram(mus[i, :], num_bins)[1][:-1])
    m = np.array([[mutual_info_score(ys[j], disc[i]) for j in range(ys.shape[0])] for i in range(mus.shape[0])])
    h = np.array([mutual_info_score(ys[j], ys[j]) for j in range(ys.shape[0])])
    s = np.sort(m, axis=0)[::-1]
    return np.mean((s[0] - s[1]) / h)


def test_codes_equal_to_factors_give_mig_one():
    f = _factors()
    assert mig(f.astype(float), f) == pytest.approx(1.0, abs=0.01)   # finite-sample MI bias of the runner-up


def test_constant_codes_give_zero():
    f = _factors()
    assert mig(np.ones((f.shape[0], 4)), f) == pytest.approx(0.0, abs=1e-12)


def test_duplicated_code_is_low():
    f = _factors()
    codes = np.stack([f[:, 0], f[:, 0] + 0.01, f[:, 1]], axis=1).astype(float)   # factor 0 in two dims
    d = mig_details(codes, f)
    assert d["per_factor"]["factor_0"] == pytest.approx(0.0, abs=1e-9)
    assert d["per_factor"]["factor_1"] == pytest.approx(1.0, abs=0.01)
    assert d["mig"] == pytest.approx(0.5, abs=0.01)


def test_matches_disentanglement_lib_on_noisy_codes():
    f = _factors(seed=3)
    rng = np.random.default_rng(3)
    codes = np.stack([f[:, 0] + rng.normal(0, 1.5, len(f)), f[:, 1] * 0.3 + rng.normal(0, 1, len(f)),
                      rng.normal(size=len(f)), f[:, 0] - f[:, 1] + rng.normal(0, 2, len(f))], axis=1)
    val = mig(codes, f)
    assert val == pytest.approx(_reference_mig(codes, f), abs=1e-12)
    assert 0.0 < val < 1.0


def test_discretisation_bins_and_constant_factor_reported():
    x = np.linspace(0, 1, 101)[:, None].repeat(2, axis=1)
    d = histogram_discretize(x, 20)
    assert d.min() == 1 and d.max() == 20 and len(np.unique(d[:, 0])) == 20
    f = np.stack([np.arange(101) % 5, np.zeros(101, int)], axis=1)
    det = mig_details(x, f, factor_names=["expression", "constant"])
    assert det["skipped_factors"] == ["constant"] and det["per_factor"]["constant"] is None
    with pytest.raises(ValueError):
        mig(np.ones((10, 1)), np.arange(10))


def test_documented_public_names_are_the_callables():
    """`ferkit.metrics.mig(codes, factors)` is the documented call: the package attribute is the function
    (it was the submodule), and submodule imports keep working."""
    import ferkit.metrics as metrics
    from ferkit.metrics.modified_mig import dv_mutual_information

    f = _factors()
    assert metrics.mig(f.astype(float), f) == pytest.approx(mig(f.astype(float), f)) == pytest.approx(1.0, abs=0.01)
    assert metrics.mig(np.ones((f.shape[0], 4)), f) == pytest.approx(0.0, abs=1e-12)
    assert metrics.mig is mig and metrics.modified_mig.__module__ == "ferkit.metrics.modified_mig"
    assert callable(dv_mutual_information) and callable(histogram_discretize)
    probs, labels = np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1])
    assert metrics.expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)
    assert all(callable(getattr(metrics, name)) for name in metrics.__all__)
