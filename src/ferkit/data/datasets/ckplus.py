"""CK+ (extended Cohn-Kanade), as it ships: ``cohn-kanade-images/`` + ``Emotion/``.

A sequence ``S005/001`` is labelled when ``Emotion/S005/001/S005_001_<frame>_emotion.txt`` exists; it holds
one float code 0..7 (``   3.0000000e+00``) in CK+ order (neutral, anger, contempt, disgust, fear, happy,
sadness, surprise). The last ``last_n`` frames of each labelled sequence take that expression; with
``include_neutral`` the first frame is added as neutral (label space CKPLUS8, else CKPLUS7). Sequences
without an Emotion file are not labelled in CK+ and are counted in ``info["unlabelled_sequences"]``. The
subject comes from the folder (S005 -> 5). There is no fixed split: use split="all" or a fold.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.data import labels
from ferkit.data.datasets.base import (
    AdapterResult,
    DatasetInfo,
    option_bool,
    option_int,
    read_lines,
    rel,
    require_dir,
    subject_number,
)
from ferkit.data.io import is_image_name
from ferkit.data.records import Sample
from ferkit.errors import DataError

LAYOUT = """\
ROOT/
  cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
  Emotion/S005/001/S005_001_00000011_emotion.txt     # one float code 0..7, e.g. '   3.0000000e+00'
  (also accepted: extended-cohn-kanade-images/cohn-kanade-images/ and Emotion_labels/Emotion/, as unzipped)"""


def read_emotion(path: Path, root: Path) -> float:
    """The float code in a CK+ Emotion file; raises naming the file and line when malformed."""
    lines = read_lines(path)
    where = rel(path, root)
    if len(lines) != 1:
        raise DataError(f"{where}: expected one line with a code 0..7, found {len(lines)} non-blank lines.")
    lineno, text = lines[0]
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where} line {lineno}: expected a number like '3.0000000e+00', got {text!r}.") from None


def _first_dir(root: Path, candidates: tuple[str, ...]) -> Path:
    """The first existing folder among ``candidates`` (the official name first, then the zip's nesting)."""
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return require_dir(root / candidates[0], root, "ckplus")


def load(root: Path, options: dict) -> AdapterResult:
    last_n = option_int(options, "last_n", 3, minimum=1)
    include_neutral = option_bool(options, "include_neutral", False)
    images_root = _first_dir(root, ("cohn-kanade-images", "extended-cohn-kanade-images/cohn-kanade-images"))
    emotion_root = _first_dir(root, ("Emotion", "Emotion_labels/Emotion"))
    label_space = labels.CKPLUS8 if include_neutral else labels.CKPLUS7
    samples: list[Sample] = []
    labelled: set[tuple[str, str]] = set()
    short = 0
    for subject_dir in sorted(p for p in emotion_root.iterdir() if p.is_dir()):
        subject = subject_number(subject_dir.name, "S", subject_dir)
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            files = sorted(seq_dir.glob("*_emotion.txt"))
            if not files:
                continue
            if len(files) > 1:
                raise DataError(f"Folder {rel(seq_dir, root)} has {len(files)} emotion files; CK+ has one per sequence.")
            raw = read_emotion(files[0], root)
            try:
                expression = labels.ckplus_label(raw, include_neutral)
            except ValueError as e:
                raise DataError(f"{rel(files[0], root)} line 1: {e}.") from None
            frames_dir = images_root / subject_dir.name / seq_dir.name
            frames = sorted(p for p in frames_dir.iterdir() if is_image_name(p)) if frames_dir.is_dir() else []
            if not frames:
                raise DataError(f"{rel(files[0], root)} labels sequence {subject_dir.name}/{seq_dir.name}, "
                                f"but {rel(frames_dir, root)} holds no images.")
            labelled.add((subject_dir.name, seq_dir.name))
            first_peak = max(len(frames) - last_n, 1 if include_neutral else 0)
            if len(frames) - first_peak < last_n:
                short += 1
            sequence = f"{subject_dir.name}/{seq_dir.name}"
            chosen = [(i, expression, raw) for i in range(first_peak, len(frames))]
            if include_neutral:
                chosen.insert(0, (0, 0, 0.0))
            for i, expr, orig in chosen:
                samples.append(Sample(
                    image=frames[i], expression=expr, subject=subject,
                    meta={"source": rel(frames[i], root), "sequence": sequence, "frame": i,
                          "original_label": orig, "split": "all"},
                ))
    if not samples:
        raise DataError(f"No labelled sequences under {emotion_root}; dataset 'ckplus' expects "
                        f"Emotion/Sxxx/yyy/*_emotion.txt files.")
    unlabelled = sum(1 for s in images_root.iterdir() if s.is_dir() for q in s.iterdir()
                     if q.is_dir() and (s.name, q.name) not in labelled)
    info = {"last_n": last_n, "include_neutral": include_neutral, "labelled_sequences": len(labelled),
            "unlabelled_sequences": unlabelled, "sequences_shorter_than_last_n": short}
    return AdapterResult(samples, label_space, info)


INFO = DatasetInfo(
    name="ckplus", label_space=labels.CKPLUS7, layout=LAYOUT, has_subjects=True, splits=("all",),
    options={"last_n": "frames taken from the end of each labelled sequence (default 3)",
             "include_neutral": "true: add each labelled sequence's first frame as neutral (8 classes)"},
    loader=load,
)
