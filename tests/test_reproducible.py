"""Every training loop is the engine's, so the same seed writes the same weights, and the API trains what the
CLI trains: ``ferkit train``, both pretrainers and both API classes, each run twice in one process (the
global RNG differs between the runs, as it does between two processes), and DICEFER(...).train against
``ferkit train --method dicefer`` with the same settings and seed."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ferkit.cli import main
from ferkit.engine.checkpoint import read_checkpoint

#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")

#: a small DICE-FER, the same through the CLI (--set model.KEY=VALUE) and the API (keywords)
DICE_SMALL = {"image_size": 32, "critic_hidden": 16, "disc_hidden": (16, 8), "classifier_hidden": (16, 8)}
SYNTH = {"synth_identities": 6, "synth_images_per_identity": 5, "synth_size": 32}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def state(networks: dict) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().cpu().clone() for n, m in networks.items() for k, v in m.state_dict().items()}


def shuffle_global_rng() -> None:
    """Move the global RNG on between two runs, as a fresh process would start from another seed."""
    torch.rand(17)


#: per method, the --set flags that make its run small (UA-FER: the tiny CLIP its synthetic preset uses)
SMALL_MODEL = {"baseline": ["--set", "model.image_size=32"],
               "dicefer": [a for k, v in DICE_SMALL.items()
                           for a in ("--set", f"model.{k}={list(v) if isinstance(v, tuple) else v}")],
               "uafer": ["--set", "model.model_size=tiny"]}


@pytest.mark.parametrize("method", ["baseline", "dicefer", "uafer"])
def test_ferkit_train_twice_writes_the_same_weights(tmp_path, method):
    args = ["train", "--method", method, "--epochs", "1", "--limit-batches", "2", "--batch-size", "8",
            "--seed", "5", "--device", "cpu", *SMALL_MODEL[method],
            *[a for k, v in SYNTH.items() for a in ("--set", f"data.{k}={v}")]]
    for i in range(2):
        shuffle_global_rng()
        assert main([*args, "--out", str(tmp_path / f"run{i}")]) == 0
    weights = [read_checkpoint(tmp_path / f"run{i}" / "checkpoints" / "last.safetensors").tensors for i in range(2)]
    assert_same(*weights)


def test_pretrain_resnet18_twice_writes_the_same_weights(tmp_path):
    """The flip augmentation used to come from the unseeded global RNG: two runs differed (0.1 after 2 epochs)."""
    for i in range(2):
        shuffle_global_rng()
        assert main(["pretrain", "resnet18", "--out", str(tmp_path / f"r{i}.pth"), "--synth-identities", "4",
                     "--synth-images", "10", "--size", "32", "--epochs", "2", "--batch-size", "16",
                     "--precision", "fp32"]) == 0
    a, b = (torch.load(tmp_path / f"r{i}.pth", weights_only=True)["state_dict"] for i in range(2))
    assert_same(a, b)
    assert (tmp_path / "r0.csv").read_text().splitlines()[0] == "epoch,loss,accuracy,seconds"


def test_pretrain_clip_twice_writes_the_same_weights(tmp_path):
    for i in range(2):
        shuffle_global_rng()
        assert main(["pretrain", "clip", "--out", str(tmp_path / f"c{i}.pt"), "--synth-identities", "6",
                     "--synth-images", "6", "--epochs", "2", "--batch-size", "12", "--precision", "fp32"]) == 0
    a, b = (torch.load(tmp_path / f"c{i}.pt", weights_only=True)["state_dict"] for i in range(2))
    assert_same(a, b)


def test_dicefer_api_trains_what_ferkit_train_trains(tmp_path):
    from ferkit.api.dicefer import DICEFER
    from ferkit.config import DataConfig
    from ferkit.data.datasets import splits_from_config
    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    sets = [a for k, v in DICE_SMALL.items() for a in ("--set", f"model.{k}={list(v) if isinstance(v, tuple) else v}")]
    sets += [a for k, v in SYNTH.items() for a in ("--set", f"data.{k}={v}")]
    shuffle_global_rng()
    assert main(["train", "--method", "dicefer", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--seed", "3",
                 "--device", "cpu", "--precision", "fp32", "--set", "model.zeta_adv=0.1", *sets,
                 "--out", str(tmp_path / "cli")]) == 0
    cli = read_checkpoint(tmp_path / "cli" / "checkpoints" / "last.safetensors").tensors

    shuffle_global_rng()
    model = DICEFER(lambda_adv=0.1, seed=3, device="cpu", precision="fp32", **DICE_SMALL)
    split = splits_from_config(DataConfig(**SYNTH))["train"]
    loader = DataLoader(FERDataset(split, build_transform(model.preprocessing, train=False), progress=False),
                        batch_size=8)
    history = model.train(loader, epochs=1, learning_rate=1e-3, progress=False)
    assert [h["phase"] for h in history] == ["stage1", "stage2", "stage3"]
    assert_same(state(model.method.networks()), cli)


@pytest.mark.slow
def test_dicefer_api_on_a_plain_loader_twice_gives_the_same_weights(tmp_path):
    """Plain loaders, a validation loader (best epoch kept) and out= (a run folder); about 40 s."""
    from ferkit.api.dicefer import DICEFER

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 40, 40, generator=gen)
    y = torch.arange(12) % 3
    runs = []
    for i in range(2):
        shuffle_global_rng()
        loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True, generator=torch.Generator().manual_seed(1))
        model = DICEFER(seed=4, device="cpu", precision="fp32", **DICE_SMALL)
        model.train(loader, val_loader=loader, epochs=1, learning_rate=1e-3, progress=False,
                    out=str(tmp_path / f"run{i}") if i else None)
        runs.append(state(model.method.networks()))
        assert model.selected["split"] == "val" and model.history[-1]["val_accuracy"] >= 0.0
    assert_same(*runs)
    assert (tmp_path / "run1" / "checkpoints" / "best.safetensors").is_file()      # out= keeps a run folder


def test_uafer_api_twice_gives_the_same_weights():
    from ferkit.api.uafer import UAFER

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=gen)
    y = torch.arange(12) % 7
    runs = []
    for _ in range(2):
        shuffle_global_rng()
        model = UAFER(num_classes=7, model_size="tiny", seed=2, device="cpu", precision="fp32")
        model.train(DataLoader(TensorDataset(x, y), batch_size=6), epochs=1, learning_rate=1e-3, progress=False)
        assert [h["steps"] for h in model.history] == [2]
        runs.append(state(model.method.networks()))
    assert_same(*runs)
