"""What a run writes for a person to read later: ``log.txt``, ``metrics.csv``, TensorBoard events, and
progress (silent when ``FERKIT_NO_PROGRESS=1``).

:func:`progress_bar` is the one place that decides how progress shows: a tqdm bar with rate and ETA when
its stream is a terminal (or a Jupyter kernel), and one plain line per bar (per epoch, per cache) when it
is not (CI logs, ``2> log.txt``), instead of hundreds of carriage-return updates.
Only rank 0 writes: on other ranks every method here is a no-op.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

#: metrics.csv columns that come first, in this order (loss and metric columns follow as they appear)
FIRST_COLUMNS = ("phase", "epoch", "step")


def progress_enabled(progress: bool = True) -> bool:
    return progress and os.environ.get("FERKIT_NO_PROGRESS", "") not in ("1", "true", "yes")


def is_interactive(stream: TextIO) -> bool:
    """Whether ``stream`` shows a live bar: a terminal, or the standard streams of a Jupyter kernel."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):           # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules and stream in (sys.stdout, sys.stderr)


class LineProgress:
    """Progress off a terminal: counts quietly and writes one line when done (``desc: n/total unit in
    t s (rate unit/s), postfix``). With ``stream=None`` it writes nothing. Iterate it, or ``update(n)`` and
    ``close()`` it, as with tqdm."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str = "it",
                 stream: TextIO | None = None):
        self.iterable, self.total, self.desc, self.unit, self.stream = iterable, total, desc, unit, stream
        self.n = 0
        self.postfix = ""
        self.start = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.n += 1
        finally:                                   # also when the loop stops early (max_steps)
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **kwargs}.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.stream is None:
            return
        secs = time.perf_counter() - self.start
        done = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        rate = f" ({self.n / secs:.1f} {self.unit}/s)" if secs > 0 and self.n else ""
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit} in {secs:.1f} s{rate}{tail}", file=self.stream, flush=True)


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True, stream: TextIO | None = None):
    """Progress for long work: a tqdm bar on a terminal, one line per bar elsewhere, nothing when disabled
    (``enabled=False`` or ``FERKIT_NO_PROGRESS=1``). ``stream`` defaults to stderr."""
    if not progress_enabled(enabled):
        return LineProgress(iterable, total, desc, unit, stream=None)
    stream = stream if stream is not None else sys.stderr
    if is_interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False, file=stream)
    return LineProgress(iterable, total, desc, unit, stream)


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
