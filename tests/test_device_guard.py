"""Device bugs caught on the CPU: every method trains, validates, tests and predicts under ``HostDeviceGuard``
(tests/device_guard.py), which fails where a CUDA run would meet tensors of two devices; planted bugs (a stray
``.cpu()``, a tensor made without ``device=``, ``.numpy()`` of a device tensor) prove that it catches them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from device_guard import DeviceMismatch, HostDeviceGuard, is_host
from engine_helpers import TinyMethod, tiny_config, toy_splits
from ferkit.config import build_experiment
from ferkit.engine.checkpoint import load_method
from ferkit.engine.method import Prediction
from ferkit.engine.trainer import train
from ferkit.inference.model import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_guard_tells_host_from_device_tensors_as_cuda_would():
    dev = torch.device("cpu")                      # stands for the configured device
    with HostDeviceGuard() as guard:
        x = torch.randn(4, 3, device=dev)
        assert not is_host(x) and is_host(torch.zeros(3)) and is_host(x.cpu()) and not is_host(x)
        assert not is_host(torch.zeros(3).to(dev)) and not is_host(torch.zeros_like(x) + x.new_ones(3))
        y = x * torch.tensor(2.0) + torch.ones(3, device=x.device)      # a 0-dim host scalar is allowed
        assert not is_host(y)
        with pytest.raises(DeviceMismatch, match="host tensor"):
            x + torch.arange(3)
        with pytest.raises(DeviceMismatch, match="host tensor"):
            x @ torch.from_numpy(torch.ones(3, 2).numpy())
        with pytest.raises(DeviceMismatch, match="numpy"):
            x.numpy()
        assert x.detach().cpu().numpy().shape == (4, 3)
        net = torch.nn.Linear(3, 2)                 # made on the host, as every nn.Module is
        with pytest.raises(DeviceMismatch):
            net(x)
        net.to(dev)
        assert not is_host(net(x))
        x.new_zeros(2).copy_(torch.ones(2))         # copy_ crosses devices legally (load_state_dict)
    assert guard.checked > 0
    assert torch.from_numpy.__module__ == "torch"   # restored on exit


def _run(tmp_path, guard: bool):
    cfg = tiny_config(tmp_path / ("guarded" if guard else "plain"), epochs=1, eval_every=1)
    splits = toy_splits(n_train=16, n_eval=7, size=8)
    if not guard:
        return train(cfg, splits=splits, progress=False)
    with HostDeviceGuard():
        return train(cfg, splits=splits, progress=False)


def _planted_cpu_target(self, phase, batch, ctx):
    logits = self.net(batch["image"])
    loss = F.cross_entropy(logits, batch["expression"].cpu())          # the planted bug: a stray .cpu()
    ctx.step({"ce": loss}, ["adam"])
    return {"ce": loss.item()}


def _planted_weight_without_device(self, phase, batch, ctx):
    logits = self.net(batch["image"])
    weight = torch.ones(logits.shape[1])                                # the planted bug: no device=
    loss = F.cross_entropy(logits, batch["expression"], weight=weight)
    ctx.step({"ce": loss}, ["adam"])
    return {"ce": loss.item()}


@torch.no_grad()
def _planted_numpy_predict(self, images):
    probs = self.net(images).softmax(1)
    return Prediction(probs=torch.as_tensor(probs.numpy()))          # the planted bug: .numpy() on the device


@pytest.mark.parametrize("name, planted", [("train_step", _planted_cpu_target),
                                           ("train_step", _planted_weight_without_device),
                                           ("predict", _planted_numpy_predict)])
def test_planted_device_bugs_pass_on_the_cpu_and_fail_under_the_guard(tmp_path, monkeypatch, name, planted):
    monkeypatch.setattr(TinyMethod, name, planted)
    assert _run(tmp_path, guard=False).metrics["steps"] == 2        # unguarded, the CPU run hides the bug
    with pytest.raises(DeviceMismatch):
        _run(tmp_path, guard=True)


def test_the_clean_tiny_method_passes_under_the_guard(tmp_path):
    assert _run(tmp_path, guard=True).metrics["steps"] == 2


DICE_TINY = {"image_size": 32, "critic_hidden": 16, "disc_hidden": [16, 8], "classifier_hidden": [16, 8],
             "stage1_epochs": 1, "stage2_epochs": 1, "stage3_epochs": 1}
METHODS = {
    "baseline": {"image_size": 32, "augment": "flip"},
    "dicefer": DICE_TINY,
    "uafer": {"model_size": "tiny", "fix_layer": 1},
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_and_predicts_under_the_guard(tmp_path, method):
    cfg = build_experiment(method, {"dataset": "toy"},
                           {"epochs": 1, "batch_size": 8, "lr": 1e-3, "precision": "fp32", "device": "cpu",
                            "limit_batches": 2, "out": str(tmp_path / method)}, METHODS[method])
    splits = toy_splits(n_train=16, n_eval=8, size=32)
    with HostDeviceGuard() as guard:
        result = train(cfg, splits=splits, progress=False)       # train steps, validation and the test split
        loaded = load_method(result.checkpoint, device="cpu")
        images = torch.rand(3, *_input_shape(loaded)).to(torch.device("cpu"))
        pred = loaded.predict(images)
        rows = load_model(result.checkpoint, device="cpu", engine="torch").predict_crops(
            [np.full((40, 40, 3), 30 * i, np.uint8) for i in range(3)])      # the predict path: numpy in and out
    assert result.metrics["steps"] >= 2 and guard.checked > 100
    assert pred.probs.shape == (3, 7) and rows["probs"].shape == (3, 7)
    assert dataclasses.is_dataclass(pred)


def _input_shape(method) -> tuple[int, int, int]:
    pre = method.preprocessing()
    return pre.channels, pre.size, pre.size
