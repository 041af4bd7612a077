"""What DICE-FER's frozen dlib-resnet identity encoder knows of SynthFER's people, before any training.

    .venv/bin/python benchmarks/diagnostics/diag_dlib_identity_synthfer.py [--identities 12] [--images 20]

Renders SynthFER in memory, preprocesses it as DICE-FER with model.identity_encoder=dlib-resnet does
(112 px RGB, no whitening), and runs the identity encoder (crops warped to dlib's chip, the 128-D
descriptor). Prints same-person verification AUC by subject and, as a control, by expression, and a
linear identity probe's accuracy against chance. Needs `pip install 'ferkit[identity]'`.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--identities", type=int, default=12)
    p.add_argument("--images", type=int, default=20, help="images per identity")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from ferkit.config import build_experiment
    from ferkit.data.labels import SYNTHFER
    from ferkit.data.synthetic import render_synthfer
    from ferkit.data.transforms import preprocess_batch
    from ferkit.methods.registry import get_method
    from ferkit.metrics.identity import verification_auc
    from ferkit.metrics.leakage import identity_probe

    synth = render_synthfer(identities=args.identities, images_per_identity=args.images, size=112, seed=args.seed)
    samples = [s for split in ("train", "val", "test") for s in synth.splits[split].samples]
    subjects = np.array([s.subject for s in samples])
    expressions = np.array([s.expression for s in samples])
    cfg = build_experiment("dicefer", data={"dataset": "synthetic"},
                           model={"image_size": 112, "channels": 3, "whitening": "none",
                                  "identity_encoder": "dlib-resnet"})
    method = get_method("dicefer")(cfg, SYNTHFER, torch.device("cpu"))
    x = preprocess_batch([s.image for s in samples], method.preprocessing())              # (N, 3, 112, 112)
    enc = method.nets["id_encoders"]["m"]
    with torch.no_grad():
        codes = torch.cat([enc(x[i:i + 40])[1] for i in range(0, len(x), 40)]).numpy()  # (N, 128)
    probe = identity_probe(codes, subjects, seed=args.seed)
    print(f"SynthFER: {len(codes)} images, {len(set(subjects))} people, {len(set(expressions))} expressions "
          f"(seed {args.seed})")
    print(f"  verification AUC by subject     {verification_auc(codes, subjects)['auc']:.3f}")
    print(f"  verification AUC by expression  {verification_auc(codes, expressions)['auc']:.3f} (control)")
    print(f"  identity probe accuracy         {probe['accuracy']:.3f} (chance {probe['chance']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
