"""torchrun with 2 CPU processes (gloo): both ranks end with identical weights, equal to one process
training on the same global batches (batch 4 per rank x 2 ranks == batch 8 in one process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from engine_helpers import TinyMethod, tiny_config, toy_splits
from ferkit.engine.trainer import train

WORKER = """
import os, sys
sys.path.insert(0, {tests!r})
import torch
from engine_helpers import TinyMethod, tiny_config, toy_splits
from ferkit.engine.trainer import train

out = sys.argv[1]
train(tiny_config(out + "/run", epochs=2, batch_size=4), splits=toy_splits(), progress=False)
torch.save(TinyMethod.last.net.state_dict(), f"{{out}}/rank{{os.environ['RANK']}}.pt")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_train_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FERKIT_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()   # written by rank 0 only
    assert "processes 2" in (tmp_path / "run" / "log.txt").read_text()

    train(tiny_config(tmp_path / "single", epochs=2, batch_size=8), splits=toy_splits(), progress=False)
    single = TinyMethod.last.net.state_dict()
    assert all(torch.allclose(single[k], w0[k], atol=1e-5) for k in single)


def test_an_unknown_backend_is_one_sentence_before_any_process_group(monkeypatch):
    import pytest

    from ferkit.engine.distributed import init_distributed
    from ferkit.errors import ConfigError

    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1",
                 "FERKIT_DIST_BACKEND": "mpi"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="FERKIT_DIST_BACKEND=mpi is not known; use nccl or gloo"):
        init_distributed("cpu")
