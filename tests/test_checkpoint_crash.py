"""A kill at any step of a checkpoint save leaves a pair that resumes to the uninterrupted run, bit for bit.

``crash_helpers.py`` (a subprocess) ends a resumed run of the tiny method with ``os._exit`` at each step of
its first save: before each write, after half of each write, before each fsync and each rename, and after
the whole save. Each folder is then resumed here: a crash before the manifest rename resumes from the
previous checkpoint (step 3) and says in one line that it discarded the half-written one; a crash after it
resumes from the new one (step 6); both end on the straight run's weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine_helpers import tiny_config, toy_splits, weights
from ferkit.engine.checkpoint import read_checkpoint, read_resume_pair, save_checkpoint
from ferkit.engine.commit import leftovers
from ferkit.engine.trainer import train
from ferkit.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")
HERE = Path(__file__).parent


def _train(out, epochs: int, resume=None):
    return train(tiny_config(out, epochs=epochs, eval_every=0), resume=str(resume) if resume else None,
                 splits=toy_splits(n_train=24, n_eval=7), progress=False, console=False)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("straight")
    _train(root / "a", 3)
    _train(root / "base", 1)                      # the checkpoint every crashed run resumes from (step 3)
    return weights(root / "a" / "checkpoints" / "last.safetensors"), root / "base"


def test_a_kill_at_every_step_of_a_save_resumes_to_the_straight_run(straight, tmp_path):
    ref, base = straight
    env = {"PYTHONPATH": f"{HERE.parent / 'src'}:{HERE}", "OMP_NUM_THREADS": "1", "FERKIT_NO_PROGRESS": "1",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(HERE / "crash_helpers.py"), str(base), str(tmp_path), "3"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    plan = json.loads((tmp_path / "points.json").read_text())
    steps, points = plan["steps"], plan["points"]
    # the save's steps: 3 writes (state, weights, manifest), 3 renames (manifest first), fsyncs of files and folder
    assert sum(s.startswith("write") for s in steps) == 3 and sum(s.startswith("rename") for s in steps) == 3
    assert steps.index(next(s for s in steps if s.endswith(".commit"))) < steps.index(
        next(s for s in steps if s.endswith("-> last.safetensors")))
    assert steps[-1] == "fsync" and steps.count("fsync") >= 5
    assert len(points) == len(steps) + 1 + 3
    kinds = {(p["committed"], p["staged"]) for p in points}
    assert kinds == {(False, False), (False, True), (True, True)}      # every case was reached
    for p in points:
        run = Path(p["dir"])
        ckpt, _, note = read_resume_pair(run / "checkpoints" / "last.safetensors")
        assert ckpt.meta["position"]["global_step"] == (6 if p["committed"] else 3), p
        assert (note is not None) == (p["staged"] and not p["committed"]), p
        result = _train(run, 3, resume=run)
        assert result.metrics["steps"] == 9
        assert _same(weights(run / "checkpoints" / "last.safetensors"), ref), f"crash at {p['step']}: weights differ"
        log = (run / "log.txt").read_text()
        assert log.count("discarded a half-written checkpoint") == (1 if note else 0), p
        assert not leftovers(run / "checkpoints" / "last.safetensors"), p      # the next save cleaned up


def test_a_checkpoint_of_the_earlier_layout_still_resumes(straight, tmp_path):
    ref, base = straight
    import shutil

    run = tmp_path / "old"
    shutil.copytree(base, run)
    (run / "checkpoints" / "last.safetensors.commit").unlink()       # the layout before manifests: the pair alone
    _train(run, 3, resume=run)
    assert _same(weights(run / "checkpoints" / "last.safetensors"), ref)


def test_an_earlier_layout_pair_from_two_saves_is_still_refused(tmp_path):
    from torch import nn

    nets = {"net": nn.Linear(2, 2)}
    a = save_checkpoint(tmp_path / "a.safetensors", nets, {"method": "x"}, {"position": {}})
    state = (tmp_path / "a.safetensors.state.pt").read_bytes()
    save_checkpoint(tmp_path / "a.safetensors", nets, {"method": "x"}, {"position": {}})
    (tmp_path / "a.safetensors.commit").unlink()
    (tmp_path / "a.safetensors.state.pt").write_bytes(state)          # a state of another save, no manifest
    with pytest.raises(CheckpointError, match="does not belong to a.safetensors"):
        read_resume_pair(a)


def test_a_damaged_manifest_is_one_sentence(tmp_path):
    from torch import nn

    a = save_checkpoint(tmp_path / "a.safetensors", {"net": nn.Linear(2, 2)}, {"method": "x"}, {"position": {}})
    (tmp_path / "a.safetensors.commit").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"^Checkpoint manifest .*a.safetensors.commit is damaged; delete it"):
        read_resume_pair(a)
    assert read_checkpoint(a).meta["method"] == "x"        # a reader of the weights alone does not need it


def test_a_folder_whose_first_save_was_cut_off_says_so(tmp_path):
    from ferkit.engine.checkpoint import resolve_checkpoint_path

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".last.18eed3-2a.safetensors.state.pt").write_bytes(b"half")
    with pytest.raises(CheckpointError) as e:
        resolve_checkpoint_path(tmp_path)
    assert str(e.value) == (f"Folder {tmp_path} holds no complete checkpoints/last.safetensors (its first save was "
                            "cut off before its commit, leaving .last.18eed3-2a.safetensors.state.pt); start the run "
                            "again.")
