"""Datasets by name: the registry, ``load_dataset``, ``splits_from_config`` and summaries.

Each adapter (one small module per layout) returns every record with its native split in
``meta["split"]``; :func:`select` then picks a split, or a subject-independent fold (test = fold k,
train = the other folds), and carves validation subjects out of training when ``val_fraction > 0``.
Datasets with their own validation split (FER2013, FERPlus, SynthFER, a folder tree with ``val/``) use it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.data.datasets import affectnet, ckplus, fer2013, ferplus, folder, lists, oulu, rafdb, synthetic
from ferkit.data.datasets.base import COMMON_OPTIONS, AdapterResult, DatasetInfo
from ferkit.data.folds import carve_validation, folds_record, subject_folds
from ferkit.data.records import DatasetSplit
from ferkit.errors import DataError

__all__ = ["DATASETS", "DatasetInfo", "load_dataset", "load_all", "select", "splits_from_config", "summarize"]

#: name -> description (layout, label space, options); `ferkit datasets` lists these
DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in (
        rafdb.INFO, lists.INFO, affectnet.INFO7, affectnet.INFO8, ckplus.INFO, oulu.INFO, fer2013.INFO,
        ferplus.INFO, folder.INFO, synthetic.INFO,
    )
}

SPLIT_NAMES = ("train", "val", "test", "all")


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"Unknown dataset '{name}'; known: {', '.join(DATASETS)} (`ferkit datasets` lists them).")
    return DATASETS[name]


def load_all(name: str, root: str | Path | None, synth: dict | None = None, **options: Any) -> AdapterResult:
    """Every record of dataset ``name`` under ``root`` (native split in ``meta["split"]``)."""
    info = get_info(name)
    unknown = sorted(set(options) - set(info.options) - set(COMMON_OPTIONS))
    if unknown:
        takes = ", ".join([*info.options, *COMMON_OPTIONS])
        raise DataError(f"Unknown option '{unknown[0]}' for dataset '{name}'; it takes: {takes}.")
    if name == "synthetic" and (root is None or str(root) == ""):
        result = synthetic.render(options, synth or {})
    else:
        if root is None or str(root) == "":
            raise DataError(f"Dataset '{name}' needs --data-path (the folder it ships in); "
                            f"run `ferkit datasets {name}` to see the layout.")
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(f"Dataset root {path} does not exist or is not a folder; dataset '{name}' expects "
                            f"its files there (run `ferkit datasets {name}` to see the layout).")
        result = info.loader(path, options)
    result.info.setdefault("options", dict(options))
    return result


def select(name: str, result: AdapterResult, split: str, root: Path | None = None, fold: int | None = None,
           num_folds: int = 10, seed: int = 0, val_fraction: float = 0.0) -> DatasetSplit:
    """One split of a loaded dataset: native split, or fold ``fold`` as test and the rest as train."""
    if split not in SPLIT_NAMES:
        raise DataError(f"Unknown split '{split}'; use one of {', '.join(SPLIT_NAMES)}.")
    samples = result.samples
    native = np.array([s.meta.get("split", "all") for s in samples])
    subjects = np.array([s.subject for s in samples], dtype=np.int64)
    info: dict[str, Any] = {k: v for k, v in result.info.items()}
    if split == "all":
        chosen = np.ones(len(samples), dtype=bool)
    elif fold is not None:
        if not 0 <= fold < num_folds:
            raise DataError(f"Fold {fold} does not exist; with {num_folds} folds use 0..{num_folds - 1}.")
        fold_ids = subject_folds(subjects, num_folds, seed)
        info["folds"] = folds_record(subjects, fold_ids, num_folds, seed, fold, [s.source for s in samples])
        test = fold_ids == fold
        val = np.zeros_like(test)
        val[~test] = carve_validation(subjects[~test], val_fraction, seed)
        chosen = {"test": test, "val": val, "train": ~test & ~val}[split]
        info["val_source"] = "carved" if val_fraction > 0 else "none"
    else:
        present = set(native.tolist())
        if present == {"all"}:
            raise DataError(f"Dataset '{name}' has no fixed {split} split; pass a fold (data.fold / --fold, "
                            f"0..{num_folds - 1}) for subject-independent cross-validation, or split='all'.")
        if split == "test" and "test" not in present:
            raise DataError(f"Dataset '{name}' has no test split here (found: {', '.join(sorted(present))}).")
        train = native == "train"
        if "val" in present:
            val = native == "val"
            info["val_source"] = "native"
        else:
            val = np.zeros(len(samples), dtype=bool)
            val[train] = carve_validation(subjects[train], val_fraction, seed)
            info["val_source"] = "carved" if val_fraction > 0 else "none"
        chosen = {"train": train & ~val, "val": val, "test": native == "test"}[split]
    picked = [samples[i] for i in np.flatnonzero(chosen)]
    return DatasetSplit(name=name, split=split, label_space=result.label_space, samples=picked,
                        root=Path(root) if root else None, info=info)


def load_dataset(name: str, root: str | Path | None, split: str = "train", fold: int | None = None,
                 num_folds: int = 10, seed: int = 0, val_fraction: float = 0.0, **options: Any) -> DatasetSplit:
    """Load one split of dataset ``name`` from ``root`` in the layout it ships in (``ferkit datasets``).

    ``split`` in train | val | test | all; ``fold=k`` makes test = the subjects of fold k of a
    ``num_folds``-fold subject-independent split (seeded), train = the rest (minus validation subjects
    when ``val_fraction > 0``). Adapter options (e.g. ``image_dir="original"``) go in ``options``.
    """
    result = load_all(name, root, **options)
    return select(name, result, split, root, fold, num_folds, seed, val_fraction)


def synth_options(data) -> dict[str, Any]:
    """The in-memory SynthFER rendering a ``DataConfig`` asks for (every ``synth_*`` field): training and
    ``ferkit evaluate`` both render from this, so a run is scored on the very images it was split from."""
    return {"identities": data.synth_identities, "images_per_identity": data.synth_images_per_identity,
            "confounding": data.synth_confounding, "seed": data.synth_seed, "size": data.synth_size}


def splits_from_config(data) -> dict[str, DatasetSplit]:
    """{"train", "val", "test"} splits for a ``DataConfig`` (val may be empty). Dataset "synthetic" with an
    empty ``data_path`` is rendered in memory from the ``synth_*`` fields."""
    options = dict(data.options or {})
    result = load_all(data.dataset, data.data_path, synth=synth_options(data), **options)
    root = data.data_path or None
    seed = int(options.get("fold_seed", 0))
    return {split: select(data.dataset, result, split, root, data.fold, data.num_folds, seed, data.val_fraction)
            for split in ("train", "val", "test")}


def summarize(name: str, root: str | Path | None, num_folds: int = 10, seed: int = 0,
              **options: Any) -> dict[str, Any]:
    """Counts per split and per class, subjects, folds and the adapter's notes (``ferkit datasets``)."""
    result = load_all(name, root, **options)
    samples = result.samples
    classes = result.label_space.classes
    per_split: dict[str, dict[str, Any]] = {}
    for split in sorted({s.meta.get("split", "all") for s in samples}, key=SPLIT_NAMES.index):
        items = [s for s in samples if s.meta.get("split", "all") == split]
        counts = Counter(classes[s.expression] for s in items)
        per_split[split] = {"images": len(items), "per_class": {c: counts.get(c, 0) for c in classes},
                            "subjects": len({s.subject for s in items if s.subject >= 0})}
    subjects = np.array([s.subject for s in samples], dtype=np.int64)
    out: dict[str, Any] = {
        "dataset": name, "root": str(root) if root else None, "label_space": result.label_space.to_dict(),
        "images": len(samples), "splits": per_split, "subjects": int(len(np.unique(subjects[subjects >= 0]))),
        "info": {k: v for k, v in result.info.items() if k != "options"}, "options": result.info.get("options", {}),
    }
    if out["subjects"] >= num_folds and (subjects >= 0).all():
        fold_ids = subject_folds(subjects, num_folds, seed)
        out["folds"] = {"num_folds": num_folds, "seed": seed, "by": "subject",
                        "images_per_fold": [int((fold_ids == f).sum()) for f in range(num_folds)],
                        "subjects_per_fold": [int(len(np.unique(subjects[fold_ids == f]))) for f in range(num_folds)]}
    else:
        out["folds"] = None
    return out
