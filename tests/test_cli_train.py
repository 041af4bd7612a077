"""`ferkit train` end to end through ``ferkit.cli.main``: the run folder, and one-sentence config errors."""

from __future__ import annotations

import csv
import json

import pytest

from ferkit.cli import main
from ferkit.engine.checkpoint import read_checkpoint

SMALL = ["--set", "data.synth_identities=10", "--set", "data.synth_images_per_identity=7",
         "--set", "model.image_size=32", "--batch-size", "8", "--device", "cpu"]


def test_train_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--method", "baseline", "--dataset", "synthetic", "--epochs", "2", "--limit-batches", "2",
                 "--out", str(out), "--lr", "1e-3", "--seed", "3", *SMALL])
    assert code == 0
    for name in ("config.yaml", "log.txt", "metrics.csv", "metrics.json", "checkpoints/last.safetensors",
                 "checkpoints/last.safetensors.state.pt", "checkpoints/best.safetensors"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["eval_split"] == "val" for r in rows)
    assert float(rows[0]["train_ce"]) > 0
    ckpt = read_checkpoint(out / "checkpoints" / "last.safetensors")
    assert ckpt.meta["config"]["train"]["seed"] == 3 and ckpt.meta["config"]["train"]["lr"] == 1e-3
    assert ckpt.meta["config"]["model"]["image_size"] == 32
    assert ckpt.meta["preprocessing"]["align"] == "none" and ckpt.meta["label_space"]["name"] == "synthfer"
    assert "random init" in ckpt.meta["describe"]["backbone"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["test"]["weights"] == "best (selected on val)"
    assert "test accuracy" in capsys.readouterr().out
    # the same test split scored again by `ferkit evaluate` (the run's best.safetensors) gives the same number
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval"), "--no-leakage", "--device", "cpu"]) == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["num_samples"] == metrics["test"]["n"]
    assert evaluated["headline"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)


def test_bad_set_key_is_one_sentence_and_exit_2(tmp_path, capsys):
    code = main(["train", "--method", "baseline", "--out", str(tmp_path / "r"), "--set", "train.epoch=3"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("ferkit: error: Unknown config key 'train.epoch'") and err.count("\n") == 0
    assert not (tmp_path / "r").exists()                       # nothing started


def test_method_flag_for_another_method_is_refused(tmp_path, capsys):
    code = main(["train", "--method", "baseline", "--alpha", "0.5", "--out", str(tmp_path / "r")])
    assert code == 2 and "Unknown config key 'model.alpha'" in capsys.readouterr().err


def test_folds_all_prints_the_sample_std_as_evaluate_does(tmp_path, capsys, monkeypatch):
    """`train --folds all` summarises with the same spread as `evaluate --folds all` (ddof = 1); the
    trainer is replaced by one returning known per-fold accuracies, so only the summary is under test."""
    import types

    import numpy as np

    from ferkit.engine import trainer
    from ferkit.report.evaluation import aggregate_folds

    accs, mcas = [0.5, 0.7, 0.9], [0.4, 0.4, 0.7]
    seen = []

    def fake_train(cfg, resume=None, **_):
        k = cfg.data.fold
        seen.append((k, cfg.train.out))
        test = {"accuracy": accs[k], "mean_class_accuracy": mcas[k], "weights": "last"}
        return types.SimpleNamespace(metrics={"test": test}, run_dir=cfg.train.out, checkpoint="-")

    monkeypatch.setattr(trainer, "train", fake_train)
    code = main(["train", "--method", "baseline", "--folds", "all", "--set", "data.num_folds=3",
                 "--out", str(tmp_path / "cv")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and [k for k, _ in seen] == [0, 1, 2] and seen[2][1] == str(tmp_path / "cv" / "fold2")
    assert np.std(accs, ddof=1) == pytest.approx(0.2)                   # ddof 0 would print 0.1633
    assert last == ("3 folds: accuracy 0.7000 ± 0.2000, mean class accuracy 0.5000 ± 0.1732 "
                    "(sample std over folds)")
    agg = aggregate_folds([{"headline": {"accuracy": a}} for a in accs])
    assert agg["std"]["accuracy"] == pytest.approx(0.2)                 # what evaluate --folds all reports
