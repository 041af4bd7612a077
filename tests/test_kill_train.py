"""`ferkit train` killed with SIGKILL at random (seeded) moments resumes to the uninterrupted run's weights.

Each trial starts ``python -m ferkit train`` (UA-FER on the tiny CLIP, 8 epochs of 2 steps, a checkpoint at
every epoch's end, so a kill often lands in a save), waits for its first epoch line, sleeps a random time
and sends SIGKILL; then ``ferkit train --resume`` (in this process) finishes the run, or, when the kill came
before the first checkpoint was committed, the run starts again. The final weights must equal those of
a run never killed, bit for bit. The slow test runs ten trials; the default suite runs two.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import weights
from ferkit.cli import main
from ferkit.engine import commit

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = Path(__file__).resolve().parents[1] / "src"
ARGS = ["train", "--method", "uafer", "--set", "model.model_size=tiny", "--set", "data.synth_identities=6",
        "--set", "data.synth_images_per_identity=7", "--set", "data.synth_size=64", "--epochs", "8",
        "--limit-batches", "2", "--batch-size", "8", "--device", "cpu", "--precision", "fp32", "--seed", "3",
        "--set", "train.eval_every=0"]
STEPS = 16


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    torch.set_num_threads(1)
    assert main([*ARGS, "--out", str(out)]) == 0
    return weights(out / "checkpoints" / "last.safetensors")


def _kill_at_random(out: Path, rng: random.Random) -> str:
    """Start a `ferkit train` process, SIGKILL it a random time after its first epoch; what was cut off."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "FERKIT_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "train epoch 1/" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(120) or proc.poll() is not None, "".join(lines)[-2000:]
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    assert code in (0, -signal.SIGKILL), "".join(lines)[-2000:]
    if code == 0:
        return "finished before the kill"
    ckpt = out / "checkpoints" / "last.safetensors"
    if not commit.exists(ckpt):
        return "killed before the first checkpoint"
    return "killed during a save" if commit.leftovers(ckpt) else "killed between saves"


def _trials(reference, tmp_path, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen = []
    for i in range(n):
        out = tmp_path / f"t{i}"
        what = _kill_at_random(out, rng)
        seen.append(what)
        if what == "killed before the first checkpoint":
            assert main([*ARGS, "--out", str(out)]) == 0
        elif what != "finished before the kill":
            assert main(["train", "--resume", str(out)]) == 0, what
        got = weights(out / "checkpoints" / "last.safetensors")
        assert got.keys() == reference.keys()
        diff = [k for k in reference if not torch.equal(reference[k], got[k])]
        assert not diff, f"trial {i} ({what}): {len(diff)} tensors differ, e.g. {diff[:2]}"
        assert read_steps(out) == STEPS
        assert not commit.leftovers(out / "checkpoints" / "last.safetensors")
    print("kill -9 trials:", seen)
    return seen


def read_steps(out: Path) -> int:
    from ferkit.engine.checkpoint import read_checkpoint

    return read_checkpoint(out / "checkpoints" / "last.safetensors").meta["position"]["global_step"]


def test_two_kills_resume_to_the_straight_run(reference, tmp_path):
    _trials(reference, tmp_path, 2, seed=0)


@pytest.mark.slow
def test_ten_kills_at_random_moments_resume_to_the_straight_run(reference, tmp_path):
    seen = _trials(reference, tmp_path, 10, seed=1)
    assert sum(s.startswith("killed") for s in seen) >= 5      # most trials were really cut off
