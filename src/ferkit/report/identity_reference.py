"""`ferkit evaluate --identity-reference dlib-resnet`: the model's embeddings against a real face recognizer.

Each evaluated image is given to the recognizer as a face of a photo: MTCNN finds its largest face,
which is cut into the recognizer's chip (``ferkit.external.identity``). Images where MTCNN finds no
face are left out of this audit (never replaced), and the report says how many. On the rest,
``ferkit.metrics.identity.identity_alignment`` compares the model's expression embedding (and DICE-FER's
identity code, where there is one) with the recognizer's descriptors: linear CKA, the rank correlation
of pairwise similarities, bootstrap intervals, shuffled controls, and verification AUC where the
dataset knows its subjects. No subject labels are needed for CKA and the rank correlation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError


def reference_embeddings(split, name: str, device: str = "auto", progress: bool = False) -> np.ndarray:
    """(N, D) float32 descriptors of the largest face of each image of ``split``; NaN rows where none."""
    from ferkit.data.faces import FaceDetector, _as_rgb
    from ferkit.data.io import read_image
    from ferkit.external.identity import IdentityEmbedder

    embedder = IdentityEmbedder(name, device=device)
    detector = FaceDetector(device=str(embedder.device))
    out = np.full((len(split), embedder.dim), np.nan, np.float32)
    samples = split.samples
    if progress:
        from ferkit.engine.logging import progress_bar

        samples = progress_bar(samples, len(split), f"{name} faces", unit="image")
    for i, sample in enumerate(samples):
        image = read_image(sample.image) if isinstance(sample.image, (str, Path)) else _as_rgb(sample.image)
        faces = detector.detect(image)
        if faces:
            out[i] = embedder.embed_faces(image, faces[:1])[0]
    return out


def identity_reference_metrics(preds: dict, split, name: str, device: str = "auto", seed: int = 0,
                               progress: bool = False, n_boot: int = 200, n_shuffle: int = 200) -> dict:
    """The ``identity_reference`` section of metrics.json for predictions ``preds`` on ``split``."""
    from ferkit.metrics.identity import identity_alignment

    emb = preds.get("embedding")
    if emb is None:
        raise FerkitError(f"--identity-reference compares the model's embedding with {name}'s, and this model "
                          "returns none (exported ONNX models have none); evaluate its .safetensors checkpoint.")
    index = np.asarray(preds.get("index", np.arange(len(emb))))
    ref_all = reference_embeddings(split, name, device, progress)[index]                    # (N, D')
    found = ~np.isnan(ref_all).any(axis=1)
    out: dict = {"reference": name, "num_images": int(len(index)), "num_with_face": int(found.sum()),
                 "note": f"{name} descriptors of MTCNN's largest face per image; {int((~found).sum())} image(s) "
                         "without a detected face are left out of this audit"}
    if found.sum() < 4:
        return {**out, "reason": f"{name} found a face in {int(found.sum())} image(s); the audit needs 4"}
    ref = ref_all[found]
    subjects = np.asarray(preds["subjects"])[found]
    known = subjects if (subjects >= 0).any() else None
    kw = {"n_boot": n_boot, "n_shuffle": n_shuffle, "seed": seed}
    out["expression_embedding"] = identity_alignment(np.asarray(emb)[found], ref, known, **kw)
    ident = preds.get("identity_embedding")
    if ident is not None:
        out["identity_embedding"] = identity_alignment(np.asarray(ident)[found], ref, known, **kw)
    return out
