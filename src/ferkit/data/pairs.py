"""Same-expression image pairs for DICE-FER (METHODS.md A.3 "pairing", A.8 step 2).

For each anchor the partner is drawn uniformly among images with the same expression and a *different
subject*. Where subjects are unknown (-1) every image counts as its own subject, so the partner is simply
a different image of the class. When a class has only one subject, the partner falls back to a different
image of that class (counted in ``info["same_subject_fallback"]``); a class with a single image pairs it
with itself (``info["self_pairs"]``). Partners are redrawn by ``set_epoch(e)`` and depend only on
(seed, epoch), so a resumed run sees the same pairs.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset


def draw_partners(expressions: np.ndarray, subjects: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Partner index per sample (see module doc) and counts of the fallbacks used."""
    expressions = np.asarray(expressions, dtype=np.int64)
    subjects = np.asarray(subjects, dtype=np.int64).copy()
    n = len(expressions)
    unknown = subjects < 0
    subjects[unknown] = subjects.max(initial=-1) + 1 + np.arange(int(unknown.sum()))   # own subject each
    partners = np.empty(n, dtype=np.int64)
    info = {"same_subject_fallback": 0, "self_pairs": 0}
    for c in np.unique(expressions):
        idx = np.flatnonzero(expressions == c)
        idx = idx[np.argsort(subjects[idx], kind="stable")]          # each subject's images are a block
        subj = subjects[idx]
        start = np.searchsorted(subj, subj, side="left")             # block start per anchor
        end = np.searchsorted(subj, subj, side="right")              # block end per anchor
        others = len(idx) - (end - start)                            # images of other subjects
        r = rng.random(len(idx))
        ok = others > 0
        k = np.floor(r * np.maximum(others, 1)).astype(np.int64)
        k = np.where(k >= start, k + (end - start), k)               # skip the anchor's own block
        chosen = np.where(ok, idx[np.minimum(k, len(idx) - 1)], -1)
        if not ok.all():                                             # one subject only: another image
            pos = np.flatnonzero(~ok)
            if len(idx) > 1:
                j = np.floor(r[pos] * (len(idx) - 1)).astype(np.int64)
                j = np.where(j >= pos, j + 1, j)                     # any other position in the class
                chosen[pos] = idx[j]
                info["same_subject_fallback"] += len(pos)
            else:
                chosen[pos] = idx[pos]
                info["self_pairs"] += len(pos)
        partners[idx] = chosen
    return partners, info


class PairDataset(Dataset):
    """Wraps a FERDataset; each item gains "image_pair" and "subject_pair" from its partner."""

    def __init__(self, base, seed: int):
        self.base = base
        self.seed = int(seed)
        self.epoch = 0
        self.info: dict = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Redraw every partner, deterministically from (seed, epoch)."""
        self.epoch = int(epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.partners, self.info = draw_partners(self.base.expressions, self.base.subjects, rng)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        partner = self.base[int(self.partners[index])]
        item["image_pair"] = partner["image"]
        item["subject_pair"] = partner["subject"]
        item["expression_pair"] = partner["expression"]
        item["index_pair"] = partner["index"]
        return item
