"""A run on one subject-independent fold records the folds it was actually given (folds.json)."""

import json

from ferkit.config import build_experiment
from ferkit.engine.trainer import train


def test_fold_run_writes_the_folds_it_used(tmp_path):
    cfg = build_experiment(
        "baseline",
        {"dataset": "synthetic", "fold": 1, "num_folds": 3, "synth_identities": 6,
         "synth_images_per_identity": 7, "synth_size": 32},
        {"epochs": 1, "batch_size": 8, "max_steps": 1, "eval_every": 0, "device": "cpu", "precision": "fp32",
         "out": str(tmp_path / "run")},
        {"image_size": 32},
    )
    result = train(cfg, progress=False)
    doc = json.loads((result.run_dir / "folds.json").read_text())
    assert doc["fold"] == 1 and doc["num_folds"] == 3
    assert doc["seed"] == 0 == doc["folds"]["seed"]           # the seed the data layer made the folds with
    assert doc["folds"]["test_fold"] == 1
    train_subjects, test_subjects = set(doc["train_subjects"]), set(doc["test_subjects"])
    assert test_subjects and train_subjects and not train_subjects & test_subjects
