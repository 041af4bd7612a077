"""The one sample record every dataset adapter yields (DESIGN.md, "Sample record")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ferkit.data.labels import LabelSpace


@dataclass
class Sample:
    """One labelled face image.

    image:      a path to an image file, or a uint8 array (H, W) or (H, W, 3) already in memory.
    expression: int in the dataset's label space (``labels.py``), 0..C-1.
    subject:    int identity, or -1 where the dataset has none.
    meta:       source path, frame, original label, split, and anything else an adapter knows
                (e.g. AffectNet face box and landmarks, SynthFER action-unit intensities).
    """

    image: Path | np.ndarray
    expression: int
    subject: int = -1
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """A human-readable name of where the image came from (for error messages and predictions)."""
        if isinstance(self.image, (str, Path)):
            return str(self.image)
        return str(self.meta.get("source", "<in-memory>"))


@dataclass
class DatasetSplit:
    """The records of one split of a dataset, with the label space they are expressed in."""

    name: str                      # dataset name, e.g. "rafdb"
    split: str                     # "train" | "val" | "test" | "all"
    label_space: LabelSpace
    samples: list[Sample]
    root: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)   # folds, notes, adapter options

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def expressions(self) -> np.ndarray:
        return np.array([s.expression for s in self.samples], dtype=np.int64)

    @property
    def subjects(self) -> np.ndarray:
        return np.array([s.subject for s in self.samples], dtype=np.int64)
