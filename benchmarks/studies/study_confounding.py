"""Where DICE-FER's invariance pays: a confounding sweep at equal budget, over paired seeds (issue 29).

    .venv/bin/python benchmarks/studies/study_confounding.py [--levels 0 0.5 0.8 0.95 1.0] [--seeds 8]
        [--out benchmarks/results/study_confounding] [--dry-run]

SynthFER (60 people x 20 images, 48 px gray; 36 train / 12 validation / 12 unseen test people), the
identity-expression confounding applied to the training people only. At each level ``ferkit compare`` trains,
per seed, four arms on the same render and split:

  baseline            the baseline's recipe of the stored studies (15 epochs, lr 3e-4, batch 32, the paper's
                      14 rotations x flips), from random init;
  baseline_budget     the same baseline given DICE-FER's budget in optimiser steps: DICE-FER trains
                      stage 1 + stage 2 + stage 3 epochs (12 + 2 + 10) over the same number of batches per
                      epoch, so the baseline gets 24 epochs;
  dicefer             DICE-FER from random init (stage-1 defaults, stage 1 12 epochs or its plateau stop);
  dicefer_pretrained  DICE-FER from the identity-pretrained ResNet-18 (``ferkit pretrain resnet18`` on 60 other
                      people, 6 epochs), its only difference from ``dicefer``.

At confounding 0, where DICE-FER's stage-1 MI is still rising at 12 epochs, two more arms ask whether a longer
stage 1 closes the gap at equal budget: ``dicefer_stage1_40`` (stage 1 up to 40 epochs, its plateau stop
kept) and ``baseline_budget_52`` (the baseline at that budget in optimiser steps, 40 + 2 + 10 epochs).

Runs go seed-major over the levels in rounds (2, 4, then --seeds), so a sweep stopped early still has paired
seeds at every level; rerunning the same command keeps finished runs and resumes a half-written one (``ferkit
compare``). Each level's study.json, runs.csv and summary.json land in OUT/c<level>/; every config records
``data.synth_confounding``. A finished run keeps only the weights it was evaluated with (``--keep-checkpoints
selected``: 160 runs would otherwise take about 80 GB). The pretrained start is made once at OUT/resnet18_faceid.pth (kept out of git: a
fresh clone remakes it, bit-identically, before it trains anything).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

FERKIT = [sys.executable, "-m", "ferkit"]
ROOT = Path(__file__).resolve().parents[2]
STAGES = {"stage1_epochs": 12, "stage2_epochs": 2, "stage3_epochs": 10}
LONG_STAGE1 = 40        # the demo's stage 1; it still stops early when its MI plateaus for 5 epochs
LONG_STAGES = {**STAGES, "stage1_epochs": LONG_STAGE1}


def rel(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (configs then hold no machine's folders)."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def arms(c: float, backbone: str) -> dict[str, dict]:
    """The four configurations at confounding ``c`` (same data, split, lr, batch and augmentation), and the two
    longer-stage-1 ones at 0."""
    data = {"dataset": "synthetic", "data_path": "", "synth_identities": 60, "synth_images_per_identity": 20,
            "synth_size": 48, "synth_confounding": float(c), "synth_seed": 0}
    train = {"batch_size": 32, "lr": 3e-4, "device": "auto", "precision": "fp32"}
    model = {"image_size": 48, "channels": 1, "align": "none", "augment": "dicefer14"}
    stages = STAGES
    baseline = {"method": "baseline", "data": data, "train": {**train, "epochs": 15}, "model": model}
    budget = {**baseline, "train": {**train, "epochs": sum(stages.values())}}
    dicefer = {"method": "dicefer", "data": data, "train": {**train, "epochs": stages["stage3_epochs"]},
               "model": {**model, "whitening": "per_image", "zeta_adv": 0.025, **stages}}
    pretrained = {**dicefer, "train": {**dicefer["train"], "backbone_weights": backbone}}
    found = {"baseline": baseline, "baseline_budget": budget, "dicefer": dicefer, "dicefer_pretrained": pretrained}
    if c == 0:                  # why DICE-FER loses where nothing confounds: its stage 1 is still learning at 12
        found[f"dicefer_stage1_{LONG_STAGE1}"] = {**dicefer, "model": {**dicefer["model"], **LONG_STAGES}}
        found[f"baseline_budget_{sum(LONG_STAGES.values())}"] = {
            **baseline, "train": {**train, "epochs": sum(LONG_STAGES.values())}}
    return found


def contrasts(c: float) -> list[str]:
    """The paired differences beyond each arm minus the baseline."""
    found = ["dicefer_pretrained-dicefer", "dicefer-baseline_budget"]
    if c == 0:
        budget = sum(LONG_STAGES.values())
        found += [f"dicefer_stage1_{LONG_STAGE1}-baseline_budget_{budget}", f"dicefer_stage1_{LONG_STAGE1}-dicefer"]
    return found


def pretrained_start(out: Path) -> str:
    """The identity-pretrained ResNet-18, made once; its path relative to the repository (configs must not
    name a machine's folders, or a fresh clone's study would be refused as changed)."""
    path = out / "resnet18_faceid.pth"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([*FERKIT, "pretrain", "resnet18", "--out", str(path), "--synth-seed", "10000",
                        "--synth-identities", "60", "--synth-images", "20", "--size", "48", "--epochs", "6",
                        "--seed", "0", "--precision", "fp32"], check=True, cwd=ROOT)
    return rel(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 0.8, 0.95, 1.0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--out", default="benchmarks/results/study_confounding")
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    args = p.parse_args(argv)
    out = (ROOT / args.out).resolve()
    backbone = rel(out / "resnet18_faceid.pth") if args.dry_run else pretrained_start(out)
    rounds = sorted({min(2, args.seeds), min(4, args.seeds), args.seeds})
    t0 = time.time()
    for seeds in rounds:
        for c in args.levels:
            study = out / f"c{c:g}"
            (study / "configs").mkdir(parents=True, exist_ok=True)
            pairs = []
            for name, cfg in arms(c, backbone).items():
                path = study / "configs" / f"{name}.yaml"
                path.write_text(yaml.safe_dump(cfg, sort_keys=False))
                pairs.append(f"{name}={rel(path)}")
            cmd = [*FERKIT, "compare", *pairs, "--seeds", str(seeds), "--out", rel(study), "--keep-checkpoints",
                   "selected", *(a for pair in contrasts(c) for a in ("--contrast", pair))]
            print("$ ferkit " + " ".join(cmd[3:]), flush=True)
            if args.dry_run:
                continue
            code = subprocess.run(cmd, cwd=ROOT).returncode
            print(f"confounding {c:g}, {seeds} seeds: exit {code}, {time.time() - t0:.0f} s since the start",
                  flush=True)
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
