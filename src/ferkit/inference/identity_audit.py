"""`ferkit identity`: how much of a face recognizer's view a model's embedding keeps, on any photos.

    report = ferkit.inference.identity_audit.identity_audit(["faces/"], model="run/", reference="dlib-resnet")

Both networks embed every face MTCNN finds (``ferkit.inference.embed``; one detector, so the same faces
in the same order); the rows are paired by (input, frame, face) and their boxes must agree. Then
``ferkit.metrics.identity.identity_alignment``: linear CKA (plain and debiased), the rank correlation of
pairwise similarities, bootstrap intervals and shuffled controls, and, with ``subjects="folder"`` (each
photo's parent folder names its person), same-person verification AUC of both embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import FerkitError

SUBJECT_SOURCES = ("none", "folder")


def subjects_from_folders(paths: np.ndarray) -> np.ndarray:
    """(N,) int subject ids from each path's parent folder name (sorted names -> 0, 1, ...)."""
    names = [Path(str(p)).parent.name for p in paths]
    order = {n: i for i, n in enumerate(sorted(set(names)))}
    return np.array([order[n] for n in names], dtype=np.int64)


def identity_audit(inputs: Any, model: str | Path, reference: str = "dlib-resnet", branch: str = "expression",
                   subjects: str = "none", device: str = "auto", every: int = 1, n_boot: int = 200,
                   n_shuffle: int = 200, seed: int = 0) -> dict:
    """The model's embedding of each face against the reference recognizer's (see module doc)."""
    from ferkit.external.identity import IDENTITY_MODELS
    from ferkit.inference.embed import embed
    from ferkit.metrics.identity import identity_alignment

    if reference not in IDENTITY_MODELS:
        raise FerkitError(f"--reference must be a built-in identity network ({', '.join(IDENTITY_MODELS)}), "
                          f"got '{reference}'.")
    if subjects not in SUBJECT_SOURCES:
        raise FerkitError(f"Unknown --subjects '{subjects}'; use {' or '.join(SUBJECT_SOURCES)}.")
    ours = embed(inputs, model=model, branch=branch, device=device, every=every)
    ref = embed(inputs, model=reference, device=device, every=every)
    key = {(p, int(f), int(k)): i for i, (p, f, k) in enumerate(zip(ref.paths, ref.frames, ref.faces, strict=True))}
    pairs = [(i, key[(p, int(f), int(k))]) for i, (p, f, k) in enumerate(zip(ours.paths, ours.frames, ours.faces,
                                                                            strict=True)) if (p, int(f), int(k)) in key]
    if len(pairs) < 4:
        raise FerkitError(f"The identity audit needs at least 4 faces; {len(pairs)} were found in the inputs.")
    a, b = (np.array(v) for v in zip(*pairs, strict=True))
    if np.abs(ours.boxes[a] - ref.boxes[b]).max() > 1.0:
        raise FerkitError(f"{model} and {reference} found different faces (the model's own detector settings "
                          "differ); audit with the same --min-face for both.")
    subj = subjects_from_folders(ours.paths[a]) if subjects == "folder" else None
    out = {"model": str(model), "branch": branch, "reference": reference, "num_faces": int(len(a)),
           "num_inputs_without_face": len(ours.no_face),
           "subjects": subjects if subj is None else f"folder ({len(np.unique(subj))} people)"}
    out.update(identity_alignment(ours.embeddings[a], ref.embeddings[b], subj, n_boot=n_boot, n_shuffle=n_shuffle,
                                  seed=seed))
    return out
