"""The DICE-FER studies README reports, run with `ferkit compare`: DICE-FER against the baseline on SynthFER
at several confounding levels, with the paper's own ablation (swap: false), over paired seeds.

    .venv/bin/python benchmarks/studies/study_dicefer.py [--confounding 0 0.8] [--seeds 8] [--out runs/study_dicefer]
                                                 [--pretrain-epochs 6] [--dry-run]

For each confounding level c the script writes three `ferkit train --config` files into OUT/c<c>/configs/
(baseline, dicefer, dicefer_noswap), all on the same in-memory SynthFER render (60 identities: 36 train,
12 validation, 12 unseen test people), both methods from the same start: a ResNet-18 pretrained on the
identities of a disjoint render (`ferkit pretrain resnet18 --synth-seed 10000`, made once into OUT/), the
stand-in for DICE-FER's CASIA-WebFace start (0 epochs = random init). Then it runs

    ferkit compare baseline=... dicefer=... dicefer_noswap=... --seeds N --out OUT/c<c> \
        --contrast dicefer_noswap-dicefer

which trains and evaluates every (configuration, seed), and resumes where it stopped when run again: a study
too long for one sitting continues in the next. Each study's summary.md holds the table README quotes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

FERKIT = [sys.executable, "-m", "ferkit"]


def configs(c: float, args, backbone: str | None) -> dict[str, dict]:
    """The study's configurations at confounding ``c``: the same data, start and budget for every one."""
    data = {"dataset": "synthetic", "data_path": "", "synth_identities": args.identities,
            "synth_images_per_identity": args.images, "synth_size": args.size, "synth_confounding": c,
            "synth_seed": 0}
    train = {"batch_size": args.batch, "lr": args.lr, "device": args.device, "precision": args.precision}
    if backbone:
        train["backbone_weights"] = backbone
    model = {"image_size": args.size, "channels": 1, "align": "none"}
    baseline = {"method": "baseline", "data": data, "train": {**train, "epochs": args.baseline_epochs},
                "model": {**model, "augment": args.baseline_augment}}
    dicefer = {"method": "dicefer", "data": data, "train": {**train, "epochs": args.stage3},
               "model": {**model, "whitening": "per_image", "augment": "dicefer14", "zeta_adv": 0.025,
                         "stage1_epochs": args.stage1, "stage2_epochs": args.stage2, "stage3_epochs": args.stage3}}
    noswap = {**dicefer, "model": {**dicefer["model"], "swap": False}}
    return {"baseline": baseline, "dicefer": dicefer, "dicefer_noswap": noswap}


def pretrained_backbone(args, out: Path) -> str | None:
    """The identity-pretrained ResNet-18 both methods start from (made once; None for random init)."""
    if args.pretrain_epochs <= 0:
        return None
    path = out / f"resnet18_faceid_s{args.size}_e{args.pretrain_epochs}.pth"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([*FERKIT, "pretrain", "resnet18", "--out", str(path), "--synth-seed", "10000",
                        "--synth-identities", str(args.pretrain_identities), "--synth-images", str(args.images),
                        "--size", str(args.size), "--epochs", str(args.pretrain_epochs), "--seed", "0",
                        "--precision", args.precision], check=True)
    return str(path.resolve())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--confounding", type=float, nargs="+", default=[0.0, 0.8])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--out", default="runs/study_dicefer")
    p.add_argument("--identities", type=int, default=60, help="SynthFER identities (60 -> 12 unseen test people)")
    p.add_argument("--images", type=int, default=28, help="images per identity")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--stage1", type=int, default=36)
    p.add_argument("--stage2", type=int, default=2)
    p.add_argument("--stage3", type=int, default=10)
    p.add_argument("--baseline-epochs", type=int, default=8)
    p.add_argument("--baseline-augment", default="flip",
                   help="the baseline's training augmentation (flip: its preset; dicefer14: the same as DICE-FER's)")
    p.add_argument("--pretrain-epochs", type=int, default=6, help="0 = both methods from random init")
    p.add_argument("--pretrain-identities", type=int, default=60)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--no-ablation", action="store_true", help="leave out dicefer_noswap")
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    args = p.parse_args(argv)
    root = Path(args.out)
    backbone = None if args.dry_run else pretrained_backbone(args, root)
    for c in args.confounding:
        study = root / f"c{c:g}"
        (study / "configs").mkdir(parents=True, exist_ok=True)
        pairs = []
        for name, cfg in configs(c, args, backbone).items():
            if args.no_ablation and name == "dicefer_noswap":
                continue
            path = study / "configs" / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            pairs.append(f"{name}={path}")
        cmd = [*FERKIT, "compare", *pairs, "--seeds", str(args.seeds), "--out", str(study)]
        if not args.no_ablation:            # the ablation against its full method, beside both against the baseline
            cmd += ["--contrast", "dicefer_noswap-dicefer"]
        print("$ " + " ".join(cmd[2:]), flush=True)
        if args.dry_run:
            continue
        t0 = time.time()
        code = subprocess.run(cmd).returncode
        print(f"confounding {c:g}: `ferkit compare` exited {code} after {time.time() - t0:.0f} s", flush=True)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
