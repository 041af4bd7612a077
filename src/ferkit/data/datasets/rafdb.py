"""RAF-DB basic, as it ships: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned|original|aligned_224``.

Each list line is ``train_00001.jpg 5`` (labels 1..7 in RAF order); the split comes from the name prefix
(``train_`` / ``test_``). The official aligned images are named ``train_00001_aligned.jpg``; the original
images and the MTCNN re-aligned ``aligned_224`` set that UA-FER/CEPrompt use keep the listed name.
RAF-DB has no subject identities.
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
    require_file,
)
from ferkit.data.records import Sample
from ferkit.errors import DataError

LIST_FILE = "EmoLabel/list_patition_label.txt"
IMAGE_DIRS = ("aligned", "original", "aligned_224")

LAYOUT = """\
ROOT/
  EmoLabel/list_patition_label.txt     # 'train_00001.jpg 5' per line, labels 1..7 (RAF order)
  Image/aligned/train_00001_aligned.jpg   # official aligned 100x100 (default if present)
  Image/original/train_00001.jpg          # or the original images (image_dir=original)
  Image/aligned_224/train_00001.jpg       # or the MTCNN re-aligned set UA-FER uses (image_dir=aligned_224)"""


def image_file(image_dir: Path, kind: str, name: str) -> Path:
    """Where the image for list name ``name`` lives in image folder ``kind``."""
    if kind == "aligned":
        return image_dir / f"{Path(name).stem}_aligned{Path(name).suffix or '.jpg'}"
    return image_dir / name


def choose_image_dir(root: Path, requested: str | None) -> str:
    """The image folder to use: the requested one, else aligned if present, else the first present."""
    if requested is not None:
        require_dir(root / "Image" / requested, root, "rafdb")
        return requested
    for kind in IMAGE_DIRS:
        if (root / "Image" / kind).is_dir():
            return kind
    raise DataError(
        f"No image folder under {root / 'Image'}; dataset 'rafdb' expects Image/aligned/, Image/original/ "
        f"or Image/aligned_224/ (run `ferkit datasets rafdb` to see the layout)."
    )


def load(root: Path, options: dict) -> AdapterResult:
    list_path = require_file(root / LIST_FILE, root, "rafdb")
    kind = choose_image_dir(root, option_choice(options, "image_dir", IMAGE_DIRS, None))
    image_dir = root / "Image" / kind
    samples: list[Sample] = []
    for lineno, text in read_lines(list_path):
        parts = text.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise line_error(LIST_FILE, lineno, "'NAME LABEL'", text)
        name, raw = parts[0], int(parts[1])
        if not 1 <= raw <= 7:
            raise line_error(LIST_FILE, lineno, "a label 1..7", text)
        if name.startswith("train_"):
            split = "train"
        elif name.startswith("test_"):
            split = "test"
        else:
            raise line_error(LIST_FILE, lineno, "a name starting with train_ or test_", text)
        path = image_file(image_dir, kind, name)
        samples.append(Sample(
            image=path, expression=labels.rafdb_label(raw), subject=-1,
            meta={"source": rel(path, root), "name": name, "original_label": raw, "split": split},
        ))
    if not samples:
        raise DataError(f"{list_path} lists no images; dataset 'rafdb' expects 'NAME LABEL' lines.")
    check_exist((s.image for s in samples), f"{LIST_FILE} (image_dir={kind})")
    return AdapterResult(samples, labels.RAFDB, {"image_dir": kind})


INFO = DatasetInfo(
    name="rafdb", label_space=labels.RAFDB, layout=LAYOUT, has_subjects=False, splits=("train", "test"),
    options={"image_dir": "aligned | original | aligned_224 (default: aligned if present)"},
    loader=load,
)
