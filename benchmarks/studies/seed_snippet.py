"""The seed README's DICE-FER snippet as a new user runs it, on SynthFER: accuracy on unseen people from random
init and from an identity-pretrained start (issue 12's "learning from any start").

    .venv/bin/python benchmarks/studies/seed_snippet.py [--epochs 12] [--lr 1e-4] [--seeds 0] [--pretrain-epochs 6]
                                                [--starts random pretrained baseline] [--out results.jsonl]

The snippet's calls (``DICEFER(num_classes=7, feature_dim=64, lambda_exp=1.0, lambda_id=1.0, lambda_adv=0.1)``,
``model.train(train_loader, val_loader, epochs, learning_rate)``, ``model.evaluate(test_loader)``) on plain
``(image, label)`` loaders over SynthFER (24 people x 40 images, 48 px: 14 train, 5 validation, 5 unseen test
people, batch 32), only ``image_size=48`` and ``epochs`` changed. The identity-pretrained start is a ResNet-18
trained by ``ferkit pretrain resnet18`` on 60 people of another render (seed 10000). ``--starts baseline`` adds the
plain baseline (ResNet-18 + cross-entropy, ``ferkit train``'s engine) from random init on the same render and split,
with the same epochs, lr and batch: what "as the baseline does on the same data" is measured against. Prints one JSON line per
(start, seed) with the accuracy, the stage-1 MI at its end and how stage 1 stopped. With ``--out`` the lines are
appended to that file, (start, seed) pairs already in it are not run again, and the summary over every seed in
it is printed: each start's mean +- std and the paired difference pretrained - random with its 95% t interval
(``ferkit.study.stats.paired_difference``, the one ``ferkit compare`` uses).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def plain_loaders(model, synth):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    def plain(split, shuffle: bool) -> DataLoader:
        ds = FERDataset(split, build_transform(model.preprocessing, train=False), progress=False)
        x = torch.stack([ds[i]["image"] for i in range(len(ds))])
        y = torch.as_tensor(split.expressions)
        return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(0))

    return plain(synth.splits["train"], True), plain(synth.splits["val"], False), plain(synth.splits["test"], False)


def run(seed: int, epochs: int, lr: float, backbone: str | None) -> dict:
    from ferkit.api.dicefer import DICEFER
    from ferkit.data.synthetic import render_synthfer

    synth = render_synthfer(identities=24, images_per_identity=40, size=48, seed=0)
    model = DICEFER(num_classes=7, feature_dim=64, lambda_exp=1.0, lambda_id=1.0, lambda_adv=0.1,
                    image_size=48, device="cpu", precision="fp32", seed=seed, backbone_weights=backbone)
    train_loader, val_loader, test_loader = plain_loaders(model, synth)
    t0 = time.time()
    model.train(train_loader=train_loader, val_loader=val_loader, epochs=epochs, learning_rate=lr, progress=False)
    accuracy = model.evaluate(test_loader)
    notes = model.method.run_notes()["stage1"]
    last = notes["history"][-1]
    return {"start": _start_name(backbone), "seed": seed, "epochs": epochs, "lr": lr,
            "accuracy": round(accuracy, 4), "chance": round(1 / 7, 4), "stage1_mi_last_epoch": round(last["mi"], 3),
            "stage1_e_var_last_epoch": round(last["e_var"], 4), "stage1_epochs_run": len(notes["history"]),
            "stage1_stopped": notes.get("stopped"), "seconds": round(time.time() - t0, 1), "cpu": _cpu()}


BASELINE = "baseline (random init)"


def run_baseline(seed: int, epochs: int, lr: float) -> dict:
    """The baseline on the snippet's render and split (same identities, 48 px, batch 32, epochs, lr), random init."""
    from ferkit.config import build_experiment
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.trainer import train

    synth = render_synthfer(identities=24, images_per_identity=40, size=48, seed=0)
    data = {"dataset": "synthetic", "synth_identities": 24, "synth_images_per_identity": 40, "synth_seed": 0,
            "synth_size": 48}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="ferkit-snippet-baseline-") as out:
        cfg = build_experiment("baseline", data, {"epochs": epochs, "lr": lr, "batch_size": 32, "seed": seed,
                                                  "device": "cpu", "precision": "fp32", "out": out},
                               {"image_size": 48})
        result = train(cfg, splits=synth.splits, progress=False)
    return {"start": BASELINE, "seed": seed, "epochs": epochs, "lr": lr,
            "accuracy": round(result.metrics["test"]["accuracy"], 4), "chance": round(1 / 7, 4),
            "seconds": round(time.time() - t0, 1), "cpu": _cpu()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=12, help="epochs per stage (the snippet says 100)")
    p.add_argument("--lr", type=float, default=1e-4, help="the snippet's learning_rate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pretrain-epochs", type=int, default=6, help="0 = random init only")
    p.add_argument("--pretrained", default="", help="an existing identity-pretrained ResNet-18 (.pth) to use")
    p.add_argument("--starts", nargs="+", choices=("random", "pretrained", "baseline"), default=["random", "pretrained"],
                   help="which starts to run (default random and pretrained; pretrained needs --pretrain-epochs > 0 "
                        "or --pretrained; baseline: the plain baseline from random init on the same data)")
    p.add_argument("--out", default="", help="JSON-lines file to append to and resume from; prints the paired summary")
    args = p.parse_args(argv)
    done = _read(Path(args.out)) if args.out else []
    if "pretrained" in args.starts and not args.pretrained and args.pretrain_epochs <= 0:
        p.error("--starts pretrained needs --pretrain-epochs > 0 or --pretrained FILE")
    backbone = args.pretrained or None
    if backbone is None and args.pretrain_epochs > 0 and "pretrained" in args.starts:
        backbone = str(Path(tempfile.mkdtemp(prefix="ferkit-snippet-")) / "resnet18_synthid.pth")
        subprocess.run([sys.executable, "-m", "ferkit", "pretrain", "resnet18", "--out", backbone, "--synth-seed",
                        "10000", "--synth-identities", "60", "--synth-images", "28", "--size", "48", "--epochs",
                        str(args.pretrain_epochs), "--seed", "0", "--precision", "fp32"], check=True)
    starts = ([None] if "random" in args.starts else []) + ([backbone] if "pretrained" in args.starts else []) + \
        ([BASELINE] if "baseline" in args.starts else [])
    have = {(r["start"], r["seed"], r["epochs"], r["lr"]) for r in done}
    for start in starts:
        for seed in args.seeds:
            name = BASELINE if start == BASELINE else _start_name(start)
            if (name, seed, args.epochs, args.lr) in have:
                continue
            row = (run_baseline(seed, args.epochs, args.lr) if start == BASELINE
                   else run(seed, args.epochs, args.lr, start))
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                done.append(row)
    if args.out:
        print(summary([r for r in done if r["epochs"] == args.epochs and r["lr"] == args.lr]))
    return 0


