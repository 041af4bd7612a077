"""Self-describing checkpoints: safetensors weights + JSON metadata, and a ``.state.pt`` sidecar for resuming.

Layout of ``NAME.safetensors``: tensors keyed ``"<network>.<param or buffer>"``; the safetensors metadata
key ``"ferkit"`` holds JSON with format "ferkit-checkpoint", format_version, ferkit_version, method, config
(``ExperimentConfig.to_dict()``), label_space, preprocessing, describe, created (and anything else the
caller adds, e.g. position and metrics). ``NAME.safetensors.state.pt`` holds optimiser, scheduler, RNG and
data-order state as plain tensors/numbers, loaded with ``torch.load(weights_only=True)``. A lone weights
file is written to a temporary name, fsynced and renamed; a weights + state pair is committed as one by a
manifest ``NAME.safetensors.commit`` (``engine/commit.py``), so a kill at any moment leaves a complete pair
to resume from. Reading never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ferkit.engine import commit
from ferkit.engine.commit import STATE_SUFFIX, commit_pair, committed_pair, write_atomic
from ferkit.errors import CheckpointError

FORMAT = "ferkit-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    meta: dict
    tensors: dict[str, torch.Tensor]
    path: Path

    def network_state(self, name: str) -> dict[str, torch.Tensor]:
        """The state dict of one network (keys without the ``"<name>."`` prefix)."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def save_checkpoint(path: str | Path, networks: dict[str, nn.Module], meta: dict,
                    train_state: dict | None = None) -> Path:
    """Write ``path`` (.safetensors) atomically and, when ``train_state`` is given, ``path + '.state.pt'`` with
    it as one commit; a full or read-only folder raises CheckpointError (the previous checkpoint is kept)."""
    from safetensors.torch import save_file

    from ferkit import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for net_name, module in networks.items():
        for key, t in module.state_dict().items():
            tensors[f"{net_name}.{key}"] = t.detach().to("cpu").contiguous().clone()
    token = f"{time.time_ns():x}-{os.getpid():x}"
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "ferkit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta, "save_token": token}
    try:
        header = {"ferkit": json.dumps(full, default=_json_default)}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"Checkpoint metadata for {path} is not JSON-serialisable ({e}).") from None
    write_weights = lambda p: save_file(tensors, str(p), metadata=header)  # noqa: E731
    if train_state is None:
        write_atomic(path, write_weights)
    else:
        state = {**train_state, "save_token": token}
        commit_pair(path, token, write_weights, lambda p: _save_state(state, p))
    return path


def _save_state(state: dict, path: Path) -> None:
    with open(path, "wb") as f:        # through a Python file, so a full disk's OSError comes through
        torch.save(state, f)


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _read_header(path: Path) -> dict:
    """Parse and validate the safetensors header ourselves, so every failure gets a clear sentence."""
    size = path.stat().st_size
    what = f"{path} is not a ferkit checkpoint"
    if size < 8:
        raise CheckpointError(f"{what} (only {size} bytes); pass a .safetensors file written by ferkit train.")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > min(size - 8, 100_000_000):
            raise CheckpointError(f"{what} (no safetensors header); pass a .safetensors file written by ferkit train.")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{what} (unreadable header); pass a .safetensors file written by ferkit train.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} (unreadable header); pass a .safetensors file written by ferkit train.")
    problem = _header_problem(header)
    if problem:
        raise CheckpointError(f"Checkpoint {path} has a malformed safetensors header ({problem}); it is damaged "
                              "or not a safetensors file, so use another checkpoint.")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    if 8 + n + max(ends, default=0) > size:
        raise CheckpointError(f"Checkpoint {path} is truncated ({size} bytes, needs {8 + n + max(ends)}); "
                              "copy it again or use another checkpoint.")
    return header


