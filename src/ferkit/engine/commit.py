"""Crash-safe writes of a checkpoint: one file atomically, or the weights + resume-state pair as one commit.

For a checkpoint ``P = <dir>/last.safetensors`` with resume state the folder holds

- ``P`` and ``P.state.pt``: the committed pair, under the names every reader uses;
- ``P.commit``: a small JSON manifest naming the token of the committed pair (both files carry it);
- ``.last.<token>.safetensors`` and ``.last.<token>.safetensors.state.pt``: a save's staged files.

A save of token ``T`` (1) writes and fsyncs both staged files, then fsyncs the folder; (2) writes the
manifest to a temporary name, fsyncs it, renames it over ``P.commit`` and fsyncs the folder: this rename
is the commit point; (3) renames the staged files over ``P.state.pt`` and ``P`` and fsyncs the folder.
A kill before (2) leaves the previous pair untouched beside staged files no manifest names (discarded);
a kill after (2) leaves the new pair complete, part under staged names and part under the stable ones,
which :func:`committed_pair` finds and the next save finishes renaming. Checkpoints of the earlier
layout (no manifest: ``P`` and ``P.state.pt`` tied by the token alone) still read as before.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from ferkit.errors import CheckpointError, TrainingError

STATE_SUFFIX = ".state.pt"
COMMIT_SUFFIX = ".commit"
MANIFEST_FORMAT = "ferkit-checkpoint-commit"
#: errors that mean the folder cannot take the write (full, over quota, read-only, not ours)
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def state_path(path: Path) -> Path:
    return path.with_name(path.name + STATE_SUFFIX)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + COMMIT_SUFFIX)


def staged_paths(path: Path, token: str) -> tuple[Path, Path]:
    """(weights, state) staged names of save ``token`` of checkpoint ``path``."""
    weights = path.with_name(f".{path.stem}.{token}{path.suffix}")
    return weights, state_path(weights)


class NoRoomError(CheckpointError):
    """A checkpoint's folder did not take a write (full, over quota, read-only); ``folder``, ``reason``."""

    def __init__(self, message: str, folder: Path, reason: str):
        super().__init__(message)
        self.folder, self.reason = folder, reason


