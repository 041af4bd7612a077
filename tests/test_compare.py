"""`ferkit compare`: paired statistics against scipy and by hand, a study where one configuration cannot
learn (lr 1e-7) and its interval must say so, a killed study that resumes to the same summary, and the
refusals (a changed configuration, different data, malformed arguments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy import stats

from engine_helpers import TinyMethod
from ferkit.cli import main
from ferkit.study.stats import describe, paired_difference, verdict

pytestmark = pytest.mark.usefixtures("one_thread")

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


def _compare(paths, out, seeds=3, extra=()):
    return main(["compare", f"A={paths['A']}", f"B={paths['B']}", "--seeds", str(seeds), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The uninterrupted reference study, on one thread like the tests (a module fixture is set up before
    the function-scoped ``one_thread``; another thread count would change the sums' rounding)."""
    tmp = tmp_path_factory.mktemp("study")
    paths = _configs(tmp, _toy_folder(tmp / "data"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _compare(paths, tmp / "study") == 0
    finally:
        torch.set_num_threads(threads)
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
            assert r["seed"] == seed and r["checkpoint"] == "checkpoints/best.safetensors"
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


def test_killed_study_resumes_to_the_same_summary(study, tmp_path, monkeypatch, capsys):
    _, paths, reference = study
    calls = {"n": 0}
    real_step = TinyMethod.train_step

    def step_then_kill(self, phase, batch, ctx):
        calls["n"] += 1
        if calls["n"] == 123:             # 7 steps an epoch, 56 a run: the third run's second epoch
            raise KeyboardInterrupt
        return real_step(self, phase, batch, ctx)

    monkeypatch.setattr(TinyMethod, "train_step", step_then_kill)
    out = tmp_path / "study"
    assert _compare(paths, out) == 130
    assert (out / "A" / "seed1" / "checkpoints" / "last.safetensors").is_file()
    assert not (out / "A" / "seed1" / "result.json").exists()
    capsys.readouterr()
    assert _compare(paths, out) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, kept") == 2 and "A seed 1: resuming" in printed
    assert json.loads((out / "A" / "seed1" / "result.json").read_text())["resumed"] is True
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    for s in (got, want):                                  # wall time is the one thing that may differ
        s["metrics"].pop("train_seconds"), s["paired"].pop("train_seconds")
    assert got["metrics"] == want["metrics"] and got["paired"] == want["paired"]
    assert got["metrics"]["accuracy"]["A"]["n"] == 3


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
