"""FERPlus: the FER2013 images relabelled by 10 annotators (``fer2013new.csv`` beside ``fer2013.csv``).

``fer2013new.csv`` columns: Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF (vote counts). Its rows match ``fer2013.csv`` row by row (the pixels come from there).
Rows with an empty Image name were removed by FERPlus and are counted as excluded. ``label_mode``:

- ``majority``: the class with the most votes over all 10 columns; rows whose top count is tied, or whose
  top column is unknown or NF, are excluded and counted (a plurality rule; FERPlus's own scripts
  additionally drop single votes and require more than half of the votes).
- ``probability``: ``meta["soft_label"]`` = the 8 emotion votes / their sum (float32 (8,)), expression =
  argmax (first on ties); rows with no emotion votes, or where NF has strictly the most votes, are excluded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ferkit.data import labels
from ferkit.data.datasets.base import AdapterResult, DatasetInfo, line_error, option_choice, require_file
from ferkit.data.datasets.fer2013 import FILE as FER_FILE
from ferkit.data.datasets.fer2013 import USAGE, read_fer2013
from ferkit.data.records import Sample
from ferkit.errors import DataError

FILE = "fer2013new.csv"
HEADER = ("Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
          "contempt", "unknown", "NF")

LAYOUT = """\
ROOT/
  fer2013new.csv   # header 'Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
                   #   contempt,unknown,NF' (vote counts), one row per fer2013.csv row
  fer2013.csv      # the pixels (joined by row order)"""


def read_votes(path: Path) -> list[tuple[int, str, str, np.ndarray]]:
    """Every row as (line number, Usage, Image name, votes int64 (10,))."""
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise line_error(FILE, 1, "the header '" + ",".join(HEADER) + "'", ",".join(header or []))
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            try:
                if len(row) != len(HEADER):
                    raise ValueError
                votes = np.array([int(float(v)) for v in row[2:]], dtype=np.int64)
            except ValueError:
                raise line_error(FILE, lineno, "'USAGE,NAME' and 10 vote counts", ",".join(row)) from None
            rows.append((lineno, row[0].strip(), row[1].strip(), votes))
    return rows


def decide(votes: np.ndarray, mode: str) -> tuple[int | None, np.ndarray | None, str]:
    """(expression or None, soft label or None, reason when excluded) for one row's 10 vote counts."""
    if mode == "majority":
        top = votes.max()
        winners = np.flatnonzero(votes == top)
        if top == 0 or len(winners) > 1:
            return None, None, "tie"
        if winners[0] >= 8:
            return None, None, HEADER[2 + winners[0]]
        return int(winners[0]), None, ""
    emotion = votes[:8].astype(np.float64)
    if emotion.sum() == 0:
        return None, None, "no_emotion_votes"
    if votes[9] > emotion.max():
        return None, None, "NF"
    soft = (emotion / emotion.sum()).astype(np.float32)        # (8,)
    return int(np.argmax(soft)), soft, ""


def load(root: Path, options: dict) -> AdapterResult:
    mode = option_choice(options, "label_mode", ("majority", "probability"), "majority")
    votes_rows = read_votes(require_file(root / FILE, root, "ferplus"))
    pixel_rows = read_fer2013(require_file(root / FER_FILE, root, "ferplus"))
    if len(votes_rows) != len(pixel_rows):
        raise DataError(f"{FILE} has {len(votes_rows)} rows but {FER_FILE} has {len(pixel_rows)}; "
                        f"FERPlus rows must match FER2013 rows one to one.")
    excluded: dict[str, int] = {"removed_by_ferplus": 0}
    samples: list[Sample] = []
    for row_index, ((lineno, usage, name, votes), pixel_row) in enumerate(zip(votes_rows, pixel_rows, strict=True)):
        if usage not in USAGE:
            raise line_error(FILE, lineno, "Usage Training, PublicTest or PrivateTest", usage)
        if not name:
            excluded["removed_by_ferplus"] += 1
            continue
        expression, soft, reason = decide(votes, mode)
        if expression is None:
            excluded[reason] = excluded.get(reason, 0) + 1
            continue
        meta = {"source": name, "row": row_index, "votes": votes.tolist(), "split": USAGE[usage],
                "original_label": HEADER[2 + expression]}
        if soft is not None:
            meta["soft_label"] = soft
        samples.append(Sample(image=pixel_row[2], expression=expression, subject=-1, meta=meta))
    if not samples:
        raise DataError(f"No usable rows in {root / FILE} with label_mode={mode}.")
    return AdapterResult(samples, labels.FERPLUS, {"label_mode": mode, "excluded": excluded})


INFO = DatasetInfo(
    name="ferplus", label_space=labels.FERPLUS, layout=LAYOUT, has_subjects=False,
    splits=("train", "val", "test"),
    options={"label_mode": "majority (plurality; ties/unknown/NF dropped and counted) | probability "
                           "(soft labels in meta['soft_label'])"},
    loader=load,
)
