"""How learnable and how confounded SynthFER is, from pixels alone (logistic-regression probes).

    .venv/bin/python benchmarks/diagnostics/probe_synth.py [--confounding 0 0.8] [--identities 40] [--images-per-identity 56]

For each confounding value: renders SynthFER (seed 0, 112 px unless --size), downsamples to 32x32 grey,
standardises with training statistics, and reports
  * expression accuracy on the unseen test identities of a logistic regression trained on the training split
    (chance 1/7; confounding should lower it: identity is a shortcut in training and a trap at test),
  * subject accuracy of a logistic regression on training identities (even images -> odd images),
  * the mean largest expression share per training identity (1/7 without confounding).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def main() -> int:
    from PIL import Image
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ferkit.data.synthetic import render_synthfer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--confounding", type=float, nargs="+", default=[0.0, 0.8])
    ap.add_argument("--identities", type=int, default=40)
    ap.add_argument("--images-per-identity", type=int, default=56)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    for c in args.confounding:
        t0 = time.perf_counter()
        ds = render_synthfer(args.identities, args.images_per_identity, args.size, c, seed=0, workers=args.workers)

        xtr, xte = (np.stack([np.asarray(Image.fromarray(s.image).convert("L").resize((32, 32), Image.BILINEAR),
                                         dtype=np.float32).ravel() / 255.0 for s in ds.splits[sp].samples])
                    for sp in ("train", "test"))
        ytr, yte = ds.splits["train"].expressions, ds.splits["test"].expressions
        scaler = StandardScaler().fit(xtr)
        xtr, xte = scaler.transform(xtr), scaler.transform(xte)
        expr = LogisticRegression(C=0.01, max_iter=300).fit(xtr, ytr).score(xte, yte)
        subjects = ds.splits["train"].subjects
        even = np.arange(len(subjects)) % 2 == 0
        subj = LogisticRegression(C=0.01, max_iter=300).fit(xtr[even], subjects[even]).score(xtr[~even],
                                                                                              subjects[~even])
        shares = [np.bincount(ytr[subjects == s], minlength=7).max() / (subjects == s).sum()
                  for s in np.unique(subjects)]
        print(json.dumps({"confounding": c, "train_images": len(ytr), "test_images": len(yte),
                          "expression_acc_unseen_ids": round(float(expr), 3), "chance": round(1 / 7, 3),
                          "subject_probe_acc_train_ids": round(float(subj), 3),
                          "subject_chance": round(1 / len(np.unique(subjects)), 3),
                          "mean_max_expression_share": round(float(np.mean(shares)), 3),
                          "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
