"""Train-on-A / test-on-B: every checkpoint on every dataset, through canonical labels.

Rows are checkpoints (labelled by the dataset they were trained on), columns test datasets. Each cell is
the accuracy over the classes model and dataset share (``ferkit.metrics.crossdata.map_to_dataset``);
images of classes the model lacks are excluded and counted, never guessed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError


def parse_dataset_spec(spec: str) -> tuple[str, str | None]:
    """'NAME:PATH' -> (NAME, PATH); 'synthetic' alone renders SynthFER in memory."""
    name, _, path = spec.partition(":")
    name = name.strip()
    if not name:
        raise FerkitError(f"Dataset '{spec}' must look like NAME:PATH (e.g. rafdb:/data/RAF-DB).")
    if not path and name != "synthetic":
        raise FerkitError(f"Dataset '{spec}' needs a path: write {name}:PATH.")
    return name, path or None


def _test_split(name: str, path: str | None, split: str, options: dict):
    """The requested split, or every image when the dataset has no fixed split of that name."""
    from ferkit.data.datasets import load_all, select

    result = load_all(name, path, **options)
    splits = {s.meta.get("split", "all") for s in result.samples}
    used = split if split in splits or split == "all" else "all"
    return select(name, result, used, path), used


def _row_labels(trained: list[tuple[str, object]], checkpoints: list[Path]) -> list[str]:
    """'<training dataset>[ fold k]' per checkpoint, with method and run folder added where rows collide."""
    labels = [(cfg.data.dataset + (f" fold {cfg.data.fold}" if cfg.data.fold is not None else ""))
              if cfg is not None else name for name, cfg in trained]      # external models: their name
    for i, lab in enumerate(list(labels)):
        if labels.count(lab) > 1:
            labels[i] = f"{lab} ({trained[i][0]}, {checkpoints[i].parent.parent.name}/{checkpoints[i].name})"
    return labels


def crossdata_matrix(checkpoints: list[str | Path], datasets: list[str], split: str = "test",
                     batch_size: int = 64, device: str = "auto", progress: bool = True) -> dict:
    """Accuracy and mean class accuracy of each checkpoint (row) on each dataset (column).

    Returns {"rows", "columns", "accuracy" (R, C), "mean_class_accuracy" (R, C), "cells": [per-cell details:
    images scored, shared classes, dropped model classes, excluded counts], "splits_used"}.
    """
    from ferkit.external.loader import load_method
    from ferkit.metrics.classification import classification_metrics
    from ferkit.report.pipeline import predictions_over, resolve_checkpoint

    ckpts = [resolve_checkpoint(c) for c in checkpoints]
    specs = [parse_dataset_spec(d) for d in datasets]
    loaded = [_test_split(name, path, split, {}) for name, path in specs]
    trained: list[tuple[str, object]] = []        # (method name, config) per row
    acc = np.full((len(ckpts), len(specs)), np.nan)
    mca = np.full_like(acc, np.nan)
    cells = []
    for i, ckpt in enumerate(ckpts):
        method = load_method(ckpt, device)
        trained.append((getattr(method, "model_name", method.name), method.cfg))
        for j, (the_split, used) in enumerate(loaded):
            preds, classes, cross = predictions_over(method, the_split, batch_size, progress)
            m = classification_metrics(preds["labels"], preds["probs"].argmax(axis=1), len(classes))
            acc[i, j], mca[i, j] = m["accuracy"], m["mean_class_accuracy"]
            cells.append({"row": i, "column": j, "checkpoint": str(ckpt), "dataset": specs[j][0], "split": used,
                          "images": m["num_samples"], "classes": classes,
                          "dropped_model_classes": (cross or {}).get("dropped_model_classes", []),
                          "excluded_counts": (cross or {}).get("excluded_counts", {}),
                          "accuracy": m["accuracy"], "mean_class_accuracy": m["mean_class_accuracy"]})
    columns = [name for name, _ in specs]
    columns = [f"{n} ({Path(p).name})" if columns.count(n) > 1 and p else n for n, p in specs]
    return {"rows": _row_labels(trained, ckpts), "columns": columns, "accuracy": acc,
            "mean_class_accuracy": mca, "cells": cells, "splits_used": [u for _, u in loaded],
            "checkpoints": [str(c) for c in ckpts]}


def write_matrix_csv(path: Path, rows: list[str], cols: list[str], matrix: np.ndarray) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["trained_on \\ tested_on", *cols])
        for label, values in zip(rows, matrix, strict=True):
            w.writerow([label, *("" if not np.isfinite(v) else f"{v:.6f}" for v in values)])
    return path


def write_crossdata(out_dir: str | Path, result: dict) -> dict[str, Path]:
    """crossdata.csv (accuracy), crossdata_mean_class_accuracy.csv, crossdata.json, crossdata.png."""
    from ferkit.report.plots import plot_heatmap
    from ferkit.report.writer import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, cols = result["rows"], result["columns"]
    return {
        "accuracy_csv": write_matrix_csv(out / "crossdata.csv", rows, cols, result["accuracy"]),
        "mca_csv": write_matrix_csv(out / "crossdata_mean_class_accuracy.csv", rows, cols,
                                    result["mean_class_accuracy"]),
        "json": write_json(out / "crossdata.json", result),
        "heatmap": plot_heatmap(result["accuracy"], rows, cols, out / "crossdata.png",
                                "Train on row, test on column: accuracy over shared classes"),
    }
