"""Dataclass configs: YAML -> dataclass, `--set a.b=1` overrides, unknown keys raise.

A run's configuration is an :class:`ExperimentConfig`: the data, the training loop, and the method's own
dataclass (registered by each method in :data:`METHOD_CONFIGS`). Every field carries a comment; defaults
are the paper's (or the released code's, for that variant). The whole config is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import re
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
    deterministic: bool = False          # deterministic kernels (torch, cuDNN, cuBLAS); ops without one warn, and
    #                                      the run log lists them (seeding.deterministic_run)
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    precision: str = "fp32"              # fp32 (exact: the reference numbers) | bf16 (autocast; changes numbers) |
    #                                      auto (opt-in: bf16 on GPUs and on CPUs where it is faster, else fp32)
    channels_last: bool = False          # convolutional networks' weights in channels-last (NHWC) memory: oneDNN's
    #                                      CPU kernels run a ResNet-18 step ~1.3x faster here; opt-in, as it changes
    #                                      the summation order (numbers move by float rounding; resume stays exact)
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


# --- value rules -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """What a config field's value may be beyond its type: bounds (closed unless ``*_open``) or choices."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else what is wrong ("must be ..."); a list's items are checked."""
        if isinstance(value, (list, tuple)):
            return next((p for p in map(self.problem, value) if p), None)
        if self.choices is not None:
            return None if value in self.choices else "must be one of " + ", ".join(map(str, self.choices))
        too_low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        too_high = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if not (too_low or too_high):
            return None
        if self.lo is not None and self.hi is not None:
            return (f"must lie in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"must be {'>' if self.lo_open else '>='} {self.lo:g}"
        return f"must be {'<' if self.hi_open else '<='} {self.hi:g}"


def at_least(lo: float) -> Rule:
    return Rule(lo=lo)


def above(lo: float) -> Rule:
    return Rule(lo=lo, lo_open=True)


def between(lo: float, hi: float, hi_open: bool = False) -> Rule:
    return Rule(lo=lo, hi=hi, hi_open=hi_open)


def one_of(*choices: Any) -> Rule:
    return Rule(choices=tuple(choices))


#: config dataclass -> {field: Rule}; every int and float field of a registered config has one (a test says so)
FIELD_RULES: dict[type, dict[str, Rule]] = {}


def field_rules(cls: type, **rules: Rule) -> None:
    """Register the value rules of config dataclass ``cls`` (field names are checked)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(rules) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {unknown[0]!r} to give a rule")
    FIELD_RULES.setdefault(cls, {}).update(rules)


#: training precisions (``engine.devices`` reads this too)
PRECISIONS = ("auto", "bf16", "fp32")

field_rules(DataConfig, fold=at_least(0), num_folds=at_least(2), val_fraction=between(0, 1, hi_open=True),
            num_workers=at_least(0), synth_identities=at_least(1), synth_images_per_identity=at_least(1),
            synth_confounding=between(0, 1), synth_seed=at_least(0), synth_size=at_least(16))
field_rules(TrainConfig, epochs=at_least(1), batch_size=at_least(1), lr=above(0), seed=at_least(0),
            precision=one_of(*PRECISIONS), max_steps=at_least(1), limit_batches=at_least(1), log_every=at_least(1),
            eval_every=at_least(0), max_nonfinite_in_row=at_least(1), grad_clip=above(0))
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_rules(obj: Any, prefix: str) -> None:
    """Raise ConfigError naming the key of the first field of ``obj`` that breaks its rule."""
    for name, rule in FIELD_RULES.get(type(obj), {}).items():
        value = getattr(obj, name)
        if value is None:
            continue
        problem = rule.problem(value)
        if problem:
            raise ConfigError(f"Config key '{prefix}{name}' {problem}, got {value!r}.")
    if isinstance(obj, TrainConfig) and not _DEVICE.match(obj.device.strip().lower()):
        raise ConfigError(f"Config key '{prefix}device' must be auto, cpu, cuda or cuda:N, got {obj.device!r}.")


# --- conversion ---------------------------------------------------------------------------------------

def _bad(where: str, what: str, value: Any, hint: str = "") -> ConfigError:
    shown = "null" if value is None else repr(value)
    return ConfigError(f"Config key '{where}' must be {what}, got {shown}{hint}.")


def _number(value: Any, tp: type, where: str) -> int | float:
    """An int or a finite float from a YAML/CLI value; "3.5" for an int, booleans and null are refused."""
    what = "an integer" if tp is int else "a number"
    given = value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed: Any = int(text) if tp is int else float(text)
        except ValueError:
            parsed = yaml.safe_load(text) if text else None
            if isinstance(parsed, str) or parsed is None:
                raise _bad(where, what, value) from None
        value = parsed
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, what, given)
    if not math.isfinite(value):
        raise _bad(where, "a finite number", given)
    if tp is int:
        if value != int(value):
            raise _bad(where, what, given)
        return int(value)
    return float(value)


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
            raise _bad(where, "a mapping", value)
        return from_dict(tp, value, prefix=where + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise _bad(where, "a list", value)
        fixed = origin is tuple and args and Ellipsis not in args
        if fixed and len(value) != len(args):
            raise _bad(where, f"a list of {len(args)} values", value)
        inner = list(args) if fixed else [args[0] if args else Any] * len(value)
        items = [_coerce(v, t, where) for v, t in zip(value, inner, strict=True)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise _bad(where, "a mapping", value)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise _bad(where, "true or false", value)
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _bad(where, "a string", value, " (YAML reads no/yes/off/on as booleans and null as nothing: quote it)")
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and values breaking a field's rule raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"Unknown config key '{prefix}{unknown[0]}'; {cls.__name__} has: {', '.join(sorted(names))}."
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    obj = cls(**kwargs)
    check_rules(obj, prefix)
    return obj


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
