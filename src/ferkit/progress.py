"""Progress for long work, decided in one place: a tqdm bar with rate and ETA when its stream is a terminal (or
a Jupyter kernel), one plain line per bar (per epoch, per cache) when it is not (CI logs, ``2> log.txt``), and
nothing when ``FERKIT_NO_PROGRESS=1``. Every layer shows progress (rendering SynthFER, filling a cache, an epoch),
so this sits at the bottom of the house beside ``config`` and ``errors``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


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
