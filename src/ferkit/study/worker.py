"""One run of a study in its own process: ``python -m ferkit.study.worker OUT NAME SEED [--fold K]``.

Every executor runs this and nothing else: the local one as a child process (one per run, up to ``--jobs``
at once), the Slurm one as the function of a submitit job. It reads the configuration and the evaluation
settings from ``OUT/study.json``, takes the run folder's lock (so two processes never write one run), and
trains (resuming from ``checkpoints/last.safetensors`` when an earlier process was stopped) and evaluates
it into ``result.json``. Its output is the run's log (``logs/attempt<N>.log`` locally, ``slurm/`` on Slurm).

Methods registered outside ferkit (a lab's own method module) are imported first from the comma-separated
module names in ``$FERKIT_PLUGINS`` (:mod:`ferkit.plugins`), since a fresh process knows only ferkit's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def run_worker(out: str, name: str, seed: int, fold: int | None = None, threads: int | None = None) -> dict:
    """Train and evaluate one run of the study in ``out`` (see the module docstring); returns its result."""
    import fcntl

    import torch

    from ferkit.plugins import import_plugins
    from ferkit.study.runner import Study

    if threads:
        torch.set_num_threads(int(threads))
    import_plugins()
    study = Study.from_manifest(out)
    if name not in study.configs:
        from ferkit.errors import ConfigError

        raise ConfigError(f"Study {out} has no configuration '{name}' ({', '.join(study.configs)}).")
    run_dir = study.run_dir(name, seed, fold)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # waits while a stopped coordinator's child is still exiting
        done = study.result(name, seed, fold)
        if done is not None:
            return done
        print(f"ferkit study run {name} seed {seed}" + ("" if fold is None else f" fold {fold}")
              + f" in {run_dir} (pid {os.getpid()}, {torch.get_num_threads()} threads)", flush=True)
        result = study.run_one(name, seed, fold, progress=False)
    print(f"finished: accuracy {result['metrics'].get('accuracy')}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    from ferkit.errors import FerkitError

    p = argparse.ArgumentParser(prog="python -m ferkit.study.worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the study folder (holds study.json)")
    p.add_argument("name", help="the configuration's name")
    p.add_argument("seed", type=int)
    p.add_argument("--fold", type=int, help="the held-out fold, when folds are an axis of the study")
    p.add_argument("--threads", type=int, help="torch threads for this run")
    args = p.parse_args(argv)
    try:
        run_worker(str(Path(args.out)), args.name, args.seed, args.fold, args.threads)
    except FerkitError as e:
        print(f"ferkit: error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
