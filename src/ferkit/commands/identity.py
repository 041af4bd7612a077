"""`ferkit identity INPUT... --model NAME`: a model's embedding against a real face recognizer's, on any photos.

For every face MTCNN finds in the photos, folders and videos: the model's embedding (a checkpoint or
run folder: its expression embedding, or with `--branch identity` a DICE-FER identity code; or
fer-minixception) and the recognizer's descriptor (`--reference dlib-resnet`). Printed and written
(`--out FILE.json`): linear CKA (plain, and with the unbiased HSIC that scores ~0 for unrelated
embeddings), the rank correlation of pairwise cosine similarities, each with a 95% bootstrap interval
over faces and a shuffled control (the recognizer's rows permuted) with its p-value. No subject labels
are needed; with `--subjects folder` (each photo's parent folder names its person) it adds same-person
verification AUC of the model's embedding beside the recognizer's own.
"""

from __future__ import annotations

import argparse

#: shown at the end of `ferkit identity --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ("how much of dlib-resnet's view a checkpoint's expression embedding keeps",
     'ferkit identity photos/ --model runs/base --out identity.json'),
    ("DICE-FER's identity code, with verification AUC from one folder per person",
     'ferkit identity people/ --model runs/dicefer --branch identity --subjects folder'),
)

def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("identity", help="compare a model's embedding with a face recognizer's (CKA, RSA, AUC)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="INPUT", help="images, folders (recursive) and videos")
    p.add_argument("--model", required=True, help="a ferkit checkpoint / run folder, or fer-minixception")
    p.add_argument("--branch", choices=("expression", "identity"), default="expression",
                   help="DICE-FER checkpoints: the expression code E (default) or the identity code I")
    p.add_argument("--reference", default="dlib-resnet", help="the face recognizer (default dlib-resnet)")
    p.add_argument("--subjects", choices=("none", "folder"), default="none",
                   help="folder: each photo's parent folder names its person (adds verification AUC)")
    p.add_argument("--out", help="write the numbers to this .json file")
    p.add_argument("--every", type=int, default=1, metavar="N", help="use every N-th video frame")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--shuffles", type=int, default=200, help="shuffled-control permutations (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def run(args) -> int:
    from pathlib import Path

    from ferkit.errors import FerkitError
    from ferkit.inference.identity_audit import identity_audit
    from ferkit.inference.inputs import expand_inputs, nothing_found
    from ferkit.report.html import fmt
    from ferkit.report.writer import write_json

    if args.out and Path(args.out).suffix.lower() != ".json":
        raise FerkitError(f"--out {args.out} must end in .json.")
    if args.bootstrap < 0 or args.shuffles < 0:
        raise FerkitError("--bootstrap and --shuffles must be 0 or more.")
    items, notes = expand_inputs(args.paths)
    for note in notes:
        print(note)
    if not items:
        raise FerkitError(nothing_found(args.paths))
    res = identity_audit([it.path for it in items], model=args.model, reference=args.reference, branch=args.branch,
                         subjects=args.subjects, device=args.device, every=args.every, n_boot=args.bootstrap,
                         n_shuffle=args.shuffles, seed=args.seed)
    print(f"{res['num_faces']} faces: {args.model} ({args.branch}, {res['dim']}-D) against {args.reference} "
          f"({res['reference_dim']}-D)")
    for stat, label in (("cka", "linear CKA"), ("cka_debiased", "linear CKA, debiased"),
                        ("similarity_rank_correlation", "similarity rank correlation")):
        s = res[stat]
        interval = f" [{fmt(s['interval'][0])}, {fmt(s['interval'][1])}]" if "interval" in s else ""
        control = (f"; shuffled {fmt(s['shuffled_mean'])} [{fmt(s['shuffled_interval'][0])}, "
                   f"{fmt(s['shuffled_interval'][1])}], p {fmt(s['p_shuffled'])}" if "shuffled_mean" in s else "")
        print(f"  {label:<30} {fmt(s['value'])}{interval}{control}")
    if "verification_auc" in res:
        ours, theirs = res["verification_auc"], res["reference_verification_auc"]
        print(f"  {'verification AUC':<30} {fmt(ours.get('auc'))} (the recognizer: {fmt(theirs.get('auc'))}; "
              f"{ours['num_same']} same-person, {ours['num_different']} different-person pairs)")
    if args.out:
        print(f"written to {write_json(args.out, res)}")
    return 0
