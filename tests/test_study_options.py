"""How a study runs, without running one: Slurm times, the study file under the flags, what a run's job asks
Slurm for, folds as an axis, the local thread split, and the refusals."""

from __future__ import annotations

import argparse

import pytest
import yaml

from ferkit.cli import build_parser
from ferkit.errors import ConfigError
from ferkit.study.files import read_json, tail, write_json
from ferkit.study.local import LocalExecutor, available_cores
from ferkit.study.options import executor_from, parse_folds, slurm_params, study_file
from ferkit.study.runner import RunKey
from ferkit.study.slurm import SlurmExecutor, SlurmParams, parse_time


def _args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["compare", "A=a.yaml", "B=b.yaml", "--seeds", "2", "--out", "o", *flags])


def test_slurm_time_is_minutes():
    assert [parse_time(t) for t in (90, "90", "1:30:00", "0:20:00", "0:00:30", "2-00:00:00", "1-01:02:03")] == \
        [90, 90, 90, 20, 1, 2880, 1503]
    for bad in ("1h", "1-12", "", "0"):
        with pytest.raises(ConfigError, match="Slurm time"):
            parse_time(bad)


def test_flags_win_over_the_study_file_and_become_sbatch_options(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump({"executor": "slurm", "retries": 3, "folds": "all",
                                 "slurm": {"partition": "gpu", "gpus_per_job": 1, "time": "4:00:00",
                                           "cpus_per_job": 8, "account": "fer", "extra": {"qos": "low"}}}))
    options = study_file(str(f))
    args = _args("--study-file", str(f), "--slurm-partition", "long", "--slurm-extra", "qos=high",
                 "--slurm-extra", "mem-per-cpu=4G")
    params = slurm_params(args, options)
    assert params == SlurmParams(partition="long", gpus_per_job=1, time=240, cpus_per_job=8, account="fer",
                                 extra={"qos": "high", "mem-per-cpu": "4G"})
    assert params.submitit_parameters("job") == {
        "job_name": "job", "time": 240, "cpus_per_task": 8, "ntasks_per_node": 1, "nodes": 1, "partition": "long",
        "gpus_per_node": 1, "account": "fer", "additional_parameters": {"qos": "high", "mem_per_cpu": "4G"}}
    executor, retries = executor_from(args, options)
    assert isinstance(executor, SlurmExecutor) and retries == 3 and executor.params == params
    executor, retries = executor_from(_args("--study-file", str(f), "--executor", "local", "--retries", "0"), options)
    assert isinstance(executor, LocalExecutor) and retries == 0


def test_the_local_executor_splits_the_cores_between_its_jobs():
    cores = available_cores()
    assert LocalExecutor(1).threads == cores and LocalExecutor(2).threads == max(1, cores // 2)
    assert LocalExecutor(4 * cores).threads == 1 and LocalExecutor(2, threads=3).threads == 3
    cmd = LocalExecutor(2, threads=1).command(argparse.Namespace(out="st"), RunKey("A", 3, 1))
    assert cmd[1:] == ["-m", "ferkit.study.worker", "st", "A", "3", "--threads", "1", "--fold", "1"]


def test_folds_spec_and_run_keys():
    configs = {"A": {"method": "baseline", "data": {"num_folds": 5}}}
    assert parse_folds("all", configs) == [0, 1, 2, 3, 4]
    assert parse_folds("3, 1", configs) == [3, 1] and parse_folds([0, 2], configs) == [0, 2]
    assert parse_folds(None, configs) is None
    for bad in ("1,1", "x", ""):
        with pytest.raises(ConfigError, match="--folds"):
            parse_folds(bad, configs)
    assert RunKey("A", 2).unit == 2 and RunKey("A", 2, 4).unit == "fold4/seed2"
    assert RunKey("B", 1, 0).label() == "B seed 1 fold 0"


def test_refusals_name_the_wrong_thing(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text("slurm: {partition: gpu, nodes: 2}\n")
    with pytest.raises(ConfigError, match="slurm: section has unknown key 'nodes'"):
        slurm_params(_args(), study_file(str(f)))
    f.write_text("executors: slurm\n")
    with pytest.raises(ConfigError, match="unknown key 'executors'"):
        study_file(str(f))
    with pytest.raises(ConfigError, match="does not exist"):
        study_file(str(tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match="--slurm-extra 'qos' must look like KEY=VALUE"):
        slurm_params(_args("--slurm-extra", "qos"), {})
    with pytest.raises(ConfigError, match="--jobs and --threads-per-run must be at least 1"):
        executor_from(_args("--jobs", "0"), {})


def test_study_files_are_whole_or_absent(tmp_path):
    p = tmp_path / "r.json"
    assert read_json(p) is None
    write_json(p, {"a": 1})
    assert read_json(p) == {"a": 1} and [x.name for x in tmp_path.iterdir()] == ["r.json"]
    p.write_text('{"a": ')                                    # half a file (a writer killed without rename)
    assert read_json(p) is None
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(50)) + "\n\n")
    assert tail(log, 3) == ["line 47", "line 48", "line 49"] and tail(tmp_path / "none") == []
