"""FER2013, as it ships: ``fer2013.csv`` with columns emotion, pixels, Usage.

``pixels`` holds 2304 space-separated gray values (48x48), decoded here into uint8 (48, 48) arrays.
Usage Training -> train, PublicTest -> val, PrivateTest -> test. Labels 0..6: Angry, Disgust, Fear, Happy,
Sad, Surprise, Neutral. No subject identities.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from ferkit.data import labels
from ferkit.data.datasets.base import AdapterResult, DatasetInfo, line_error, require_file
from ferkit.data.records import Sample
from ferkit.errors import DataError

FILE = "fer2013.csv"
HEADER = ("emotion", "pixels", "Usage")
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}

LAYOUT = """\
ROOT/
  fer2013.csv      # header 'emotion,pixels,Usage'; pixels = 2304 gray values (48x48); Usage Training |
                   #   PublicTest (-> val) | PrivateTest (-> test)"""


def decode_pixels(text: str, where: str, lineno: int) -> np.ndarray:
    """'70 80 82 ...' (2304 values) -> uint8 (48, 48)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # older numpy: a partial parse is short
            values = np.fromstring(text, dtype=np.int64, sep=" ")   # (2304,)
    except ValueError:
        raise line_error(where, lineno, "2304 space-separated integers in 'pixels'", text[:40] + "...") from None
    if values.size != 48 * 48 or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise line_error(where, lineno, "2304 values 0..255 in 'pixels'", f"{values.size} values")
    return values.astype(np.uint8).reshape(48, 48)            # (48, 48)


def read_fer2013(path: Path, where: str = FILE) -> list[tuple[int, int, np.ndarray, str]]:
    """Every row as (line number, emotion, pixels (48, 48) uint8, Usage), in file order."""
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise line_error(where, 1, "the header 'emotion,pixels,Usage'", ",".join(header or []))
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != 3 or not row[0].strip().isdigit():
                raise line_error(where, lineno, "'EMOTION,PIXELS,USAGE'", ",".join(row)[:60])
            rows.append((lineno, int(row[0]), decode_pixels(row[1], where, lineno), row[2].strip()))
    if not rows:
        raise DataError(f"{path} has a header but no rows.")
    return rows


def load(root: Path, options: dict) -> AdapterResult:
    path = require_file(root / FILE, root, "fer2013")
    samples: list[Sample] = []
    for row_index, (lineno, emotion, pixels, usage) in enumerate(read_fer2013(path)):
        if usage not in USAGE:
            raise line_error(FILE, lineno, "Usage Training, PublicTest or PrivateTest", usage)
        try:
            expression = labels.fer2013_label(emotion)
        except ValueError as e:
            raise DataError(f"{FILE} line {lineno}: {e}.") from None
        samples.append(Sample(
            image=pixels, expression=expression, subject=-1,
            meta={"source": f"{FILE}:row{row_index}", "row": row_index, "original_label": emotion,
                  "split": USAGE[usage]},
        ))
    return AdapterResult(samples, labels.FER2013, {})


INFO = DatasetInfo(
    name="fer2013", label_space=labels.FER2013, layout=LAYOUT, has_subjects=False,
    splits=("train", "val", "test"), options={}, loader=load,
)