def _header_problem(header: dict) -> str | None:
    """What is wrong with a parsed safetensors header (None if it has the format's shape).

    The format: ``{"__metadata__": {str: str}, NAME: {"dtype": str, "shape": [int...], "data_offsets": [a, b]}}``
    with 0 <= a <= b.
    """
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        return "__metadata__ is not a mapping of strings"
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            return f"tensor '{name}' is described by {type(entry).__name__}, not a mapping"
        offsets, shape = entry.get("data_offsets"), entry.get("shape")
        if not isinstance(entry.get("dtype"), str):
            return f"tensor '{name}' has no dtype"
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            return f"tensor '{name}' has no valid shape"
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return f"tensor '{name}' has no valid data_offsets"
    return None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read weights and metadata; raises CheckpointError for a missing, truncated or non-ferkit file. A run
    folder reads as its last checkpoint, or its best where only that is left (a pruned study run)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        resolved = resolve_checkpoint_path(path)
    except CheckpointError as no_last:
        if not Path(path).is_dir():
            raise
        try:                       # a study run pruned to its selected weights (compare --keep-checkpoints selected)
            resolved = resolve_checkpoint_path(path, "best")
        except CheckpointError:
            raise no_last from None                         # what is wrong with last (missing, or cut off)
    path = commit.committed_weights(resolved)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pass a .safetensors file or a run folder.")
    header = _read_header(path)
    raw_meta = (header.get("__metadata__") or {}).get("ferkit")
    try:
        meta = json.loads(raw_meta) if raw_meta else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a ferkit checkpoint (no 'ferkit' metadata); "
                              "pass a checkpoint written by ferkit train.")
    version = meta.get("format_version", 0)
    if type(version) is not int:
        raise CheckpointError(f"Checkpoint {path} has a malformed format_version {version!r} in its ferkit "
                              "metadata; it is damaged, so use another checkpoint.")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"Checkpoint {path} has format version {meta['format_version']}, newer than this "
                              f"ferkit reads ({FORMAT_VERSION}); upgrade ferkit.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"Checkpoint {path} cannot be read ({e}); copy it again or use another one.") from None
    return Checkpoint(meta=meta, tensors=tensors, path=path)


def resolve_checkpoint_path(path: str | Path, name: str = "last") -> Path:
    """A checkpoint file from a file path or a run folder (``<run>/checkpoints/<name>.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for cand in (p / "checkpoints" / f"{name}.safetensors", p / f"{name}.safetensors"):
            if commit.exists(cand):
                return cand
        cut = commit.leftovers(p / "checkpoints" / f"{name}.safetensors")
        if cut:
            raise CheckpointError(f"Folder {p} holds no complete checkpoints/{name}.safetensors (its first save was cut "
                                  f"off before its commit, leaving {cut[0].name}); start the run again.")
        raise CheckpointError(f"Folder {p} holds no checkpoints/{name}.safetensors; pass a run folder or a "
                              "checkpoint file.")
    if not commit.exists(p):
        raise CheckpointError(f"Checkpoint {p} does not exist; pass a .safetensors file or a run folder.")
    return p


def read_train_state(path: str | Path, expect_token: str | None = None) -> dict:
    """The ``.state.pt`` sidecar of a checkpoint (loaded with weights_only=True)."""
    return _load_state(Path(str(path) + STATE_SUFFIX), Path(path).name, expect_token)


def _load_state(state_path: Path, owner: str, expect_token: str | None) -> dict:
    if not state_path.is_file():
        raise CheckpointError(f"Checkpoint {owner} has no resume state ({state_path.name}); resume from a run's "
                              "checkpoints/last.safetensors.")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged or foreign file
        raise CheckpointError(f"Resume state {state_path} cannot be read ({type(e).__name__}); "
                              "it is damaged or not ferkit's.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"Resume state {state_path} is not ferkit's; resume from a run folder.")
    if expect_token is not None and state.get("save_token") != expect_token:
        raise CheckpointError(f"Resume state {state_path.name} does not belong to {owner} (written by "
                              "different saves); resume from a complete run folder.")
    return state


def read_resume_pair(path: str | Path) -> tuple[Checkpoint, dict, str | None]:
    """(weights, resume state, note) of the newest complete save of checkpoint ``path``.

    note is one line when a half-written save (a kill before its commit) was passed over, else None."""
    path = Path(path)
    weights, state_file, token, discarded = committed_pair(path)
    ckpt = read_checkpoint(weights)
    if token is not None and ckpt.meta.get("save_token") != token:
        raise CheckpointError(f"Checkpoint {path.name} was overwritten after its last commit (it is not the save "
                              f"{path.name}.commit names); resume from a complete run folder.")
    state = _load_state(state_file, path.name, ckpt.meta.get("save_token"))
    ckpt.path = path
    note = None
    if discarded:
        note = (f"discarded a half-written checkpoint ({', '.join(p.name for p in discarded)}: a save cut off before "
                f"its commit); resuming from the last complete one")
    return ckpt, state, note


def load_network_weights(networks: dict[str, nn.Module], ckpt: Checkpoint) -> None:
    """Load every network's weights from ``ckpt`` strictly; a mismatch raises CheckpointError."""
    expected = {f"{n}.{k}" for n, m in networks.items() for k in m.state_dict()}
    missing = sorted(expected - set(ckpt.tensors))
    extra = sorted(set(ckpt.tensors) - expected)
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"Checkpoint {ckpt.path} does not match the model ({detail}); it was written by "
                              "another method or configuration.")
    for name, module in networks.items():
        state = ckpt.network_state(name)
        own = module.state_dict()
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise CheckpointError(f"Checkpoint {ckpt.path} does not match the model ({name}.{k} has shape "
                                      f"{tuple(v.shape)}, the model {tuple(own[k].shape)}).")
        module.load_state_dict(state, strict=True)


