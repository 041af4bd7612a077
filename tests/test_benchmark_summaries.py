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


def test_demo_seeds_summary_gives_dicefer_minus_baseline_per_metric():
    demo = load("demo_seeds")
    rows = []
    for seed, (base, dice) in enumerate(((0.95, 0.70), (0.93, 0.66), (0.94, 0.68))):
        rows.append({"seed": seed, "method": "baseline (ResNet-18, CE)", "accuracy": 0.7, "linear_probe": 0.7,
                     "subject_probe_64": base})
        rows.append({"seed": seed, "method": "DICE-FER (4x ResNet-18, DV MI)", "accuracy": 0.6, "linear_probe": 0.6,
                     "subject_probe_64": dice})
    lines = demo.summary(rows).splitlines()
    assert lines[0].startswith("accuracy: baseline 0.700 +- 0.000, DICE-FER 0.600 +- 0.000; DICE-FER - baseline -0.100")
    assert "DICE-FER - baseline -0.260 [-0.285, -0.235] (95% t, 3 paired seeds)" in lines[2]   # t(2) 4.303 x 0.01 / sqrt 3, lines[2]
