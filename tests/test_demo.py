"""`ferkit demo`'s table and rows (the full demo trains for minutes: `make demo`)."""

import pytest

from ferkit.commands.demo import PREPARERS, STAGE1_EPOCHS, demo_entries, format_table, stored_evidence


def test_table_columns_line_up_whatever_the_method_names():
    rows = [{"method": "baseline", "accuracy": 0.782, "mean_class_accuracy": 0.78, "u_right": 0.106,
             "u_wrong": 0.266, "train_seconds": 65, "linear_probe": 0.8, "subject_probe_64": 0.5},
            {"method": "UA-FER (tiny CLIP, caption-pretrained) and then some", "accuracy": 0.671,
             "mean_class_accuracy": 0.671, "u_right": 0.86, "u_wrong": 0.855, "train_seconds": 23,
             "linear_probe": 0.7, "subject_probe_64": 0.25, "auroc_u": 0.61}]
    lines = format_table(rows, 1 / 7).splitlines()
    ends = {len(line) for line in lines[:3]}
    assert len(ends) == 1, lines                                   # header and rows end in the same column
    assert lines[2].split()[-8:] == ["0.671", "0.671", "0.700", "0.250", "0.860", "0.855", "0.610", "23s"]
    assert lines[1].split()[-2] == "nan"                           # no AUROC given: shown as nan, not invented
    assert lines[3].startswith("(chance = 0.143")


def test_every_row_names_a_known_preparer():
    entries = demo_entries(size=64, epochs=8)
    assert [e.method for e in entries] == ["baseline", "dicefer", "uafer"]
    assert all(e.prepare in PREPARERS for e in entries)
    assert entries[2].train["epochs"] == 10                        # UA-FER: the learning test's fine-tuning
    # UA-FER's row is the variant whose u flags errors, with a prompt inside the stand-in CLIP's vocabulary
    assert entries[2].model["variant"] == "paper" and entries[2].model["prompt_template"] == "{}"
    dice = entries[1].model
    assert dice["stage1_epochs"] == STAGE1_EPOCHS and dice["delta_warmup_steps"] == 100   # run to its plateau
    assert dice["stage3_epochs"] == 4 and entries[0].train["epochs"] == 8
    assert demo_entries(size=64, epochs=8, stage1_epochs=12)[1].model["stage1_epochs"] == 12
    assert [e.model.get("image_size") for e in entries] == [64, 64, None]   # UA-FER's side is its CLIP's
    small = demo_entries(size=64, epochs=8, resnet_size=48)
    assert [e.model.get("image_size") for e in small] == [48, 48, None]


