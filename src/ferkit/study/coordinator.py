"""The coordinator of a study: plans the runs, hands them to an executor, waits, and writes the summary.

It trains nothing itself. Every (configuration, seed, fold) run not finished yet goes to the executor (local
child processes or Slurm jobs); a run of an earlier coordinator that is still going (a Slurm job) is
re-attached, not started again. A run that ends without a ``result.json`` is started again, up to
``retries`` more times in this invocation, resuming from its last checkpoint; after that it is recorded in
``<run>/failed.json`` with its log's last lines, which the summary's ``missing`` list carries. The summary
is rewritten after every finished run. Since the only state is in files written atomically, the
coordinator may be killed at any moment (``kill -9``) and the same command started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ferkit.errors import ConfigError
from ferkit.study.files import read_json, write_json
from ferkit.study.runner import RunKey, Study
from ferkit.study.summary import write_summary

#: ``ferkit compare --keep-checkpoints``: every checkpoint file, or a finished run's selected weights only
KEEP_CHECKPOINTS = ("all", "selected")


def _next_attempt(study: Study, key: RunKey) -> int:
    """The run's attempt number over its whole life (``<run>/attempt.json``), counted up and stored."""
    run_dir = study.run_dir(*key)
    run_dir.mkdir(parents=True, exist_ok=True)
    n = int((read_json(run_dir / "attempt.json") or {}).get("attempts", 0)) + 1
    write_json(run_dir / "attempt.json", {"attempts": n})
    return n


def run_study(study: Study, executor, retries: int = 1, log: Callable[[str], None] = print,
              keep_checkpoints: str = "all") -> dict:
    """Every unfinished run of ``study`` through ``executor`` (see the module docstring); returns the summary.
    ``keep_checkpoints="selected"`` prunes each finished run, earlier ones included (``Study.prune``)."""
    if keep_checkpoints not in KEEP_CHECKPOINTS:
        raise ConfigError(f"keep_checkpoints (--keep-checkpoints or the study file's key) must be one of "
                          f"{', '.join(KEEP_CHECKPOINTS)}, not {keep_checkpoints!r}.")
    prune = keep_checkpoints == "selected"
    study.open()
    keys = study.keys()
    total = len(keys)
    index = {k: i for i, k in enumerate(keys, start=1)}

    def tag(k: RunKey) -> str:
        return f"[{index[k]}/{total}] {k.label()}"

    todo, running = [], {}
    for k in keys:
        if study.result(*k) is not None:
            freed = study.prune(*k) if prune else 0
            log(f"{tag(k)}: finished earlier, kept" + (f" (pruned {freed / 2**20:.0f} MiB of checkpoints)" if freed else ""))
        elif (run := executor.attach(study, k)) is not None:
            running[k] = run
            log(f"{tag(k)}: still running from an earlier start, re-attached")
        else:
            todo.append(k)
    log(f"{len(todo) + len(running)} of {total} runs to do; {executor.describe()}")
    tries: dict[RunKey, int] = {}
    t_study = time.time()
    try:
        while todo or running:
            while todo and len(running) < executor.capacity:
                k = todo.pop(0)
                tries[k] = tries.get(k, 0) + 1
                run_dir = study.run_dir(*k)
                (run_dir / "failed.json").unlink(missing_ok=True)
                state = "resuming" if (run_dir / "checkpoints" / "last.safetensors.state.pt").is_file() else "training"
                running[k] = executor.start(study, k, _next_attempt(study, k))
                log(f"{tag(k)}: {state} into {run_dir}")
            time.sleep(executor.poll_seconds)
            for k in [k for k, run in running.items() if executor.finished(run)]:
                run = running.pop(k)
                r = study.result(*k)
                if r is not None:
                    acc = r["metrics"].get("accuracy")
                    log(f"{tag(k)}: accuracy {acc:.4f} ({r['selected_on']} weights) in {_clock(r['seconds'])}; "
                        f"study {_clock(time.time() - t_study)} so far")
                    if prune:
                        study.prune(*k)
                    write_summary(study)
                    continue
                where, lines = executor.log_tail(run)
                last = lines[-1] if lines else "no output"
                if tries.get(k, 0) <= retries:
                    log(f"{tag(k)}: failed ({last}); starting it again, try {tries.get(k, 0) + 1} of {retries + 1}")
                    todo.insert(0, k)
                    continue
                write_json(study.run_dir(*k) / "failed.json",
                           {"attempts": tries.get(k, 0), "log": where, "last_lines": lines})
                log(f"{tag(k)}: failed {tries.get(k, 0)} time(s), given up; its log: {where}")
    finally:
        executor.close(list(running.values()))
    return write_summary(study)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
