"""DataLoader workers change nothing, and the best checkpoint is the epoch with the best validation accuracy.

The design promises the same augmented batches whatever ``data.num_workers`` is: every item is built under
an RNG seeded by (seed, phase, epoch, position, index), in whichever process builds it. The best checkpoint
is kept by validation accuracy on a real val split, and the final test numbers use it.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

from engine_helpers import TinyMethod, toy_splits, weights
from ferkit.config import build_experiment
from ferkit.engine.checkpoint import load_method, read_checkpoint
from ferkit.engine.evaluate import collect_predictions
from ferkit.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

_TRAIN_STEP = TinyMethod.train_step


def _config(out, workers: int = 0, augment: str = "affectnet", **train_over):
    t = {"epochs": 2, "batch_size": 8, "lr": 1e-2, "precision": "fp32", "device": "cpu", "out": str(out),
         "eval_every": 0, **train_over}
    return build_experiment("tiny_test", {"dataset": "toy", "num_workers": workers, "cache": False}, t,
                            {"augment": augment})


def _recorded_batches(monkeypatch, cfg, splits) -> tuple[list[torch.Tensor], dict]:
    """The image batches the method's train_step received, in order, and the final weights."""
    seen = []

    def recording(self, phase, batch, ctx):
        seen.append(batch["image"].detach().clone())
        return _TRAIN_STEP(self, phase, batch, ctx)

    monkeypatch.setattr(TinyMethod, "train_step", recording)
    result = train(cfg, splits=splits, progress=False)
    return seen, weights(result.run_dir / "checkpoints" / "last.safetensors")


def test_the_same_augmented_batches_whatever_num_workers(tmp_path, monkeypatch):
    splits = toy_splits(n_train=40, n_eval=7)                      # 5 batches per epoch, 2 epochs
    ref, ref_w = _recorded_batches(monkeypatch, _config(tmp_path / "w0", workers=0), splits)
    assert len(ref) == 10
    for workers in (1, 2):
        got, got_w = _recorded_batches(monkeypatch, _config(tmp_path / f"w{workers}", workers=workers), splits)
        assert len(got) == len(ref)
        assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True)), f"num_workers={workers} differs"
        assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    # the augmentation is really random (else equal batches would prove nothing): none gives other batches,
    # and another seed other augmentations
    plain, _ = _recorded_batches(monkeypatch, _config(tmp_path / "none", augment="none"), splits)
    assert not any(torch.equal(a, b) for a, b in zip(ref, plain, strict=True))
    other, _ = _recorded_batches(monkeypatch, _config(tmp_path / "s1", seed=1), splits)
    assert not any(torch.equal(a, b) for a, b in zip(ref, other, strict=True))


def test_best_checkpoint_is_the_epoch_with_the_best_val_accuracy(tmp_path):
    splits = toy_splits(n_train=56, n_eval=21)
    result = train(_config(tmp_path / "run", augment="none", epochs=4, eval_every=1, lr=0.05), splits=splits,
                   progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [r["eval_split"] for r in rows] == ["val"] * 4
    accs = [float(r["eval_accuracy"]) for r in rows]
    best_epoch = accs.index(max(accs)) + 1                         # the first epoch reaching the maximum
    assert best_epoch == 3 and accs[3] < accs[2], accs            # this run peaks before its last epoch
    best = tmp_path / "run" / "checkpoints" / "best.safetensors"
    assert result.checkpoint == best
    meta = read_checkpoint(best).meta
    assert meta["best"]["epoch"] == best_epoch and meta["selected_on"] == "val"
    assert meta["best"]["accuracy"] == pytest.approx(max(accs), abs=1e-4)
    # the file holds that epoch's weights: re-evaluated, they give that epoch's val accuracy, not the last one's
    preds = collect_predictions(load_method(best, device="cpu"), splits["val"])
    recomputed = float((preds["probs"].argmax(1) == preds["labels"]).mean())
    assert recomputed == pytest.approx(max(accs), abs=1e-4) and recomputed != pytest.approx(accs[-1], abs=1e-4)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best"]["epoch"] == best_epoch and metrics["test"]["weights"] == "best (selected on val)"
    test_preds = collect_predictions(load_method(best, device="cpu"), splits["test"])
    assert metrics["test"]["accuracy"] == pytest.approx(
        float((test_preds["probs"].argmax(1) == test_preds["labels"]).mean()), abs=1e-6)


def test_without_a_val_split_the_last_weights_are_reported(tmp_path):
    splits = toy_splits(n_train=24, n_eval=7)
    splits["val"] = splits["val"].__class__("toy", "val", splits["val"].label_space, [])
    result = train(_config(tmp_path / "run", augment="none", epochs=2, eval_every=1), splits=splits, progress=False)
    assert result.checkpoint.name == "last.safetensors"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["weights"] == "last" and metrics["validated_on"] == "test"
