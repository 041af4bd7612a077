"""What the stored paired-seed studies say about a comparison, for a reader holding one run of it.

One run of a method against another cannot tell a gain from noise; the studies under ``benchmarks/results/``
(each run's metrics in ``runs.csv`` or a ``.jsonl`` of rows) can. These functions read them back and give the
paired difference B - A per metric with its 95% Student-t interval, the way ``ferkit compare`` computes it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ferkit.study.stats import paired_difference


def results_root() -> Path | None:
    """``benchmarks/results`` of the source checkout ferkit runs from, or None (an installed wheel has none)."""
    root = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
    return root if root.is_dir() else None


def paired_from_rows(rows: list[dict], key: str, a, b, metric: str) -> dict:
    """B - A of ``metric`` over the seeds ``rows`` (``seed``, ``key``, metrics) have for both ``key`` values."""
    by = {name: {int(r["seed"]): (None if r.get(metric) in (None, "") else float(r[metric]))
                 for r in rows if r[key] == name} for name in (a, b)}
    return paired_difference(by[a], by[b], metric)


def paired_from_runs_csv(path: Path, a: str, b: str, metric: str) -> dict:
    """B - A of ``metric`` over the seeds a study's ``runs.csv`` has for both configurations."""
    with open(path, newline="", encoding="utf-8") as fh:
        return paired_from_rows(list(csv.DictReader(fh)), "config", a, b, metric)


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a ``.jsonl`` file (blank lines skipped), read once for as many pairings as a caller makes."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def interval_text(d: dict, digits: int = 3) -> str:
    """``+0.056 [+0.023, +0.089] over 5 paired seeds`` (or the mean alone with fewer than two pairs)."""
    if d["lo"] is None:
        return f"{d['mean']:+.{digits}f} ({d['n']} paired seed{'s' if d['n'] != 1 else ''}: no interval)"
    return f"{d['mean']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}] over {d['n']} paired seeds"
