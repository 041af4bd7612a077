"""bf16 autocast against fp32, per method, over paired seeds with `ferkit compare`: what the faster numerics
cost (or not) in accuracy, calibration and error detection.

    .venv/bin/python benchmarks/studies/study_precision.py [--methods baseline dicefer] [--seeds 5] [--out benchmarks/results/study_precision]

For each method the script writes two `ferkit train --config` files that differ only in `train.precision`
(fp32, the reference, and bf16) on one in-memory SynthFER render, and runs
`ferkit compare fp32=... bf16=... --seeds N --out OUT/<method>`. It runs where bf16 has instructions (a GPU, a CPU
with AMX, or AVX-512 BF16, where bf16 is native but slower than fp32: the numbers are bf16's, the times are
not); on a CPU without bf16 instructions bf16 is emulated and ~100x slower (`ferkit.engine.devices`), so the
script refuses there unless --force. Configurations: the baseline at 48 px gray; DICE-FER with the
random-init study's schedule (`study_dicefer_random.sh`); UA-FER the paper arm of the UA-FER study
(`studies/uafer/paper.yaml`, which needs the tiny CLIP `study_uafer.sh` pretrains, in fp32, first).
Results (each run's result.json and the summaries) are kept in benchmarks/results/study_precision/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

FERKIT = [sys.executable, "-m", "ferkit"]
UAFER_PAPER = Path(__file__).resolve().parent / "uafer" / "paper.yaml"


def method_config(method: str, size: int, identities: int, images: int) -> dict:
    data = {"dataset": "synthetic", "data_path": "", "synth_identities": identities,
            "synth_images_per_identity": images, "synth_size": size}
    if method == "baseline":
        return {"method": "baseline", "data": data, "train": {"epochs": 8, "batch_size": 64, "lr": 3e-4},
                "model": {"image_size": size, "channels": 1, "align": "none"}}
    if method == "dicefer":
        # the random-init DICE-FER study's schedule (benchmarks/studies/study_dicefer_random.sh): the defaults' stage 1
        return {"method": "dicefer", "data": data, "train": {"epochs": 10, "batch_size": 32, "lr": 3e-4},
                "model": {"image_size": size, "channels": 1, "align": "none", "whitening": "per_image",
                          "augment": "dicefer14", "stage1_epochs": 15, "stage2_epochs": 2, "stage3_epochs": 10}}
    if method == "uafer":
        # the UA-FER study's paper arm (its own render and the caption-pretrained tiny CLIP; see study_uafer.sh)
        cfg = yaml.safe_load(UAFER_PAPER.read_text())
        cfg["train"].pop("out", None)
        return cfg
    raise SystemExit(f"unknown method {method!r}; choose baseline, dicefer or uafer")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["baseline", "dicefer", "uafer"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/study_precision")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--identities", type=int, default=60)
    p.add_argument("--images", type=int, default=28)
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="run even where bf16 is emulated (very slow)")
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    args = p.parse_args(argv)
    from ferkit.engine.devices import cpu_bf16_is_faster, cpu_has_native_bf16, resolve_device

    device = resolve_device(args.device)
    if not args.dry_run and device.type == "cpu" and not cpu_has_native_bf16() and not args.force:
        print(f"bf16 has no instructions on {device} here (no AVX-512 BF16, no AMX): the bf16 runs would be "
              "emulated, ~100x slower; run this study on a GPU or a CPU with bf16 instructions, or pass --force.",
              file=sys.stderr)
        return 2
    if not args.dry_run and device.type == "cpu" and not cpu_bf16_is_faster():
        print("note: bf16 runs natively but slower than fp32 on this CPU (AVX-512 BF16 without AMX); the study "
              "measures what bf16 does to the numbers, its train_seconds are not bf16's speed on AMX or a GPU.",
              flush=True)
    if "uafer" in args.methods and not args.dry_run:
        clip = Path(yaml.safe_load(UAFER_PAPER.read_text())["model"]["clip_path"])
        if not clip.is_file():
            print(f"{clip} is missing: run benchmarks/studies/study_uafer.sh first (it pretrains the tiny CLIP the UA-FER "
                  "arms start from), or leave uafer out of --methods.", file=sys.stderr)
            return 2
    for method in args.methods:
        study = Path(args.out) / method
        (study / "configs").mkdir(parents=True, exist_ok=True)
        pairs = []
        for precision in ("fp32", "bf16"):
            cfg = method_config(method, args.size, args.identities, args.images)
            cfg["train"].update({"precision": precision, "device": args.device})
            path = study / "configs" / f"{precision}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            pairs.append(f"{precision}={path}")
        cmd = [*FERKIT, "compare", *pairs, "--seeds", str(args.seeds), "--out", str(study)]
        print("$ " + " ".join(cmd[2:]), flush=True)
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
