"""`ferkit train` through ``ferkit.cli.main``: --config with its precedence, --resume, --folds all.

Tiny runs: the baseline at 32 px on SynthFER rendered in memory at 32 px (10 identities x 7 images).
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from engine_helpers import weights
from ferkit.cli import main
from ferkit.engine.checkpoint import read_checkpoint
from ferkit.engine.seeding import set_deterministic

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--set", "data.synth_identities=10", "--set", "data.synth_images_per_identity=7",
         "--set", "data.synth_size=32", "--set", "model.image_size=32", "--batch-size", "8", "--device", "cpu",
         "--precision", "fp32"]


def _saved_config(run) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_config_file_sits_between_preset_and_flags(tmp_path, capsys):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(yaml.safe_dump({"method": "baseline",
                                   "data": {"dataset": "synthetic", "synth_seed": 4},
                                   "train": {"epochs": 1, "lr": 0.0037, "seed": 5, "limit_batches": 1},
                                   "model": {"augment": "none"}}))
    out = tmp_path / "run"
    code = main(["train", "--config", str(cfg), "--out", str(out), "--seed", "6", *SMALL])
    assert code == 0, capsys.readouterr().err
    saved = _saved_config(out)
    assert saved["method"] == "baseline"
    assert saved["train"]["lr"] == 0.0037 and saved["data"]["synth_seed"] == 4      # from the file
    assert saved["model"]["augment"] == "none"                                       # file over the preset's flip
    assert saved["model"]["channels"] == 1 and saved["data"]["synth_identities"] == 10  # preset, then --set
    assert saved["train"]["seed"] == 6                                               # the flag over the file
    assert saved["train"]["batch_size"] == 8 and saved["train"]["epochs"] == 1
    meta = read_checkpoint(out / "checkpoints" / "last.safetensors").meta
    assert meta["config"]["train"]["lr"] == 0.0037 and meta["position"]["global_step"] == 1


def test_config_file_without_method_is_one_sentence(tmp_path, capsys):
    cfg = tmp_path / "nomethod.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"epochs": 1}}))
    code = main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "No method given" in err


def test_resume_through_the_cli_gives_the_straight_run(tmp_path, capsys):
    common = ["train", "--method", "baseline", "--limit-batches", "3", "--set", "train.eval_every=0", *SMALL]
    set_deterministic(True)
    try:
        assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
        assert main([*common, "--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
        assert read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors").meta["position"][
            "global_step"] == 3
        capsys.readouterr()
        assert main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "2"]) == 0
    finally:
        set_deterministic(False)
    printed = capsys.readouterr().out
    ref = weights(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    got = weights(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert set(got) == set(ref) and all(torch.equal(ref[k], got[k]) for k in ref)
    meta = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors").meta
    assert meta["position"]["global_step"] == 6
    # it continued from step 3 (a fresh start of 2 epochs would reach the same weights, but not this line)
    assert "last.safetensors: phase 0 epoch 1 batch 0 (step 3)" in (tmp_path / "cut" / "log.txt").read_text()
    assert "test accuracy" in printed
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())["test_last"]
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())["test_last"]
    assert straight == resumed


def test_resume_of_a_folder_that_is_no_run_is_one_sentence(tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and str(tmp_path / "config.yaml") in err


def test_folds_all_trains_every_fold_on_disjoint_people(tmp_path, capsys):
    out = tmp_path / "folds"
    code = main(["train", "--method", "baseline", "--folds", "all", "--epochs", "1", "--max-steps", "1",
                 "--set", "data.num_folds=3", "--set", "train.eval_every=0", "--out", str(out), *SMALL])
    printed = capsys.readouterr().out
    assert code == 0
    tests, accs = [], []
    for k in range(3):
        doc = json.loads((out / f"fold{k}" / "folds.json").read_text())
        assert doc["fold"] == k and doc["num_folds"] == 3
        assert not set(doc["train_subjects"]) & set(doc["test_subjects"])
        tests.append(set(doc["test_subjects"]))
        accs.append(json.loads((out / f"fold{k}" / "metrics.json").read_text())["test"]["accuracy"])
        assert f"fold {k}: " in printed
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])
    assert len(set().union(*tests)) == 10                          # every person is tested exactly once
    summary = next(line for line in printed.splitlines() if line.startswith("3 folds: accuracy "))
    assert summary.startswith(f"3 folds: accuracy {sum(accs) / 3:.4f} ± ")   # the mean of the folds' own numbers


def test_folds_all_with_resume_is_refused(tmp_path, capsys):
    assert main(["train", "--method", "baseline", "--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "r"),
                 "--set", "train.eval_every=0", *SMALL]) == 0
    capsys.readouterr()
    code = main(["train", "--resume", str(tmp_path / "r"), "--folds", "all"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--folds all" in err


def test_channels_last_resumes_exactly_and_moves_numbers_by_rounding_only(tmp_path, capsys):
    """--channels-last (train.channels_last) is opt-in because it changes the summation order: its run, cut and
    resumed, gives its own straight run's weights bit for bit (the optimiser state keeps its layout through the
    checkpoint), and its first epoch's loss is the contiguous run's up to float rounding (weights cannot be held
    closer than Adam's ~lr a step: a rounding-sized gradient can flip an update's sign)."""
    common = ["train", "--method", "baseline", "--limit-batches", "2", "--set", "train.eval_every=0", *SMALL]
    set_deterministic(True)
    try:
        assert main([*common, "--epochs", "2", "--out", str(tmp_path / "plain")]) == 0
        assert main([*common, "--epochs", "2", "--channels-last", "--out", str(tmp_path / "straight")]) == 0
        assert main([*common, "--epochs", "1", "--channels-last", "--out", str(tmp_path / "cut")]) == 0
        assert main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "2"]) == 0
    finally:
        set_deterministic(False)
    capsys.readouterr()
    assert _saved_config(tmp_path / "straight")["train"]["channels_last"] is True
    assert "channels-last" in (tmp_path / "straight" / "log.txt").read_text()
    ref = weights(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    got = weights(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert set(got) == set(ref) and all(torch.equal(ref[k], got[k]) for k in ref)
    assert set(weights(tmp_path / "plain" / "checkpoints" / "last.safetensors")) == set(ref)

    def first_loss(run):
        import csv

        with open(run / "metrics.csv", newline="") as f:
            return float(next(csv.DictReader(f))["train_ce"])

    a, b = first_loss(tmp_path / "plain"), first_loss(tmp_path / "straight")
    assert abs(a - b) <= 1e-3 * abs(a)
