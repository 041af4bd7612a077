"""Wall time of one tiny study run with `ferkit compare --jobs 1` and `--jobs 2`, and whether the two
summaries are the same (times aside).

    .venv/bin/python benchmarks/speed/bench_study_jobs.py [--seeds 4] [--out benchmarks/results/study_jobs]

The study: 2 configurations (the tests' tiny MLP method on 8x8 gray class folders, lr 3e-2 and 1e-7, 8
epochs) x N seeds, each run a process of its own. With --jobs 1 one run at a time gets every core; with
--jobs 2 two runs at a time get cores // 2 threads each (ferkit's thread split). A third study, --jobs 1
--threads-per-run 1, has the thread count of --jobs 2's runs: a thread count can move the last bits of a
float sum, so summaries are compared both ways. The tiny method lives in
tests/engine_helpers.py and reaches the runs' processes through FERKIT_PLUGINS. The script writes
OUT/result.json: CPU model, date, commands, wall seconds of each, the ratio, and whether the summaries match.
Times on a shared machine move with the other load on it: the JSON records the load average beside them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def toy_folder(root: Path) -> Path:
    """Train/val/test class folders whose images' brightness encodes the class (as tests/test_compare.py)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3), ("test", 4)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray((rng.integers(0, 12, (8, 8)) + c * 36).astype(np.uint8)).save(
                    root / split / name / f"{i}.png")
    return root


def configs(root: Path, data: Path) -> list[str]:
    out = []
    for name, lr in (("A", 3e-2), ("B", 1e-7)):
        cfg = {"method": "tiny_test", "data": {"dataset": "folder", "data_path": str(data), "cache": False},
               "train": {"epochs": 8, "batch_size": 8, "lr": lr, "precision": "fp32", "device": "cpu"},
               "model": {"image_size": 8, "augment": "none"}}
        (root / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        out.append(f"{name}={root / f'{name}.yaml'}")
    return out


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def without_times(summary: dict) -> dict:
    s = json.loads(json.dumps(summary))
    s["metrics"].pop("train_seconds", None), s["paired"].pop("train_seconds", None)
    return s


def max_abs_difference(a, b) -> float:
    """The largest |a - b| over the numbers two nested summaries hold at the same places."""
    if isinstance(a, dict):
        return max([max_abs_difference(a[k], b[k]) for k in a if k in b] or [0.0])
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    return 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1, help="times each study is run, interleaved (the median is kept)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "study_jobs"))
    args = p.parse_args()
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="ferkit-study-jobs-"))      # the studies themselves are not kept
    pairs = configs(work, toy_folder(work / "data"))
    env = {**os.environ, "FERKIT_PLUGINS": "engine_helpers", "FERKIT_NO_PROGRESS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    runs = {}
    variants = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "jobs1_threads1": ["--jobs", "1", "--threads-per-run", "1"]}
    for rep in range(args.repeats):
        for key, flags in variants.items():
            study = work / f"{key}-{rep}"
            cmd = [sys.executable, "-m", "ferkit", "compare", *pairs, "--seeds", str(args.seeds),
                   "--out", str(study), *flags]
            load = os.getloadavg()
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            summary = json.loads((study / "summary.json").read_text())
            threads = sorted({json.loads(r.read_text())["threads"] for r in study.glob("*/seed*/result.json")})
            entry = runs.setdefault(key, {"command": " ".join(["ferkit", *cmd[3:]]).replace(str(study), "OUT")
                                          .replace(str(work), "WORK"), "threads_per_run": threads,
                                          "wall_seconds_each": [], "load_average_before_each": [],
                                          "summary": summary})
            entry["wall_seconds_each"].append(round(wall, 2))
            entry["load_average_before_each"].append([round(x, 2) for x in load])
            if without_times(summary) != without_times(entry["summary"]):
                entry["repeats_differ"] = True
            print(f"{key} (repeat {rep + 1}): {wall:.1f} s ({threads} threads per run)")
    for entry in runs.values():
        entry["wall_seconds"] = round(float(np.median(entry["wall_seconds_each"])), 2)
    summaries = {k: without_times(v.pop("summary")) for k, v in runs.items()}
    acc = {k: {n: s["metrics"]["accuracy"][n]["mean"] for n in ("A", "B")} for k, s in summaries.items()}
    same = {"jobs2_vs_jobs1": summaries["jobs2"] == summaries["jobs1"],
            "jobs2_vs_jobs1_threads1": summaries["jobs2"] == summaries["jobs1_threads1"]}
    diffs = {m: max_abs_difference(summaries["jobs1"]["metrics"][m], summaries["jobs2"]["metrics"][m])
             for m in summaries["jobs1"]["metrics"]}
    result = {"what": f"2 configs x {args.seeds} seeds tiny study (tests' tiny_test MLP), --jobs 1 vs --jobs 2",
              "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "note": "a machine shared with other engineers' work at the same time: the wall times carry its load",
              "runs": runs, "speedup_jobs2_over_jobs1": round(runs["jobs1"]["wall_seconds"] /
                                                              runs["jobs2"]["wall_seconds"], 3),
              "summaries_identical_without_times": same, "accuracy_mean": acc,
              "max_abs_difference_jobs1_vs_jobs2_per_metric": diffs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("speedup_jobs2_over_jobs1", "summaries_identical_without_times",
                                             "max_abs_difference_jobs1_vs_jobs2_per_metric")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