def _cpu() -> str:
    """The CPU a row was measured on (its numbers move a little with the kernels the CPU runs)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    isa = "AMX" if "amx_bf16" in info else "AVX-512 BF16" if "avx512_bf16" in info else "no bf16 instructions"
    return f"{name} ({isa})"


def _start_name(backbone: str | None) -> str:
    return "identity-pretrained" if backbone else "random init"


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise SystemExit(f"{path} line {i} is not JSON; fix or remove that line and run again.") from None
    return rows


def summary(rows: list[dict]) -> str:
    """Each start's accuracy over its seeds, and pretrained - random paired over the seeds both have."""
    from ferkit.study.stats import describe, paired_difference

    by = {s: {r["seed"]: r["accuracy"] for r in rows if r["start"] == s}
          for s in ("random init", "identity-pretrained", BASELINE)}
    lines = []
    for s, acc in by.items():
        d = describe(acc.values())
        if d["n"]:
            lines.append(f"{s}: accuracy {d['mean']:.3f} +- {d['std']:.3f} over {d['n']} seeds "
                         f"({', '.join(f'{acc[k]:.3f}' for k in sorted(acc))})")
    diff = paired_difference(by["random init"], by["identity-pretrained"], "accuracy")
    if diff["n"] >= 2:
        lines.append(f"identity-pretrained - random init: {diff['mean']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}] "
                     f"(95% t, {diff['n']} paired seeds, pretrained ahead in {diff['wins']})")
    diff = paired_difference(by[BASELINE], by["random init"], "accuracy")
    if diff["n"] >= 2:
        lines.append(f"DICE-FER random init - baseline random init: {diff['mean']:+.3f} [{diff['lo']:+.3f}, "
                     f"{diff['hi']:+.3f}] (95% t, {diff['n']} paired seeds, DICE-FER ahead in {diff['wins']})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
