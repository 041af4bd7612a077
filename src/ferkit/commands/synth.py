"""`ferkit synth`: render SynthFER to a folder (images, metadata.csv, split lists) and/or a contact sheet."""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit synth --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('render 40 people x 56 images, identity predicting expression in training',
     'ferkit synth --out data/synth --identities 40 --images-per-identity 56 --confounding 0.8'),
    ('a labelled grid of identities x the 7 expressions, nothing else',
     'ferkit synth --contact-sheet synthfer.png --identities 8'),
)

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help="render the SynthFER synthetic dataset (known identity and expression factors)",
        description="Render SynthFER: procedurally drawn faces with FACS action units, persistent identities, "
                    "nuisance factors and an identity-expression confounding knob. Writes images/, "
                    "metadata.csv, splits/{train,val,test}.txt and synthfer.json under --out.")
    p.add_argument("--out", help="folder to write the dataset into")
    p.add_argument("--identities", type=int, default=24, help="identities in total, split by identity (default 24)")
    p.add_argument("--images-per-identity", type=int, default=56, help="images per identity (default 56)")
    p.add_argument("--size", type=int, default=112, help="image side in pixels (default 112)")
    p.add_argument("--confounding", type=float, default=0.0,
                   help="identity-expression confounding in [0, 1] for training identities (default 0)")
    p.add_argument("--seed", type=int, default=0, help="rendering seed; same seed, same bytes (default 0)")
    p.add_argument("--split-fractions", type=float, nargs=3, default=(0.6, 0.2, 0.2),
                   metavar=("TRAIN", "VAL", "TEST"), help="identity fractions per split (default 0.6 0.2 0.2)")
    p.add_argument("--workers", type=int, default=1,
                   help="rendering processes; the output is identical for any number (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a SynthFER previously written to --out (other non-empty folders are refused)")
    p.add_argument("--contact-sheet", metavar="PNG",
                   help="also (or only, without --out) write a labelled grid: identities x the 7 expressions")
    return p


def run(args: argparse.Namespace) -> int:
    import time

    from ferkit.data.synthetic import contact_sheet, write_synthfer
    from ferkit.errors import FerkitError

    if not args.out and not args.contact_sheet:
        raise FerkitError("ferkit synth needs --out DIR (the dataset folder) or --contact-sheet PNG; pass one.")
    if args.workers < 1:
        raise FerkitError(f"--workers must be 1 or more, got {args.workers}.")
    if args.out:
        start = time.perf_counter()
        out = write_synthfer(args.out, identities=args.identities, images_per_identity=args.images_per_identity,
                             size=args.size, confounding=args.confounding, seed=args.seed,
                             split_fractions=tuple(args.split_fractions), workers=args.workers,
                             overwrite=args.overwrite, progress=True)
        n = args.identities * args.images_per_identity
        seconds = time.perf_counter() - start
        print(f"wrote {n} SynthFER images ({args.size} px, confounding {args.confounding}, seed {args.seed}) "
              f"to {out} in {seconds:.1f} s: metadata.csv, splits/train.txt, val.txt, test.txt, synthfer.json")
    if args.contact_sheet:
        path = contact_sheet(args.contact_sheet, size=args.size, seed=args.seed)
        print(f"wrote contact sheet {path}")
    return 0
