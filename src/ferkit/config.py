"""Dataclass configs: YAML -> dataclass, `--set a.b=1` overrides, unknown keys raise.

A run's configuration is an :class:`ExperimentConfig`: the data, the training loop, and the method's own
dataclass (registered by each method in :data:`METHOD_CONFIGS`). Every field carries a comment; defaults
are the paper's (or the released code's, for that variant). The whole config is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferkit.errors import ConfigError


@dataclass
class DataConfig:
    dataset: str = "synthetic"           # adapter name (`ferkit datasets` lists them)
    data_path: str = ""                  # root of the dataset as it ships; "" renders SynthFER in memory
    fold: int | None = None              # subject-independent fold held out as test (None = fixed split)
    num_folds: int = 10                  # k for subject-independent k-fold
    val_fraction: float = 0.0            # fraction of training subjects (or images) held out for validation
    options: dict[str, Any] = field(default_factory=dict)  # adapter options (e.g. last_n_frames, label_mode)
    cache: bool = True                   # prepare a uint8 cache of preprocessed images before training
    num_workers: int = 0                 # DataLoader workers
    # SynthFER in-memory rendering (used when dataset == "synthetic" and data_path == "")
    synth_identities: int = 24           # identities in total (train/val/test split by identity)
    synth_images_per_identity: int = 56  # images per identity
    synth_confounding: float = 0.0       # identity-expression confounding in [0, 1]
    synth_seed: int = 0                  # rendering seed
    synth_size: int = 112                # rendered image side in pixels


@dataclass
class TrainConfig:
    epochs: int = 10                     # epochs (per stage for multi-stage methods unless the method says)
    batch_size: int = 32                 # per-process batch size
    lr: float = 1e-4                     # base learning rate
    seed: int = 42                       # seed for weights, data order and augmentation
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    precision: str = "fp32"              # fp32 (exact: the reference numbers) | bf16 (autocast; changes numbers) |
    #                                      auto (opt-in: bf16 on GPUs and on CPUs where it is faster, else fp32)
    max_steps: int | None = None         # stop after this many optimiser steps in total (debugging)
    limit_batches: int | None = None     # at most this many batches per epoch (debugging)
    log_every: int = 10                  # log scalars every N steps
    eval_every: int = 1                  # evaluate on the validation split every N epochs (0 = never)
    max_nonfinite_in_row: int = 20       # stop the run after this many refused (non-finite) steps in a row
    grad_clip: float | None = None       # clip gradient norm (None = off; the papers do not clip)
    backbone_weights: str | None = None  # local pretrained weights file for the backbone (no downloads)
    out: str = "runs/latest"             # run folder: config, logs, checkpoints


#: method name -> its config dataclass; each method module registers itself.
METHOD_CONFIGS: dict[str, type] = {}


def register_method_config(name: str):
    def deco(cls: type) -> type:
        METHOD_CONFIGS[name] = cls
        return cls
    return deco


@dataclass
class ExperimentConfig:
    method: str = "baseline"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: Any = None                    # the method's config dataclass (METHOD_CONFIGS[method])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- conversion ---------------------------------------------------------------------------------------

def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                last = e
        raise last or ConfigError(f"Config key '{where}' has an invalid value {value!r}.")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"Config key '{where}' must be a mapping, got {value!r}.")
        return from_dict(tp, value, prefix=where + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"Config key '{where}' must be a list, got {value!r}.")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"Config key '{where}' must be a mapping, got {value!r}.")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"Config key '{where}' must be true or false, got {value!r}.")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"Config key '{where}' must be a number, got {value!r}.")
        try:
            v = tp(value) if not isinstance(value, str) else tp(yaml.safe_load(value))
        except (TypeError, ValueError):
            raise ConfigError(f"Config key '{where}' must be a {tp.__name__}, got {value!r}.") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"Config key '{where}' must be an integer, got {value!r}.")
        return v
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"Unknown config key '{prefix}{unknown[0]}'; {cls.__name__} has: {', '.join(sorted(names))}."
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def build_experiment(method: str, data: dict | None = None, train: dict | None = None,
                     model: dict | None = None) -> ExperimentConfig:
    if method not in METHOD_CONFIGS:
        _import_methods()
    if method not in METHOD_CONFIGS:
        raise ConfigError(f"Unknown method '{method}'; known: {', '.join(sorted(METHOD_CONFIGS))}.")
    return ExperimentConfig(
        method=method,
        data=from_dict(DataConfig, data or {}, "data."),
        train=from_dict(TrainConfig, train or {}, "train."),
        model=from_dict(METHOD_CONFIGS[method], model or {}, "model."),
    )


def experiment_from_dict(d: dict) -> ExperimentConfig:
    unknown = sorted(set(d) - {"method", "data", "train", "model"})
    if unknown:
        raise ConfigError(f"Unknown config key '{unknown[0]}'; a config has: method, data, train, model.")
    return build_experiment(d.get("method", "baseline"), d.get("data"), d.get("train"), d.get("model"))


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist.")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {p} is not valid YAML ({str(e).splitlines()[0]}).") from None
    if not isinstance(d, dict):
        raise ConfigError(f"Config file {p} must hold a mapping at the top level.")
    return d


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Apply `a.b=value` strings to a nested dict (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like key.sub=value.")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override '{item}': '{p}' is not a section.")
        node[parts[-1]] = yaml.safe_load(raw)
    return d


def _import_methods() -> None:
    """Import method modules so they register their configs (lazily: no work at import time)."""
    import importlib

    for mod in ("ferkit.methods.baseline", "ferkit.methods.dicefer", "ferkit.methods.uafer"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
