"""DICE-FER vs the baseline on SynthFER, and DICE-FER's training-step cost relative to the baseline's.

(a) quality: for each confounding level and seed, train DICE-FER (three stages, via the seed API) and the
    baseline (ResNet-18 + linear head) on the same training identities; report on unseen identities
    accuracy and macro-F1; identity-probe accuracy (linear probe predicting the subject) from E, from I and
    from the baseline's feature on held-out images of the training subjects; standard MIG (Chen et al. 2018;
    codes [E; I] or the baseline feature, factors expression and subject, test identities); and the modified
    MIG (DICE-FER only). Mean and std over seeds.
(b) speed: time of one stage-1 (and stage-2) step on B pairs divided by one baseline step on the same 2B
    images, measured side by side in one process (interleaved repeats, median).

    python benchmarks/speed/bench_dicefer.py --part speed
    python benchmarks/speed/bench_dicefer.py --part quality --seeds 0 1 2 --out runs/bench_dicefer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.utils.data import DataLoader


def split_holdout(split, fraction: float, seed: int):
    """(fit, holdout) copies of a split: ``fraction`` of each subject's images held out for the probe."""
    from ferkit.data.records import DatasetSplit

    rng = np.random.default_rng(seed)
    fit, hold = [], []
    for s in np.unique(split.subjects):
        idx = rng.permutation(np.flatnonzero(split.subjects == s))
        k = max(1, int(round(fraction * idx.size)))
        hold += idx[:k].tolist()
        fit += idx[k:].tolist()
    make = lambda ids, name: DatasetSplit(split.name, name, split.label_space,  # noqa: E731
                                          [split.samples[i] for i in sorted(ids)], split.root, split.info)
    return make(fit, "train"), make(hold, "holdout")


def loader(split, pre, train: bool, batch: int, seed: int, pairs: bool = False, augment: str = "none"):
    from ferkit.data.pairs import PairDataset
    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    ds = FERDataset(split, build_transform(pre, train=train, augment=augment), progress=False)
    if pairs:
        ds = PairDataset(ds, seed=seed)
    return DataLoader(ds, batch_size=batch, shuffle=train, generator=torch.Generator().manual_seed(seed))


def pretrained_backbone(args, seed: int) -> str | None:
    """The stand-in for the papers' face-recognition ResNet-18: identity classification on a SynthFER render
    whose seed (10_000 + seed) gives people disjoint from the evaluation render. None when pretraining is off."""
    if args.pretrain_epochs <= 0:
        return None
    import tempfile
    from pathlib import Path

    from ferkit.pretrain.resnet import (
        IdentityPretrainConfig,
        identity_split,
        pretrain_identity_resnet,
        save_resnet_weights,
    )

    synth = {"identities": args.pretrain_identities, "images_per_identity": args.images, "size": args.size,
             "seed": 10_000 + seed}
    split = identity_split("synthetic", None, synth=synth)
    cfg = IdentityPretrainConfig(image_size=args.size, epochs=args.pretrain_epochs, seed=seed, precision="fp32")
    trunk, hist = pretrain_identity_resnet(split, cfg, log=None)
    path = Path(tempfile.mkdtemp(prefix="ferkit_idpre_")) / "resnet18_synthid.pth"
    save_resnet_weights(trunk, path, {"synth": synth, "final": hist[-1]})
    return str(path)


def train_baseline(split, size: int, epochs: int, lr: float, seed: int, batch: int,
                   backbone_weights: str | None = None):
    from ferkit.config import build_experiment
    from ferkit.data.labels import SYNTHFER
    from ferkit.engine.method import StepContext
    from ferkit.methods.registry import get_method

    torch.manual_seed(seed)
    cfg = build_experiment("baseline", data={"dataset": "synthetic"},
                           train={"lr": lr, "epochs": epochs, "backbone_weights": backbone_weights},
                           model={"image_size": size, "augment": "none"})
    meth = get_method("baseline")(cfg, SYNTHFER, torch.device("cpu"))
    phase = meth.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    dl = loader(split, meth.preprocessing(), True, batch, seed)
    for _ in range(epochs):
        meth.train_mode(phase)
        for b in dl:
            meth.train_step(phase, b, ctx)
    meth.eval_mode()
    return meth


