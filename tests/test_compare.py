"""`ferkit compare`: paired statistics against scipy and by hand, a study where one configuration cannot
learn (lr 1e-7) and its interval must say so, a coordinator killed with SIGKILL that resumes to the same
summary (and 2 local jobs at once give the summary 1 gives), failed runs retried and then reported, folds
as an axis, and the refusals (a changed configuration, different data, malformed arguments).

Every run is a process of its own (``python -m ferkit.study.worker``): the tests hand those processes the
tiny method through ``FERKIT_PLUGINS`` and this folder on ``PYTHONPATH``, and pin one thread per run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from ferkit.cli import main
from ferkit.study.stats import describe, paired_difference, verdict

pytestmark = pytest.mark.usefixtures("one_thread", "run_env")
TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def _run_env() -> dict:
    """What a run's process needs: the tiny method (and the fault injector), these sources first."""
    path = os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"FERKIT_PLUGINS": "engine_helpers,study_faults", "PYTHONPATH": path, "FERKIT_NO_PROGRESS": "1"}


@pytest.fixture(scope="module")
def run_env():
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _run_env().items():
            mp.setenv(k, v)
        mp.delenv("FERKIT_TEST_FAIL", raising=False)
        mp.delenv("FERKIT_TEST_FAIL_ONCE", raising=False)
        yield

CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# --- statistics ---------------------------------------------------------------------------------------

