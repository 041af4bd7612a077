"""The device path: training, resume, precision, export and predict on the device ``FERKIT_TEST_DEVICE`` names
(default ``cpu``; ``benchmarks/device_check.sh`` runs ``pytest -m device`` with ``FERKIT_TEST_DEVICE=cuda``).

Each test is small enough for the default suite on a CPU; on a GPU they are the CUDA checks: a resume that
must give bit-identical weights with deterministic kernels, bf16 autocast, an ONNX export of a model trained
there, and predictions there that agree with the CPU's.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from engine_helpers import toy_splits, weights
from ferkit.config import build_experiment
from ferkit.engine.devices import amp_dtype, resolve_device
from ferkit.engine.trainer import train

DEVICE = os.environ.get("FERKIT_TEST_DEVICE", "cpu")
#: no one_thread fixture: the module's reference run (a module fixture) starts before any function fixture, and
#: a CPU's results depend on its thread count, so the resume must run at the same count
pytestmark = pytest.mark.device


def _cfg(out, **train_over):
    t = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "precision": "fp32", "device": DEVICE, "out": str(out),
         "eval_every": 0, "deterministic": True, **train_over}
    return build_experiment("baseline", {"dataset": "toy"}, t, {"image_size": 32, "augment": "flip"})


@pytest.fixture(scope="module")
def splits():
    return toy_splits(n_train=24, n_eval=7, size=32)       # 3 batches of 8 per epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory, splits):
    return train(_cfg(tmp_path_factory.mktemp("device") / "run"), splits=splits, progress=False)


def test_the_named_device_is_the_one_trained_on(trained):
    device = resolve_device(DEVICE)
    log = (trained.run_dir / "log.txt").read_text()
    assert f"device {device}" in log and "deterministic kernels on" in log
    assert trained.metrics["steps"] == 6
    w = weights(trained.checkpoint)
    assert w and all(torch.isfinite(v.float()).all() for v in w.values())
    assert all(v.device.type == "cpu" for v in w.values())      # checkpoints hold host tensors


def test_resume_on_the_device_gives_bit_identical_weights(tmp_path, trained, splits):
    cfg = _cfg(tmp_path / "b", max_steps=4)                     # stop inside epoch 2, then resume
    train(cfg, splits=splits, progress=False)
    again = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=None))
    resumed = train(again, resume=str(tmp_path / "b"), splits=splits, progress=False)
    ref, got = weights(trained.checkpoint), weights(resumed.checkpoint)
    diff = [k for k in ref if not torch.equal(ref[k], got[k])]
    assert not diff, f"{len(diff)} of {len(ref)} tensors differ after a resume on {DEVICE}, e.g. {diff[:3]}"


def test_bf16_autocast_trains_on_the_device(tmp_path, splits):
    device = resolve_device(DEVICE)
    assert amp_dtype(device, "bf16") == torch.bfloat16
    result = train(_cfg(tmp_path / "bf16", epochs=1, precision="bf16"), splits=splits, progress=False)
    assert "bf16 autocast" in (result.run_dir / "log.txt").read_text()
    assert result.metrics["steps"] == 3 and result.metrics["refused_steps"] == 0
    assert all(torch.isfinite(v.float()).all() for v in weights(result.checkpoint).values())


def _crops() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for _ in range(5)]


def test_predict_on_the_device_agrees_with_the_cpu(trained):
    from ferkit.inference.model import load_model

    there = load_model(trained.checkpoint, device=DEVICE, engine="torch").predict_crops(_crops())
    here = load_model(trained.checkpoint, device="cpu", engine="torch").predict_crops(_crops())
    # TF32 convolutions (cuDNN's default on Ampere and later) move the probabilities by ~1e-3 at most here
    np.testing.assert_allclose(there["probs"], here["probs"], atol=5e-3)
    assert (there["probs"].argmax(1) == here["probs"].argmax(1)).mean() >= 0.8


def test_a_model_trained_on_the_device_exports_and_runs_in_onnxruntime(tmp_path, trained):
    from ferkit.export import export_onnx
    from ferkit.inference.model import load_model

    out = tmp_path / "model.onnx"
    export_onnx(trained.checkpoint, out)                        # parity-checked against torch on export
    model = load_model(out, device=DEVICE, engine="onnx")
    providers = model.engine.session.get_providers()
    assert providers and providers[-1] == "CPUExecutionProvider"
    rows = model.predict_crops(_crops())
    torch_rows = load_model(trained.checkpoint, device="cpu", engine="torch").predict_crops(_crops())
    np.testing.assert_allclose(rows["probs"], torch_rows["probs"], atol=1e-4)
