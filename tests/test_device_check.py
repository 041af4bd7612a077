"""benchmarks/device_check.sh keeps its contract with a bare GPU machine: the plan line first, one deadline
that parts are cut to, the report in OUT/device_check.txt, at most 8 files in OUT (none deep), nothing it did
not make deleted; the CPU dry run (slow) runs every part and passes; device_wheels.sh refuses what would
break the install there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"
PLAN = re.compile(r"^device check plan: (\d+) parts, deadline (\d+) s")
PARTS = ("setup", "tests", "steps_baseline", "steps_dicefer", "steps_uafer", "determinism", "ddp",
         "export_predict", "inference")


def _files_back(out: Path) -> list[Path]:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files), files     # out/a/b/file at most
    return files


def _run(args, env=None, timeout=60):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def test_parts_past_the_deadline_are_skipped_and_reported(tmp_path):
    stub = tmp_path / "python"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not the script's")
    r = _run(["--cpu-dry-run", "--python", str(stub), "--out", str(out)], env={"DEVICE_CHECK_HARD_S": "20"})
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    m = PLAN.match(lines[0])
    assert m and (int(m.group(1)), int(m.group(2))) == (len(PARTS), 20)
    # every part but the last would cut into the half-plans of the parts after it; the last gets what is left
    assert all(f"== {p}: SKIPPED" in r.stdout for p in PARTS[:-1])
    limit = int(re.search(r"== inference \(planned \d+s, limit (\d+)s", r.stdout).group(1))
    assert 10 <= limit <= 20
    assert "FAILED parts: " + " ".join(PARTS[:-1]) in r.stdout
    assert (out / "device_check.txt").read_text() == r.stdout
    assert (out / "mine.txt").read_text() == "not the script's"
    names = sorted(p.name for p in _files_back(out))
    assert names == ["device_check.json", "device_check.txt", "logs.tar.gz", "mine.txt"]   # no work folder left


def test_an_earlier_report_and_an_empty_wheels_folder_are_refused(tmp_path):
    (tmp_path / "device_check.txt").write_text("earlier")
    r = _run(["--cpu-dry-run", "--out", str(tmp_path)])
    assert r.returncode == 2 and "already holds device_check.txt" in r.stderr
    assert (tmp_path / "device_check.txt").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device_check.txt"]
    (tmp_path / "whl").mkdir()
    r = _run(["--wheels", str(tmp_path / "whl"), "--out", str(tmp_path / "o")])
    assert r.returncode == 2 and "holds no .whl files" in r.stderr


def test_device_wheels_refuses_a_folder_that_already_holds_wheels(tmp_path):
    (tmp_path / "torch-2.0-py3-none-any.whl").write_bytes(b"")
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_wheels.sh"), str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "already holds 1 wheel(s)" in r.stderr
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_wheels.sh")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


@pytest.mark.slow
def test_the_cpu_dry_run_passes_every_part_inside_the_deadline(tmp_path):
    out = tmp_path / "out"
    r = _run(["--cpu-dry-run", "--python", sys.executable, "--out", str(out)], timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    lines = r.stdout.splitlines()
    m = PLAN.match(lines[0])
    assert m and int(m.group(1)) == len(PARTS) and int(m.group(2)) <= 540
    for p in PARTS:
        assert re.search(rf"^== {p} \(planned \d+s, limit \d+s, at \d+s\)\n   ok in \d+s", r.stdout, re.M), p
    assert "bit-identical weights" in r.stdout and "ran on CPUExecutionProvider" in r.stdout
    assert lines[-1] == "all parts passed"
    total = int(re.search(r"device check: (\d+)s in all", r.stdout).group(1))
    assert total <= 540
    assert (out / "device_check.txt").read_text() == r.stdout
    assert sorted(p.name for p in _files_back(out)) == ["device_check.json", "device_check.txt", "logs.tar.gz"]
