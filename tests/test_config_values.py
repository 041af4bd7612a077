"""Config values are validated by type and range, each refusal one sentence naming the key.

Before this, ``--set train.epochs=3.5`` became 3, ``null`` became the string 'None', ``no`` became 'False',
and ``--epochs -1`` trained nothing and printed chance accuracy as a result.
"""

from __future__ import annotations

import dataclasses
import typing

import pytest

from ferkit.cli import main
from ferkit.config import (
    FIELD_RULES,
    METHOD_CONFIGS,
    DataConfig,
    TrainConfig,
    _import_methods,
    apply_overrides,
    experiment_from_dict,
)
from ferkit.errors import ConfigError


def build(method: str, *overrides: str):
    return experiment_from_dict(apply_overrides({"method": method}, list(overrides)))


@pytest.mark.parametrize("override, key, says", [
    ("train.epochs=3.5", "train.epochs", "must be an integer, got 3.5"),
    ("train.epochs='3.5'", "train.epochs", "must be an integer, got '3.5'"),
    ("train.epochs=-1", "train.epochs", "must be >= 1, got -1"),
    ("train.epochs=true", "train.epochs", "must be an integer, got True"),
    ("train.lr=0", "train.lr", "must be > 0"),
    ("train.lr=-1e-3", "train.lr", "must be > 0"),
    ("train.lr=.inf", "train.lr", "must be a finite number"),
    ("train.batch_size=0", "train.batch_size", "must be >= 1, got 0"),
    ("train.precision=fp64", "train.precision", "must be one of auto, bf16, fp32, got 'fp64'"),
    ("train.device=gpu", "train.device", "must be auto, cpu, cuda or cuda:N"),
    ("train.out=null", "train.out", "must be a string, got null"),
    ("train.device=no", "train.device", "must be a string, got False"),
    ("data.synth_confounding=1.5", "data.synth_confounding", "must lie in [0, 1], got 1.5"),
    ("data.val_fraction=1", "data.val_fraction", "must lie in [0, 1), got 1.0"),
    ("data.num_folds=1", "data.num_folds", "must be >= 2"),
    ("model.label_smoothing=-0.1", "model.label_smoothing", "must lie in [0, 1)"),
    ("model.augment=rotate", "model.augment", "must be one of none, flip"),
])
def test_bad_values_are_refused_naming_the_key(override, key, says):
    with pytest.raises(ConfigError) as e:
        build("baseline", override)
    msg = str(e.value)
    assert msg.startswith(f"Config key '{key}' ") and says in msg and msg.count("\n") == 0


@pytest.mark.parametrize("method, override, key", [
    ("dicefer", "model.disc_hidden=[1000, 200, 5]", "model.disc_hidden"),
    ("dicefer", "model.disc_hidden=[1000, 0]", "model.disc_hidden"),
    ("dicefer", "model.estimator=mine", "model.estimator"),
    ("dicefer", "model.stage3_epochs=0", "model.stage3_epochs"),
    ("uafer", "model.alpha=1.5", "model.alpha"),
    ("uafer", "model.layer_decay=0", "model.layer_decay"),
    ("uafer", "model.fusion=mean", "model.fusion"),
])
def test_method_fields_have_rules(method, override, key):
    with pytest.raises(ConfigError, match=f"^Config key '{key}' "):
        build(method, override)


def test_good_values_keep_their_meaning():
    cfg = build("baseline", "train.lr=1e-4", "train.epochs=3", "train.epochs=4.0", "train.grad_clip=null",
                "train.device=cuda:1", "train.out=2024", "data.synth_confounding=1", "model.beta2='0.99'")
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)   # PyYAML reads 1e-4 as a string
    assert cfg.train.epochs == 4 and isinstance(cfg.train.epochs, int)
    assert cfg.train.grad_clip is None and cfg.train.device == "cuda:1" and cfg.train.out == "2024"
    assert cfg.data.synth_confounding == 1.0 and cfg.model.beta2 == 0.99
    d = build("dicefer", "model.disc_hidden=[64, 32]", "model.stage2_epochs=0").model
    assert d.disc_hidden == (64, 32) and d.stage2_epochs == 0


def test_every_numeric_field_has_a_range():
    _import_methods()
    classes = [DataConfig, TrainConfig, *(METHOD_CONFIGS[m] for m in ("baseline", "dicefer", "uafer"))]
    missing = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            inner = {a for a in typing.get_args(hints[f.name]) if a is not type(None)} or {hints[f.name]}
            numeric = any(a in (int, float) or typing.get_origin(a) is tuple for a in inner)
            if numeric and f.name not in FIELD_RULES.get(cls, {}):
                missing.append(f"{cls.__name__}.{f.name}")
    assert missing == []
    for cls in classes:                                    # and every default obeys its own rule
        obj = cls()
        for name, rule in FIELD_RULES[cls].items():
            value = getattr(obj, name)
            assert value is None or rule.problem(value) is None, f"{cls.__name__}.{name} = {value!r}"


def test_cli_refuses_negative_epochs_before_training(tmp_path, capsys):
    code = main(["train", "--method", "baseline", "--epochs", "-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "ferkit: error: Config key 'train.epochs' must be >= 1, got -1."
    assert not (tmp_path / "r").exists()


def test_readme_config_error_examples_are_what_ferkit_says(tmp_path, capsys):
    """Each `Config key 'K' ... got V.` example in the guide (docs/usage.md), run as `ferkit train --set K=V`."""
    import re
    from pathlib import Path

    text = " ".join((Path(__file__).parents[1] / "docs" / "usage.md").read_text().split())
    examples = re.findall(r"`(Config key '([\w.]+)' [^`]*, got ([^`]+)\.)`", text)
    assert len(examples) >= 4
    for sentence, key, value in examples:
        code = main(["train", "--method", "baseline", "--out", str(tmp_path / "r"), "--set", f"{key}={value.strip(chr(39))}"])
        assert code == 2 and capsys.readouterr().err.strip() == f"ferkit: error: {sentence}"
