"""A run whose folder fills up or turns read-only stops with one sentence naming the folder, keeps its last
complete checkpoint, and resumes to the uninterrupted run's weights once there is room again.

Two ways to run out of room: a mocked write that raises ENOSPC after a chosen byte (always), and a real
small tmpfs filled mid-run, or remounted read-only (only as root, where ``mount`` works).
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
import torch

from engine_helpers import TinyMethod, tiny_config, toy_splits, weights
from ferkit.engine import commit
from ferkit.engine.checkpoint import read_checkpoint, save_checkpoint
from ferkit.engine.trainer import train
from ferkit.errors import CheckpointError, TrainingError

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(out, epochs: int = 3, resume=None):
    return train(tiny_config(out, epochs=epochs, eval_every=0), resume=str(resume) if resume else None,
                 splits=toy_splits(n_train=24, n_eval=7), progress=False, console=False)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("straight") / "run"
    _train(out)
    return weights(out / "checkpoints" / "last.safetensors")


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_sentence(msg: str) -> None:
    assert msg.count(". ") == 0 and msg.endswith("."), msg


def _full_after(byte: int, nth: int, wrap):
    """A ``_write_synced`` whose ``nth`` write (1-based) stops with ENOSPC after ``byte`` bytes."""
    calls = {"n": 0}

    def write(path, fn):
        calls["n"] += 1
        if calls["n"] != nth:
            return wrap(path, fn)

        def partial(p):
            fn(p)
            os.truncate(p, min(byte, os.path.getsize(p)))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return wrap(path, partial)
    return write


@pytest.mark.parametrize("nth, byte", [(4, 0), (5, 1000), (6, 10)])   # 2nd save: state, weights, manifest
def test_a_full_disk_mid_save_stops_in_one_sentence_and_resumes(straight, tmp_path, monkeypatch, nth, byte):
    run = tmp_path / "run"
    monkeypatch.setattr(commit, "_write_synced", _full_after(byte, nth, commit._write_synced))
    with pytest.raises(TrainingError) as e:
        _train(run)
    msg = str(e.value)
    assert msg.startswith(f"Training stopped: cannot write into {run / 'checkpoints'} (No space left on device); "
                          f"its last complete checkpoint (step 3) is kept, so free space or make the folder "
                          f"writable and resume with --resume {run}."), msg
    _one_sentence(msg)
    monkeypatch.undo()                                     # the space is back
    ckpt = run / "checkpoints" / "last.safetensors"
    assert not commit.leftovers(ckpt)                      # the failed save took back what it wrote
    assert read_checkpoint(ckpt).meta["position"]["global_step"] == 3
    _train(run, resume=run)
    assert _same(weights(ckpt), straight)


def test_safetensors_and_torch_writers_failing_for_room_are_named_as_such(tmp_path, monkeypatch):
    from safetensors import SafetensorError
    from torch import nn

    def rust_full(tensors, path, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", rust_full)
    with pytest.raises(CheckpointError) as e:
        save_checkpoint(tmp_path / "m.safetensors", {"net": nn.Linear(2, 2)}, {"method": "x"})
    assert str(e.value) == (f"Cannot write the checkpoint into {tmp_path} (No space left on device); the last "
                            "complete checkpoint there is kept, so free space or make the folder writable and "
                            "write it again.")
    assert not list(tmp_path.iterdir())


def test_a_failing_first_save_says_there_is_nothing_to_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(commit, "_write_synced", _full_after(0, 1, commit._write_synced))
    with pytest.raises(TrainingError, match="no checkpoint of this run is complete yet, so free space or make the "
                                            "folder writable and start the run again.$"):
        _train(run)


# --- a real file system: a small tmpfs (root only) ---------------------------------------------------------
def _mount(path, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=4m", *options)), "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    if os.geteuid() != 0 or not _mount(mnt):
        pytest.skip("needs root and mount (a small tmpfs)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _at_epoch_end(monkeypatch, epoch: int, act) -> None:
    real = TinyMethod.on_epoch_end

    def hook(self, phase, e):
        real(self, phase, e)
        if e == epoch:
            act()
    monkeypatch.setattr(TinyMethod, "on_epoch_end", hook)


def test_a_tmpfs_that_fills_up_mid_run_stops_and_resumes_when_space_returns(straight, tmpfs, monkeypatch):
    run, ballast = tmpfs / "run", tmpfs / "ballast"

    def fill() -> None:                                    # another program takes the rest of the disk
        with open(ballast, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC

    _at_epoch_end(monkeypatch, 1, fill)
    with pytest.raises(TrainingError) as e:
        _train(run)
    msg = str(e.value)
    assert f"cannot write into {run}" in msg and "(No space left on device)" in msg, msg
    assert "its last complete checkpoint (step 3) is kept" in msg and msg.endswith(f"resume with --resume {run}.")
    _one_sentence(msg)
    monkeypatch.undo()
    ballast.unlink()                                       # space returns
    _train(run, resume=run)
    assert _same(weights(run / "checkpoints" / "last.safetensors"), straight)


def test_a_checkpoint_folder_turned_read_only_mid_run_stops_and_resumes_once_writable(straight, tmpfs, monkeypatch):
    run = tmpfs / "run"
    ckpts = run / "checkpoints"

    def read_only() -> None:                               # a read-only mount over the checkpoints folder
        subprocess.run(["mount", "--bind", str(ckpts), str(ckpts)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ckpts)], check=True)

    _at_epoch_end(monkeypatch, 1, read_only)
    try:
        with pytest.raises(TrainingError) as e:
            _train(run)
    finally:
        subprocess.run(["umount", str(ckpts)], check=False)   # writable again
    msg = str(e.value)
    assert msg.startswith(f"Training stopped: cannot write into {ckpts} (Read-only file system); its last "
                          "complete checkpoint (step 3) is kept"), msg
    monkeypatch.undo()
    _train(run, resume=run)
    assert _same(weights(ckpts / "last.safetensors"), straight)


def test_a_read_only_output_folder_is_one_sentence_before_any_training(tmp_path):
    mnt = tmp_path / "ro"
    if os.geteuid() != 0 or not _mount(mnt, "ro"):
        pytest.skip("needs root and mount (a read-only tmpfs)")
    try:
        with pytest.raises(TrainingError) as e:
            _train(mnt / "run")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert str(e.value) == (f"Training stopped: cannot write into {mnt} (Read-only file system); no checkpoint of "
                            "this run is complete yet, so free space or make the folder writable and start the "
                            "run again.")


def test_ferkit_train_prints_the_sentence_and_exits_2(tmp_path, monkeypatch, capsys):
    from ferkit.cli import main

    monkeypatch.setattr(commit, "_write_synced", _full_after(100, 1, commit._write_synced))
    out = tmp_path / "run"
    code = main(["train", "--method", "baseline", "--epochs", "1", "--limit-batches", "1", "--batch-size", "8",
                 "--device", "cpu", "--set", "model.image_size=32", "--set", "data.synth_identities=4",
                 "--set", "data.synth_images_per_identity=4", "--set", "data.synth_size=32", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert err == (f"ferkit: error: Training stopped: cannot write into {out / 'checkpoints'} (No space left on "
                   "device); no checkpoint of this run is complete yet, so free space or make the folder writable "
                   "and start the run again.")


def test_access_errors_count_only_for_the_run_folder_and_its_making(tmp_path):
    run = tmp_path / "out" / "run"
    denied = errno.EACCES, os.strerror(errno.EACCES)
    making = commit.stopped_for_room(PermissionError(*denied, str(tmp_path / "out")), run, None)
    assert str(making).startswith(f"Training stopped: cannot write into {tmp_path} (Permission denied); no checkpoint")
    inside = commit.stopped_for_room(PermissionError(*denied, str(run / "metrics.csv")), run, 4)
    assert "cannot write into " + str(run) + " (Permission denied); its last complete checkpoint (step 4)" in str(inside)
    assert commit.stopped_for_room(PermissionError(*denied, str(tmp_path / "data" / "a.png")), run, 4) is None
    full = commit.stopped_for_room(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "cache" / "x")),
                                   run, 4)
    assert str(full).startswith(f"Training stopped: cannot write into {tmp_path / 'cache'} (No space left on device)")
    assert commit.stopped_for_room(ValueError("x"), run, 4) is None
