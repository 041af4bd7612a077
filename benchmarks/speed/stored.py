"""Where the speed benchmarks store what they measured: ``--store`` writes ``benchmarks/results/speed/<name>.json``
(results + machine facts + the command), the files the docs' performance page is generated from."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "speed"


def store(name: str, results, threads: int | None = None) -> Path:
    """Write ``results`` to RESULTS/<name>.json with the machine and the command that made them."""
    from ferkit.machine import write_measurement

    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path(__file__).resolve().parents[2])
    except ValueError:
        pass
    command = " ".join(["python", str(script), *map(shlex.quote, sys.argv[1:])])
    path = write_measurement(RESULTS / f"{name}.json", name, command, results, threads)
    print(f"stored {path}")
    return path