def test_nonsensical_demo_budgets_are_refused_in_one_sentence(tmp_path, capsys):
    from ferkit.cli import main

    for flags, name in ((["--stage1-epochs", "0"], "--stage1-epochs"), (["--epochs", "0"], "--epochs"),
                        (["--confounding", "1.5"], "--confounding"), (["--identities", "2"], "--identities"),
                        (["--resnet-size", "8"], "--resnet-size"), (["--resnet-size", "96"], "--resnet-size")):
        assert main(["demo", "--out", str(tmp_path / "d"), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ferkit: error: demo: {name} must") and err.count("\n") == 0, err
    assert not (tmp_path / "d").exists()                           # refused before anything is written


def _table_without_times(md: str) -> list[str]:
    """demo.md's table with each row's last column (its train time, a wall-clock number) cut off."""
    import re

    return [re.sub(r"\s+\d+s$", "", line) for line in md.splitlines()]


def test_quick_demo_runs_every_step_and_twice_gives_the_same_table(tmp_path, capsys, one_thread):
    """`ferkit demo --quick`: both pretrainings and the three methods, on a tiny budget, same code path; a
    second run (the global RNG moved on, as in a new process) prints the same table, times aside."""
    import json

    from ferkit.cli import main
    from ferkit.commands.demo import QUICK

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"SynthFER: {QUICK['identities']} identities x {QUICK['images_per_identity']} images at 32 px" in printed
    rows = json.loads((out / "demo.json").read_text())
    assert [r["start"] for r in rows] == ["resnet18-identity", "resnet18-identity", "clip-captions"]
    assert (out / "pretrained" / "resnet18_synthid.pth").is_file()
    assert (out / "pretrained" / "clip_tiny_captions.pt").is_file()
    for row, method in zip(rows, ("baseline", "dicefer", "uafer"), strict=True):
        metrics = json.loads((out / method / "metrics.json").read_text())
        assert row["accuracy"] == metrics["test"]["accuracy"]         # the table shows the run's own number
        assert row["checkpoint"].startswith(str(out / method))
        assert f"{row['accuracy']:>8.3f}" in printed
    assert "One run per method cannot tell a gain from noise" in printed
    assert "DICE-FER - baseline, accuracy: -0.027 [-0.156, +0.103] over 4 paired seeds" in printed
    assert all("auroc_u" in r for r in rows)
    assert (out / "uafer" / "config.yaml").read_text().count("clip_tiny_captions.pt") == 1

    import torch

    torch.rand(17)                                                   # as a fresh process would start elsewhere
    again = tmp_path / "again"
    assert main(["demo", "--quick", "--out", str(again), "--device", "cpu"]) == 0
    capsys.readouterr()
    first, second = (_table_without_times((d / "demo.md").read_text()) for d in (out, again))
    # fence, header, rows, note, a blank line, the stored evidence, fence
    assert first == second and len(first) == len(rows) + 5 + len(stored_evidence())
    rows2 = json.loads((again / "demo.json").read_text())
    drop = ("train_seconds", "checkpoint")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows2]


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)   # two full demos (~10 min each on 2 cores) outlast the suite's 900 s
def test_make_demo_twice_prints_the_same_table(tmp_path):
    """What `make demo` runs (`ferkit demo --out DIR`, full budget), twice in fresh processes: the same table,
    times aside. About 8 min a run on an idle 2-core EPYC."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "FERKIT_NO_PROGRESS": "1"}
    tables = []
    for name in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "ferkit", "demo", "--out", str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, done.stderr[-2000:]
        tables.append(_table_without_times((tmp_path / name / "demo.md").read_text()))
    assert tables[0] == tables[1] and len(tables[0]) == 3 + 8


def _demo_settings(monkeypatch, **settings):
    """ferkit.commands.demo with its module constants (STAGE1_EPOCHS, RESNET_SIZE, ...) set for one test."""
    from ferkit.commands import demo

    for name, value in settings.items():
        monkeypatch.setattr(demo, name, value)
    return demo


def test_stored_evidence_recomputes_the_studies_paired_differences():
    """The intervals the demo prints are ferkit compare's: recomputed from runs.csv they equal summary.json's."""
    import json

    from ferkit.study.evidence import paired_from_runs_csv, results_root

    root = results_root() / "study_uafer"
    summary = json.loads((root / "summary.json").read_text())
    for metric in ("accuracy", "auroc_error"):
        got = paired_from_runs_csv(root / "runs.csv", "paper", "paper_bare", metric)
        want = summary["paired"][metric]["paper_bare-paper"]
        assert got["n"] == want["n"] == 5
        for key in ("mean", "lo", "hi", "boot_lo", "boot_hi"):
            assert abs(got[key] - want[key]) < 1e-5, (metric, key)


def test_stage1_evidence_pairs_the_demos_budget_with_the_baseline_and_with_each_other_budget(tmp_path, monkeypatch):
    """The demo prints DICE-FER - baseline at its own stage-1 budget only (a file holding several budgets must
    not pool them), then each other stored budget against the demo's."""
    import json

    # the rows below carry no layout: contiguous
    demo = _demo_settings(monkeypatch, STAGE1_EPOCHS=20, RESNET_SIZE=32, CHANNELS_LAST=False)
    rows = []
    for seed, (base, long, short) in enumerate(((0.60, 0.70, 0.50), (0.62, 0.74, 0.51), (0.58, 0.72, 0.52))):
        for size, shift in ((32, 0.0), (48, 0.3)):   # rows at another image side must not be pooled either
            rows += [{"seed": seed, "method": "baseline (ResNet-18, CE)", "resnet_size": size, "stage1_epochs": None,
                      "accuracy": base + shift, "subject_probe_64": 0.9},
                     {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": size,
                      "stage1_epochs": 40, "accuracy": long, "subject_probe_64": 0.6 + shift},
                     {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": size,
                      "stage1_epochs": 20, "accuracy": short, "subject_probe_64": 0.7}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = demo._stage1_evidence(path)
    # accuracy short - base: -0.10, -0.11, -0.06 -> mean -0.090; subject 0.7 - 0.9 = -0.2 on every seed
    assert lines[0].startswith("  DICE-FER - baseline, accuracy: -0.090 [")
    assert "subject@64: -0.200 [-0.200, -0.200] over 3 paired seeds" in lines[0]
    assert "rows at 32 px, contiguous, DICE-FER's stage 1 at 20 epochs" in lines[0]
    # 40 - 20: +0.20, +0.23, +0.20 -> +0.210; subject -0.1
    assert lines[1].startswith("  DICE-FER with stage 1 at 40 instead of 20 epochs, accuracy: +0.210 [")
    assert "subject@64: -0.100 [-0.100, -0.100] over 3 paired seeds" in lines[1]
    assert len(lines) == 2


def test_stage1_evidence_pairs_within_one_memory_layout_and_says_where_a_budget_comes_from_the_other(
        tmp_path, monkeypatch):
    """Channels-last rows pair with channels-last rows only: the demo's line comes from its own layout, and a
    budget stored only in the other layout is paired there (and says so)."""
    import json

    demo = _demo_settings(monkeypatch, STAGE1_EPOCHS=40, RESNET_SIZE=48, CHANNELS_LAST=True)
    base, dice = "baseline (ResNet-18, CE)", "DICE-FER (4x ResNet-18, DV MI)"
    rows = []
    for seed in range(3):
        rows += [{"seed": seed, "method": base, "resnet_size": 48, "stage1_epochs": None, "accuracy": 0.60 + 0.01 * seed,
                  "subject_probe_64": 0.9},
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 40, "accuracy": 0.50,
                  "subject_probe_64": 0.7},
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 20, "accuracy": 0.40,
                  "subject_probe_64": 0.8},
                 {"seed": seed, "method": base, "resnet_size": 48, "stage1_epochs": None, "channels_last": True,
                  "accuracy": 0.65 + 0.01 * seed, "subject_probe_64": 0.9},
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 40, "channels_last": True,
                  "accuracy": 0.52, "subject_probe_64": 0.6}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = demo._stage1_evidence(path)
    # channels-last: 0.52 - (0.65, 0.66, 0.67) -> -0.140; subject 0.6 - 0.9 = -0.3 (not the contiguous -0.2)
    assert lines[0].startswith("  DICE-FER - baseline, accuracy: -0.140 [")
    assert "subject@64: -0.300 [-0.300, -0.300]" in lines[0] and "48 px, channels-last," in lines[0]
    # 20 epochs exist only among the contiguous rows: 0.40 - 0.50 there
    assert lines[1].startswith("  DICE-FER with stage 1 at 20 instead of 40 epochs, accuracy: -0.100 [")
    assert lines[1].endswith("(contiguous rows)")
    assert len(lines) == 2


