"""The Slurm executor: each run of a study a Slurm job, submitted with submitit.

A run's job executes :func:`ferkit.study.worker.run_worker` (the same code the local executor runs) with
the job's CPUs as its threads. submitit keeps the job's files (the pickled call, ``<job>_0_log.out`` and
``<job>_0_log.err``) in ``<run>/slurm/``; the job id goes to ``<run>/slurm_job.json`` the moment it is
submitted, so a coordinator started again after a kill re-attaches to a job still queued or running instead
of submitting it twice. Whether a job has ended is read from its result file and from ``squeue`` (clusters
without slurmdbd have no ``sacct``): a job ``squeue`` no longer lists, or lists in a final state, has ended.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ferkit.errors import ConfigError
from ferkit.study.files import read_json, tail, write_json

#: squeue states after which a job runs no more
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                          "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
#: the ``slurm:`` keys of a study file, and --slurm-<key> on the command line
KEYS = ("partition", "gpus_per_job", "time", "cpus_per_job", "account", "extra")


def parse_time(value) -> int:
    """Slurm time as minutes: ``90``, ``"90"``, ``"1:30:00"`` (H:MM:SS), ``"2-00:00:00"`` (D-HH:MM:SS)."""
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})", text)
    if text.isdigit():
        minutes = int(text)
    elif m:
        days, h, mi, sec = (int(x or 0) for x in m.groups())
        minutes = days * 1440 + h * 60 + mi + (1 if sec else 0)
    else:
        raise ConfigError(f"Slurm time '{value}' must be minutes (90), H:MM:SS (1:30:00) or D-HH:MM:SS.")
    if minutes < 1:
        raise ConfigError(f"Slurm time '{value}' must be at least one minute.")
    return minutes


@dataclass
class SlurmParams:
    """What every run's job asks Slurm for (``--slurm-*`` flags, or the ``slurm:`` section of a study file)."""
    partition: str | None = None
    gpus_per_job: int = 0
    time: int = 60                                 # minutes
    cpus_per_job: int = 1
    account: str | None = None
    extra: dict[str, str] = field(default_factory=dict)   # any other sbatch option: KEY=VALUE -> --KEY=VALUE

    def submitit_parameters(self, job_name: str) -> dict:
        p = {"job_name": job_name, "time": int(self.time), "cpus_per_task": int(self.cpus_per_job),
             "ntasks_per_node": 1, "nodes": 1}
        if self.partition:
            p["partition"] = self.partition
        if self.gpus_per_job:
            p["gpus_per_node"] = int(self.gpus_per_job)
        if self.account:
            p["account"] = self.account
        if self.extra:
            p["additional_parameters"] = {k.replace("-", "_"): v for k, v in self.extra.items()}
        return p


@dataclass
class SlurmRun:
    job_id: str
    folder: Path
    #: consecutive squeue calls that found the job ended with no result file (one may race the file)
    ended_checks: int = 0


class SlurmExecutor:
    """One Slurm job per run (see the module docstring)."""

    kind = "slurm"
    poll_seconds = 2.0
    capacity = 1 << 30                             # submit every run; Slurm queues them

    def __init__(self, params: SlurmParams):
        try:
            import submitit  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError("--executor slurm needs submitit, a dependency of ferkit that is not installed "
                              "here: pip install 'submitit>=1.5'.") from None
        self.params = params

    def describe(self) -> str:
        p = self.params
        return (f"slurm: one job per run, {p.cpus_per_job} CPU(s), {p.gpus_per_job} GPU(s), {p.time} min"
                + (f", partition {p.partition}" if p.partition else ""))

    def start(self, study, key, attempt: int) -> SlurmRun:
        import submitit

        from ferkit.study.worker import run_worker

        run_dir = study.run_dir(*key)
        folder = run_dir / "slurm"
        folder.mkdir(parents=True, exist_ok=True)
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
        tag = f"{key.name}-s{key.seed}" + ("" if key.fold is None else f"-f{key.fold}")
        ex.update_parameters(**self.params.submitit_parameters(f"ferkit-{study.out.name}-{tag}"))
        job = ex.submit(run_worker, str(Path(study.out).resolve()), key.name, key.seed, key.fold,
                        self.params.cpus_per_job)
        write_json(run_dir / "slurm_job.json", {"job_id": str(job.job_id), "attempt": attempt,
                                                "folder": "slurm"})
        return SlurmRun(str(job.job_id), folder)

    def attach(self, study, key) -> SlurmRun | None:
        """The job of an earlier coordinator, when it is still queued or running; else None."""
        run_dir = study.run_dir(*key)
        rec = read_json(run_dir / "slurm_job.json")
        if rec is None:
            return None
        run = SlurmRun(str(rec["job_id"]), run_dir / rec.get("folder", "slurm"))
        return None if self._ended(run) else run

    def finished(self, run: SlurmRun) -> bool:
        if (run.folder / f"{run.job_id}_0_result.pkl").is_file():
            return True
        if self._ended(run):
            run.ended_checks += 1
        return run.ended_checks >= 2

    def log_tail(self, run: SlurmRun, lines: int = 20) -> tuple[str, list[str]]:
        err = run.folder / f"{run.job_id}_0_log.err"
        out = run.folder / f"{run.job_id}_0_log.out"
        got = tail(err, lines)
        return (str(err), got) if got else (str(out), tail(out, lines))

    def close(self, running: list[SlurmRun]) -> None:
        """Leave the jobs running: the next coordinator re-attaches to them."""

    @staticmethod
    def _ended(run: SlurmRun) -> bool:
        """Whether squeue says the job will run no more (unknown to it, or in a final state)."""
        try:
            proc = subprocess.run(["squeue", "-h", "-j", run.job_id, "-o", "%T"], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False                           # squeue unreachable: keep waiting
        if proc.returncode != 0:
            return "invalid job id" in proc.stderr.lower()
        state = proc.stdout.strip().split("\n")[0].strip()
        return not state or state in FINAL_STATES