def test_paired_difference_matches_hand_and_scipy():
    a = {0: 0.50, 1: 0.40, 2: 0.45, 3: 0.55}
    b = {0: 0.51, 1: 0.42, 2: 0.48, 3: 0.59}                      # differences 0.01, 0.02, 0.03, 0.04
    d = paired_difference(a, b, "accuracy")
    half = 3.182446305284263 * np.std([0.01, 0.02, 0.03, 0.04], ddof=1) / 2   # t(0.975, 3) * sd / sqrt(4)
    assert d["n"] == 4 and d["wins"] == 4 and d["ties"] == 0 and d["seeds"] == [0, 1, 2, 3]
    assert d["mean"] == pytest.approx(0.025)
    assert (d["lo"], d["hi"]) == (pytest.approx(0.025 - half), pytest.approx(0.025 + half))
    ci = stats.ttest_rel([b[s] for s in range(4)], [a[s] for s in range(4)]).confidence_interval(0.95)
    assert (d["lo"], d["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d["excludes_zero"] and verdict(d, "accuracy").startswith("better")
    # the bootstrap's percentile interval of the mean lies within the differences' range and holds the mean
    assert 0.01 <= d["boot_lo"] < 0.025 < d["boot_hi"] <= 0.04


def test_lower_is_better_metrics_count_wins_the_other_way_and_missing_seeds_are_unpaired():
    a = {0: 0.20, 1: 0.30, 2: 0.25}
    b = {0: 0.10, 1: 0.35, 2: None, 3: 0.1}                       # seed 2 failed for b, seed 3 has no a
    d = paired_difference(a, b, "ece")
    assert d["n"] == 2 and d["seeds"] == [0, 1] and d["wins"] == 1
    assert d["mean"] == pytest.approx(-0.025)
    assert not d["excludes_zero"] and "includes 0" in verdict(d, "ece")
    same = paired_difference(a, dict(a), "ece")
    assert same["mean"] == 0 and same["ties"] == 3 and (same["boot_lo"], same["boot_hi"]) == (0.0, 0.0)
    assert describe([0.1, None, 0.3, float("nan")]) == {"mean": pytest.approx(0.2),
                                                         "std": pytest.approx(math.sqrt(0.02)), "n": 2}


def test_bootstrap_interval_agrees_with_t_on_a_normal_sample():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.05, 0.02, 40)
    d = paired_difference({s: 0.0 for s in range(40)}, {s: float(v) for s, v in enumerate(diffs)}, "accuracy")
    assert d["boot_lo"] == pytest.approx(d["lo"], abs=0.002) and d["boot_hi"] == pytest.approx(d["hi"], abs=0.002)


# --- a study end to end -------------------------------------------------------------------------------

def _toy_folder(root):
    """Train/val/test class folders whose images' brightness encodes the class (a tiny MLP learns it)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3), ("test", 4)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = (rng.integers(0, 12, (8, 8)) + c * 36).astype(np.uint8)
                Image.fromarray(img).save(root / split / name / f"{i}.png")
    return root


def _configs(tmp, data_root, lr_b: float = 1e-7):
    paths = {}
    for name, lr in (("A", 3e-2), ("B", lr_b)):
        cfg = {"method": "tiny_test", "data": {"dataset": "folder", "data_path": str(data_root), "cache": False},
               "train": {"epochs": 8, "batch_size": 8, "lr": lr, "precision": "fp32", "device": "cpu"},
               "model": {"image_size": 8, "augment": "none"}}
        paths[name] = tmp / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(cfg))
    return paths


def _argv(paths, out, seeds=3, extra=()):
    return ["compare", f"A={paths['A']}", f"B={paths['B']}", "--seeds", str(seeds), "--out", str(out),
            "--threads-per-run", "1", *extra]


def _compare(paths, out, seeds=3, extra=()):
    return main(_argv(paths, out, seeds, extra))


def _without_times(s: dict) -> dict:
    """A summary less its wall-time metric: the one thing two executors or a resumed study may change."""
    s = json.loads(json.dumps(s))
    s["metrics"].pop("train_seconds"), s["paired"].pop("train_seconds")
    for fold in (s.get("per_fold") or {}).values():
        fold["metrics"].pop("train_seconds"), fold["paired"].pop("train_seconds")
    return s


@pytest.fixture(scope="module")
def study(tmp_path_factory, run_env):
    """The uninterrupted reference study: one local job, one thread per run."""
    tmp = tmp_path_factory.mktemp("study")
    paths = _configs(tmp, _toy_folder(tmp / "data"))
    assert _compare(paths, tmp / "study") == 0
    return tmp, paths, tmp / "study"


def test_a_configuration_that_cannot_learn_is_shown_worse(study, capsys):
    tmp, paths, out = study
    s = json.loads((out / "summary.json").read_text())
    assert s["configs"] == ["A", "B"] and s["seeds"] == [0, 1, 2] and s["complete"] and s["reference"] == "A"
    acc = s["metrics"]["accuracy"]
    assert acc["A"]["n"] == 3 and acc["A"]["mean"] > 0.6 and acc["B"]["mean"] < 0.4    # chance 1/7
    d = s["paired"]["accuracy"]["B-A"]
    assert set(d) >= {"mean", "lo", "hi", "n", "wins", "boot_lo", "boot_hi"}
    assert d["n"] == 3 and d["wins"] == 0 and d["hi"] < 0 and d["excludes_zero"]
    assert s["selection"] == {"A": "best epoch on the validation split", "B": "best epoch on the validation split"}
    md = (out / "summary.md").read_text()
    assert "**B** against A: worse in accuracy by -0." in md and "Model selection never touches the test split" in md
    rows = (out / "runs.csv").read_text().splitlines()
    assert rows[0].startswith("config,seed,selected_on,accuracy") and len(rows) == 7
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in "AB":
        for seed in range(3):
            r = json.loads((out / name / f"seed{seed}" / "result.json").read_text())
            assert r["seed"] == seed and r["checkpoint"] == "checkpoints/best.safetensors" and r["threads"] == 1
            assert "finished: accuracy" in (out / name / f"seed{seed}" / "logs" / "attempt1.log").read_text()
            saved = yaml.safe_load((out / name / f"seed{seed}" / "config.yaml").read_text())
            assert saved["train"]["seed"] == seed
            assert (out / name / f"seed{seed}" / "eval" / "report.html").is_file()
    # the same seed gives the same weights, so the two configurations' runs differ only by their lr
    assert json.loads((out / "A" / "seed0" / "result.json").read_text())["metrics"] != \
        json.loads((out / "A" / "seed1" / "result.json").read_text())["metrics"]


def test_rerun_keeps_finished_runs(study, capsys):
    tmp, paths, out = study
    before = (out / "summary.json").read_text()
    assert _compare(paths, out) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, kept") == 6 and "training into" not in printed
    assert (out / "summary.json").read_text() == before


def test_keep_checkpoints_selected_leaves_the_evaluated_weights_and_the_same_summary(study, tmp_path, capsys):
    """Pruning a copy of the study: each finished run keeps only the weights it was evaluated with, and the
    summary, a rerun and `ferkit evaluate` of the kept checkpoint are unchanged."""
    import shutil

    tmp, paths, out = study
    copy = tmp_path / "study_copy"
    shutil.copytree(out, copy)
    before = json.loads((copy / "summary.json").read_text())
    ckpt = copy / "A" / "seed0" / "checkpoints"
    assert {"best.safetensors", "last.safetensors", "last.safetensors.state.pt"} <= {f.name for f in ckpt.iterdir()}
    assert _compare(paths, copy, extra=("--keep-checkpoints", "selected")) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, kept (pruned ") == 6 and "training into" not in printed
    for name in "AB":
        for seed in range(3):
            assert [f.name for f in (copy / name / f"seed{seed}" / "checkpoints").iterdir()] == ["best.safetensors"]
    assert _without_times(json.loads((copy / "summary.json").read_text())) == _without_times(before)
    assert main(["evaluate", str(ckpt / "best.safetensors"), "--out", str(tmp_path / "ev")]) == 0
    from ferkit.engine.checkpoint import read_checkpoint  # the run folder reads as its kept weights
    assert read_checkpoint(copy / "A" / "seed0").meta == read_checkpoint(ckpt / "best.safetensors").meta
    assert _compare(paths, copy, extra=("--keep-checkpoints", "selected")) == 0     # nothing left to prune
    assert "(pruned " not in capsys.readouterr().out


def _kill_when_a_run_is_half_done(proc: subprocess.Popen, out: Path, timeout: float = 240) -> Path:
    """SIGKILL the coordinator ``proc`` once some run has a checkpoint but no result yet; returns that run."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "the study ended before it could be killed"
        for last in out.glob("*/seed*/checkpoints/last.safetensors"):
            run = last.parent.parent
            if not (run / "result.json").exists():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return run
        time.sleep(0.05)
    raise AssertionError("no run reached its first checkpoint in time")


@pytest.mark.slow
def test_sigkilled_coordinator_resumes_to_the_summary_of_one_uninterrupted_job(study, tmp_path, capsys):
    """2 jobs at once, the coordinator killed -9 mid-run, the same command again: the half-done run resumes
    from its checkpoint, finished runs are kept, and the summary is the one-job study's, times aside."""
    _, paths, reference = study
    out = tmp_path / "study"
    argv = _argv(paths, out, extra=["--jobs", "2"])
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, **_run_env()})
    half = _kill_when_a_run_is_half_done(proc, out)
    assert proc.returncode == -signal.SIGKILL
    pids = [int(line.split("(pid ")[1].split(",")[0]) for log in out.glob("*/seed*/logs/attempt1.log")
            for line in log.read_text().splitlines() if line.startswith("ferkit study run")]
    time.sleep(1.0)
    assert pids and not [p for p in pids if Path(f"/proc/{p}").exists() and
                         b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower()], \
        "a run's process outlived its coordinator"
    kept = {p.parent for p in out.glob("*/seed*/result.json")}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, kept") == len(kept)
    assert f"{half.parent.name} seed {half.name[4:]}: resuming" in printed
    assert json.loads((half / "result.json").read_text())["resumed"] is True
    assert (half / "logs" / "attempt2.log").is_file()
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    assert _without_times(got) == _without_times(want)
    assert got["complete"] and got["metrics"]["accuracy"]["A"]["n"] == 3