def os_errno(e: BaseException) -> int | None:
    """The OS error number behind ``e``: its own, one it was raised from, or the "(os error N)" that
    safetensors' Rust writer puts in its message (torch.save into a file chains the OSError)."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno:
            return e.errno
        found = re.search(r"\(os error (\d+)\)", str(e))
        if found:
            return int(found.group(1))
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _write_synced(path: Path, write: Callable[[Path], None]) -> None:
    """``write(path)``, then fsync the file; a writer's failure the OS caused comes out as that OSError."""
    try:
        write(path)
    except OSError:
        raise
    except Exception as e:
        n = os_errno(e)
        if n is None:
            raise
        raise OSError(n, os.strerror(n), str(path)) from e
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_folder(folder: Path) -> None:
    """Make the renames and creations in ``folder`` durable (a no-op where folders cannot be opened)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):     # file systems without folder fsync
            raise
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def no_room_error(folder: Path, e: OSError) -> NoRoomError:
    """One sentence for a write the folder did not take (full disk, quota, read-only)."""
    why = os.strerror(e.errno) if e.errno else str(e)
    return NoRoomError(f"Cannot write the checkpoint into {folder} ({why}); the last complete checkpoint there is "
                       "kept, so free space or make the folder writable and write it again.", folder, why)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file: a temporary name, fsync, rename over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        paired = manifest_path(path).is_file()
        if paired:                                # a lone file over a committed pair's weights
            finish(path)
        _write_synced(tmp, write)
        os.replace(tmp, path)
        if paired:                                # the manifest names another save now
            _remove(manifest_path(path))
        fsync_folder(path.parent)
    except OSError as e:
        if e.errno in NO_ROOM:
            raise no_room_error(path.parent, e) from None
        raise
    finally:
        _remove(tmp)


def read_manifest(path: Path) -> dict | None:
    """The commit manifest of checkpoint ``path`` (None for the earlier layout, which has none)."""
    m = manifest_path(path)
    if not m.is_file():
        return None
    try:
        doc = json.loads(m.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("token"), str):
        raise CheckpointError(f"Checkpoint manifest {m} is damaged; delete it to resume from {path.name} as it is.")
    return doc


def committed_weights(path: Path) -> Path:
    """A complete weights file of checkpoint ``path`` for readers (predict, evaluate): ``path`` itself when it
    exists (always whole: it is only ever renamed into place), else the staged weights a committed first
    save has not renamed yet. Resuming reads :func:`committed_pair` instead, the newest pair."""
    if path.is_file():
        return path
    doc = read_manifest(path)
    if doc is not None:
        staged = staged_paths(path, doc["token"])[0]
        if staged.exists():
            return staged
    return path


def exists(path: Path) -> bool:
    """Whether checkpoint ``path`` has a committed save (its file, or a manifest a kill left mid-rename)."""
    return path.is_file() or manifest_path(path).is_file()


def committed_pair(path: Path) -> tuple[Path, Path, str | None, list[Path]]:
    """(weights, state, token, discarded) of the newest complete save of ``path``, reading only.

    token is the committed token (None for the earlier layout: the caller checks the files' tokens);
    discarded lists staged files of saves that never committed (a kill came before their manifest)."""
    doc = read_manifest(path)
    token = doc["token"] if doc else None
    weights, state = path, state_path(path)
    if token is not None:
        sw, ss = staged_paths(path, token)
        weights, state = (sw if sw.exists() else path), (ss if ss.exists() else state)
    keep = {weights, state}
    discarded = [p for p in leftovers(path) if p not in keep]
    return weights, state, token, discarded


def leftovers(path: Path) -> list[Path]:
    """Every staged or temporary file of checkpoint ``path`` in its folder."""
    folder = path.parent
    if not folder.is_dir():
        return []
    found = set(folder.glob(f".{path.stem}.*{path.suffix}")) | set(folder.glob(f".{path.stem}.*{path.suffix}{STATE_SUFFIX}"))
    found |= set(folder.glob(f".{path.name}*.tmp-*"))
    return sorted(p for p in found if p.is_file())


def finish(path: Path) -> None:
    """Complete a committed save a kill interrupted, and remove staged files no manifest names."""
    doc = read_manifest(path)
    if doc is not None:
        sw, ss = staged_paths(path, doc["token"])
        if ss.exists():
            os.replace(ss, state_path(path))
        if sw.exists():
            os.replace(sw, path)
    for p in leftovers(path):
        _remove(p)
    fsync_folder(path.parent)


def commit_pair(path: Path, token: str, write_weights: Callable[[Path], None],
                write_state: Callable[[Path], None]) -> None:
    """Write the weights and resume state of save ``token`` as one commit (see the module docstring)."""
    folder = path.parent
    sw, ss = staged_paths(path, token)
    manifest = manifest_path(path)
    tmp = manifest.with_name(f".{manifest.name}.tmp-{os.getpid()}")
    committed = False
    try:
        finish(path)
        _write_synced(ss, write_state)
        _write_synced(sw, write_weights)
        fsync_folder(folder)
        doc = {"format": MANIFEST_FORMAT, "token": token, "weights": path.name, "state": state_path(path).name}
        _write_synced(tmp, lambda p: p.write_text(json.dumps(doc)))
        os.replace(tmp, manifest)
        committed = True
        fsync_folder(folder)
        os.replace(ss, state_path(path))
        os.replace(sw, path)
        fsync_folder(folder)
    except OSError as e:
        if not committed:                         # a failed save frees the room its staged files took
            for p in (ss, sw, tmp):
                _remove(p)
        if e.errno in NO_ROOM:
            raise no_room_error(folder, e) from None
        raise


def stopped_for_room(e: BaseException, run_dir: Path, saved_step: int | None) -> TrainingError | None:
    """The one sentence for a training run a folder stopped taking writes from (full disk, quota, read-only),
    or None when ``e`` is another error. Access errors count only inside ``run_dir``: elsewhere they are
    unreadable inputs, not a run with no room."""
    if isinstance(e, NoRoomError):
        folder, why = e.folder, e.reason
    elif isinstance(e, OSError) and e.errno in NO_ROOM:
        folder = Path(e.filename).parent if e.filename else Path(run_dir)
        target, run = (Path(e.filename).resolve() if e.filename else None), Path(run_dir).resolve()
        ours = target is None or target.is_relative_to(run) or run.is_relative_to(target)   # or making it
        if e.errno in (errno.EACCES, errno.EPERM) and not ours:
            return None
        why = os.strerror(e.errno)
    else:
        return None
    if saved_step is None:
        kept, then = "no checkpoint of this run is complete yet", "start the run again"
    else:
        kept, then = f"its last complete checkpoint (step {saved_step}) is kept", f"resume with --resume {run_dir}"
    return TrainingError(f"Training stopped: cannot write into {folder} ({why}); {kept}, so free space or make the "
                         f"folder writable and {then}.")
