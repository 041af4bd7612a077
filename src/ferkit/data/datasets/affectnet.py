"""AffectNet, as it ships: ``Manually_Annotated_file_lists/training.csv`` / ``validation.csv``.

Columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression,
valence, arousal; images under ``Manually_Annotated_Images/``. ``validation.csv`` is the test split (the
standard protocol). Expression codes 8 (none), 9 (uncertain) and 10 (no face) are excluded, and contempt
(7) too for the 7-class ``affectnet``; every excluded row is counted, per split and reason, in
``info["excluded"]`` (e.g. ``{"train": {"none": 3, ...}, "test": {...}}``). The face box
(x, y, w, h) and the 68 landmarks (68, 2) are kept in ``meta``. Some copies of ``validation.csv`` lack the
header line; such a file is read with the standard column order and a note says so.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from ferkit.data import labels
from ferkit.data.datasets.base import AdapterResult, DatasetInfo, check_exist, line_error, rel, require_file
from ferkit.data.records import Sample
from ferkit.errors import DataError

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
FILES = {"train": "Manually_Annotated_file_lists/training.csv",
         "test": "Manually_Annotated_file_lists/validation.csv"}
EXCLUDED_NAMES = {7: "contempt", 8: "none", 9: "uncertain", 10: "no_face"}

LAYOUT = """\
ROOT/
  Manually_Annotated_file_lists/training.csv     # header: subDirectory_filePath,face_x,face_y,face_width,
  Manually_Annotated_file_lists/validation.csv   #   face_height,facial_landmarks,expression,valence,arousal
  Manually_Annotated_Images/1/abc.jpg            # subDirectory_filePath is relative to this folder"""


def _landmarks(text: str) -> np.ndarray | None:
    """'x1;y1;x2;y2;...' -> float32 (K, 2), or None when empty."""
    body = text.strip().strip(";")
    if not body:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)          # older numpy: a partial parse is short
        values = np.fromstring(body, dtype=np.float32, sep=";")      # (2K,); newer numpy raises ValueError
    if values.size != body.count(";") + 1 or values.size % 2:
        raise ValueError(f"malformed facial_landmarks {body[:40]!r}")
    return values.reshape(-1, 2)                                       # (K, 2)


def read_csv(path: Path, where: str, split: str, image_root: Path, num_classes: int,
             excluded: dict[str, int], notes: list[str]) -> list[Sample]:
    samples: list[Sample] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{where} is empty; expected a header line {','.join(COLUMNS)}.")
        if [h.strip() for h in header] != list(COLUMNS):
            if len(header) == len(COLUMNS) and header[6].strip().isdigit():
                notes.append(f"{where} has no header line; read with the standard AffectNet columns.")
                rows = [header]
            else:
                raise line_error(where, 1, "the header " + ",".join(COLUMNS), ",".join(header))
        else:
            rows = []
        for row in _chain(rows, reader):
            lineno = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(COLUMNS):
                raise line_error(where, lineno, f"{len(COLUMNS)} comma-separated fields", ",".join(row)[:120])
            try:
                code = int(row[6])
                box = tuple(float(v) for v in row[1:5])
                marks = _landmarks(row[5])
                valence, arousal = float(row[7]), float(row[8])
                expression = labels.affectnet_label(code, num_classes)
            except ValueError as e:
                raise DataError(f"{where} line {lineno}: {e}.") from None
            if expression is None:
                key = EXCLUDED_NAMES.get(code, f"code_{code}")
                excluded[key] = excluded.get(key, 0) + 1
                continue
            image = image_root / row[0]
            samples.append(Sample(
                image=image, expression=expression, subject=-1,
                meta={"source": row[0], "original_label": code, "split": split, "face_box": box,
                      "landmarks": marks, "valence": valence, "arousal": arousal, "line": lineno},
            ))
    return samples


def _chain(first: list, rest):
    yield from first
    yield from rest


def make_loader(num_classes: int):
    def load(root: Path, options: dict) -> AdapterResult:
        name = "affectnet" if num_classes == 7 else "affectnet8"
        image_root = root / "Manually_Annotated_Images"
        excluded: dict[str, dict[str, int]] = {}
        notes: list[str] = []
        samples: list[Sample] = []
        for split, fname in FILES.items():
            path = require_file(root / fname, root, name)
            excluded[split] = {v: 0 for k, v in EXCLUDED_NAMES.items() if k >= num_classes}
            samples += read_csv(path, fname, split, image_root, num_classes, excluded[split], notes)
        if not samples:
            raise DataError(f"No usable rows in {root / FILES['train']}; check that it is AffectNet's list.")
        check_exist((s.image for s in samples), f"{rel(image_root, root)} (from the AffectNet csv files)")
        info = {"excluded": excluded, "notes": notes}
        return AdapterResult(samples, labels.AFFECTNET7 if num_classes == 7 else labels.AFFECTNET8, info)
    return load


INFO7 = DatasetInfo(
    name="affectnet", label_space=labels.AFFECTNET7, layout=LAYOUT, has_subjects=False,
    splits=("train", "test"), options={}, loader=make_loader(7),
)
INFO8 = DatasetInfo(
    name="affectnet8", label_space=labels.AFFECTNET8, layout=LAYOUT, has_subjects=False,
    splits=("train", "test"), options={}, loader=make_loader(8),
)
