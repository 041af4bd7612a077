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

At confounding 0, where DICE-FER's stage-1 MI is still rising at 12 epochs, a second study at that level
(OUT/longer_stage1/) asks whether a longer stage 1 closes the gap at equal budget: ``dicefer_stage1_40`` (stage
1 up to 40 epochs, its plateau stop kept) and ``baseline_budget_52`` (the baseline at that budget in optimiser
steps, 40 + 2 + 10 epochs), beside the level's ``baseline`` and ``dicefer`` (the same configurations, so the
same runs where they are copied in). Its two long arms take about 16 minutes a seed on 2 cores, the four
arms of a level about 9, so it stops at ``--longer-stage1-seeds`` (default 4: there every interval of its
accuracy contrasts excluded 0).

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
    """The four configurations at confounding ``c`` (same data, split, lr, batch and augmentation)."""
    data = {"dataset": "synthetic", "data_path": "", "synth_identities": 60, "synth_images_per_identity": 20,
            "synth_size": 48, "synth_confounding": float(c), "synth_seed": 0}
    train = {"batch_size": 32, "lr": 3e-4, "device": "auto", "precision": "fp32"}
    model = {"image_size": 48, "channels": 1, "align": "none", "augment": "dicefer14"}
    baseline = {"method": "baseline", "data": data, "train": {**train, "epochs": 15}, "model": model}
    budget = {**baseline, "train": {**train, "epochs": sum(STAGES.values())}}
    dicefer = {"method": "dicefer", "data": data, "train": {**train, "epochs": STAGES["stage3_epochs"]},
               "model": {**model, "whitening": "per_image", "zeta_adv": 0.025, **STAGES}}
    pretrained = {**dicefer, "train": {**dicefer["train"], "backbone_weights": backbone}}
    return {"baseline": baseline, "baseline_budget": budget, "dicefer": dicefer, "dicefer_pretrained": pretrained}


def contrasts(c: float) -> list[str]:
    """The paired differences beyond each arm minus the baseline."""
    return ["dicefer_pretrained-dicefer", "dicefer-baseline_budget"]


#: the study at confounding 0 asking why DICE-FER loses there (its stage 1 is still learning at 12 epochs)
LONGER = "longer_stage1"
LONGER_CONTRASTS = [f"dicefer_stage1_{LONG_STAGE1}-baseline_budget_{sum(LONG_STAGES.values())}",
                    f"dicefer_stage1_{LONG_STAGE1}-dicefer"]


def longer_stage1_arms(backbone: str) -> dict[str, dict]:
    """Confounding 0's ``baseline`` and ``dicefer``, DICE-FER with stage 1 up to 40 epochs, and the baseline
    at that DICE-FER's budget in optimiser steps."""
    level = arms(0.0, backbone)
    baseline, dicefer = level["baseline"], level["dicefer"]
    return {"baseline": baseline, "dicefer": dicefer,
            f"dicefer_stage1_{LONG_STAGE1}": {**dicefer, "model": {**dicefer["model"], **LONG_STAGES}},
            f"baseline_budget_{sum(LONG_STAGES.values())}": {
                **baseline, "train": {**baseline["train"], "epochs": sum(LONG_STAGES.values())}}}


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
    p.add_argument("--longer-stage1-seeds", type=int, default=4,
                   help="paired seeds of the longer-stage-1 study at confounding 0 (at most --seeds)")
    p.add_argument("--out", default="benchmarks/results/study_confounding")
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    args = p.parse_args(argv)
    out = (ROOT / args.out).resolve()
    backbone = rel(out / "resnet18_faceid.pth") if args.dry_run else pretrained_start(out)
    rounds = sorted({min(2, args.seeds), min(4, args.seeds), args.seeds})
    t0 = time.time()
    longer_done: set[int] = set()
    for seeds in rounds:
        studies = [(f"c{c:g}", arms(c, backbone), contrasts(c), seeds, f"confounding {c:g}") for c in args.levels]
        longer = min(seeds, args.longer_stage1_seeds)
        if 0.0 in args.levels and longer >= 1 and longer not in longer_done:
            longer_done.add(longer)
            studies.append((LONGER, longer_stage1_arms(backbone), LONGER_CONTRASTS, longer,
                            "longer stage 1 at confounding 0"))
        for folder, configs, pairs_of, n, what in studies:
            study = out / folder
            (study / "configs").mkdir(parents=True, exist_ok=True)
            pairs = []
            for name, cfg in configs.items():
                path = study / "configs" / f"{name}.yaml"
                path.write_text(yaml.safe_dump(cfg, sort_keys=False))
                pairs.append(f"{name}={rel(path)}")
            cmd = [*FERKIT, "compare", *pairs, "--seeds", str(n), "--out", rel(study), "--keep-checkpoints",
                   "selected", *(a for pair in pairs_of for a in ("--contrast", pair))]
            print("$ ferkit " + " ".join(cmd[3:]), flush=True)
            if args.dry_run:
                continue
            code = subprocess.run(cmd, cwd=ROOT).returncode
            print(f"{what}, {n} seeds: exit {code}, {time.time() - t0:.0f} s since the start", flush=True)
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
