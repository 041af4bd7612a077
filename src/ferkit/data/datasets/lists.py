"""The UA-FER / CEPrompt list layout: ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``.

Each file holds ``idx value`` lines (1-based idx) and all three must list the same idx values:
``images.txt`` the image name, ``image_class_labels.txt`` the label, ``train_test_split.txt`` 1 (train) or
0 (test). Two flavours ship:

- RAF-DB (``EmoLabel/``): labels 1..7 in RAF order; images under ``Image/aligned_224/`` (option
  ``image_dir``: a folder under ``Image/``; ``.`` reads ``Image/<name>`` as the UAFER loader does).
- AffectNet (``affectnet_info/``): labels 0-based in AffectNet order; paths absolute or relative to the
  dataset root. ``affectnet`` keeps codes 0..6, ``affectnet8`` codes 0..7; other codes are excluded and
  counted in ``info["excluded"]``.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.data import labels
from ferkit.data.datasets.base import (
    AdapterResult,
    DatasetInfo,
    check_exist,
    line_error,
    option_choice,
    read_lines,
    rel,
    require_dir,
)
from ferkit.data.records import Sample
from ferkit.errors import DataError

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt")
FOLDERS = {"rafdb": "EmoLabel", "affectnet": "affectnet_info", "affectnet8": "affectnet_info"}

LAYOUT = """\
ROOT/                                   # RAF-DB flavour
  EmoLabel/images.txt                   # '1 train_00001.jpg'   (idx name, 1-based idx)
  EmoLabel/image_class_labels.txt       # '1 5'                 (idx label, RAF order 1..7)
  EmoLabel/train_test_split.txt         # '1 1'                 (idx 1=train 0=test)
  Image/aligned_224/train_00001.jpg     # (option image_dir)
ROOT/                                   # AffectNet flavour
  affectnet_info/images.txt             # '1 Manually_Annotated_Images/1/abc.jpg' (absolute or root-relative)
  affectnet_info/image_class_labels.txt # '1 3'                 (0-based AffectNet codes)
  affectnet_info/train_test_split.txt   # '1 1'"""


def detect_flavour(root: Path, requested: str | None) -> str:
    if requested is not None:
        require_dir(root / FOLDERS[requested], root, "lists")
        return requested
    for flavour in ("rafdb", "affectnet"):
        if (root / FOLDERS[flavour] / "images.txt").is_file():
            return flavour
    raise DataError(
        f"Neither EmoLabel/images.txt nor affectnet_info/images.txt found under {root}; dataset 'lists' "
        f"expects the UA-FER list files (run `ferkit datasets lists` to see the layout)."
    )


def read_index_file(path: Path, where: str) -> dict[int, tuple[int, str]]:
    """idx -> (line number, value) for an ``idx value`` file; raises on malformed or repeated idx."""
    out: dict[int, tuple[int, str]] = {}
    for lineno, text in read_lines(path):
        parts = text.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1:
            raise line_error(where, lineno, "'IDX VALUE' with a 1-based integer IDX", text)
        idx = int(parts[0])
        if idx in out:
            raise DataError(f"{where} line {lineno}: idx {idx} already appeared on line {out[idx][0]}.")
        out[idx] = (lineno, parts[1].strip())
    if not out:
        raise DataError(f"{path} is empty; dataset 'lists' expects 'IDX VALUE' lines.")
    return out


def load(root: Path, options: dict) -> AdapterResult:
    flavour = detect_flavour(root, option_choice(options, "flavour", tuple(FOLDERS), None))
    folder = root / FOLDERS[flavour]
    tables = {}
    for fname in FILES:
        path = folder / fname
        where = f"{FOLDERS[flavour]}/{fname}"
        if not path.is_file():
            raise DataError(f"{where} not found under {root}; dataset 'lists' expects all of {', '.join(FILES)}.")
        tables[fname] = (where, read_index_file(path, where))
    names_where, names = tables["images.txt"]
    for fname in FILES[1:]:
        where, table = tables[fname]
        for idx in sorted(set(names) ^ set(table)):
            has, lacks = (names_where, where) if idx in names else (where, names_where)
            line = (names if idx in names else table)[idx][0]
            raise DataError(f"{has} line {line}: idx {idx} has no entry in {lacks}; the three lists must agree.")

    if flavour == "rafdb":
        image_dir = str(options.get("image_dir", "aligned_224"))
        base = (root / "Image" / image_dir) if image_dir not in ("", ".") else root / "Image"
        label_space = labels.RAFDB
    else:
        base = root
        label_space = labels.AFFECTNET8 if flavour == "affectnet8" else labels.AFFECTNET7
    labels_where, label_table = tables["image_class_labels.txt"]
    split_where, split_table = tables["train_test_split.txt"]
    samples: list[Sample] = []
    excluded: dict[int, int] = {}
    for idx in sorted(names):
        name = names[idx][1]
        lab_line, lab_text = label_table[idx]
        if not lab_text.lstrip("-").isdigit():
            raise line_error(labels_where, lab_line, "'IDX LABEL' with an integer label", f"{idx} {lab_text}")
        raw = int(lab_text)
        sp_line, sp_text = split_table[idx]
        if sp_text not in ("0", "1"):
            raise line_error(split_where, sp_line, "'IDX 1' (train) or 'IDX 0' (test)", f"{idx} {sp_text}")
        try:
            if flavour == "rafdb":
                expression: int | None = labels.rafdb_label(raw)
            else:
                expression = labels.affectnet_label(raw, label_space.num_classes)
        except ValueError as e:
            raise DataError(f"{labels_where} line {lab_line}: {e}.") from None
        if expression is None:
            excluded[raw] = excluded.get(raw, 0) + 1
            continue
        path = Path(name) if Path(name).is_absolute() else base / name
        samples.append(Sample(
            image=path, expression=expression, subject=-1,
            meta={"source": rel(path, root), "idx": idx, "original_label": raw,
                  "split": "train" if sp_text == "1" else "test"},
        ))
    check_exist((s.image for s in samples), f"{names_where}")
    info = {"flavour": flavour, "excluded": {f"code_{k}": v for k, v in sorted(excluded.items())}}
    if flavour == "rafdb":
        info["image_dir"] = str(base.relative_to(root))
    return AdapterResult(samples, label_space, info)


INFO = DatasetInfo(
    name="lists", label_space=labels.RAFDB, layout=LAYOUT, has_subjects=False, splits=("train", "test"),
    options={
        "flavour": "rafdb | affectnet | affectnet8 (default: from which folder exists)",
        "image_dir": "RAF-DB flavour: folder under Image/ holding the images (default aligned_224; '.' = Image/)",
    },
    loader=load,
)
