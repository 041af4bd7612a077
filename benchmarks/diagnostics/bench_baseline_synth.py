"""Baseline accuracy on unseen SynthFER identities at confounding 0 and 0.8, 3 seeds each (the demo's setting).

    python benchmarks/diagnostics/bench_baseline_synth.py [--seeds 0 1 2] [--confounding 0 0.8] [--epochs 8] [--size 64]

Each seed re-renders SynthFER (24 identities x 56 images, split by identity) and retrains the baseline;
prints per-run numbers and mean ± std per confounding level, and writes them to --out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--confounding", type=float, nargs="+", default=[0.0, 0.8])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--identities", type=int, default=24)
    p.add_argument("--images-per-identity", type=int, default=56)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/bench_baseline_synth")
    args = p.parse_args()
    os.environ.setdefault("FERKIT_NO_PROGRESS", "1")

    from ferkit.commands.demo import demo_entries, run_demo

    entry = demo_entries(args.size, args.epochs)[0]
    results: dict[str, list[dict]] = {}
    for conf in args.confounding:
        for seed in args.seeds:
            rows = run_demo(Path(args.out) / f"conf{conf}_seed{seed}", args.identities, args.images_per_identity,
                            args.size, conf, args.epochs, seed, args.device, entries=[entry], progress=False)
            row = {"seed": seed, **rows[0]}
            results.setdefault(str(conf), []).append(row)
            print(f"confounding {conf} seed {seed}: accuracy {row['accuracy']:.3f}, mean class accuracy "
                  f"{row['mean_class_accuracy']:.3f} ({row['train_seconds']:.0f}s)", flush=True)
    print(f"\nbaseline ({entry.label}), {args.identities}x{args.images_per_identity} at {args.size} px, "
          f"{args.epochs} epochs; accuracy on unseen identities (chance 0.143):")
    for conf, rows in results.items():
        acc = np.array([r["accuracy"] for r in rows])
        mca = np.array([r["mean_class_accuracy"] for r in rows])
        print(f"  confounding {conf}: accuracy {acc.mean():.3f} ± {acc.std():.3f}, "
              f"mean class accuracy {mca.mean():.3f} ± {mca.std():.3f} (n={len(rows)})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
