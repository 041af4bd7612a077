"""DICE-FER stage 1 alone on a small in-memory SynthFER: per-step diagnostics, then how much expression E holds.

Each step's scalars (every MI term, L1, the per-dimension variance of E, gradient norms of encoders and
critics; see ``DiceFerMethod.stage1_step``) go to a JSONL file; at the end a logistic regression on the
frozen E_M of the training images predicts the expression of unseen identities (the test split), and the
same probe on a randomly initialised encoder is the reference. Model options as ``--set key=value``.

    python benchmarks/diagnostics/diag_dicefer_stage1.py --steps 300 --out runs/diag_paper.jsonl
    python benchmarks/diagnostics/diag_dicefer_stage1.py --steps 300 --set delta_warmup_steps=200 --out runs/diag_w.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader


def _loader(split, pre, train: bool, batch: int, seed: int, pairs: bool, augment: str = "none"):
    from ferkit.data.pairs import PairDataset
    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    ds = FERDataset(split, build_transform(pre, train=train, augment=augment if train else "none"), progress=False)
    if pairs:
        ds = PairDataset(ds, seed=seed)
    return DataLoader(ds, batch_size=batch, shuffle=train, drop_last=train,
                      generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def codes(meth, split, pre) -> tuple[np.ndarray, np.ndarray]:
    """E_M (N, d) and expressions (N,) over a split (eval mode)."""
    meth.eval_mode()
    out = [meth.expression_code(b["image"]).float() for b in _loader(split, pre, False, 64, 0, False)]
    return torch.cat(out).numpy(), split.expressions


def expression_probe(meth, train, test, pre) -> float:
    """Accuracy on ``test`` of a converged logistic regression fit on E of ``train`` (standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (xtr, ytr), (xte, yte) = codes(meth, train, pre), codes(meth, test, pre)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xtr, ytr)
    return float(clf.score(xte, yte))


def main() -> None:
    from ferkit.config import build_experiment
    from ferkit.data.labels import SYNTHFER
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.method import StepContext
    from ferkit.methods.registry import get_method

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--identities", type=int, default=16)
    p.add_argument("--images", type=int, default=28)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", default="none", help="training augmentation of the pairs (none, flip, dicefer14)")
    p.add_argument("--set", nargs="*", default=[], help="model options, key=value (YAML values)")
    p.add_argument("--out", default="")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = {"image_size": args.size, "augment": "none", "align": "none", "frozen_cache": "off"}
    model.update({k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    cfg = build_experiment("dicefer", data={"dataset": "synthetic"},
                           train={"lr": args.lr, "batch_size": args.batch, "precision": "fp32", "seed": args.seed},
                           model=model)
    synth = render_synthfer(args.identities, args.images, args.size, seed=args.seed)
    train, test = synth.splits["train"], synth.splits["test"]
    meth = get_method("dicefer")(cfg, SYNTHFER, torch.device("cpu"))
    pre = meth.preprocessing()
    phase = meth.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None, grad_clip=cfg.train.grad_clip)
    ref = expression_probe(meth, train, test, pre)
    meth.on_phase_start(phase)
    rows, step, t0 = [], 0, time.time()
    sink = open(args.out, "w") if args.out else None
    dl = _loader(train, pre, True, args.batch, args.seed, True, args.augment)
    epoch = 0
    while step < args.steps:
        dl.dataset.set_epoch(epoch)
        meth.train_mode(phase)
        for b in dl:
            ctx.iteration, ctx.global_step = step, step
            row = {"step": step, **meth.train_step(phase, b, ctx), "t": round(time.time() - t0, 1)}
            rows.append(row)
            if sink:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            if step % 25 == 0:
                print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            step += 1
            if step >= args.steps:
                break
        meth.on_epoch_end(phase, epoch)
        epoch += 1
    probe = expression_probe(meth, train, test, pre)
    summary = {"probe_E_after_stage1": probe, "probe_E_random_init": ref, "chance": 1 / 7, "steps": step,
               "seconds": round(time.time() - t0, 1), "model": model, "lr": args.lr, "batch": args.batch,
               "augment": args.augment, "identities": args.identities, "images": args.images}
    print(json.dumps(summary))
    if sink:
        sink.write(json.dumps({"summary": summary}) + "\n")
        sink.close()


if __name__ == "__main__":
    main()
