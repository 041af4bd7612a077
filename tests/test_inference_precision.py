"""bf16 at inference (``benchmarks/studies/inference_precision.py``): the rows' known answers, the study's refusal,
and ``--precision auto``'s list of methods held to the stored measurement it cites."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "benchmarks" / "results" / "inference_precision"


def study():
    spec = importlib.util.spec_from_file_location("inference_precision",
                                                  ROOT / "benchmarks" / "studies" / "inference_precision.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rows_count_the_flipped_faces_and_the_largest_probability_change():
    probs = np.array([[0.6, 0.4], [0.51, 0.49], [0.2, 0.8], [0.9, 0.1]])
    bf16 = probs + np.array([[0.0, 0.0], [-0.02, 0.02], [0.01, -0.01], [0.0, 0.0]])     # face 1 flips to class 1
    got = {"fp32": {"probs": probs, "uncertainty": 1 - probs.max(1)},
           "bf16": {"probs": bf16, "uncertainty": 1 - bf16.max(1)}, "labels": np.array([0, 0, 1, 1])}
    fp32, b = study().rows_of(0.8, "dicefer", 3, got)
    assert (fp32["accuracy"], fp32["agreement"], fp32["max_abs_dprob"]) == (0.75, 1.0, 0.0)
    assert (b["level"], b["arm"], b["seed"], b["precision"], b["faces"]) == (0.8, "dicefer", 3, "bf16", 4)
    assert b["accuracy"] == 0.5 and b["agreement"] == 0.75                                 # 3 of 4 classes kept
    assert b["max_abs_dprob"] == pytest.approx(0.02) and b["mean_abs_dprob"] == pytest.approx(0.0075)


def test_the_study_refuses_a_sweep_without_weights_in_one_sentence(tmp_path):
    """Checked before the CPU: a fresh clone learns what it lacks on any machine (an AVX2-only one included)."""
    (tmp_path / "c0.8" / "dicefer" / "seed0").mkdir(parents=True)          # a fresh clone: result.json only
    with pytest.raises(SystemExit, match=r"^No selected weights at .*seed0/checkpoints/best\.safetensors: the study "
                                         r"needs the sweep's runs with their weights \(run benchmarks/studies/"):
        study().main(["--sweep", str(tmp_path), "--levels", "0.8", "--arms", "dicefer", "--out", str(tmp_path / "o")])


def _stored() -> list[dict]:
    return [json.loads(line) for line in (STORED / "results.jsonl").read_text().splitlines() if line.strip()]


def test_the_stored_fp32_rows_are_the_sweep_runs_own_accuracies():
    """predict's engine in fp32 reproduces each run's evaluation: the rows measure those runs, nothing else."""
    rows = [r for r in _stored() if r["precision"] == "fp32"]
    assert rows
    for level in sorted({r["level"] for r in rows}):
        with (ROOT / "benchmarks" / "results" / "study_confounding" / f"c{level:g}" / "runs.csv").open() as f:
            ref = {(r["config"], int(r["seed"])): float(r["accuracy"]) for r in csv.DictReader(f)}
        for r in (r for r in rows if r["level"] == level):
            assert r["accuracy"] == pytest.approx(ref[(r["arm"], r["seed"])], abs=1e-5), r


def test_precision_auto_lists_only_methods_whose_stored_bf16_rows_show_no_harm():
    """Each method ``--precision auto`` may run in bf16 has stored rows where, over its paired runs, bf16 moves
    accuracy by less than one point (the 95% interval inside +-0.01) and keeps >= 98% of the predicted classes."""
    from ferkit.inference.model import BF16_MEASURED
    from ferkit.study.stats import paired_difference

    rows = _stored()
    assert BF16_MEASURED
    for arm in BF16_MEASURED:
        by = {p: {(r["level"], r["seed"]): r["accuracy"] for r in rows if r["arm"] == arm and r["precision"] == p}
              for p in ("fp32", "bf16")}
        d = paired_difference(by["fp32"], by["bf16"], "accuracy")
        assert d["n"] >= 16 and -0.01 < d["lo"] and d["hi"] < 0.01, (arm, d)
        agreement = [r["agreement"] for r in rows if r["arm"] == arm and r["precision"] == "bf16"]
        assert np.mean(agreement) >= 0.98, (arm, np.mean(agreement))
    assert "external" not in BF16_MEASURED and "uafer" not in BF16_MEASURED          # not measured: fp32 under auto


def test_the_study_refuses_a_cpu_without_bf16_in_one_sentence(tmp_path, monkeypatch):
    import ferkit.engine.devices as devices

    run = tmp_path / "c0.8" / "dicefer" / "seed0" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best.safetensors").write_bytes(b"")                          # the weights are there; the CPU is not
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(SystemExit, match=r"^This CPU has no bf16 instructions .*run the study where bf16 is native\.$"):
        study().main(["--sweep", str(tmp_path), "--levels", "0.8", "--arms", "dicefer", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()                                  # refused before writing anything
