"""The shipped presets: package data found from a wheel, loaded into configs, named in the run log."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ferkit import presets
from ferkit.cli import build_parser
from ferkit.commands.train import config_dict
from ferkit.config import experiment_from_dict

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {f"{m}_{d}" for m in ("baseline", "dicefer") for d in ("affectnet", "ckplus", "oulu", "rafdb", "synthetic")}
EXPECTED |= {"uafer_affectnet", "uafer_affectnet8", "uafer_rafdb", "uafer_synthetic"}


def test_every_preset_is_shipped_and_loads_into_a_config():
    assert set(presets.available()) == EXPECTED
    for name in presets.available():
        method, dataset = name.split("_", 1)
        cfg = experiment_from_dict(presets.load_preset(method, dataset))
        assert cfg.method == method and cfg.data.dataset == dataset, name
    assert presets.find_preset("uafer", "ckplus") is None and presets.load_preset("uafer", "ckplus") is None
    assert not list(ROOT.glob("configs/*.yaml"))    # one place: the package


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_train_applies_the_released_affectnet_settings_and_says_so():
    notes: list[str] = []
    cfg = experiment_from_dict(config_dict(_args("--method", "uafer", "--dataset", "affectnet"), notes))
    m = cfg.model
    assert (cfg.train.epochs, cfg.train.batch_size, m.alpha, m.fix_layer) == (50, 256, 0.3, 8)
    assert m.augment == "affectnet" and m.class_balanced and m.resize == "bilinear"
    assert notes == ["preset: ferkit/presets/uafer_affectnet.yaml applied (then --config, flags and --set on top)"]
    rafdb = experiment_from_dict(config_dict(_args("--method", "uafer", "--dataset", "rafdb")))
    assert rafdb.model.resize == "bicubic" and rafdb.model.alpha == 0.1 and rafdb.train.batch_size == 128
    none: list[str] = []
    cfg = experiment_from_dict(config_dict(_args("--method", "uafer", "--dataset", "ckplus"), none))
    assert cfg.train.epochs == 10 and "none for method uafer on dataset ckplus" in none[0]


def test_uafer_affectnet_preprocessing_is_bilinear(tmp_path):
    import torch

    from ferkit.data import labels
    from ferkit.methods.uafer import UAFERMethod

    d = presets.load_preset("uafer", "affectnet")
    d["model"].update(model_size="tiny", fix_layer=1)
    cfg = experiment_from_dict(d)
    assert UAFERMethod(cfg, labels.AFFECTNET7, torch.device("cpu")).preprocessing().resize == "bilinear"


def test_run_log_names_the_preset(tmp_path):
    from ferkit.cli import main

    out = tmp_path / "run"
    code = main(["train", "--method", "baseline", "--dataset", "synthetic", "--epochs", "1", "--limit-batches", "1",
                 "--out", str(out), "--set", "data.synth_identities=6", "--set", "data.synth_images_per_identity=7",
                 "--set", "data.cache=false", "--set", "train.eval_every=0"])
    assert code == 0
    assert "preset: ferkit/presets/baseline_synthetic.yaml applied" in (out / "log.txt").read_text()


def test_wheel_holds_the_presets(tmp_path):
    """Build the wheel from a copy of this checkout (no network: the venv's setuptools; the copy keeps the
    build's files out of the checkout) and look inside."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("ferkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.rsplit("/", 1)[1][:-5] for n in names if n.startswith("ferkit/presets/") and n.endswith(".yaml")}
    assert shipped == EXPECTED, sorted(shipped ^ EXPECTED)
    assert "ferkit/presets/__init__.py" in names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_files_are_data_only(name):
    text = (ROOT / "src" / "ferkit" / "presets" / f"{name}.yaml").read_text()
    assert "!!python" not in text and set(presets.load_preset(*name.split("_", 1))) <= {"method", "data", "train",
                                                                                           "model"}
