"""The crash side of ``test_checkpoint_crash.py`` (not a test module): kill a save at each of its steps.

Run as ``python crash_helpers.py BASE ROOT EPOCHS``: BASE is a run folder of the tiny method (engine_helpers)
with a checkpoint; for every step of the first checkpoint save of a resumed run (each write, whole or torn
in half, each fsync, each rename) this process forks a child that copies BASE to ``ROOT/NN``, resumes it
for EPOCHS epochs and ends itself with ``os._exit`` just before that step (or, for a torn write, just after
half of the file is written). Children are forked from one process that has imported torch and run it on one
thread only (the uninterrupted run that counts the steps runs in it first), so each child costs a fraction
of a second instead of an interpreter start. ``ROOT/points.json`` lists the points: folder, step, whether
the save had committed (its manifest rename done) and whether staged files of the save were on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

CRASHED = 17


def _run(base: Path, out: Path, epochs: int, crash_at: int | None, torn: bool) -> None:
    """Resume a copy of ``base`` in ``out``, crashing at step ``crash_at`` of the first paired save."""
    import torch

    import ferkit.engine.checkpoint as checkpoint
    from engine_helpers import tiny_config, toy_splits
    from ferkit.engine import commit
    from ferkit.engine.trainer import train

    torch.set_num_threads(1)
    shutil.copytree(base, out)
    steps: list[str] = []
    state = {"armed": False, "done": False, "committed": False, "staged": False}

    def step(name: str) -> None:
        if not state["armed"]:
            return
        steps.append(name)
        if crash_at is not None and len(steps) == crash_at:
            _report(out, name, state)
            os._exit(CRASHED)

    real_fsync, real_replace, real_write = os.fsync, os.replace, commit._write_synced

    def fsync(fd):
        step("fsync")
        return real_fsync(fd)

    def replace(src, dst):
        step(f"rename {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)
        if state["armed"] and str(dst).endswith(commit.COMMIT_SUFFIX):
            state["committed"] = True

    def write(path, fn):
        name = f"write {Path(path).name}"
        if state["armed"] and torn and crash_at == len(steps) + 1:
            fn(path)                                   # the file written, then half of it lost
            os.truncate(path, os.path.getsize(path) // 2)
            state["staged"] = state["staged"] or ".commit" not in Path(path).name
            steps.append(name + " (torn)")
            _report(out, name + " (torn)", state)
            os._exit(CRASHED)
        step(name)
        if state["armed"] and ".commit" not in Path(path).name:
            state["staged"] = True
        return real_write(path, fn)

    real_pair = checkpoint.commit_pair

    def commit_pair(*args, **kwargs):
        state["armed"] = not state["done"]
        try:
            return real_pair(*args, **kwargs)
        finally:
            if state["armed"]:
                state["armed"], state["done"] = False, True
                if crash_at is not None and crash_at == len(steps) + 1:   # just after the whole save
                    _report(out, "after the save", state)
                    os._exit(CRASHED)

    os.fsync, os.replace, commit._write_synced, checkpoint.commit_pair = fsync, replace, write, commit_pair
    try:
        train(tiny_config(out, epochs=epochs, eval_every=0), resume=str(out),
              splits=toy_splits(n_train=24, n_eval=7), progress=False, console=False)
    finally:
        os.fsync, os.replace, commit._write_synced, checkpoint.commit_pair = (real_fsync, real_replace, real_write,
                                                                              real_pair)
    (out / "steps.json").write_text(json.dumps(steps))


def _report(out: Path, name: str, state: dict) -> None:
    (out / "crash.json").write_text(json.dumps({"step": name, "committed": state["committed"],
                                                "staged": state["staged"]}))


def _fork(fn) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        except BaseException:                          # noqa: BLE001 - the child must never return to the caller
            import traceback

            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main(base: Path, root: Path, epochs: int) -> None:
    import engine_helpers  # noqa: F401 - imported once here, before the forks, not in every child
    import ferkit.engine.trainer  # noqa: F401

    _run(base, root / "count", epochs, None, False)    # here, not forked: the children start warm
    steps = json.loads((root / "count" / "steps.json").read_text())
    plan = [(k, False) for k in range(1, len(steps) + 2)]
    plan += [(k, True) for k, name in enumerate(steps, start=1) if name.startswith("write")]
    points = []
    for i, (k, torn) in enumerate(plan):
        out = root / f"{i:02d}"
        code = _fork(lambda k=k, torn=torn, out=out: _run(base, out, epochs, k, torn))
        if code != CRASHED:
            raise SystemExit(f"crash point {k} (torn {torn}) did not crash (exit {code})")
        points.append({"dir": str(out), **json.loads((out / "crash.json").read_text())})
    (root / "points.json").write_text(json.dumps({"steps": steps, "points": points}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
