"""`ferkit demo`'s ResNet rows (baseline and DICE-FER, the demo's data, starts and settings) over paired seeds:
whether DICE-FER's code carries less identity than the baseline's features, what it costs in accuracy, and what
DICE-FER's stage-1 budget changes, with 95% intervals rather than the demo's one seed.

    .venv/bin/python benchmarks/studies/demo_seeds.py --seeds 0 1 2 3 [--stage1-epochs 40 20] [--resnet-size 48]
        [--dicefer-batch-size 32] [--out results.jsonl]

Each seed renders the demo's SynthFER with that seed, pretrains its identity ResNet-18 with it at
``--resnet-size`` (default: the demo's) and trains the baseline and one DICE-FER row per ``--stage1-epochs``
budget (default: the demo's) at that size, all from that one start (``ferkit.commands.demo.run_demo``; UA-FER
left out: its start is another network). One JSON line per (seed, row), each with its ``resnet_size`` and
``stage1_epochs`` (null for the baseline); a DICE-FER row carries its ``batch_size`` where it is not 64, the batch
of every row that names none (``ferkit.commands.demo.STORED_BATCH``). With ``--out`` lines are appended, a seed already there trains only the
rows it lacks (its pretrained start and baseline are deterministic, so a later budget pairs with them), and the
paired summary over every seed in the file is printed (``ferkit.study.stats.paired_difference``, the one ``ferkit
compare`` uses).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

METRICS = ("accuracy", "linear_probe", "subject_probe_64")


def run_seed(seed: int, stage1_budgets: list[int], with_baseline: bool = True, resnet_size: int = 48,
             channels_last: bool = False, dicefer_batch: int | None = None) -> list[dict]:
    from ferkit.commands.demo import STORED_BATCH, demo_entries, run_demo

    baseline = [demo_entries(64, 8, resnet_size=resnet_size, channels_last=channels_last)[0]] if with_baseline else []
    dicefer = []
    for e in stage1_budgets:
        entry = demo_entries(64, 8, stage1_epochs=e, resnet_size=resnet_size, channels_last=channels_last)[1]
        train = {**entry.train, **({"batch_size": dicefer_batch} if dicefer_batch else {})}
        dicefer.append(replace(entry, train=train, run_name=f"dicefer_s1_{e}"))
    batch = dicefer[0].train["batch_size"] if dicefer else STORED_BATCH     # rows name it when not the stored one
    with tempfile.TemporaryDirectory(prefix="ferkit-demo-seeds-") as out:
        t0 = time.time()
        rows = run_demo(out, seed=seed, device="cpu", entries=[*baseline, *dicefer], progress=False)
    budgets = [None, *stage1_budgets] if with_baseline else stage1_budgets
    return [{"seed": seed, "method": r["method"], "resnet_size": resnet_size, "stage1_epochs": e,
             **({"channels_last": True} if channels_last else {}),
             **({"batch_size": batch} if batch != STORED_BATCH and e is not None else {}),
             **{k: round(r[k], 4) for k in METRICS},
             "train_seconds": round(r["train_seconds"], 1), "seconds_all": round(time.time() - t0, 1)}
            for r, e in zip(rows, budgets, strict=True)]


def _arm(row: dict) -> str:
    """The row's arm: the baseline, or DICE-FER at its stage-1 budget, at the row's image side."""
    arm = "baseline" if row.get("stage1_epochs") is None else f"DICE-FER s1={row['stage1_epochs']}"
    arm += f" b{row['batch_size']}" if row.get("batch_size") else ""
    return f"{arm}{' channels-last' if row.get('channels_last') else ''} @{row['resnet_size']}px"


def summary(rows: list[dict]) -> str:
    from ferkit.study.stats import describe, paired_difference

    arms = list(dict.fromkeys(_arm(r) for r in rows))
    lines = []
    for metric in METRICS:
        by = {a: {r["seed"]: r[metric] for r in rows if _arm(r) == a} for a in arms}
        parts = [f"{a} {describe(v.values())['mean']:.3f} +- {describe(v.values())['std']:.3f}" for a, v in by.items()]
        lines.append(f"{metric}: " + ", ".join(parts))
        pairs = []
        for size in dict.fromkeys(r["resnet_size"] for r in rows):   # within a size and memory layout: against
            for cl in (False, True):                                  # its baseline and its first DICE-FER budget
                at = [a for a in arms if a.endswith(f" @{size}px") and ("channels-last" in a) == cl]
                base = [a for a in at if a.startswith("baseline")]
                pairs += [(a, base[0]) for a in at if base and a != base[0]]
                dice = [a for a in at if not a.startswith("baseline")]
                pairs += [(a, dice[0]) for a in dice[1:]]
        pairs += [(a, a.replace(" channels-last", "")) for a in arms        # channels-last against its twin
                  if "channels-last" in a and a.replace(" channels-last", "") in by]
        first = rows[0]["resnet_size"]                               # across sizes: each arm against itself at
        pairs += [(a, a.rsplit(" @", 1)[0] + f" @{first}px") for a in arms    # the first size in the file
                  if not a.endswith(f" @{first}px") and a.rsplit(" @", 1)[0] + f" @{first}px" in by]
        for a, b in pairs:
            d = paired_difference(by[b], by[a], metric)   # (x, y): y - x
            if d["n"] >= 2:
                lines.append(f"  {a} - {b}: {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] "
                             f"(95% t, {d['n']} paired seeds)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ferkit.commands.demo import RESNET_SIZE, STAGE1_BATCH, STAGE1_EPOCHS, STORED_BATCH

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--stage1-epochs", type=int, nargs="+", default=[STAGE1_EPOCHS],
                   help=f"DICE-FER's stage-1 budgets, one row each (default: the demo's {STAGE1_EPOCHS})")
    p.add_argument("--resnet-size", type=int, default=RESNET_SIZE,
                   help=f"the side the rows (and their identity pretraining) train at (default: the demo's {RESNET_SIZE})")
    p.add_argument("--channels-last", action="store_true",
                   help="the rows with train.channels_last (rows marked so, paired with their contiguous twins)")
    p.add_argument("--dicefer-batch-size", type=int, default=None,
                   help="the DICE-FER rows' train.batch_size (default: the demo's); rows pair by seed with the "
                        "other rows at the same side and layout")
    p.add_argument("--out", default="", help="JSON-lines file to append to and resume from; prints the paired summary")
    args = p.parse_args(argv)
    path = Path(args.out) if args.out else None
    done = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path and path.exists() else []
    for seed in args.seeds:
        at = [r for r in done if r["seed"] == seed and r["resnet_size"] == args.resnet_size
              and bool(r.get("channels_last")) == args.channels_last]
        batch = args.dicefer_batch_size or STAGE1_BATCH
        have = {r["stage1_epochs"] for r in at if r.get("batch_size", STORED_BATCH) == batch}
        todo = [e for e in args.stage1_epochs if e not in have]
        if not todo:
            continue
        with_baseline = not any(r["stage1_epochs"] is None for r in at)
        for row in run_seed(seed, todo, with_baseline=with_baseline, resnet_size=args.resnet_size,
                            channels_last=args.channels_last, dicefer_batch=args.dicefer_batch_size):
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
