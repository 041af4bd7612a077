"""`ferkit embed INPUT... --model NAME --out FILE`: one embedding per detected face, written to a file.

NAME is a built-in identity network (`dlib-resnet`, dlib's 128-D face descriptor; `ferkit models`
lists it), a built-in expression model (`fer-minixception`: its 128-D pooled features), or a ferkit
checkpoint or run folder (its expression embedding; `--branch identity` gives a DICE-FER checkpoint's
identity code instead). INPUT: photos, folders (recursive) and videos (every `--every`-th frame).

FILE by its suffix: `.npz` holds the arrays `embeddings` (N, D) float32, `boxes` (N, 4) x1 y1 x2 y2 in
pixels, `paths` (N,), `frames` (N,) (the video frame; -1 for photos), `faces` (N,) (the face's rank in
its image, largest first); `.csv` and `.parquet` (needs pyarrow) one row per face, columns path, frame,
face, x1, y1, x2, y2, e0 ... e{D-1}. Inputs without a face give no row and one note on stderr.
"""

from __future__ import annotations

import argparse
import sys

#: shown at the end of `ferkit embed --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ("dlib's 128-D face descriptor of every face in photos and a video",
     'ferkit embed photos/ clip.mp4 --model dlib-resnet --out faces.npz'),
    ("a DICE-FER checkpoint's identity code, one CSV row per face",
     'ferkit embed photos/ --model runs/dicefer --branch identity --out identity.csv'),
    ("the built-in expression model's pooled features",
     'ferkit embed photos/ --model fer-minixception --out expression.npz'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("embed", help="write the embedding of every face in photos and videos",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="INPUT", help="images, folders (recursive) and videos")
    p.add_argument("--model", default="dlib-resnet",
                   help="dlib-resnet (default), fer-minixception, or a ferkit checkpoint / run folder")
    p.add_argument("--branch", choices=("expression", "identity"), default="expression",
                   help="DICE-FER checkpoints: the expression code E (default) or the identity code I")
    p.add_argument("--out", required=True, help="the .npz, .csv or .parquet file to write")
    p.add_argument("--every", type=int, default=1, metavar="N", help="embed every N-th video frame")
    p.add_argument("--batch-size", type=int, default=32, help="faces per forward pass (default 32)")
    p.add_argument("--min-face", type=int, default=20, help="smallest face side searched, in pixels")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def run(args) -> int:
    from pathlib import Path

    from ferkit.errors import FerkitError
    from ferkit.inference.embed import OUT_SUFFIXES, embed
    from ferkit.inference.inputs import expand_inputs, nothing_found

    if Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise FerkitError(f"--out {args.out} has an unknown suffix; use one of {', '.join(OUT_SUFFIXES)}.")
    items, notes = expand_inputs(args.paths)
    for note in notes:
        print(note, file=sys.stderr)
    if not items:
        raise FerkitError(nothing_found(args.paths))
    result = embed([it.path for it in items], model=args.model, branch=args.branch, device=args.device,
                   batch_size=args.batch_size, every=args.every, min_face_size=args.min_face)
    if result.no_face:
        shown = ", ".join(result.no_face[:5]) + (" ..." if len(result.no_face) > 5 else "")
        print(f"no face found in {len(result.no_face)} input(s): {shown}", file=sys.stderr)
    out = result.save(args.out)
    dim = result.embeddings.shape[1]
    what = " (DICE-FER identity branch)" if args.branch == "identity" else ""
    print(f"{len(result)} face(s), {dim}-D {args.model} embeddings{what}, written to {out}")
    return 0
