"""Tiny fixture trees in each real dataset layout (reusable by any test).

Every ``make_*`` writes a few small images with PIL and the list/label files with the real names, headers
and number formats, and returns what it wrote (so tests can check counts and labels against it).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, value: int = 128, size: int = 12, fmt: str | None = None, mode: str = "RGB") -> Path:
    """A small image of a flat colour with a brighter square (so resizes are not trivial)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size, size, 3), value % 256, dtype=np.uint8)
    arr[size // 4: size // 2, size // 4: size // 2] = (value + 90) % 256
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path


# --- RAF-DB --------------------------------------------------------------------------------------------

RAF_ROWS = [("train_00001.jpg", 4), ("train_00002.jpg", 1), ("train_00003.jpg", 7), ("train_00004.jpg", 4),
            ("train_00005.jpg", 5), ("test_0001.jpg", 4), ("test_0002.jpg", 6), ("test_0003.jpg", 2)]


def make_rafdb(root: Path, image_dirs: tuple[str, ...] = ("aligned",), rows=RAF_ROWS) -> list[tuple[str, int]]:
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {lab}\n" for n, lab in rows))
    for i, (name, _) in enumerate(rows):
        stem = Path(name).stem
        for kind in image_dirs:
            fname = f"{stem}_aligned.jpg" if kind == "aligned" else name
            write_image(root / "Image" / kind / fname, value=20 * i)
    return list(rows)


# --- UA-FER lists --------------------------------------------------------------------------------------

def make_lists_rafdb(root: Path) -> list[tuple[str, int, int]]:
    rows = [("train_00001.jpg", 4, 1), ("train_00002.jpg", 7, 1), ("train_00003.jpg", 1, 1),
            ("test_0001.jpg", 4, 0), ("test_0002.jpg", 3, 0)]
    _write_lists(root / "EmoLabel", rows)
    for i, (name, _, _) in enumerate(rows):
        write_image(root / "Image" / "aligned_224" / name, value=30 * i)
    return rows


def make_lists_affectnet(root: Path) -> list[tuple[str, int, int]]:
    rows = [("Manually_Annotated_Images/1/a.jpg", 1, 1), ("Manually_Annotated_Images/1/b.jpg", 0, 1),
            ("Manually_Annotated_Images/2/c.jpg", 7, 1), ("Manually_Annotated_Images/2/d.jpg", 6, 0),
            (str(root / "abs" / "e.jpg"), 3, 0)]
    _write_lists(root / "affectnet_info", rows)
    for i, (name, _, _) in enumerate(rows):
        p = Path(name)
        write_image(p if p.is_absolute() else root / p, value=40 * i)
    return rows


def _write_lists(folder: Path, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.txt").write_text("".join(f"{i} {n}\n" for i, (n, _, _) in enumerate(rows, 1)))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {lab}\n" for i, (_, lab, _) in enumerate(rows, 1)))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {s}\n" for i, (_, _, s) in enumerate(rows, 1)))


# --- AffectNet -----------------------------------------------------------------------------------------

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def make_affectnet(root: Path, train_codes=(0, 1, 1, 2, 7, 8, 9, 10, 6), test_codes=(3, 4, 5, 7),
                   header_in_validation: bool = True) -> dict:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    marks = ";".join(f"{x}.5" for x in range(136))
    for fname, codes, header in (("training.csv", train_codes, True),
                                 ("validation.csv", test_codes, header_in_validation)):
        with (lists / fname).open("w", newline="") as fh:
            w = csv.writer(fh)
            if header:
                w.writerow(AFFECTNET_HEADER)
            for i, code in enumerate(codes):
                rel = f"{100 + i}/{fname[:5]}_{i}.jpg"
                write_image(root / "Manually_Annotated_Images" / rel, value=25 * i)
                w.writerow([rel, 10 + i, 12, 80, 90, marks, code, 0.25, -0.5])
    return {"train": list(train_codes), "test": list(test_codes)}


# --- CK+ -----------------------------------------------------------------------------------------------

