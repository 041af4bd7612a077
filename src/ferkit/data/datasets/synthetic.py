"""SynthFER written to a folder by ``ferkit synth`` (``ferkit.data.synthetic.write_synthfer``).

``metadata.csv`` has one row per image (file, subject, expression, expression_name, split, intensity,
au_* ..., nuisance columns); ``splits/train.txt``, ``val.txt``, ``test.txt`` list the file names of each
split; images live in ``images/``. The split lists are the authority; a listed file missing from the
metadata (or from ``images/``) is an error. Every other metadata column is kept in ``meta`` as a number
where it parses as one. With no folder (empty root) the dataset is rendered in memory instead.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ferkit.data import labels
from ferkit.data.datasets.base import (
    AdapterResult,
    DatasetInfo,
    check_exist,
    line_error,
    read_lines,
    require_file,
)
from ferkit.data.records import Sample
from ferkit.errors import DataError

REQUIRED = ("file", "subject", "expression")
SPLITS = ("train", "val", "test")

LAYOUT = """\
ROOT/                      # written by `ferkit synth --out ROOT`; empty data_path renders in memory
  metadata.csv             # file,subject,expression,expression_name,split,intensity,au_*...,nuisance...
  splits/train.txt         # file names, one per line (also val.txt, test.txt)
  images/000000.png ...
  synthfer.json            # generation parameters"""


def _number(text: str) -> float | int | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_metadata(path: Path) -> dict[str, tuple[int, dict[str, str]]]:
    """file -> (line number, row) for metadata.csv; raises naming the line when malformed."""
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise line_error("metadata.csv", 1, "a header with columns " + ", ".join(REQUIRED),
                             ",".join(reader.fieldnames or []))
        for row in reader:
            lineno = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise line_error("metadata.csv", lineno, f"{len(reader.fieldnames)} fields", str(list(row.values())))
            if not row["subject"].strip().lstrip("-").isdigit() or not row["expression"].strip().isdigit():
                raise line_error("metadata.csv", lineno, "integer subject and expression",
                                 f"{row['subject']},{row['expression']}")
            rows[row["file"].strip()] = (lineno, row)
    return rows


def image_path(root: Path, name: str) -> Path:
    return root / name if name.startswith("images/") else root / "images" / name


def load(root: Path, options: dict) -> AdapterResult:
    meta_rows = read_metadata(require_file(root / "metadata.csv", root, "synthetic"))
    samples: list[Sample] = []
    space = labels.SYNTHFER
    for split in SPLITS:
        list_path = require_file(root / "splits" / f"{split}.txt", root, "synthetic")
        for lineno, name in read_lines(list_path):
            if name not in meta_rows:
                raise DataError(f"splits/{split}.txt line {lineno}: '{name}' has no row in metadata.csv.")
            _, row = meta_rows[name]
            expression = int(row["expression"])
            if not 0 <= expression < space.num_classes:
                raise DataError(f"metadata.csv line {meta_rows[name][0]}: expression {expression} is outside "
                                f"0..{space.num_classes - 1}.")
            extra = {k: _number(v) for k, v in row.items() if k not in ("file", "subject", "expression", "split")}
            path = image_path(root, name)
            samples.append(Sample(image=path, expression=expression, subject=int(row["subject"]),
                                  meta={**extra, "source": name, "original_label": expression, "split": split}))
    if not samples:
        raise DataError(f"The split lists under {root / 'splits'} are empty; regenerate with `ferkit synth`.")
    check_exist((s.image for s in samples), "splits/*.txt")
    return AdapterResult(samples, space, {})


def render(options: dict, synth: dict) -> AdapterResult:
    """Render SynthFER in memory (``ferkit.data.synthetic.render_synthfer``) and flatten its splits."""
    from ferkit.data.synthetic import render_synthfer

    ds = render_synthfer(**synth)
    samples: list[Sample] = []
    for split in SPLITS:
        for s in ds.splits[split].samples:
            s.meta["split"] = split
            samples.append(s)
    return AdapterResult(samples, labels.SYNTHFER, {"rendered": dict(synth)})


INFO = DatasetInfo(
    name="synthetic", label_space=labels.SYNTHFER, layout=LAYOUT, has_subjects=True, splits=SPLITS,
    options={}, loader=load,
)
