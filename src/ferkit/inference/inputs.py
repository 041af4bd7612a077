"""Turning command-line INPUT arguments (files, folders, videos) into a list of things to process.

Explicit files are always attempted (a non-image named on the command line becomes an error row, never
a silent skip). Folders are walked recursively in sorted order and contribute the files whose suffix
says image or video; other files in a folder are counted and reported in one note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferkit.data.io import IMAGE_SUFFIXES

#: suffixes read as videos through OpenCV
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class InputItem:
    """One input: its path, what it is ("image" | "video" | "missing"), and its name for mirrored outputs."""

    path: Path
    kind: str
    rel: Path


def is_video_name(name: str | Path) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def expand_inputs(inputs: list[str | Path]) -> tuple[list[InputItem], list[str]]:
    """Expand paths into items (files as given, folders recursively) plus notes on files passed over."""
    items: list[InputItem] = []
    notes: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            ignored: list[str] = []
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                suffix = f.suffix.lower()
                if suffix in IMAGE_SUFFIXES:
                    items.append(InputItem(f, "image", rel))
                elif suffix in VIDEO_SUFFIXES:
                    items.append(InputItem(f, "video", rel))
                else:
                    ignored.append(str(rel))
            if ignored:
                shown = ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else "")
                notes.append(f"{p}: passed over {len(ignored)} file(s) that are not images or videos by "
                             f"their suffix ({shown}).")
        elif p.exists():
            items.append(InputItem(p, "video" if is_video_name(p) else "image", Path(p.name)))
        else:
            items.append(InputItem(p, "missing", Path(p.name)))
    return items, notes


def nothing_found(inputs: list[str | Path], videos: bool = True) -> str:
    """The sentence for folders that held nothing to process: where ferkit looked and for which suffixes."""
    where = ", ".join(str(p) for p in inputs)
    what, suffixes = ("images or videos", IMAGE_SUFFIXES + VIDEO_SUFFIXES) if videos else ("images", IMAGE_SUFFIXES)
    return (f"No {what} found in {where}: searched recursively for files ending in {' '.join(suffixes)} "
            "(hidden files and folders skipped); pass files or folders holding them.")


def unique_outputs(items: list[InputItem]) -> list[Path]:
    """Output stems (relative paths without suffix) for the items, made unique with -2, -3 ... suffixes."""
    seen: dict[str, int] = {}
    out: list[Path] = []
    for it in items:
        stem = it.rel.with_suffix("")
        key = str(stem).lower()
        n = seen.get(key, 0) + 1
        seen[key] = n
        out.append(stem if n == 1 else stem.with_name(f"{stem.name}-{n}"))
    return out
