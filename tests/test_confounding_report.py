"""The confounding sweep's report (``benchmarks/studies/confounding_report.py``) and its docs section: known
answers on a small stored sweep, the record kept when a fresh clone has no logs, and the generated verdicts."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ARMS = ("baseline", "baseline_budget", "dicefer", "dicefer_pretrained")


def _gap(mean, lo, hi, n):
    return {"mean": mean, "lo": lo, "hi": hi, "boot_lo": lo, "boot_hi": hi, "n": n, "wins": 0}


def fake_sweep(out: Path, seeds=(0, 1, 2)) -> None:
    """Two levels, three seeds, four arms; DICE-FER runs with a stage-1 log whose MI is known."""
    for c, gap in ((0.0, -0.10), (1.0, 0.05)):
        level = out / f"c{c:g}"
        rows = []
        for arm in ARMS:
            for s in seeds:
                acc = 0.5 + (gap if arm.startswith("dicefer") else 0.0) + 0.01 * s
                rows.append({"config": arm, "seed": s, "accuracy": acc, "identity_probe_matched": 0.9 - 0.1 * s})
                if arm.startswith("dicefer"):
                    run = level / arm / f"seed{s}"
                    run.mkdir(parents=True)
                    (run / "result.json").write_text(json.dumps({"metrics": {"accuracy": acc}}))
                    with (run / "metrics.csv").open("w", newline="") as f:
                        w = csv.writer(f)
                        w.writerow(["phase", "epoch", "train_mi_global", "train_mi_local"])
                        for e in range(1, 8):                       # MI (global + local) = e + s
                            w.writerow(["stage1", e, 0.25 * (e + s), 0.75 * (e + s)])
                        w.writerow(["stage3", 1, "", ""])
        with (level / "runs.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        n = len(seeds)
        metric = {a: {"mean": 0.5, "std": 0.01, "n": n} for a in ARMS}
        g = {a: gap if a.startswith("dicefer") else 0.02 for a in ARMS[1:]}
        paired = {f"{a}-baseline": _gap(g[a], g[a] - 0.03, g[a] + 0.03, n) for a in ARMS[1:]}
        paired["dicefer-baseline_budget"] = _gap(gap - 0.02, gap - 0.05, gap + 0.01, n)
        paired["dicefer_pretrained-dicefer"] = _gap(0.0, -0.01, 0.01, n)
        (level / "summary.json").write_text(json.dumps({
            "configs": list(ARMS), "seeds": list(seeds), "reference": "baseline", "complete": True, "missing": [],
            "metrics": {"accuracy": metric, "identity_probe_matched": metric},
            "paired": {"accuracy": paired, "identity_probe_matched": paired}}))


def test_report_writes_the_figure_and_each_runs_stage1_with_known_values(tmp_path):
    report = load(ROOT / "benchmarks" / "studies" / "confounding_report.py", "confounding_report")
    fake_sweep(tmp_path)
    assert report.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = json.loads((tmp_path / "stage1.json").read_text())["runs"]
    assert len(runs) == 2 * 2 * 3
    r = next(r for r in runs if (r["level"], r["arm"], r["seed"]) == (1.0, "dicefer", 2))
    assert r == {"level": 1.0, "arm": "dicefer", "seed": 2, "epochs": 7, "mi_end": 9.0,   # 7 + 2
                 "mi_rise_last5": 5.0, "accuracy": 0.57,                                # epoch 7 - epoch 2
                 "mi_by_epoch": [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]}
    assert (tmp_path / "stage1.png").read_bytes()[:4] == b"\x89PNG"


def test_report_keeps_the_stored_record_of_runs_whose_logs_are_gone(tmp_path):
    report = load(ROOT / "benchmarks" / "studies" / "confounding_report.py", "confounding_report")
    fake_sweep(tmp_path)
    report.main(["--out", str(tmp_path)])
    first = (tmp_path / "stage1.json").read_text()
    for log in tmp_path.glob("c*/*/seed*/metrics.csv"):       # what a fresh clone has: result.json only
        log.unlink()
    report.main(["--out", str(tmp_path)])
    assert (tmp_path / "stage1.json").read_text() == first


def test_report_refuses_a_folder_without_a_level_in_one_sentence(tmp_path):
    report = load(ROOT / "benchmarks" / "studies" / "confounding_report.py", "confounding_report")
    with pytest.raises(SystemExit, match=r"^No level of the sweep is stored under .*; run benchmarks/studies/"):
        report.main(["--out", str(tmp_path)])


def test_the_docs_section_calls_a_level_only_with_three_seeds_and_says_where_dicefer_comes_closest(tmp_path):
    gen = load(ROOT / "docs" / "gen_pages.py", "gen_pages")
    report = load(ROOT / "benchmarks" / "studies" / "confounding_report.py", "confounding_report")
    fake_sweep(tmp_path)
    report.main(["--out", str(tmp_path)])
    text = "\n".join(gen.sweep_section(tmp_path))
    assert ("- `dicefer` beats `baseline` at confounding 1; loses to it at 0; its best mean difference is "
            "+0.050 [+0.020, +0.080] at confounding 1 (3 paired seeds).") in text
    assert "| 0 | `dicefer` | 3 | 7 | 8.00 | +5.00 | 3/3 | 0.410 |" in text       # MI 7 + mean seed 1
    two = tmp_path / "two"
    fake_sweep(two, seeds=(0, 1))
    text = "\n".join(gen.sweep_section(two))
    assert "never beats `baseline` with an interval off 0; never loses to it" in text
    assert "levels with fewer than 3 paired seeds (0, 1) are not called either way." in text


def test_the_longer_stage1_study_gets_its_own_table_and_stays_out_of_the_sweeps_columns(tmp_path):
    gen = load(ROOT / "docs" / "gen_pages.py", "gen_pages")
    report = load(ROOT / "benchmarks" / "studies" / "confounding_report.py", "confounding_report")
    fake_sweep(tmp_path)
    longer = tmp_path / "longer_stage1"
    names = ["baseline", "dicefer", "dicefer_long", "baseline_long"]
    metric = {a: {"mean": 0.6, "std": 0.02, "n": 2 if a.endswith("long") else 3} for a in names}
    paired = {"dicefer_long-baseline_long": _gap(-0.04, -0.07, -0.01, 2), "dicefer-baseline": _gap(0.0, -0.1, 0.1, 3)}
    longer.mkdir()
    (longer / "summary.json").write_text(json.dumps({
        "configs": names, "seeds": [0, 1, 2], "metrics": {
            "accuracy": metric, "identity_probe_matched": metric,
            "train_seconds": {a: {"mean": 100.0, "std": 1.0, "n": 3} for a in names}},
        "paired": {"accuracy": paired, "identity_probe_matched": paired}}))
    run = longer / "dicefer_long" / "seed0"                      # its DICE-FER runs join level 0's stage-1 record
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"metrics": {"accuracy": 0.61}}))
    (run / "metrics.csv").write_text("phase,epoch,train_mi_global,train_mi_local\nstage1,1,1.0,2.0\n")
    report.main(["--out", str(tmp_path)])
    assert len(report.levels(tmp_path)) == 2                       # the study is no level of its own
    runs = json.loads((tmp_path / "stage1.json").read_text())["runs"]
    assert [r for r in runs if r["arm"] == "dicefer_long"] == [
        {"level": 0.0, "arm": "dicefer_long", "seed": 0, "epochs": 1, "mi_end": 3.0, "mi_rise_last5": 0.0,
         "accuracy": 0.61, "mi_by_epoch": [3.0]}]
    lines = gen.sweep_section(tmp_path)
    header = next(line for line in lines if line.startswith("| confounding | seeds |"))
    assert "long" not in header
    text = "\n".join(lines)
    assert ("At confounding 0, a second study (`longer_stage1/`) adds `dicefer_long`, `baseline_long` beside the "
            "level's `baseline`, `dicefer` (2 paired seeds") in text
    assert "| `dicefer_long-baseline_long` | -0.040 [-0.070, -0.010] 0/2 **≠0** |" in text
    assert "| `dicefer-baseline` | +0.000" not in text.split("a second study")[1]   # only the long arms' pairs


def test_the_sweeps_arms_differ_only_where_they_say_and_its_contrasts_name_arms_it_trains():
    sweep = load(ROOT / "benchmarks" / "studies" / "study_confounding.py", "study_confounding")
    for c in (0.0, 0.5, 1.0):
        arms = sweep.arms(c, "start.pth")
        assert all(a["data"]["synth_confounding"] == c for a in arms.values())
        assert len({_canonical(a["data"]) for a in arms.values()}) == 1                 # one render, one split
        for pair in sweep.contrasts(c):
            left, right = pair.split("-")
            assert left in arms and right in arms, pair
        d, p = arms["dicefer"], arms["dicefer_pretrained"]
        assert p["train"].pop("backbone_weights") == "start.pth" and p == d
        stages = sum(d["model"][f"stage{k}_epochs"] for k in (1, 2, 3))
        assert arms["baseline_budget"]["train"]["epochs"] == stages == 24
    long = sweep.longer_stage1_arms("start.pth")
    assert long["baseline_budget_52"]["train"]["epochs"] == sum(
        long["dicefer_stage1_40"]["model"][f"stage{k}_epochs"] for k in (1, 2, 3)) == 52
    level = sweep.arms(0.0, "start.pth")                        # the same runs as the level's where names meet
    assert long["baseline"] == level["baseline"] and long["dicefer"] == level["dicefer"]
    assert {k: v for k, v in long["dicefer_stage1_40"]["model"].items() if k != "stage1_epochs"} == {
        k: v for k, v in level["dicefer"]["model"].items() if k != "stage1_epochs"}
    for pair in sweep.LONGER_CONTRASTS:
        assert set(pair.split("-")) <= set(long), pair
    assert set(sweep.arms(0.0, "s")) == {"baseline", "baseline_budget", "dicefer", "dicefer_pretrained"}


def _canonical(d: dict) -> str:
    """A mapping as one comparable string."""
    return json.dumps(d, sort_keys=True)


def test_the_sweep_runs_the_longer_stage1_study_at_zero_only_and_stops_it_at_its_seeds(tmp_path, capsys):
    sweep = load(ROOT / "benchmarks" / "studies" / "study_confounding.py", "study_confounding")
    assert sweep.main(["--levels", "0", "1", "--seeds", "8", "--out", str(tmp_path), "--dry-run"]) == 0
    cmds = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ferkit compare")]
    seeds = [(c.split("--out ")[1].split()[0].rsplit("/", 1)[1], c.split("--seeds ")[1].split()[0]) for c in cmds]
    assert seeds == [("c0", "2"), ("c1", "2"), ("longer_stage1", "2"), ("c0", "4"), ("c1", "4"),
                     ("longer_stage1", "4"), ("c0", "8"), ("c1", "8")]
    assert sorted(p.name for p in (tmp_path / "longer_stage1" / "configs").iterdir()) == [
        "baseline.yaml", "baseline_budget_52.yaml", "dicefer.yaml", "dicefer_stage1_40.yaml"]
    assert sweep.main(["--levels", "0.5", "--seeds", "2", "--out", str(tmp_path / "b"), "--dry-run"]) == 0
    assert "longer_stage1" not in capsys.readouterr().out