def test_stage1_evidence_tells_budgets_of_another_batch_apart_and_skips_one_never_beside_the_demos(
        tmp_path, monkeypatch):
    """A stage-1 budget is its epochs and its batch: rows at the demo's epochs but another batch are not the demo's
    rows, and each line names the batches where they differ; a budget stored only in a layout that lacks the
    demo's is left out rather than failing."""
    import json

    demo = _demo_settings(monkeypatch, STAGE1_EPOCHS=25, STAGE1_BATCH=32, RESNET_SIZE=48, CHANNELS_LAST=False)
    base, dice = "baseline (ResNet-18, CE)", "DICE-FER (4x ResNet-18, DV MI)"
    rows = []
    for seed in range(3):
        rows += [{"seed": seed, "method": base, "resnet_size": 48, "stage1_epochs": None, "accuracy": 0.60,
                  "subject_probe_64": 0.9},
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 40, "accuracy": 0.55,
                  "subject_probe_64": 0.7},                                       # no batch_size: STORED_BATCH, 64
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 25, "accuracy": 0.40,
                  "subject_probe_64": 0.85},                                      # 25 epochs, but of batch 64
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 25, "batch_size": 32,
                  "accuracy": 0.58 + 0.01 * seed, "subject_probe_64": 0.65},
                 {"seed": seed, "method": dice, "resnet_size": 48, "stage1_epochs": 14, "channels_last": True,
                  "accuracy": 0.3, "subject_probe_64": 0.9}]                      # no demo budget beside it
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = demo._stage1_evidence(path)
    # the demo's rows are the batch-32 ones: 0.58, 0.59, 0.60 - 0.60; subject 0.65 - 0.9
    assert lines[0].startswith("  DICE-FER - baseline, accuracy: -0.010 [")
    assert "subject@64: -0.250 [-0.250, -0.250]" in lines[0] and "at 25 epochs of batch 32)" in lines[0]
    # 0.55 - (0.58, 0.59, 0.60) -> -0.040; 0.40 - ... -> -0.190
    assert lines[1].startswith("  DICE-FER with stage 1 at 40 epochs of batch 64 instead of 25 epochs of batch 32, "
                               "accuracy: -0.040 [")
    assert lines[2].startswith("  DICE-FER with stage 1 at 25 epochs of batch 64 instead of 25 epochs of batch 32, "
                               "accuracy: -0.190 [")
    assert len(lines) == 3
