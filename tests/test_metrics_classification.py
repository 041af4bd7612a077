"""Known answers for classification, calibration and selective-prediction metrics."""

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from ferkit.metrics.calibration import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    max_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from ferkit.metrics.classification import classification_metrics
from ferkit.metrics.uncertainty import (
    abstention,
    accuracy_at_coverage,
    error_detection_auroc,
    oracle_aurc,
    risk_coverage,
    uncertainty_metrics,
)


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2, 1, 0, 3])
    m = classification_metrics(y, y, 4)
    assert m["accuracy"] == 1.0 and m["mean_class_accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert np.array_equal(np.array(m["confusion"]), np.eye(4))


def test_constant_predictions():
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    m = classification_metrics(y, np.zeros_like(y), 3)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["mean_class_accuracy"] == pytest.approx(1 / 3)          # recall 1, 0, 0
    assert m["per_class"]["precision"] == pytest.approx([0.6, 0.0, 0.0])
    assert m["per_class"]["f1"][0] == pytest.approx(2 * 0.6 / 1.6)
    assert np.allclose(np.array(m["confusion"])[:, 0], 1.0)


def test_macro_matches_sklearn_and_counts_whole_dataset():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    m = classification_metrics(y, p, 5)
    pr, rc, f1, _ = precision_recall_fscore_support(y, p, labels=range(5), average=None, zero_division=0)
    assert np.allclose(m["per_class"]["precision"], pr) and np.allclose(m["per_class"]["f1"], f1)
    assert m["macro_recall"] == pytest.approx(rc.mean())
    assert m["accuracy"] == pytest.approx(np.mean(y == p))
    assert np.array(m["confusion_counts"]).sum() == 500


def _dirichlet_probs(rng, n, c, conc):
    return rng.dirichlet(np.full(c, conc), size=n)


def test_ece_agrees_with_torchmetrics():
    from torchmetrics.classification import MulticlassCalibrationError

    rng = np.random.default_rng(0)
    for conc in (0.3, 1.0, 3.0):
        probs = _dirichlet_probs(rng, 2000, 7, conc).astype(np.float32)
        labels = rng.integers(0, 7, 2000)
        # include confidences exactly on edges (1.0 and 0.6) to pin the bin convention
        probs[:5] = np.eye(7, dtype=np.float32)[labels[:5]]
        probs[5, :] = 0.4 / 6
        probs[5, 0] = 0.6
        for norm, fn in (("l1", expected_calibration_error), ("max", max_calibration_error)):
            ref = MulticlassCalibrationError(num_classes=7, n_bins=15, norm=norm)(
                torch.from_numpy(probs), torch.from_numpy(labels))
            assert fn(probs, labels) == pytest.approx(float(ref), abs=1e-6)


def test_calibrated_set_has_small_ece_overconfident_large():
    rng = np.random.default_rng(0)
    probs = _dirichlet_probs(rng, 40000, 5, 0.5)
    labels = np.array([rng.choice(5, p=p) for p in probs])               # drawn from the predicted probs
    assert expected_calibration_error(probs, labels) < 0.015
    sharp = probs ** 4 / np.sum(probs ** 4, axis=1, keepdims=True)        # same argmax, overconfident
    assert expected_calibration_error(sharp, labels) > 0.1
    assert calibration_metrics(sharp, labels)["nll"] > calibration_metrics(probs, labels)["nll"]


def test_nll_brier_known_values():
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    labels = np.array([0, 1])
    assert negative_log_likelihood(probs, labels) == pytest.approx(-(np.log(0.5) + np.log(0.1)) / 2)
    assert brier_score(probs, labels) == pytest.approx((0.5 + (0.81 + 0.81)) / 2)
    b = reliability_bins(probs, labels, n_bins=15)
    # confidence 0.5 (argmax 0, right) falls in bin 7 = (7/15, 8/15]; 0.9 (argmax 0, wrong) in bin 13
    assert np.flatnonzero(b["count"]).tolist() == [7, 13] and b["fraction"][[7, 13]].tolist() == [0.5, 0.5]
    assert b["accuracy"][[7, 13]].tolist() == [1.0, 0.0] and b["confidence"][[7, 13]] == pytest.approx([0.5, 0.9])


def test_oracle_ordering_reaches_analytic_minimum():
    n, m = 1000, 150
    correct = np.r_[np.ones(n - m, bool), np.zeros(m, bool)]
    u = np.linspace(0, 1, n)                                              # errors are the most uncertain
    rc = risk_coverage(u, correct)
    assert rc["aurc"] == pytest.approx(oracle_aurc(n, m), abs=1e-12)
    r = m / n
    assert oracle_aurc(n, m) == pytest.approx(r + (1 - r) * np.log(1 - r), abs=2e-3)
    assert rc["risk"][-1] == pytest.approx(r) and rc["coverage"][-1] == 1.0
    # the reverse order is the worst; a random order sits near the error rate
    assert risk_coverage(-u, correct)["aurc"] > r > rc["aurc"]
    assert accuracy_at_coverage(u, correct, 0.8) == 1.0
    assert accuracy_at_coverage(u, correct, 0.9) == pytest.approx(850 / 900)
    assert error_detection_auroc(u, correct) == 1.0


def test_ties_count_together_and_constant_uncertainty_is_chance():
    correct = np.array([1, 0, 1, 0], bool)
    rc = risk_coverage(np.zeros(4), correct)
    assert rc["aurc"] == pytest.approx(0.5) and len(rc["coverage"]) == 1
    assert error_detection_auroc(np.zeros(4), correct) == pytest.approx(0.5)
    assert error_detection_auroc(np.zeros(4), np.ones(4, bool)) is None


def test_uncertainty_metrics_and_abstention():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1])
    um = uncertainty_metrics(probs, labels)
    assert um["uncertainty_source"] == "1 - max p" and um["auroc_error"] == 1.0
    assert um["aurc"] == pytest.approx(oracle_aurc(4, 2))
    ab = abstention(probs, labels, 1 - probs.max(axis=1), abstain_above=0.3)
    assert ab["abstained"] == 2 and ab["coverage"] == 0.5 and ab["accuracy_answered"] == 1.0
    none = abstention(probs, labels, np.ones(4), abstain_above=0.5)
    assert none["answered"] == 0 and none["accuracy_answered"] is None
