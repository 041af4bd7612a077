"""`UAFER.train` / `UAFER.evaluate` as a user calls them: plain tuple loaders, the tiny CLIP, a few steps.

Public behaviour only: what train returns and changes, and evaluate's numbers recomputed from ``predict``
by their definitions (accuracy, mean class recall, ECE with 15 equal-width bins, NLL, Brier, mean u).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ferkit import UAFER
from ferkit.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


def _loader(n: int = 28, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 7
    x = torch.rand(n, 3, 64, 64, generator=g) * 0.25 + y.view(-1, 1, 1, 1) * 0.11     # brightness codes class
    return DataLoader(TensorDataset(x, y), batch_size=14)


def _model() -> UAFER:
    return UAFER(num_classes=7, model_size="tiny", fix_layer=-1, device="cpu", precision="fp32", seed=0)


def _by_definition(model: UAFER, loader: DataLoader) -> dict:
    probs, unc, labels = [], [], []
    for x, y in loader:
        p, u = model.predict(x)
        probs.append(p.numpy())
        unc.append(u.numpy())
        labels.append(y.numpy())
    p, u, y = np.concatenate(probs).astype(np.float64), np.concatenate(unc), np.concatenate(labels)
    pred, conf = p.argmax(1), p.max(1)
    right = pred == y
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return {"accuracy": right.mean(), "mean_class_accuracy": np.mean([right[y == c].mean() for c in range(7)]),
            "ece": ece, "nll": -np.mean(np.log(p[np.arange(len(y)), y])),
            "brier": np.mean(((p - np.eye(7)[y]) ** 2).sum(1)), "uncertainty_mean": u.mean(),
            "uncertainty_right": u[right].mean() if right.any() else math.nan,
            "uncertainty_wrong": u[~right].mean(), "n": float(len(y))}


def test_evaluate_gives_the_numbers_their_definitions_give():
    model, loader = _model(), _loader()
    got = model.evaluate(loader)
    want = _by_definition(model, loader)
    for key, value in want.items():
        if not math.isnan(value):
            assert got[key] == pytest.approx(value, abs=1e-5), key
    assert got["n"] == 28.0


def test_train_changes_the_model_lowers_the_loss_and_records_each_epoch(tmp_path):
    loader, val = _loader(), _loader(14, seed=1)
    model = _model()
    x = next(iter(loader))[0]
    before = model.predict(x)[0]
    history = model.train(train_loader=loader, val_loader=val, epochs=3, learning_rate=1e-3, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3] and [h["steps"] for h in history] == [2, 2, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    assert not torch.allclose(model.predict(x)[0], before, atol=1e-6)
    after = model.evaluate(val)                       # the model keeps the best epoch on val_loader
    chosen = next(h for h in history if h["epoch"] == model.selected["epoch"])
    assert chosen["val_accuracy"] == max(h["val_accuracy"] for h in history)
    assert after["accuracy"] == pytest.approx(chosen["val_accuracy"])
    again = UAFER.load(model.save(tmp_path / "uafer.safetensors"), device="cpu")
    assert again.evaluate(val) == pytest.approx(after, nan_ok=True)


def test_learning_rate_zero_leaves_the_predictions_as_they_were():
    loader = _loader()
    model = _model()
    x = next(iter(loader))[0]
    before = model.predict(x)[0]
    model.train(train_loader=loader, epochs=1, learning_rate=0.0, progress=False)
    assert torch.equal(model.predict(x)[0], before)                # learning_rate is the one in force


def test_evaluate_on_an_empty_loader_is_one_sentence():
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 64, 64), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(DataError, match=r"^The loader given to UAFER.evaluate yielded no samples\.$"):
        _model().evaluate(empty)