def load_method(path: str | Path, device: str = "auto"):
    """The method a ferkit checkpoint was trained with, rebuilt from its config, weights loaded, in eval mode.

    ``method.checkpoint_meta`` holds the metadata (label space, preprocessing, describe, metrics...).
    External models (built-in names, model specs, ``ferkit import`` checkpoints) are loaded above the
    engine, by ``ferkit.external.loader.load_method``, which falls back to this for ferkit's own.
    """
    return method_from_checkpoint(read_checkpoint(path), device)


def method_from_checkpoint(ckpt: Checkpoint, device: str = "auto"):
    """``load_method`` for a checkpoint already read."""
    from ferkit.config import experiment_from_dict
    from ferkit.data.labels import LabelSpace
    from ferkit.engine.devices import resolve_device
    from ferkit.engine.registry import get_method
    from ferkit.errors import FerkitError

    try:
        raw = ckpt.meta["config"]
        if isinstance(raw, dict) and isinstance(raw.get("method"), str):
            try:
                raw = get_method(raw["method"]).complete_saved_config(raw)
            except FerkitError:
                pass                       # an unknown method: experiment_from_dict says so below
        cfg = experiment_from_dict(raw)
        label_space = LabelSpace.from_dict(ckpt.meta["label_space"])
    except FerkitError as e:
        raise CheckpointError(f"Checkpoint {ckpt.path} has a config this ferkit cannot rebuild ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"Checkpoint {ckpt.path} lacks or has a malformed '{e}' entry; it is damaged.") from None
    cls = get_method(cfg.method)
    cfg = cls.inference_config(cfg)
    dev = resolve_device(device)
    method = cls(cfg, label_space, dev)
    networks = method.networks()
    load_network_weights(networks, ckpt)
    for m in networks.values():
        m.to(dev)
    method.eval_mode()
    method.checkpoint_meta = ckpt.meta
    return method


# --- configs as saved (tuples as lists), and what changed between two of them ---------------------------
def _plain(x):
    """A config mapping with tuples as lists (what YAML and JSON write)."""
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def config_changes(old: dict, new: dict, prefix: str = "") -> dict[str, tuple]:
    """Keys whose values differ between two nested config mappings, as {"a.b": (old, new)}."""
    out: dict[str, tuple] = {}
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(config_changes(a, b, f"{prefix}{k}."))
        elif a != b:
            out[prefix + k] = (a, b)
    return out