@torch.no_grad()
def outputs(predict, split, pre) -> dict[str, np.ndarray]:
    """probs, embedding, identity code (or None) over a split, with labels and subjects."""
    probs, emb, ident = [], [], []
    for b in loader(split, pre, False, 64, 0):
        p = predict(b["image"])
        probs.append(p.probs)
        emb.append(p.embedding)
        if "identity" in p.extra:
            ident.append(p.extra["identity"])
    return {"probs": torch.cat(probs).numpy(), "embedding": torch.cat(emb).numpy(),
            "identity": torch.cat(ident).numpy() if ident else None,
            "labels": split.expressions, "subjects": split.subjects}


def evaluate(predict, pre, test, holdout, num_classes: int) -> dict:
    from ferkit.metrics.classification import classification_metrics
    from ferkit.metrics.leakage import identity_probe, identity_probe_at_dim
    from ferkit.metrics.mig import mig

    t, h = outputs(predict, test, pre), outputs(predict, holdout, pre)
    cls = classification_metrics(t["labels"], t["probs"].argmax(1), num_classes)
    codes = t["embedding"] if t["identity"] is None else np.concatenate([t["embedding"], t["identity"]], 1)
    out = {"accuracy": cls["accuracy"], "macro_f1": cls["macro_f1"],
           "probe_from_E": identity_probe(h["embedding"], h["subjects"])["accuracy"],
           "probe_chance": identity_probe(h["embedding"], h["subjects"])["chance"],
           "standard_mig": float(mig(codes, np.stack([t["labels"], t["subjects"]], 1)))}
    # at DICE-FER's 64-D (PCA) as well: probe accuracy grows with dimension, so only these compare across methods
    out["probe_from_E_at_64"] = identity_probe_at_dim(h["embedding"], h["subjects"], 64)["accuracy"]
    if h["identity"] is not None:
        out["probe_from_I"] = identity_probe(h["identity"], h["subjects"])["accuracy"]
    return out


def quality_run(confounding: float, seed: int, args) -> dict:
    from ferkit.api.dicefer import DICEFER
    from ferkit.data.synthetic import render_synthfer

    synth = render_synthfer(identities=args.identities, images_per_identity=args.images, size=args.size,
                            confounding=confounding, seed=seed)
    fit, holdout = split_holdout(synth.splits["train"], 0.25, seed)
    test = synth.splits["test"]
    weights = pretrained_backbone(args, seed)
    model = DICEFER(image_size=args.size, backbone_weights=weights, zeta_adv=0.025, augment="none", align="none", seed=seed,
                    device="cpu", precision="fp32", stage1_epochs=args.stage1, stage2_epochs=args.stage2,
                    stage3_epochs=args.stage3, critic_hidden=args.critic_hidden,
                    estimator=args.estimator)
    pre = model.preprocessing
    t0 = time.time()
    model.train(loader(fit, pre, True, args.batch, seed, pairs=True), epochs=args.stage1,
                learning_rate=args.lr, progress=False)
    dice = evaluate(model.predict, pre, test, holdout, 7)
    last1 = [h for h in model.history if h["phase"] == "stage1"][-1]
    dice["stage1_mi_global"], dice["stage1_mi_local"] = last1["mi_global"], last1["mi_local"]
    dice["modified_mig"] = model.compute_mig_score(loader(test, pre, False, 64, seed, pairs=True),
                                                   steps=args.mig_steps)
    dice["train_s"] = time.time() - t0
    t0 = time.time()
    base_method = train_baseline(fit, args.size, args.baseline_epochs, args.lr, seed, args.batch, weights)
    base = evaluate(base_method.predict, base_method.preprocessing(), test, holdout, 7)
    base["train_s"] = time.time() - t0
    return {"confounding": confounding, "seed": seed, "backbone": "identity-pretrained" if weights else "random",
            "dicefer": dice, "baseline": base}


def summarise(runs: list[dict]) -> dict:
    out: dict = {}
    for conf in sorted({r["confounding"] for r in runs}):
        rs = [r for r in runs if r["confounding"] == conf]
        for who in ("dicefer", "baseline"):
            keys = sorted(k for k in rs[0][who] if isinstance(rs[0][who][k], (int, float)))
            out[f"{who}@conf{conf}"] = {k: (float(np.mean([r[who][k] for r in rs])),
                                            float(np.std([r[who][k] for r in rs]))) for k in keys}
    return out