@pytest.mark.slow
def test_a_failed_run_is_retried_then_reported_with_its_log(tmp_path, monkeypatch, capsys):
    paths = _configs(tmp_path, _toy_folder(tmp_path / "data"))
    for name in "AB":                                       # 1 epoch: the runs' outcome is not the point here
        cfg = yaml.safe_load(paths[name].read_text())
        cfg["train"]["epochs"] = 1
        paths[name].write_text(yaml.safe_dump(cfg))
    once = tmp_path / "fail-once"
    once.write_text("")
    monkeypatch.setenv("FERKIT_TEST_FAIL_ONCE", str(once))
    monkeypatch.setenv("FERKIT_TEST_FAIL", "B:1")
    out = tmp_path / "study"
    assert _compare(paths, out, seeds=2, extra=["--retries", "1"]) == 0
    printed = capsys.readouterr().out
    assert "A seed 0: failed (RuntimeError: injected failure (once)); starting it again, try 2 of 2" in printed
    assert "B seed 1: failed 2 time(s), given up" in printed
    s = json.loads((out / "summary.json").read_text())
    assert not s["complete"] and s["metrics"]["accuracy"]["A"]["n"] == 2 and s["metrics"]["accuracy"]["B"]["n"] == 1
    [missing] = s["missing"]
    assert (missing["config"], missing["seed"], missing["failed"]["attempts"]) == ("B", 1, 2)
    assert missing["failed"]["last_lines"][-1] == "RuntimeError: injected failure of B:1"
    assert missing["failed"]["log"].endswith("B/seed1/logs/attempt2.log")
    assert (out / "A" / "seed0" / "logs" / "attempt1.log").read_text().count("injected failure (once)") >= 1
    assert "Failed after 2 tries: B seed 1" in (out / "summary.md").read_text()
    monkeypatch.delenv("FERKIT_TEST_FAIL")                  # fixed: the same command finishes the study
    assert _compare(paths, out, seeds=2, extra=["--retries", "0"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] and s["missing"] == [] and not (out / "B" / "seed1" / "failed.json").exists()


@pytest.mark.slow
def test_folds_are_an_axis_summarised_per_fold_and_over_folds(tmp_path, capsys):
    paths = _configs(tmp_path, _toy_folder(tmp_path / "data"))
    for name in "AB":
        cfg = yaml.safe_load(paths[name].read_text())
        cfg["data"]["num_folds"] = 2
        cfg["train"]["epochs"] = 3
        paths[name].write_text(yaml.safe_dump(cfg))
    out = tmp_path / "study"
    assert _compare(paths, out, seeds=2, extra=["--folds", "9"]) == 2
    assert "Fold 9 does not exist: configuration 'A' has data.num_folds = 2" in capsys.readouterr().err
    assert _compare(paths, out, seeds=2, extra=["--folds", "all", "--jobs", "2"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["folds"] == [0, 1] and s["complete"] and set(s["per_fold"]) == {"0", "1"}
    acc = {(n, f, sd): json.loads((out / n / f"fold{f}" / f"seed{sd}" / "result.json").read_text())["metrics"]
           ["accuracy"] for n in "AB" for f in (0, 1) for sd in (0, 1)}
    for f in (0, 1):
        folds = json.loads((out / "A" / f"fold{f}" / "seed0" / "folds.json").read_text())
        assert folds["fold"] == f and folds["folds"]["test_fold"] == f and folds["num_folds"] == 2
        per = s["per_fold"][str(f)]
        assert per["metrics"]["accuracy"]["A"]["mean"] == pytest.approx((acc["A", f, 0] + acc["A", f, 1]) / 2)
        d = per["paired"]["accuracy"]["B-A"]
        assert d["n"] == 2 and d["seeds"] == [0, 1]
        assert d["mean"] == pytest.approx(np.mean([acc["B", f, sd] - acc["A", f, sd] for sd in (0, 1)]))
    over = s["paired"]["accuracy"]["B-A"]
    assert over["n"] == 4 and over["seeds"] == ["fold0/seed0", "fold0/seed1", "fold1/seed0", "fold1/seed1"]
    assert over["mean"] == pytest.approx(np.mean([acc["B", k[1], k[2]] - acc["A", k[1], k[2]]
                                                  for k in acc if k[0] == "A"]))
    assert s["metrics"]["accuracy"]["A"]["n"] == 4 and s["metrics"]["accuracy"]["B"]["n"] == 4
    rows = (out / "runs.csv").read_text().splitlines()
    assert rows[0].startswith("config,fold,seed,selected_on,accuracy") and len(rows) == 9
    assert "## Accuracy per fold" in (out / "summary.md").read_text()
    assert _compare(paths, out, seeds=2) == 2                # the same folder without --folds
    assert "was run with --folds" in capsys.readouterr().err


def test_a_contrast_adds_the_paired_difference_of_two_named_configurations(study, tmp_path, capsys):
    import shutil

    _, paths, reference = study
    out = tmp_path / "study"
    shutil.copytree(reference, out)
    assert _compare(paths, out, extra=["--summary-only", "--contrast", "A-B"]) == 0
    s = json.loads((out / "summary.json").read_text())
    ba, ab = s["paired"]["accuracy"]["B-A"], s["paired"]["accuracy"]["A-B"]
    assert ab["mean"] == pytest.approx(-ba["mean"]) and ab["n"] == 3 and ab["wins"] == 3
    assert (ab["lo"], ab["hi"]) == (pytest.approx(-ba["hi"]), pytest.approx(-ba["lo"]))
    md = (out / "summary.md").read_text()
    assert "| B - A | A - B |" in md and "**A** against B: better in accuracy by +0." in md
    assert "and *A - B*, taken per seed" in md
    for bad in ("A-C", "A-A", "AB"):
        assert _compare(paths, out, extra=["--summary-only", "--contrast", bad]) == 2
        assert f"--contrast '{bad}' must be B-A" in capsys.readouterr().err


def test_a_changed_configuration_is_refused(study, capsys):
    tmp, paths, out = study
    (tmp / "changed").mkdir()
    changed = _configs(tmp / "changed", tmp / "data", lr_b=1e-6)
    assert _compare({"A": paths["A"], "B": changed["B"]}, out) == 2
    err = capsys.readouterr().err
    assert "already has runs of 'B' with another configuration (train.lr 1e-07 -> 1e-06)" in err
    assert err.count("\n") == 1
    assert _compare(paths, out, extra=["--set", "train.epochs=4"]) == 2      # --set changes both
    assert "already has runs of 'A'" in capsys.readouterr().err


def test_refusals_before_anything_runs(tmp_path, capsys):
    data = _toy_folder(tmp_path / "data")
    paths = _configs(tmp_path, data)
    other = yaml.safe_load(paths["B"].read_text())
    other["data"]["val_fraction"] = 0.5
    paths["B"].write_text(yaml.safe_dump(other))
    out = tmp_path / "study"
    assert _compare(paths, out) == 2
    assert "uses data.val_fraction = 0.5 but 'A' uses 0.0; a paired study" in capsys.readouterr().err
    assert main(["compare", f"A={paths['A']}", "B", "--seeds", "2", "--out", str(out)]) == 2
    assert "'B' must look like NAME=CONFIG.yaml" in capsys.readouterr().err
    assert main(["compare", f"A={paths['A']}", f"A={paths['B']}", "--seeds", "2", "--out", str(out)]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["compare", f"A={paths['A']}", f"B={tmp_path / 'nope.yaml'}", "--seeds", "2", "--out", str(out)]) == 2
    assert "nope.yaml (for 'B') does not exist" in capsys.readouterr().err
    assert _compare(paths, out, seeds=0) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert not out.exists()
