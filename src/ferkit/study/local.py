"""The local executor: each run of a study in its own child process, up to ``jobs`` at once.

The machine's cores are split between the runs (``threads = cores // jobs``, at least 1: torch threads,
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``). A run's output goes to ``<run>/logs/attempt<N>.log``. A child is
asked by the kernel to die with its coordinator (Linux ``PR_SET_PDEATHSIG``), so a coordinator killed with
``kill -9`` leaves no orphan writing into the study; the next coordinator resumes that run from its last
checkpoint (the worker waits on the run folder's lock while the old child is still exiting).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ferkit.study.files import tail


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which a container or ``taskset`` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # not Linux
        return os.cpu_count() or 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGKILL when the coordinator dies (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
    except OSError:
        return           # no glibc prctl (not Linux): runs are then stopped only by close() on a clean exit


@dataclass
class LocalRun:
    proc: subprocess.Popen
    log: Path


class LocalExecutor:
    """Child processes on this machine (see the module docstring)."""

    kind = "local"
    poll_seconds = 0.25

    def __init__(self, jobs: int = 1, threads: int | None = None):
        self.capacity = max(1, int(jobs))
        self.threads = int(threads) if threads else max(1, available_cores() // self.capacity)

    def describe(self) -> str:
        return f"local: up to {self.capacity} run(s) at once, {self.threads} thread(s) each"

    def command(self, study, key) -> list[str]:
        cmd = [sys.executable, "-m", "ferkit.study.worker", str(study.out), key.name, str(key.seed),
               "--threads", str(self.threads)]
        return cmd + ([] if key.fold is None else ["--fold", str(key.fold)])

    def start(self, study, key, attempt: int) -> LocalRun:
        run_dir = study.run_dir(*key)
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = run_dir / "logs" / f"attempt{attempt}.log"
        n = str(self.threads)
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "FERKIT_NO_PROGRESS": "1"}
        with open(log, "wb") as f:
            proc = subprocess.Popen(self.command(study, key), stdout=f, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        return LocalRun(proc, log)

    def attach(self, study, key) -> None:
        """Nothing to re-attach: a stopped coordinator's children died with it."""
        return None

    def finished(self, run: LocalRun) -> bool:
        return run.proc.poll() is not None

    def log_tail(self, run: LocalRun, lines: int = 20) -> tuple[str, list[str]]:
        return str(run.log), tail(run.log, lines)

    def close(self, running: list[LocalRun]) -> None:
        """Stop children still running (the coordinator is leaving: Ctrl-C or an error)."""
        for run in running:
            if run.proc.poll() is None:
                run.proc.terminate()
        for run in running:
            try:
                run.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.proc.kill()
