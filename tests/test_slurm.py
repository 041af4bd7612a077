"""`ferkit compare --executor slurm` against a real Slurm (slurm-wlm on this machine, one node, see
``slurm_cluster.py``): a 2-configuration x 2-seed study whose coordinator is killed with SIGKILL once while
its jobs are queued or running; the same command again re-attaches to those jobs (no job is submitted
twice) and ends with the summary the local executor gives, times aside. Skipped, with the reason, where a
cluster cannot be started (not root, no apt). ``make test-slurm`` runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ferkit.cli import main
from slurm_cluster import LocalSlurm, why_not_available
from test_compare import _argv, _configs, _run_env, _toy_folder, _without_times

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_a_slurm_study_killed_once_resumes_to_the_local_executors_summary(tmp_path, monkeypatch, capsys):
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    for k, v in _run_env().items():
        monkeypatch.setenv(k, v)
    paths = _configs(tmp_path, _toy_folder(tmp_path / "data"))
    for name in "AB":
        cfg = yaml.safe_load(paths[name].read_text())
        cfg["train"]["epochs"] = 3
        paths[name].write_text(yaml.safe_dump(cfg))
    assert main(_argv(paths, tmp_path / "local", seeds=2, extra=["--jobs", "2"])) == 0
    capsys.readouterr()

    with LocalSlurm(tmp_path / "cluster") as cluster:
        monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
        out = tmp_path / "slurm"
        argv = _argv(paths, out, seeds=2, extra=["--executor", "slurm", "--slurm-cpus-per-job", "1",
                                                 "--slurm-time", "0:20:00", "--slurm-extra", "comment=ferkit-test"])
        proc = subprocess.Popen([sys.executable, "-m", "ferkit", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=dict(os.environ))
        t0 = time.time()
        while len(list(out.glob("*/seed*/slurm_job.json"))) < 4:
            assert proc.poll() is None and time.time() - t0 < 120, "the coordinator did not submit 4 jobs"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        jobs = {p.parent.relative_to(out).as_posix(): json.loads(p.read_text())["job_id"]
                for p in out.glob("*/seed*/slurm_job.json")}
        queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                                env=cluster.env).stdout.split()
        assert set(queued) <= set(jobs.values()) and queued, "the jobs should outlive their coordinator"

        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert printed.count("re-attached") + printed.count("finished earlier, kept") == 4
        assert "re-attached" in printed and "training into" not in printed
        after = {p.parent.relative_to(out).as_posix(): json.loads(p.read_text())["job_id"]
                 for p in out.glob("*/seed*/slurm_job.json")}
        assert after == jobs                                           # nothing submitted twice
        for run in jobs:
            assert json.loads((out / run / "attempt.json").read_text())["attempts"] == 1
            assert (out / run / "slurm" / f"{jobs[run]}_0_log.out").is_file()      # the run's log in its folder
            assert json.loads((out / run / "result.json").read_text())["threads"] == 1
        assert subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=cluster.env).stdout == ""

    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, tmp_path / "local"))
    assert got["complete"] and _without_times(got) == _without_times(want)
