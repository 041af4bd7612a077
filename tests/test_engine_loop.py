"""The training loop: non-finite steps are refused and counted, a run of them stops training, data order."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine_helpers import TinyMethod, tiny_config, toy_splits, weights
from ferkit.engine.checkpoint import read_checkpoint
from ferkit.engine.trainer import train
from ferkit.errors import TrainingError


def test_nonfinite_steps_are_refused_counted_and_logged(tmp_path):
    TinyMethod.trace.clear()
    cfg = tiny_config(tmp_path / "run", epochs=1, model={"nan_steps": [1, 3]})
    result = train(cfg, splits=toy_splits(), progress=False)
    trace = {step: (ok, changed) for step, ok, changed in TinyMethod.trace}
    assert len(trace) == 7                                    # 56 samples / batch 8
    for step in (1, 3):
        assert trace[step] == (False, False)                  # refused, weights untouched
    for step in (0, 2, 4, 5, 6):
        assert trace[step] == (True, True)                    # normal steps do update
    assert result.metrics["refused_steps"] == 2
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert rows[0]["refused_steps"] == "2"
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "step 1: 'ce' is not finite; step refused" in log and "step 3:" in log
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["refused_steps"] == 2
    assert all(torch.isfinite(t).all() for t in weights(result.run_dir / "checkpoints" / "last.safetensors").values())


def test_nonfinite_in_a_row_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path / "run", epochs=3, max_nonfinite_in_row=3, model={"nan_from": 7})
    with pytest.raises(TrainingError, match=r"3 steps in a row had a non-finite 'ce'.*last good checkpoint"):
        train(cfg, splits=toy_splits(), progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert ckpt.meta["position"] == {"phase": 0, "epoch": 1, "batch": 0, "global_step": 7}   # end of epoch 1
    good = tiny_config(tmp_path / "good", epochs=1)
    ref = train(good, splits=toy_splits(), progress=False)
    ref_w = weights(ref.run_dir / "checkpoints" / "last.safetensors")
    assert all(torch.equal(ckpt.tensors[k], ref_w[k]) for k in ref_w)


def test_all_nan_from_the_start_stops_with_a_readable_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path / "run", epochs=1, max_nonfinite_in_row=4, model={"nan_from": 0})
    with pytest.raises(TrainingError, match="4 steps in a row"):
        train(cfg, splits=toy_splits(), progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert all(torch.isfinite(t).all() for t in ckpt.tensors.values())


def test_data_order_is_seeded_sharded_and_complete(tmp_path):
    from ferkit.engine.loop import TrainData, batch_plan
    from ferkit.methods.registry import get_method

    cfg = tiny_config(tmp_path / "run")
    split = toy_splits(n_train=29)["train"]
    method = get_method("tiny_test")(cfg, split.label_space, torch.device("cpu"))
    phase = method.phases()[0]

    def indices(rank: int, world: int, epoch: int) -> list[int]:
        info = SimpleNamespace(rank=rank, world_size=world, is_main=rank == 0)
        data = TrainData(method, phase, 0, split, cfg, info)
        return [k[2] for b in batch_plan(data, epoch, 4, None, info) for k in b]

    one = indices(0, 1, 0)
    assert sorted(one) == list(range(29))                               # every sample once
    assert one == indices(0, 1, 0) and one != indices(0, 1, 1)           # seeded per epoch
    r0, r1 = indices(0, 2, 0), indices(1, 2, 0)
    assert len(r0) == len(r1) == 15                                      # padded to 30 like DistributedSampler
    assert set(r0) | set(r1) == set(range(29))
    assert np.array_equal(np.array(r0 + r1)[np.argsort(np.r_[0:30:2, 1:30:2])][:29], np.array(one))


def test_auto_precision_is_bf16_only_where_it_is_faster(monkeypatch):
    """bf16 autocast on CPUs with AMX; fp32 on AVX512-BF16-only CPUs, where bf16 measured slower."""
    import platform

    from ferkit.engine import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for flags, auto in (({"avx512f", "avx512_bf16"}, None), ({"avx512_bf16", "amx_bf16", "amx_tile"}, torch.bfloat16),
                        (set(), None)):
        monkeypatch.setattr(devices, "cpu_flags", lambda f=frozenset(flags): f)
        assert devices.amp_dtype(cpu, "auto") is auto, flags
        assert devices.amp_dtype(cpu, "bf16") is torch.bfloat16 and devices.amp_dtype(cpu, "fp32") is None


def test_forced_bf16_on_a_cpu_without_bf16_instructions_warns_once(monkeypatch, caplog):
    """AVX2-only CPUs emulate bf16 (matmul measured 75x slower than fp32): forcing it says so, once."""
    import logging
    import platform

    from ferkit.engine import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    devices._warn_emulated_bf16.cache_clear()
    for flags, warns in (({"avx512_bf16"}, False), ({"amx_bf16"}, False), ({"avx2", "fma"}, True)):
        monkeypatch.setattr(devices, "cpu_flags", lambda f=frozenset(flags): f)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ferkit.engine.devices"):
            assert devices.amp_dtype(cpu, "bf16") is torch.bfloat16
            devices.amp_dtype(cpu, "bf16")
        said = [r for r in caplog.records if "emulated" in r.getMessage()]
        assert len(said) == (1 if warns else 0), flags
    devices._warn_emulated_bf16.cache_clear()


def test_default_precision_is_fp32_even_where_auto_would_pick_bf16(monkeypatch):
    """On an AMX CPU (where ``auto`` means bf16) every default is still exact: the training config, the
    API classes, the pretraining configs and CLIs; bf16 and auto stay one flag away."""
    import platform

    from ferkit import UAFER
    from ferkit.cli import build_parser
    from ferkit.config import TrainConfig
    from ferkit.engine import devices
    from ferkit.pretrain.clip import ClipPretrainConfig
    from ferkit.pretrain.resnet import IdentityPretrainConfig

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16", "amx_tile"}))
    cpu = torch.device("cpu")
    assert devices.amp_dtype(cpu, "auto") is torch.bfloat16            # the hardware choice, opt-in
    assert TrainConfig().precision == "fp32" and devices.amp_dtype(cpu) is None
    assert ClipPretrainConfig().precision == "fp32" and IdentityPretrainConfig().precision == "fp32"
    assert UAFER(model_size="tiny", fix_layer=1, device="cpu").amp_dtype is None
    parser = build_parser()
    for argv in (["pretrain", "clip", "--out", "x"], ["pretrain", "resnet18", "--out", "x"]):
        assert parser.parse_args(argv).precision == "fp32", argv
    assert parser.parse_args(["pretrain", "clip", "--out", "x", "--precision", "bf16"]).precision == "bf16"
