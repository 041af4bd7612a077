"""Oulu-CASIA NIR&VIS, as it ships: ``VL/Strong/P001/Anger/000.jpeg``.

Options pick the modality (VL visible, NI near-infrared) and the lighting (Strong, Weak, Dark). Each
``P<nnn>/<Expression>/`` folder is one sequence; its last ``last_n`` frames (by file name) take the
expression. Six classes; the subject comes from the folder (P001 -> 1). The tree may also sit under
``OriginalImg/`` (as in some copies). There is no fixed split: use split="all" or a fold.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.data import labels
from ferkit.data.datasets.base import (
    AdapterResult,
    DatasetInfo,
    option_choice,
    option_int,
    rel,
    subject_number,
)
from ferkit.data.io import is_image_name
from ferkit.data.records import Sample
from ferkit.errors import DataError

LAYOUT = """\
ROOT/                                  # (or ROOT/OriginalImg/)
  VL/Strong/P001/Anger/000.jpeg ... 017.jpeg
  VL/Strong/P001/Disgust/ Fear/ Happiness/ Sadness/ Surprise/
  VL/Weak/ VL/Dark/ NI/Strong/ ...      # options light and modality"""


def find_tree(root: Path, modality: str, light: str) -> Path:
    for base in (root, root / "OriginalImg"):
        if (base / modality / light).is_dir():
            return base / modality / light
    raise DataError(
        f"Folder {modality}/{light} not found under {root}; dataset 'oulu' expects "
        f"{modality}/{light}/P001/Anger/000.jpeg (run `ferkit datasets oulu` to see the layout)."
    )


def load(root: Path, options: dict) -> AdapterResult:
    modality = option_choice(options, "modality", ("VL", "NI"), "VL")
    light = option_choice(options, "light", ("Strong", "Weak", "Dark"), "Strong")
    last_n = option_int(options, "last_n", 3, minimum=1)
    tree = find_tree(root, modality, light)
    samples: list[Sample] = []
    short = 0
    for person in sorted(p for p in tree.iterdir() if p.is_dir()):
        subject = subject_number(person.name, "P", person)
        for seq in sorted(p for p in person.iterdir() if p.is_dir()):
            try:
                expression = labels.OULU.index(seq.name)
            except (DataError, ValueError):
                raise DataError(f"Folder {rel(seq, root)} is not one of Oulu-CASIA's expressions "
                                f"(Anger, Disgust, Fear, Happiness, Sadness, Surprise).") from None
            frames = sorted(p for p in seq.iterdir() if is_image_name(p))
            if not frames:
                raise DataError(f"Folder {rel(seq, root)} holds no images; each Oulu-CASIA sequence needs frames.")
            if len(frames) < last_n:
                short += 1
            for i in range(max(0, len(frames) - last_n), len(frames)):
                samples.append(Sample(
                    image=frames[i], expression=expression, subject=subject,
                    meta={"source": rel(frames[i], root), "sequence": f"{person.name}/{seq.name}",
                          "frame": i, "original_label": seq.name, "split": "all"},
                ))
    if not samples:
        raise DataError(f"No P<nnn>/<Expression>/ sequences under {tree}; dataset 'oulu' expects them.")
    info = {"modality": modality, "light": light, "last_n": last_n, "sequences_shorter_than_last_n": short}
    return AdapterResult(samples, labels.OULU, info)


INFO = DatasetInfo(
    name="oulu", label_space=labels.OULU, layout=LAYOUT, has_subjects=True, splits=("all",),
    options={"modality": "VL | NI (default VL)", "light": "Strong | Weak | Dark (default Strong)",
             "last_n": "frames taken from the end of each sequence (default 3)"},
    loader=load,
)
