"""A tiny DICE-FER, started from an identity-pretrained ResNet-18, learns SynthFER above chance on unseen
identities.

Uses the pipeline of ``benchmarks/bench_dicefer.py`` (same data split, training and metrics) at a small size.
Slow: four ResNet-18s trained for three stages, then a baseline, on two CPU cores.
"""

import importlib.util
from argparse import Namespace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dicefer.py"


#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_dicefer", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_tiny_dicefer_learns_above_chance_on_unseen_identities():
    """From an identity-pretrained ResNet-18 (the paper starts from a face-recognition one), stage 1's MI
    estimate rises and the stage-3 classifier on E beats chance on people it never saw.

    Measured 2026-11-28 (this configuration, seed 0): DICE-FER 0.315, baseline 0.395 (chance 0.143); stage-1
    MI 0.15 (global) / 0.79 (local) nats. With lr 1e-3 the MI game collapsed to 0 nats in 2 of 3 runs; from
    random init it always did. The identity probe from E was NOT lower than the baseline's (0.74 vs 0.64),
    so the leakage claim is reported in the README as not shown, not asserted here.
    """
    bench = bench_module()
    args = Namespace(identities=24, images=40, size=48, batch=64, lr=3e-4, stage1=12, stage2=2, stage3=10,
                     baseline_epochs=8, critic_hidden=512, mig_steps=100, pretrain_epochs=6,
                     pretrain_identities=60, estimator="dv")
    run = bench.quality_run(0.0, 0, args)
    dice, base = run["dicefer"], run["baseline"]
    chance = 1 / 7
    assert run["backbone"] == "identity-pretrained"
    assert dice["stage1_mi_local"] > 0.1, run               # the MI estimate left 0 nats
    assert dice["accuracy"] > chance + 0.08, run             # above chance on unseen identities
    assert base["accuracy"] > chance + 0.15, run
