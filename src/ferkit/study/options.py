"""How a study runs, from ``ferkit compare``'s flags and an optional study file (YAML).

A study file holds any of ``executor``, ``jobs``, ``threads_per_run``, ``retries``, ``folds``, ``keep_checkpoints``
and a ``slurm:`` section with the keys of :class:`ferkit.study.slurm.SlurmParams`::

    executor: slurm
    retries: 2
    folds: all
    slurm: {partition: gpu, gpus_per_job: 1, cpus_per_job: 8, time: "4:00:00", account: fer, extra: {qos: high}}

A flag given on the command line wins over the file's key.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ferkit.errors import ConfigError

_FILE_KEYS = ("executor", "jobs", "threads_per_run", "retries", "folds", "keep_checkpoints", "slurm")


def study_file(path: str | None) -> dict:
    """The mapping in a study file (empty without one); unknown keys are refused by name."""
    if not path:
        return {}
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Study file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"Study file {p} is not valid YAML ({str(e).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Study file {p} must be a mapping of keys such as executor: and slurm:.")
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise ConfigError(f"Study file {p} has unknown key '{unknown[0]}'; it takes {', '.join(_FILE_KEYS)}.")
    return data


def parse_folds(spec, configs: dict[str, dict]) -> list[int] | None:
    """``all`` -> every fold of the configurations' ``data.num_folds``; ``"0,3"`` or ``[0, 3]`` -> those."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        items = [str(x) for x in spec]
    elif str(spec).strip().lower() == "all":
        from ferkit.config import experiment_from_dict
        from ferkit.study.runner import run_config

        first = next(iter(configs.values()))
        return list(range(experiment_from_dict(run_config(first, 0, Path("unused"))).data.num_folds))
    else:
        items = [x.strip() for x in str(spec).split(",")]
    try:
        folds = [int(x) for x in items]
    except ValueError:
        raise ConfigError(f"--folds '{spec}' must be all or fold numbers separated by commas, e.g. 0,3,7.") from None
    if not folds or len(set(folds)) != len(folds):
        raise ConfigError(f"--folds '{spec}' must name each fold once.")
    return folds


def _pick(args: argparse.Namespace, options: dict, key: str, default):
    value = getattr(args, key)
    return value if value is not None else options.get(key, default)


def slurm_params(args: argparse.Namespace, options: dict):
    """SlurmParams from ``--slurm-*`` flags over the study file's ``slurm:`` section."""
    from ferkit.study.slurm import KEYS, SlurmParams, parse_time

    section = options.get("slurm") or {}
    if not isinstance(section, dict) or set(section) - set(KEYS):
        bad = sorted(set(section) - set(KEYS)) if isinstance(section, dict) else ["(not a mapping)"]
        raise ConfigError(f"The study file's slurm: section has unknown key '{bad[0]}'; it takes {', '.join(KEYS)}.")
    extra = {str(k): str(v) for k, v in (section.get("extra") or {}).items()}
    for item in args.slurm_extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--slurm-extra '{item}' must look like KEY=VALUE, e.g. qos=high or mem=16G.")
        extra[key.strip().lstrip("-")] = value
    given = {k: getattr(args, f"slurm_{k}") for k in KEYS if k != "extra"}
    merged = {k: (v if v is not None else section.get(k)) for k, v in given.items()}
    params = SlurmParams(partition=merged["partition"], account=merged["account"], extra=extra,
                         gpus_per_job=int(merged["gpus_per_job"] or 0), cpus_per_job=int(merged["cpus_per_job"] or 1),
                         time=parse_time(merged["time"]) if merged["time"] is not None else 60)
    if params.cpus_per_job < 1 or params.gpus_per_job < 0:
        raise ConfigError("--slurm-cpus-per-job must be at least 1 and --slurm-gpus-per-job 0 or more.")
    return params


def executor_from(args: argparse.Namespace, options: dict):
    """(executor, retries) for a study: flags over the study file over the defaults (local, 1 job, 1 retry)."""
    kind = _pick(args, options, "executor", "local")
    jobs = int(_pick(args, options, "jobs", 1))
    threads = _pick(args, options, "threads_per_run", None)
    retries = int(_pick(args, options, "retries", 1))
    if kind not in ("local", "slurm"):
        raise ConfigError(f"executor '{kind}' is not one of local, slurm.")
    if jobs < 1 or retries < 0 or (threads is not None and int(threads) < 1):
        raise ConfigError("--jobs and --threads-per-run must be at least 1 and --retries 0 or more.")
    if kind == "slurm":
        from ferkit.study.slurm import SlurmExecutor

        return SlurmExecutor(slurm_params(args, options)), retries
    from ferkit.study.local import LocalExecutor

    return LocalExecutor(jobs, threads), retries
