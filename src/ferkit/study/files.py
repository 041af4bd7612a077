"""How a study writes its files: JSON written atomically (temp file + rename), so a coordinator killed at any
moment leaves either the old file or the new one, never half of one. The runner (result.json, study.json)
and the summary (summary.json) both write through it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary name in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)
