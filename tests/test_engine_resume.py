"""Resuming continues exactly: 2 epochs straight == 1 epoch + resume, and == a mid-epoch stop + resume.

Runs the real baseline (ResNet-18, flip augmentation) in fp32 with deterministic kernels, so equality of
the final weights is exact (``torch.equal``), not approximate.
"""

from __future__ import annotations

import dataclasses

import torch

from engine_helpers import toy_splits, weights
from ferkit.config import build_experiment
from ferkit.engine.checkpoint import read_checkpoint
from ferkit.engine.seeding import set_deterministic
from ferkit.engine.trainer import train


def _cfg(out, **train):
    t = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "precision": "fp32", "device": "cpu", "out": str(out),
         "eval_every": 0}
    t.update(train)
    return build_experiment("baseline", {"dataset": "toy"}, t, {"image_size": 32, "augment": "flip"})


def _with(cfg, **train):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_resume_gives_identical_weights(tmp_path):
    set_deterministic(True)
    try:
        splits = toy_splits(n_train=24, n_eval=7)          # 3 batches per epoch
        straight = train(_cfg(tmp_path / "a"), splits=splits, progress=False)
        ref = weights(straight.run_dir / "checkpoints" / "last.safetensors")

        cfg_b = _cfg(tmp_path / "b", epochs=1)               # 1 epoch, then resume asking for 2
        train(cfg_b, splits=splits, progress=False)
        resumed = train(_with(cfg_b, epochs=2), resume=str(tmp_path / "b"), splits=splits, progress=False)

        cfg_c = _cfg(tmp_path / "c", max_steps=4)            # stop mid-way through epoch 2, then resume
        train(cfg_c, splits=splits, progress=False)
        pos = read_checkpoint(tmp_path / "c" / "checkpoints" / "last.safetensors").meta["position"]
        assert pos == {"phase": 0, "epoch": 1, "batch": 1, "global_step": 4}
        mid = train(_with(cfg_c, max_steps=None), resume=str(tmp_path / "c"), splits=splits, progress=False)
    finally:
        set_deterministic(False)
    for result in (resumed, mid):
        got = weights(result.run_dir / "checkpoints" / "last.safetensors")
        assert set(got) == set(ref)
        diff = [k for k in ref if not torch.equal(ref[k], got[k])]
        assert not diff, f"{len(diff)} tensors differ after resume, e.g. {diff[:3]}"
        assert result.metrics["steps"] == 6
    assert straight.metrics["test_last"] == mid.metrics["test_last"]
    rows = (tmp_path / "c" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3                                   # header + one row per epoch, none duplicated