def speed(args) -> dict:
    """Median step-time ratios on B pairs vs the baseline on the same 2B images: DICE-FER stage 1, stage 2
    with the frozen psi run every step (``frozen_cache`` off), and stage 2 with psi's outputs remembered (the
    steady state once the training inputs have been seen: from the second epoch with augment none or flip,
    and for most of DICE-FER's 14-variant augmentation after its first epochs)."""
    from ferkit.config import build_experiment
    from ferkit.data.labels import SYNTHFER
    from ferkit.engine.method import StepContext
    from ferkit.methods.registry import get_method

    torch.manual_seed(0)
    dev, b, s = torch.device("cpu"), args.batch, args.size
    train = {"batch_size": b, "precision": "fp32"}
    methods = {cache: get_method("dicefer")(build_experiment("dicefer", data={"dataset": "synthetic"}, train=train,
                                                             model={"image_size": s, "frozen_cache": cache}),
                                            SYNTHFER, dev) for cache in ("off", "on")}
    bcfg = build_experiment("baseline", data={"dataset": "synthetic"}, train=train, model={"image_size": s})
    base = get_method("baseline")(bcfg, SYNTHFER, dev)
    x, y = torch.randn(2 * b, 1, s, s), torch.randint(0, 7, (2 * b,))
    pairs = {"image": x[:b], "image_pair": x[b:], "expression": y[:b]}
    single = {"image": x, "expression": y}
    bphase = base.phases()[0]
    bctx = StepContext(bphase.optimizers, dev, None)
    base.train_mode(bphase)
    result = {}
    for name, cache, index in (("stage1", "off", 0), ("stage2", "off", 1), ("stage2_psi_remembered", "on", 1)):
        dice = methods[cache]
        phase = dice.phases()[index]
        ctx = StepContext(phase.optimizers, dev, None)
        dice.on_phase_start(phase)
        dice.train_mode(phase)
        times: dict[str, list[float]] = {"dice": [], "base": []}
        for i in range(args.repeats + 1):   # interleaved; the first pair is warm-up (and fills the cache)
            for who, fn in (("dice", lambda ph=phase, c=ctx, d=dice: d.train_step(ph, pairs, c)),
                            ("base", lambda: base.train_step(bphase, single, bctx))):
                t0 = time.perf_counter()
                fn()
                if i:
                    times[who].append(time.perf_counter() - t0)
        d, bl = statistics.median(times["dice"]), statistics.median(times["base"])
        result[name] = {"dicefer_step_s": d, "baseline_step_s": bl, "ratio": d / bl,
                        "pairs": b, "baseline_images": 2 * b, "size": s}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["quality", "speed", "all"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--confounding", type=float, nargs="+", default=[0.0, 0.8])
    p.add_argument("--identities", type=int, default=16)
    p.add_argument("--images", type=int, default=28)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--stage1", type=int, default=6)
    p.add_argument("--stage2", type=int, default=2)
    p.add_argument("--stage3", type=int, default=10)
    p.add_argument("--baseline-epochs", type=int, default=6)
    p.add_argument("--pretrain-epochs", type=int, default=8,
                   help="epochs of identity pretraining on a disjoint render (0 = random init)")
    p.add_argument("--pretrain-identities", type=int, default=80)
    p.add_argument("--critic-hidden", type=int, default=512)
    p.add_argument("--estimator", default="dv", choices=("dv", "jsd", "infonce"),
                   help="stage-1/2 MI bound (default dv, the paper's)")
    p.add_argument("--mig-steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="")
    p.add_argument("--store", action="store_true",
                   help="store the speed part in benchmarks/results/speed/dicefer_step.json")
    args = p.parse_args()
    report: dict = {"args": vars(args)}
    if args.part in ("speed", "all"):
        report["speed"] = speed(args)
        print(json.dumps(report["speed"], indent=1), flush=True)
        if args.store:
            from stored import store

            store("dicefer_step", report["speed"])
    if args.part in ("quality", "all"):
        runs = []
        for conf in args.confounding:
            for seed in args.seeds:
                runs.append(quality_run(conf, seed, args))
                print(json.dumps(runs[-1]), flush=True)
        report["runs"], report["summary"] = runs, summarise(runs)
        print(json.dumps(report["summary"], indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
