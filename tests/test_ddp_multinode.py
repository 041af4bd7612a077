"""Two "nodes" on loopback: two torchrun launchers (``--nnodes 2 --nproc-per-node 1``, c10d rendezvous on
127.0.0.1) each running ``python -m ferkit train``. The two ranks must end with the weights of one process
training on the same global batches (batch 4 per rank x 2 == batch 8 in one process; tolerance 1e-5, the
gradient all-reduce sums in another order), the run folder must be written by one rank only, and a run
resumed across a restart (2 epochs, then ``--resume --epochs 4`` on two new launchers) must match 4
uninterrupted epochs of one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from test_compare import _run_env, _toy_folder

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, batch_size: int) -> Path:
    cfg = {"method": "tiny_test", "data": {"dataset": "folder", "data_path": str(tmp / "data"), "cache": False},
           "train": {"epochs": 2, "batch_size": batch_size, "lr": 3e-2, "precision": "fp32", "device": "cpu"},
           "model": {"image_size": 8, "augment": "none"}}
    path = tmp / f"batch{batch_size}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env() -> dict:
    return {**os.environ, **_run_env(), "OMP_NUM_THREADS": "1"}


def _two_nodes(train_args: list[str], log_dir: Path) -> None:
    """Two torchrun launchers, one per "node", meeting at a c10d rendezvous on loopback; both must succeed."""
    port = _free_port()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"ferkit-{port}",
              "-m", "ferkit", "train", *train_args]
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [open(log_dir / f"node{i}.log", "w") for i in range(2)]
    procs = [subprocess.Popen(launch, stdout=f, stderr=subprocess.STDOUT, env=_env()) for f in logs]
    try:
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for f in logs:
            f.close()
    text = "\n".join((log_dir / f"node{i}.log").read_text()[-3000:] for i in range(2))
    assert codes == [0, 0], text


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "last.safetensors")


def _close(a: dict, b: dict) -> None:
    nets = [k for k in a if k.startswith("net") or "." in k]
    assert nets and set(a) == set(b)
    for k in nets:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_two_nodes_match_one_process_and_resume_across_a_restart(tmp_path):
    _toy_folder(tmp_path / "data")
    two, one = _config(tmp_path, 4), _config(tmp_path, 8)
    run = tmp_path / "two_nodes"
    _two_nodes(["--config", str(two), "--out", str(run)], tmp_path / "launch1")
    log = (run / "log.txt").read_text()
    assert "processes 2" in log
    assert log.count("train epoch 1/2:") == 1 and log.count("train epoch 2/2:") == 1   # written by rank 0 only
    assert len((run / "metrics.csv").read_text().splitlines()) == 3                     # header + 2 epochs
    assert not [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name]   # no second writer's temp

    single2 = tmp_path / "one_process_2"
    subprocess.run([sys.executable, "-m", "ferkit", "train", "--config", str(one), "--out", str(single2)],
                   env=_env(), check=True, capture_output=True, timeout=300)
    _close(_weights(run), _weights(single2))

    _two_nodes(["--resume", str(run), "--epochs", "4"], tmp_path / "launch2")   # two new launchers: a restart
    single4 = tmp_path / "one_process_4"
    subprocess.run([sys.executable, "-m", "ferkit", "train", "--config", str(one), "--out", str(single4),
                    "--epochs", "4"], env=_env(), check=True, capture_output=True, timeout=300)
    resumed, straight = _weights(run), _weights(single4)
    _close(resumed, straight)
    assert not all(torch.equal(resumed[k], _weights(single2)[k]) for k in resumed)    # epochs 3-4 did train