def make_ckplus(root: Path, subjects: int = 10, frames: int = 5) -> list[tuple[int, str, int]]:
    """Subject s has sequences 001 (labelled (s % 7) + 1) and 002 (unlabelled). Returns (subject, seq, code)."""
    out = []
    for s in range(1, subjects + 1):
        sid = f"S{s:03d}"
        for seq, code in (("001", (s % 7) + 1), ("002", None)):
            for f in range(1, frames + 1):
                write_image(root / "cohn-kanade-images" / sid / seq / f"{sid}_{seq}_{f:08d}.png", value=s * 10 + f,
                            fmt="PNG", mode="L")
            if code is not None:
                d = root / "Emotion" / sid / seq
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{sid}_{seq}_{frames:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
                out.append((s, seq, code))
            else:
                (root / "Emotion" / sid / seq).mkdir(parents=True, exist_ok=True)
    return out


# --- Oulu-CASIA ----------------------------------------------------------------------------------------

OULU_NAMES = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def make_oulu(root: Path, persons: int = 4, frames: int = 5, light: str = "Strong") -> int:
    for p in range(1, persons + 1):
        for e, name in enumerate(OULU_NAMES):
            for f in range(frames):
                write_image(root / "VL" / light / f"P{p:03d}" / name / f"{f:03d}.jpeg", value=p * 40 + e * 5 + f)
    return persons * len(OULU_NAMES) * min(frames, 3)


# --- FER2013 / FERPlus ---------------------------------------------------------------------------------

FER_ROWS = [(3, "Training"), (0, "Training"), (6, "Training"), (3, "PublicTest"), (2, "PrivateTest"),
            (5, "PrivateTest")]

FERPLUS_VOTES = [  # neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF
    ("fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),    # happy
    ("fer0000001.png", [5, 0, 0, 0, 5, 0, 0, 0, 0, 0]),     # tie -> excluded in majority
    ("fer0000002.png", [8, 1, 0, 0, 0, 0, 0, 0, 1, 0]),     # neutral
    ("", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),                  # removed by FERPlus
    ("fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8]),     # NF majority
    ("fer0000005.png", [0, 0, 6, 0, 0, 0, 4, 0, 0, 0]),     # surprise (0.6) / fear (0.4)
]


def make_fer2013(root: Path, rows=FER_ROWS) -> list[np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    pixels = []
    with (root / "fer2013.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (emotion, usage) in enumerate(rows):
            arr = ((np.arange(48 * 48) + 7 * i) % 256).astype(np.uint8).reshape(48, 48)
            pixels.append(arr)
            w.writerow([emotion, " ".join(str(v) for v in arr.ravel()), usage])
    return pixels


def make_ferplus(root: Path) -> list[np.ndarray]:
    pixels = make_fer2013(root)
    with (root / "fer2013new.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                    "fear", "contempt", "unknown", "NF"])
        for (name, votes), (_, usage) in zip(FERPLUS_VOTES, FER_ROWS, strict=True):
            w.writerow([usage, name, *votes])
    return pixels


# --- image folder and SynthFER folder ------------------------------------------------------------------

def make_folder(root: Path, splits: bool = True) -> dict[str, int]:
    classes = {"Happiness": 3, "sad": 2, "ANGRY": 2}
    for split in (("train", "test") if splits else ("",)):
        for cname, n in classes.items():
            for i in range(n):
                write_image(root / split / cname / f"img{i}.png", value=i * 30, fmt="PNG")
    (root / ("train" if splits else "") / "sad" / "notes.txt").write_text("not an image")
    return classes


def make_synthfer_folder(root: Path, subjects: int = 6, per_subject: int = 7) -> list[dict]:
    """A hand-written SynthFER folder (the format ``write_synthfer`` produces)."""
    rows = []
    for s in range(subjects):
        split = ("train", "train", "train", "train", "val", "test")[s % 6]
        for e in range(per_subject):
            name = f"{len(rows):06d}.png"
            write_image(root / "images" / name, value=s * 30 + e, fmt="PNG")
            rows.append({"file": name, "subject": s, "expression": e % 7, "expression_name": "x", "split": split,
                         "intensity": 0.5, "au_12": 0.25 * e, "pose_yaw": -3.0})
    with (root / "metadata.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (root / "splits").mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        (root / "splits" / f"{split}.txt").write_text("".join(r["file"] + "\n" for r in rows if r["split"] == split))
    return rows
