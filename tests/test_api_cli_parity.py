"""One behaviour for every entry point: the Python API trains, resumes and evaluates as ``ferkit`` does.

UAFER(...).train on a loader over a ferkit split against ``ferkit train --method uafer`` with the same
settings and seed (DICE-FER's twin is in test_reproducible.py); ``train(resume=...)`` of both API classes
against the uninterrupted API run; UAFER.evaluate and DICEFER.evaluate against ``ferkit evaluate``'s
metrics.json on the same checkpoint and test split.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ferkit.cli import main
from ferkit.engine.checkpoint import read_checkpoint
from test_reproducible import DICE_SMALL, SYNTH, assert_same, shuffle_global_rng, state

pytestmark = pytest.mark.usefixtures("one_thread")

#: UA-FER as the synthetic preset trains it (uafer_synthetic.yaml), keyword for keyword
UAFER_PRESET = {"model_size": "tiny", "alpha": 0.5, "topk": 16, "fix_layer": -1, "warmup_epochs": 1,
                "augment": "flip", "align": "none"}
SYNTH_SETS = [a for k, v in SYNTH.items() for a in ("--set", f"data.{k}={v}")]


def _split(name: str):
    from ferkit.config import DataConfig
    from ferkit.data.datasets import splits_from_config

    return splits_from_config(DataConfig(**SYNTH))[name]


def _loader(model, split, batch_size: int = 8) -> DataLoader:
    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    return DataLoader(FERDataset(split, build_transform(model.preprocessing, train=False), progress=False),
                      batch_size=batch_size)


def _uafer(split, seed: int = 3):
    from ferkit import UAFER

    return UAFER(num_classes=split.label_space.num_classes, label_space=split.label_space, seed=seed,
                 device="cpu", precision="fp32", **UAFER_PRESET)


def test_uafer_api_trains_what_ferkit_train_trains(tmp_path):
    shuffle_global_rng()
    assert main(["train", "--method", "uafer", "--epochs", "2", "--batch-size", "8", "--lr", "3e-3", "--seed", "3",
                 "--device", "cpu", "--precision", "fp32", *SYNTH_SETS, "--out", str(tmp_path / "cli")]) == 0
    cli = read_checkpoint(tmp_path / "cli" / "checkpoints" / "last.safetensors").tensors

    shuffle_global_rng()
    split = _split("train")
    model = _uafer(split)
    history = model.train(_loader(model, split), epochs=2, learning_rate=3e-3, progress=False)
    assert [h["epoch"] for h in history] == [1, 2]
    assert_same(state(model.method.networks()), cli)


def _plain_loader(n: int, size: int, classes: int) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    return DataLoader(TensorDataset(x, torch.arange(n) % classes), batch_size=6)


@pytest.mark.parametrize("which", ["uafer", "dicefer"])
def test_api_resume_continues_to_the_uninterrupted_run(tmp_path, which):
    from ferkit import UAFER
    from ferkit.api.dicefer import DICEFER

    def build():
        if which == "uafer":
            return UAFER(num_classes=7, model_size="tiny", seed=2, device="cpu", precision="fp32")
        return DICEFER(seed=4, device="cpu", precision="fp32", stage1_epochs=1, stage2_epochs=1,
                       stage3_fit="epochs", **DICE_SMALL)         # stage 3 runs train.epochs: the one cut

    loader = _plain_loader(12, 64 if which == "uafer" else 40, 7 if which == "uafer" else 3)
    shuffle_global_rng()
    straight = build()
    straight.train(loader, epochs=2, learning_rate=1e-3, progress=False, out=str(tmp_path / "straight"))
    ref = state(straight.method.networks())

    shuffle_global_rng()
    first = build()
    first.train(loader, epochs=1, learning_rate=1e-3, progress=False, out=str(tmp_path / "cut"))
    assert not all(torch.equal(v, ref[k]) for k, v in state(first.method.networks()).items())
    shuffle_global_rng()
    again = build()                                   # a new session: a fresh object, then resume=
    again.train(loader, epochs=2, learning_rate=1e-3, progress=False, out=str(tmp_path / "cut"),
                resume=str(tmp_path / "cut"))
    assert_same(state(again.method.networks()), ref)
    assert "resumed from" in (tmp_path / "cut" / "log.txt").read_text()
    assert_same(read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors").tensors, ref)


def _cli_metrics(tmp_path, run) -> dict:
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "checkpoints" / "last.safetensors"), "--out", str(out), "--device", "cpu", "--no-leakage"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_uafer_api_evaluate_gives_ferkit_evaluate_metrics(tmp_path):
    from ferkit import UAFER

    run = tmp_path / "run"
    assert main(["train", "--method", "uafer", "--epochs", "1", "--batch-size", "8", "--seed", "3", "--device",
                 "cpu", "--precision", "fp32", *SYNTH_SETS, "--out", str(run)]) == 0
    cli = _cli_metrics(tmp_path, run)
    model = UAFER.load(run / "checkpoints" / "last.safetensors", device="cpu")
    api = model.evaluate(_loader(model, _split("test")))
    assert api["n"] == cli["num_samples"]
    head = cli["headline"]
    for key in ("accuracy", "mean_class_accuracy"):
        assert api[key] == pytest.approx(head[key], abs=1e-9), key
    assert api["ece"] == pytest.approx(cli["calibration"]["ece"], abs=1e-6)
    assert api["nll"] == pytest.approx(cli["calibration"]["nll"], abs=1e-5)


def test_dicefer_api_evaluate_gives_ferkit_evaluate_accuracy(tmp_path):
    from ferkit.api.dicefer import DICEFER

    sets = [a for k, v in DICE_SMALL.items() for a in ("--set", f"model.{k}={list(v) if isinstance(v, tuple) else v}")]
    run = tmp_path / "run"
    assert main(["train", "--method", "dicefer", "--epochs", "1", "--batch-size", "8", "--seed", "3", "--device",
                 "cpu", "--precision", "fp32", *sets, *SYNTH_SETS, "--out", str(run)]) == 0
    cli = _cli_metrics(tmp_path, run)
    model = DICEFER.load(run / "checkpoints" / "last.safetensors", device="cpu")
    assert model.evaluate(_loader(model, _split("test"))) == pytest.approx(cli["headline"]["accuracy"], abs=1e-9)
