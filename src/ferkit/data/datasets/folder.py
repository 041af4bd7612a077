"""An image-folder tree: one sub-folder per class, optionally inside ``train/``, ``val/``, ``test/``.

Class folder names are mapped through ``labels.canonical_name`` ('Happiness', 'happy', 'HA' -> happy);
the label space holds the canonical names present, in CANONICAL order. Images are found recursively
inside each class folder; files without an image suffix are not used and are counted in
``info["ignored_files"]``. No subject identities.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.data.datasets.base import AdapterResult, DatasetInfo, rel
from ferkit.data.io import is_image_name
from ferkit.data.labels import CANONICAL, SYNTHFER, LabelSpace, canonical_name
from ferkit.data.records import Sample
from ferkit.errors import DataError

SPLITS = ("train", "val", "test")

LAYOUT = """\
ROOT/                         # either class folders directly (split 'all') ...
  happy/img001.jpg
  Sadness/img002.png
ROOT/                         # ... or split folders holding class folders
  train/happy/... val/happy/... test/happy/..."""


def class_folders(folder: Path, root: Path) -> dict[Path, str]:
    """class folder -> canonical name, for every sub-folder of ``folder``."""
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out[sub] = canonical_name(sub.name)
        except DataError:
            raise DataError(f"Folder {rel(sub, root)} is not an expression name ferkit knows; rename it to one "
                            f"of {', '.join(CANONICAL)}.") from None
    return out


def load(root: Path, options: dict) -> AdapterResult:
    top = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_mode = any(name.lower() in SPLITS for name in top)
    if split_mode:
        strays = [n for n in top if n.lower() not in SPLITS]
        if strays:
            raise DataError(f"Folder {root / strays[0]} sits beside split folders; with train/ val/ test/ at "
                            f"the top, every class folder must be inside one of them.")
        parts = [(root / name, name.lower()) for name in top]
    else:
        parts = [(root, "all")]
    found: list[tuple[Path, str, str, str]] = []       # (image, canonical class, split, folder name)
    ignored = 0
    for folder, split in parts:
        for class_dir, cname in class_folders(folder, root).items():
            for f in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                if is_image_name(f):
                    found.append((f, cname, split, class_dir.name))
                elif not f.name.startswith("."):
                    ignored += 1
    if not found:
        raise DataError(f"No images in class folders under {root}; dataset 'folder' expects e.g. "
                        f"happy/img001.jpg (run `ferkit datasets folder` to see the layout).")
    present = {c for _, c, _, _ in found}
    space = LabelSpace("folder", tuple(c for c in CANONICAL if c in present))
    samples = [Sample(image=f, expression=space.classes.index(c), subject=-1,
                      meta={"source": rel(f, root), "original_label": name, "split": s})
               for f, c, s, name in found]
    return AdapterResult(samples, space, {"ignored_files": ignored,
                                          "splits_found": sorted({s for _, _, s, _ in found})})


INFO = DatasetInfo(
    name="folder", label_space=SYNTHFER, layout=LAYOUT, has_subjects=False, splits=("all", *SPLITS),
    options={}, loader=load,
)
