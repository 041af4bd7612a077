"""How fast the demo's DICE-FER stage 1 gets its MI estimate up, per epoch and per second, under the knobs that
could shorten it: the question behind `make demo`'s time (issue 26; stage 1 is most of the demo).

    python benchmarks/diagnostics/stage1_climb.py [--seed 0] [--epochs 12] [--arms as_is encoder_lr_x3 ...] [--store]

One seed renders the demo's SynthFER and pretrains the demo's identity ResNet-18 once (``ferkit.commands.demo``,
48 px); then each arm trains the demo's DICE-FER row from that start with stage 1 cut to ``--epochs`` and one
change (``ARMS``). Per arm it records stage 1's MI estimate (global + local, nats) and seconds per epoch
(the run's metrics.csv), the first epoch whose MI passes 1 nat (the end of the dead start), the MI reached at the
end and per second of stage 1. One seed per arm: a diagnostic that says where the epochs go, not a claim about
the arms (the demo's choices are shown over paired seeds on docs/results/demo-seeds.md). ``--store`` writes
``benchmarks/results/speed/demo_stage1_climb.json``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

#: arm -> (model overrides, train overrides) on the demo's DICE-FER entry
ARMS = {
    "as_is": ({}, {}),
    "encoder_lr_x3": ({"encoder_lr_scale": 3.0}, {}),
    "critic_lr_x3": ({"critic_lr_scale": 3.0}, {}),
    "batch_32": ({}, {"batch_size": 32}),
    "no_delta_ramp": ({"delta_warmup_steps": 0}, {}),
}


def stage1_rows(run: Path) -> list[dict]:
    """Stage 1's per-epoch rows of a run's metrics.csv: epoch, MI (global + local), seconds."""
    with open(run / "metrics.csv", newline="") as f:
        return [{"epoch": int(r["epoch"]), "mi": float(r["train_mi_global"]) + float(r["train_mi_local"]),
                 "seconds": float(r["seconds"])} for r in csv.DictReader(f) if r["phase"] == "stage1"]


def climb(rows: list[dict]) -> dict:
    """The MI curve's summary: where it first passes 1 nat, where it ends, nats per stage-1 second."""
    first = next((r["epoch"] for r in rows if r["mi"] > 1.0), None)
    seconds = sum(r["seconds"] for r in rows)
    return {"mi_per_epoch": [round(r["mi"], 2) for r in rows], "epoch_seconds": round(seconds / len(rows), 1),
            "first_epoch_over_1_nat": first, "final_mi": round(rows[-1]["mi"], 2),
            "nats_per_stage1_second": round(rows[-1]["mi"] / seconds, 4)}


def run(seed: int, epochs: int, arms: list[str]) -> dict:
    from ferkit.commands.demo import RESNET_SIZE, demo_entries, run_demo

    base = demo_entries(64, 8, stage1_epochs=epochs, resnet_size=RESNET_SIZE)[1]   # the demo's DICE-FER entry
    entries = [replace(base, model={**base.model, **ARMS[a][0]}, train={**base.train, **ARMS[a][1]}, run_name=a)
               for a in arms]
    with tempfile.TemporaryDirectory(prefix="ferkit-stage1-climb-") as out:
        rows = run_demo(out, seed=seed, device="cpu", entries=entries, progress=False)
        arms_out = {}
        for a, e, r in zip(arms, entries, rows, strict=True):
            arms_out[a] = {"model": ARMS[a][0], "train": ARMS[a][1], **climb(stage1_rows(Path(out) / e.run_name)),
                           "accuracy": round(r["accuracy"], 4), "subject_probe_64": round(r["subject_probe_64"], 4)}
    return {"seed": seed, "stage1_epochs": epochs, "row": base.label, "arms": arms_out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12, help="stage-1 epochs per arm (default 12)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--store", action="store_true", help="write benchmarks/results/speed/demo_stage1_climb.json")
    args = p.parse_args(argv)
    results = run(args.seed, args.epochs, args.arms)
    for a, r in results["arms"].items():
        print(f"{a}: MI over 1 nat from epoch {r['first_epoch_over_1_nat']}, {r['final_mi']} nats after "
              f"{args.epochs} epochs of {r['epoch_seconds']} s ({r['nats_per_stage1_second']} nats/s); "
              f"MI per epoch {r['mi_per_epoch']}")
    if args.store:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))
        from stored import store

        store("demo_stage1_climb", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
