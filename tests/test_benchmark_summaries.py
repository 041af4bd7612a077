"""The paired summaries the DICE-FER benchmarks print from their JSON-lines rows (known answers), and their
refusal of a malformed rows file."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "studies"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_seed_snippet_summary_pairs_each_start_by_seed():
    snippet = load("seed_snippet")
    acc = {"random init": [0.30, 0.40, 0.35], "identity-pretrained": [0.40, 0.50, 0.45],
           snippet.BASELINE: [0.32, 0.38, 0.35]}
    rows = [{"start": s, "seed": i, "accuracy": a} for s, accs in acc.items() for i, a in enumerate(accs)]
    text = snippet.summary(rows)
    assert "random init: accuracy 0.350 +- 0.050 over 3 seeds (0.300, 0.400, 0.350)" in text
    assert "identity-pretrained - random init: +0.100 [+0.100, +0.100]" in text      # every pair +0.1
    assert "DICE-FER random init - baseline random init: +0.000" in text
    assert "DICE-FER ahead in 1)" in text                                            # 0.40 vs 0.38


def test_seed_snippet_refuses_a_malformed_rows_file(tmp_path):
    snippet = load("seed_snippet")
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"start": "random init", "seed": 0}) + "\n{not json\n")
    with pytest.raises(SystemExit, match="line 2 is not JSON"):
        snippet._read(path)


def test_demo_seeds_summary_gives_each_stage1_budget_minus_baseline_and_minus_the_first_budget():
    demo = load("demo_seeds")
    rows = []
    for seed, (base, dice, short) in enumerate(((0.95, 0.70, 0.80), (0.93, 0.66, 0.78), (0.94, 0.68, 0.76))):
        rows.append({"seed": seed, "method": "baseline (ResNet-18, CE)", "resnet_size": 48, "stage1_epochs": None,
                     "accuracy": 0.7, "linear_probe": 0.7, "subject_probe_64": base})
        rows.append({"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": 48, "stage1_epochs": 40,
                     "accuracy": 0.6, "linear_probe": 0.6, "subject_probe_64": dice})
        rows.append({"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": 48, "stage1_epochs": 20,
                     "accuracy": 0.5, "linear_probe": 0.6, "subject_probe_64": short})
    lines = demo.summary(rows).splitlines()
    assert lines[0] == ("accuracy: baseline @48px 0.700 +- 0.000, DICE-FER s1=40 @48px 0.600 +- 0.000, "
                        "DICE-FER s1=20 @48px 0.500 +- 0.000")
    assert lines[1].startswith("  DICE-FER s1=40 @48px - baseline @48px: -0.100")
    assert lines[3].startswith("  DICE-FER s1=20 @48px - DICE-FER s1=40 @48px: -0.100")
    sub = lines[lines.index(next(x for x in lines if x.startswith("subject_probe_64"))) + 1]
    # t(2) 4.303 x 0.01 / sqrt 3
    assert sub == "  DICE-FER s1=40 @48px - baseline @48px: -0.260 [-0.285, -0.235] (95% t, 3 paired seeds)"
    assert lines[-1] == "  DICE-FER s1=20 @48px - DICE-FER s1=40 @48px: +0.100 [+0.050, +0.150] (95% t, 3 paired seeds)"


def test_demo_seeds_summary_pairs_each_row_at_another_size_with_the_same_row_at_the_first():
    demo = load("demo_seeds")
    rows = []
    for seed in range(3):
        for size, acc in ((48, 0.6 + 0.01 * seed), (32, 0.55 + 0.02 * seed)):
            rows += [{"seed": seed, "method": "baseline (ResNet-18, CE)", "resnet_size": size, "stage1_epochs": None,
                      "accuracy": 0.7, "linear_probe": 0.7, "subject_probe_64": 0.9},
                     {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": size,
                      "stage1_epochs": 40, "accuracy": acc, "linear_probe": 0.6, "subject_probe_64": 0.7}]
    lines = demo.summary(rows).splitlines()
    acc = lines[:lines.index(next(x for x in lines if x.startswith("linear_probe")))]
    assert "  DICE-FER s1=40 @32px - baseline @32px: -0.130 [" in "\n".join(acc)
    # 32 px - 48 px: -0.05, -0.04, -0.03
    assert "  DICE-FER s1=40 @32px - DICE-FER s1=40 @48px: -0.040 [-0.065, -0.015] (95% t, 3 paired seeds)" in acc
    assert "  baseline @32px - baseline @48px: +0.000 [+0.000, +0.000] (95% t, 3 paired seeds)" in acc


def test_demo_seeds_summary_pairs_channels_last_rows_with_their_twins_and_within_their_layout():
    demo = load("demo_seeds")
    rows = []
    for seed in range(3):
        for cl, shift in ((False, 0.0), (True, 0.01 * seed)):
            extra = {"channels_last": True} if cl else {}
            rows += [{"seed": seed, "method": "baseline (ResNet-18, CE)", "resnet_size": 48, "stage1_epochs": None,
                      "accuracy": 0.7, "linear_probe": 0.7, "subject_probe_64": 0.9, **extra},
                     {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": 48, "stage1_epochs": 40,
                      "accuracy": 0.6 + shift, "linear_probe": 0.6, "subject_probe_64": 0.7, **extra}]
    acc = demo.summary(rows).split("linear_probe")[0]
    assert "  DICE-FER s1=40 @48px - baseline @48px: -0.100 [-0.100, -0.100]" in acc
    assert "  DICE-FER s1=40 channels-last @48px - baseline channels-last @48px: -0.090 [" in acc
    assert "  DICE-FER s1=40 channels-last @48px - DICE-FER s1=40 @48px: +0.010 [-0.015, +0.035]" in acc
    assert "  baseline channels-last @48px - baseline @48px: +0.000" in acc
    assert "channels-last @48px - baseline @48px" not in acc.replace("baseline channels-last @48px - baseline", "")


def test_demo_seeds_summary_pairs_a_dicefer_batch_row_with_the_demos_first_budget_and_the_baseline():
    demo = load("demo_seeds")
    rows = []
    for seed in range(3):
        rows += [{"seed": seed, "method": "baseline (ResNet-18, CE)", "resnet_size": 48, "stage1_epochs": None,
                  "accuracy": 0.7, "linear_probe": 0.7, "subject_probe_64": 0.9},
                 {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": 48, "stage1_epochs": 40,
                  "accuracy": 0.6, "linear_probe": 0.6, "subject_probe_64": 0.7},
                 {"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "resnet_size": 48, "stage1_epochs": 25,
                  "batch_size": 32, "accuracy": 0.6 + 0.01 * seed, "linear_probe": 0.6, "subject_probe_64": 0.65}]
    acc = demo.summary(rows).split("linear_probe")[0]
    assert "DICE-FER s1=25 b32 @48px 0.610 +- 0.010" in acc
    assert "  DICE-FER s1=25 b32 @48px - baseline @48px: -0.090 [" in acc
    # 0.00, +0.01, +0.02 against the 40-epoch row of the demo's batch
    assert "  DICE-FER s1=25 b32 @48px - DICE-FER s1=40 @48px: +0.010 [-0.015, +0.035] (95% t, 3 paired seeds)" in acc


def test_stage1_climb_reads_where_the_mi_leaves_zero_and_what_it_reaches_per_second(tmp_path):
    spec = importlib.util.spec_from_file_location("stage1_climb", BENCH.parent / "diagnostics" / "stage1_climb.py")
    climb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(climb)
    (tmp_path / "metrics.csv").write_text(
        "phase,epoch,train_mi_global,train_mi_local,seconds\n"
        "stage1,1,0.01,-0.02,10\nstage1,2,0.2,0.7,10\nstage1,3,0.5,2.5,10\nstage2,1,9,9,10\n")
    rows = climb.stage1_rows(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]               # stage 2's row is not stage 1's
    out = climb.climb(rows)
    assert out["mi_per_epoch"] == [-0.01, 0.9, 3.0]
    assert out["first_epoch_over_1_nat"] == 3                    # 0.9 at epoch 2 is not over 1 nat
    assert out["final_mi"] == 3.0 and out["epoch_seconds"] == 10.0
    assert out["nats_per_stage1_second"] == 0.1                  # 3 nats in 30 s


def test_bench_inference_counts_a_models_flops_in_the_path_predict_runs():
    """GFLOP a face: PyTorch's counter around the engine's forward on one face (here one 16 -> 3 linear map:
    2 x 16 x 3 FLOPs)."""
    import sys
    from types import SimpleNamespace

    import torch

    sys.path.insert(0, str(BENCH.parent / "speed"))
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH.parent / "speed" / "bench_inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    w = torch.ones(3, 16)
    model = SimpleNamespace(preprocessing=SimpleNamespace(channels=1, size=4),
                            engine=SimpleNamespace(forward=lambda x: torch.as_tensor(x).flatten(1) @ w.t()))
    assert bench.gflop_per_face(model) == pytest.approx(96e-9)


def test_time_make_demo_splits_the_wall_time_at_makes_echo_and_the_demos_headers():
    spec = importlib.util.spec_from_file_location("time_make_demo", BENCH.parent / "speed" / "time_make_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lines = [(0.5, "test -x .venv/bin/python || python3 -m venv .venv"), (55.0, ".venv/bin/ferkit demo --out runs/demo"),
             (58.0, "SynthFER: 24 identities x 56 images"), (58.5, "== starting weights: resnet18-identity =="),
             (100.0, "pretrain resnet18: loss 0.15"), (110.0, "== baseline (ResNet-18, CE) =="),
             (150.5, "== DICE-FER (4x ResNet-18, DV MI) =="), (500.0, "")]
    got = mod.split(lines)
    assert got == {"stages_s": {"install": 55.0, "start": 3.5, "starting weights: resnet18-identity": 51.5,
                                "baseline (ResNet-18, CE)": 40.5, "DICE-FER (4x ResNet-18, DV MI)": 349.5},
                   "demo_s": 445.0, "total_s": 500.0}
    assert mod.split([(3.0, "make: *** [demo] Error 1"), (3.1, "")]) == {"total_s": 3.1}
