"""`ferkit demo`'s ResNet rows (baseline and DICE-FER, the demo's data, starts and settings) over paired seeds:
whether DICE-FER's code carries less identity than the baseline's features, and what it costs in accuracy, with
95% intervals rather than the demo's one seed.

    .venv/bin/python benchmarks/studies/demo_seeds.py --seeds 0 1 2 3 [--out results.jsonl]

Each seed renders the demo's SynthFER with that seed, pretrains its identity ResNet-18 with it and trains both
rows (``ferkit.commands.demo.run_demo``, UA-FER left out: its start is another network). One JSON line per (seed,
row); with ``--out`` lines are appended, seeds already there are skipped, and the paired summary over every seed
in the file is printed (``ferkit.study.stats.paired_difference``, the one ``ferkit compare`` uses).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

METRICS = ("accuracy", "linear_probe", "subject_probe_64")


def run_seed(seed: int) -> list[dict]:
    from ferkit.commands.demo import RESNET_SIZE, demo_entries, run_demo

    entries = demo_entries(64, 8, resnet_size=RESNET_SIZE)[:2]
    with tempfile.TemporaryDirectory(prefix="ferkit-demo-seeds-") as out:
        t0 = time.time()
        rows = run_demo(out, seed=seed, device="cpu", entries=entries, progress=False)
    return [{"seed": seed, "method": r["method"], **{k: round(r[k], 4) for k in METRICS},
             "train_seconds": round(r["train_seconds"], 1), "seconds_all": round(time.time() - t0, 1)} for r in rows]


def summary(rows: list[dict]) -> str:
    from ferkit.study.stats import describe, paired_difference

    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = []
    for metric in METRICS:
        by = {m: {r["seed"]: r[metric] for r in rows if r["method"] == m} for m in methods}
        parts = [f"{m.split(' (')[0]} {describe(v.values())['mean']:.3f} +- {describe(v.values())['std']:.3f}"
                 for m, v in by.items()]
        line = f"{metric}: " + ", ".join(parts)
        if len(methods) == 2:
            d = paired_difference(by[methods[0]], by[methods[1]], metric)
            if d["n"] >= 2:
                line += (f"; DICE-FER - baseline {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] "
                         f"(95% t, {d['n']} paired seeds)")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="", help="JSON-lines file to append to and resume from; prints the paired summary")
    args = p.parse_args(argv)
    path = Path(args.out) if args.out else None
    done = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path and path.exists() else []
    for seed in args.seeds:
        if any(r["seed"] == seed for r in done):
            continue
        for row in run_seed(seed):
            print(json.dumps(row), flush=True)
            done.append(row)
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print(summary(done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
