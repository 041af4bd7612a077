"""What a run writes for a person to read later: ``log.txt``, ``metrics.csv``, TensorBoard events, and
progress (:mod:`ferkit.progress`, silent when ``FERKIT_NO_PROGRESS=1``).
Only rank 0 writes: on other ranks every method here is a no-op.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from ferkit.progress import progress_bar

#: metrics.csv columns that come first, in this order (loss and metric columns follow as they appear)
FIRST_COLUMNS = ("phase", "epoch", "step")


class RunLogger:
    """log.txt + console messages, per-epoch metrics.csv rows, per-step TensorBoard scalars."""

    def __init__(self, run_dir: Path, active: bool = True, resume_step: int | None = None,
                 console: bool = True):
        self.run_dir = Path(run_dir)
        self.active = active
        self.rows: list[dict] = []
        self._tb = None
        self._resume_step = resume_step
        self.logger = logging.getLogger(f"ferkit.run.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if not active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(self.run_dir / "log.txt", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.logger.addHandler(fh)
        if console:
            ch = logging.StreamHandler(sys.stdout)
            ch.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(ch)
        csv_path = self.run_dir / "metrics.csv"
        if resume_step is not None and csv_path.is_file():
            with open(csv_path, newline="", encoding="utf-8") as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r.get("step") or 0)) <= resume_step]

    # --- text ------------------------------------------------------------------------------------------
    def info(self, msg: str) -> None:
        if self.active:
            self.logger.info(msg)

    def warning(self, msg: str) -> None:
        if self.active:
            self.logger.warning("warning: " + msg)

    # --- TensorBoard -----------------------------------------------------------------------------------
    @property
    def tb(self):
        if self._tb is None and self.active:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self._resume_step)
        return self._tb

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if not self.active:
            return
        for k, v in values.items():
            self.tb.add_scalar(f"{prefix}/{k}", float(v), step)

    # --- metrics.csv -----------------------------------------------------------------------------------
    def epoch_row(self, row: dict) -> None:
        """Append one row (one epoch of one phase) and rewrite metrics.csv with the union of columns."""
        if not self.active:
            return
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        cols = list(FIRST_COLUMNS)
        for r in self.rows:
            cols.extend(k for k in r if k not in cols)
        tmp = self.run_dir / ".metrics.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols, restval="")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.run_dir / "metrics.csv")

    def progress(self, iterable: Iterable, total: int, desc: str, enabled: bool = True):
        """:func:`progress_bar` on rank 0 (a bar on a terminal, a line per epoch elsewhere); silent on others."""
        return progress_bar(iterable, total, desc, unit="batch", enabled=self.active and enabled)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
        for h in list(self.logger.handlers):
            h.close()
            self.logger.removeHandler(h)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
