"""Evaluation report from arrays: metrics.json, predictions.csv, PNGs and a self-contained report.html."""

import csv
import json
import re

import numpy as np
import pytest

from ferkit.report.evaluation import aggregate_folds, compute_metrics
from ferkit.report.writer import write_evaluation

CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]


def fake_predictions(n_subj=8, per=14, seed=0, uncertainty=True, identity=True):
    """Predictions of a decent model: 80 % right, an expression embedding, an identity embedding."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subj), per)
    labels = rng.integers(0, 7, subjects.size)
    pred = np.where(rng.random(subjects.size) < 0.8, labels, rng.integers(0, 7, subjects.size))
    logits = rng.normal(0, 1, (subjects.size, 7))
    logits[np.arange(subjects.size), pred] += 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {
        "probs": probs.astype(np.float32),
        "uncertainty": (1 - probs.max(axis=1)) * 0.9 if uncertainty else None,
        "embedding": (np.eye(7)[labels] * 2 + rng.normal(0, 0.5, (subjects.size, 7))).astype(np.float32),
        "identity_embedding": (np.eye(n_subj)[subjects] * 2 + rng.normal(0, 0.5, (subjects.size, n_subj))
                               if identity else None),
        "labels": labels,
        "subjects": subjects,
        "paths": [f"img/{i:04d}.png" for i in range(subjects.size)],
    }


FACTS = {"method": "dicefer", "evaluated on": "synthetic (test)", "checkpoint": "runs/x/best.safetensors",
         "label space": "synthfer: " + ", ".join(CLASSES), "preprocessing": "112 px, 1 channel"}


def test_compute_metrics_contents():
    preds = fake_predictions()
    m = compute_metrics(preds, CLASSES, abstain_above=0.3)
    h = m["headline"]
    assert 0.6 < h["accuracy"] < 0.95
    assert m["uncertainty"]["uncertainty_source"] == "evidential u = C/S"
    assert m["abstention"]["answered"] + m["abstention"]["abstained"] == len(preds["labels"])
    lk = m["leakage"]
    assert lk["identity_embedding"]["identity_probe"]["accuracy"] > 0.9          # encodes identity
    assert lk["expression_embedding"]["identity_probe"]["accuracy"] < 0.4        # chance = 1/8
    assert lk["expression_embedding"]["retrieval"]["expression"] > 0.9
    assert lk["mig"]["codes"] == "expression embedding + identity embedding"
    assert h["mig"] > 0
    # the identity code made a copy of the expression code: each factor's two best codes tie, so MIG is 0
    twin = dict(preds, identity_embedding=preds["embedding"].copy())
    assert compute_metrics(twin, CLASSES)["headline"]["mig"] == 0.0


def test_write_evaluation_files(tmp_path):
    preds = fake_predictions()
    m = compute_metrics(preds, CLASSES, abstain_above=0.3)
    m["modified_mig"] = {"value": 0.42, "note": "DV critics"}
    m["headline"]["modified_mig"] = 0.42
    paths = write_evaluation(tmp_path, preds, m, CLASSES, FACTS, abstain_above=0.3)
    for name in ("confusion", "reliability", "risk_coverage", "uncertainty_hist", "per_class_f1",
                 "embedding", "identity_embedding"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["headline"]["accuracy"] == pytest.approx(m["headline"]["accuracy"])
    assert doc["facts"]["method"] == "dicefer"
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(rows) == len(preds["labels"])
    assert rows[0]["path"] == "img/0000.png" and rows[0]["subject"] == "0" and "p_anger" in rows[0]
    assert sum(int(r["true_label"] == r["pred_label"]) for r in rows) / len(rows) == pytest.approx(
        m["headline"]["accuracy"])
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 7
    assert not re.search(r"(src|href)=\"(https?:)?//", page)                   # nothing external
    for text in ("Identity leakage", "modified MIG", "Reliability", "Per class", "Abstention"):
        assert text in page


def test_report_without_embedding_or_subjects(tmp_path):
    preds = fake_predictions(uncertainty=False, identity=False)
    preds["embedding"] = None
    preds["subjects"] = np.full(len(preds["labels"]), -1)
    m = compute_metrics(preds, CLASSES)
    assert m["uncertainty"]["uncertainty_source"] == "1 - max p" and m["leakage"] == {}
    write_evaluation(tmp_path, preds, m, CLASSES, FACTS)
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert rows[0]["subject"] == ""
    assert "Identity leakage" not in (tmp_path / "report.html").read_text()


def test_aggregate_folds_mean_and_std():
    ms = [compute_metrics(fake_predictions(seed=s), CLASSES, leakage=False) for s in range(3)]
    agg = aggregate_folds(ms)
    accs = [m["headline"]["accuracy"] for m in ms]
    assert agg["num_folds"] == 3
    assert agg["mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert agg["std"]["accuracy"] == pytest.approx(np.std(accs, ddof=1))


def test_reliability_diagram_draws_every_bin_its_title_ece_sums_over(tmp_path, monkeypatch):
    """Confidences of exactly 1.0 (a saturated softmax) are drawn, so the bars give the ECE in the title."""
    from ferkit.metrics.calibration import expected_calibration_error, reliability_bins
    from ferkit.report import plots

    made = []
    real_figure = plots._figure
    monkeypatch.setattr(plots, "_figure", lambda *a: made.append(real_figure(*a)) or made[-1])
    probs = np.array([[1.0, 0.0, 0.0]] * 6 + [[0.5, 0.3, 0.2]] * 4)   # 6 at confidence 1.0, 3 of them wrong
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 0, 1, 1])
    ece = expected_calibration_error(probs, labels)
    assert ece == pytest.approx(0.6 * 0.5 + 0.4 * 0.0)                  # |0.5 - 1| * 0.6 + |0.5 - 0.5| * 0.4
    plots.plot_reliability(reliability_bins(probs, labels), tmp_path / "r.png", ece=ece)
    main, hist = made[0].axes
    fractions = np.array([p.get_height() for p in hist.patches])
    assert fractions.sum() == pytest.approx(1.0)                      # before: 0.4, the 1.0s were dropped
    n = len(main.patches) // 2                                        # accuracy bars, then gap bars
    gaps = np.array([abs(p.get_height()) for p in main.patches[n:]])
    assert np.sum(gaps * fractions[fractions > 0]) == pytest.approx(ece)
    assert f"ECE = {ece:.3f}" in main.get_title()
