"""A plugin for study runs' processes (``FERKIT_PLUGINS=engine_helpers,study_faults``): registers the tiny
method and makes chosen runs fail, to test the coordinator's retries.

``FERKIT_TEST_FAIL=A:1`` makes configuration A's seed-1 run raise on its first training step, every time;
``FERKIT_TEST_FAIL_ONCE=PATH`` does so while the file PATH exists, and removes it (the run fails once).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine_helpers import TinyMethod

_real_step = TinyMethod.train_step


def _this_run() -> str:
    """``NAME:SEED`` of the worker process (``python -m ferkit.study.worker OUT NAME SEED ...``)."""
    args = sys.argv[1:]
    return f"{args[1]}:{args[2]}" if len(args) >= 3 else ""


def _failing_step(self, phase, batch, ctx):
    once = os.environ.get("FERKIT_TEST_FAIL_ONCE")
    if once and Path(once).exists():
        Path(once).unlink()
        raise RuntimeError("injected failure (once)")
    if _this_run() and _this_run() == os.environ.get("FERKIT_TEST_FAIL"):
        raise RuntimeError(f"injected failure of {_this_run()}")
    return _real_step(self, phase, batch, ctx)


TinyMethod.train_step = _failing_step
