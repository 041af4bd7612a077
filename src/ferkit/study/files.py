"""The files of a study folder, written so that a kill at any moment leaves nothing half-read.

A study's coordinator and its runs (other processes, other machines under Slurm) talk only through files:
``study.json`` (the manifest), each run's ``result.json``, ``attempt.json`` and ``slurm_job.json``. Each is
written whole to a temporary name and renamed into place, so a reader sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write (temp file + rename): a kill never leaves half a result."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The mapping in ``path``, or None when the file is missing or is not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist); long lines are cut to 300
    characters so a summary stays readable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64_000))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [ln[:300] for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-lines:]
