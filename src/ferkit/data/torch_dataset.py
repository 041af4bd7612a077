"""The torch ``Dataset`` over a :class:`DatasetSplit`: images through a transform, labels, subjects.

Items are dicts ``{"image": (C, S, S) float, "expression": int, "subject": int, "index": int}`` plus one
key per extra view (each view is its own transform of the same decoded image, e.g. a teacher view).
With ``cache_dir`` the images are read from a prepared uint8 cache (``ferkit.data.cache``); otherwise each
is decoded (and aligned, if the dataset option ``align`` asks for it) on the fly. The two give identical
tensors. In-memory array samples (FER2013, rendered SynthFER) are used directly and need no cache.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ferkit.data.cache import Aligner, PreparedCache, prepare_cache, prepare_image
from ferkit.data.datasets.base import option_bool
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.records import DatasetSplit


class FERDataset(Dataset):
    """A split as a map-style dataset of dict items (see the module doc)."""

    def __init__(self, split: DatasetSplit, transform: Callable, extra_views: dict[str, Callable] | None = None,
                 cache_dir: str | None = None, preprocessing: Preprocessing | None = None,
                 progress: bool = True):
        self.split = split
        self.transform = transform
        self.extra_views = dict(extra_views or {})
        self.preprocessing = preprocessing or getattr(transform, "preprocessing", None)
        options = split.info.get("options", {}) or {}
        self.align = bool(self.preprocessing is not None and self.preprocessing.align == "mtcnn5"
                          and option_bool(options, "align", False))
        self._aligner: Aligner | None = None
        self.cache: PreparedCache | None = None
        in_memory = all(not isinstance(s.image, (str, Path)) for s in split.samples)
        if cache_dir is not None and self.preprocessing is not None and not in_memory and len(split):
            self.cache = prepare_cache(split.samples, self.preprocessing, cache_dir, align=self.align,
                                       progress=progress)

    def __len__(self) -> int:
        return len(self.split.samples)

    @property
    def expressions(self) -> np.ndarray:
        return self.split.expressions

    @property
    def subjects(self) -> np.ndarray:
        return self.split.subjects

    def raw_image(self, index: int) -> np.ndarray:
        """The uint8 image before the transform (from the cache, or decoded and resized now)."""
        if self.cache is not None:
            return self.cache[index]
        if self.align and self._aligner is None:
            self._aligner = Aligner(self.preprocessing)
        return prepare_image(self.split.samples[index], self.preprocessing, self._aligner)

    def __getitem__(self, index: int) -> dict:
        sample = self.split.samples[index]
        image = self.raw_image(index)
        item = {"image": self.transform(image), "expression": int(sample.expression),
                "subject": int(sample.subject), "index": int(index)}
        for key, view in self.extra_views.items():
            item[key] = view(image)
        return item

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_aligner"] = None          # each worker builds its own detector
        return state
