"""``--deterministic`` (config key ``train.deterministic``): two runs with it are identical, the checkpoint and
the run log record it, the ops without a deterministic kernel are named, and the process's settings come back
afterwards; ``compare`` and ``demo`` pass it on to every training."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import yaml

from ferkit.cli import main
from ferkit.engine.checkpoint import read_checkpoint
from ferkit.engine.seeding import deterministic_run

pytestmark = pytest.mark.usefixtures("one_thread")

SYNTH = ["--set", "data.synth_identities=6", "--set", "data.synth_images_per_identity=5",
         "--set", "data.synth_size=32", "--set", "model.image_size=32"]


def _train(out, *extra) -> int:
    return main(["train", "--method", "baseline", "--epochs", "1", "--limit-batches", "2", "--batch-size", "8",
                 "--seed", "3", "--device", "cpu", "--set", "train.eval_every=0", *SYNTH, "--out", str(out), *extra])


def test_two_deterministic_runs_write_identical_weights_and_say_so(tmp_path):
    for i in range(2):
        torch.rand(11)                                  # a different global RNG state before each run
        assert _train(tmp_path / f"r{i}", "--deterministic") == 0
        assert not torch.are_deterministic_algorithms_enabled()     # the run gave the setting back
    a, b = (read_checkpoint(tmp_path / f"r{i}" / "checkpoints" / "last.safetensors") for i in range(2))
    assert a.tensors.keys() == b.tensors.keys() and a.tensors
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert a.meta["config"]["train"]["deterministic"] is True
    assert a.meta["deterministic"] == {"enabled": True, "nondeterministic_ops": []}
    log = (tmp_path / "r0" / "log.txt").read_text()
    assert "deterministic kernels on" in log
    assert "deterministic kernels: on; no op warned" in log
    metrics = json.loads((tmp_path / "r0" / "metrics.json").read_text())
    assert metrics["deterministic"] is True and metrics["nondeterministic_ops"] == []


def test_without_the_flag_the_run_records_it_off(tmp_path):
    assert _train(tmp_path / "r") == 0
    ckpt = read_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert ckpt.meta["deterministic"]["enabled"] is False
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]["deterministic"] is False
    assert "deterministic kernels: off" in (tmp_path / "r" / "log.txt").read_text()


def test_the_ops_without_a_deterministic_kernel_are_named_and_other_warnings_pass():
    with pytest.warns(UserWarning, match="unrelated"):
        with deterministic_run(True) as found:
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.is_deterministic_algorithms_warn_only_enabled()
            # put_ without accumulate has no deterministic CPU kernel (torch warns under warn_only=True)
            torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
            warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert found.ops == {"put_"}
    assert "1 op(s) have no deterministic implementation" in found.summary() and "put_" in found.summary()
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_run(False) as off:
        assert not torch.are_deterministic_algorithms_enabled()
    assert not off.enabled and off.summary().startswith("deterministic kernels: off")


def test_compare_passes_the_flag_to_every_configuration(tmp_path, monkeypatch):
    seen = {}

    class Study:
        def __init__(self, out, configs, seeds, evaluation, contrasts=(), **kwargs):   # folds, ...:
            seen.update(configs)

        def __getattr__(self, name):          # the first thing the coordinator asks of the study: stop there
            raise SystemExit(0)

    monkeypatch.setattr("ferkit.study.runner.Study", Study)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text("method: baseline\n")
    with pytest.raises(SystemExit):
        main(["compare", f"a={tmp_path / 'a.yaml'}", f"b={tmp_path / 'b.yaml'}", "--seeds", "2",
              "--out", str(tmp_path / "study"), "--deterministic"])
    assert set(seen) == {"a", "b"}
    assert all(cfg["train"]["deterministic"] is True for cfg in seen.values())


def test_demo_runs_everything_deterministic_with_the_flag(tmp_path, monkeypatch):
    seen = []

    def run_demo(*args, deterministic=False, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), deterministic))
        return []

    monkeypatch.setattr("ferkit.commands.demo.run_demo", run_demo)
    assert main(["demo", "--quick", "--deterministic", "--out", str(tmp_path)]) == 0
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    assert seen == [(True, True), (False, False)]
