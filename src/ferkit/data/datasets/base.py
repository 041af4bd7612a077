"""What every dataset adapter shares: its description, its result, and helpers for clear errors.

An adapter is a module with ``INFO`` (or several :class:`DatasetInfo`) and a ``load(root, options)``
function returning an :class:`AdapterResult`: *all* records of the dataset, each with ``meta["split"]``
set to its native split ("train", "val", "test", or "all" where the dataset has no fixed split). Split and
fold selection happen once, in ``ferkit.data.datasets.select``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.data.labels import LabelSpace
from ferkit.data.records import Sample
from ferkit.errors import DataError

#: options every adapter accepts (besides its own)
COMMON_OPTIONS: dict[str, str] = {
    "align": "true: detect + 5-point align faces when preparing the cache (for unaligned images); default false",
    "fold_seed": "seed of the subject-independent fold assignment used by splits_from_config (default 0)",
}


@dataclass(frozen=True)
class DatasetInfo:
    """A supported dataset: name, default label space, expected layout, and the options it takes."""

    name: str
    label_space: LabelSpace
    layout: str                      # multi-line text showing the expected tree
    has_subjects: bool
    splits: tuple[str, ...]          # native splits ("all" where there is no fixed split)
    options: dict[str, str] = field(default_factory=dict)   # option -> help
    loader: Callable[[Path, dict], AdapterResult] | None = field(default=None, repr=False, compare=False)


@dataclass
class AdapterResult:
    samples: list[Sample]            # every record, meta["split"] set
    label_space: LabelSpace
    info: dict[str, Any] = field(default_factory=dict)    # excluded counts, notes, resolved options


# --- helpers for adapters -------------------------------------------------------------------------------

def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for messages), else as given."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def require_file(path: Path, root: Path, name: str) -> Path:
    """Return ``path`` if it is a file, else raise naming it and the dataset whose layout needs it."""
    if not path.is_file():
        raise DataError(
            f"{rel(path, root)} not found under {root}; dataset '{name}' expects it "
            f"(run `ferkit datasets {name}` to see the layout)."
        )
    return path


def require_dir(path: Path, root: Path, name: str) -> Path:
    if not path.is_dir():
        raise DataError(
            f"Folder {rel(path, root)} not found under {root}; dataset '{name}' expects it "
            f"(run `ferkit datasets {name}` to see the layout)."
        )
    return path


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) for every non-blank line of a text file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}).") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def line_error(where: str, line: int, expected: str, got: str) -> DataError:
    """The one-sentence error for a malformed line."""
    return DataError(f"{where} line {line}: expected {expected}, got {got!r}.")


def check_exist(paths: Iterable[Path], listed_in: str) -> None:
    """Raise one sentence if any listed image file is missing (with the count and the first one)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(
            f"Image {missing[0]}{more} listed in {listed_in} not found; check the dataset root "
            f"and the image folder option."
        )


def option_bool(options: dict, key: str, default: bool) -> bool:
    v = options.get(key, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return v.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise DataError(f"Option '{key}' must be true or false, got {v!r}.")


def option_int(options: dict, key: str, default: int, minimum: int = 0) -> int:
    v = options.get(key, default)
    try:
        iv = int(v)
        if isinstance(v, float) and v != iv:
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"Option '{key}' must be an integer, got {v!r}.") from None
    if iv < minimum:
        raise DataError(f"Option '{key}' must be at least {minimum}, got {iv}.")
    return iv


def option_choice(options: dict, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
    v = options.get(key, default)
    if v is None:
        return None
    if str(v) not in choices:
        raise DataError(f"Option '{key}' must be one of {', '.join(choices)}, got {v!r}.")
    return str(v)


def subject_number(folder: str, prefix: str, where: Path) -> int:
    """'S005' -> 5, 'P001' -> 1; raises naming the folder when the name does not fit."""
    digits = folder[len(prefix):]
    if not folder.startswith(prefix) or not digits.isdigit():
        raise DataError(f"Folder {where} should be named {prefix}<number> (like {prefix}001), got '{folder}'.")
    return int(digits)
