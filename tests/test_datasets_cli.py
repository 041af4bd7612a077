"""`ferkit datasets` end to end through ferkit.cli.main, plus splits_from_config."""

from __future__ import annotations

import json

from ferkit.cli import main
from ferkit.config import DataConfig
from ferkit.data.datasets import splits_from_config
from fixtures_layouts import make_ckplus, make_rafdb, make_synthfer_folder


def test_list_and_layout(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("rafdb", "lists", "affectnet8", "ckplus", "oulu", "fer2013", "ferplus", "folder", "synthetic"):
        assert name in out
    assert main(["datasets", "rafdb"]) == 0
    assert "EmoLabel/list_patition_label.txt" in capsys.readouterr().out
    assert main(["datasets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ckplus"]["has_subjects"] is True


def test_rafdb_summary_json(tmp_path, capsys):
    make_rafdb(tmp_path)
    assert main(["datasets", "rafdb", "--data-path", str(tmp_path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["images"] == 8 and s["splits"]["train"]["images"] == 5 and s["splits"]["test"]["images"] == 3
    assert s["splits"]["train"]["per_class"]["happy"] == 2 and s["subjects"] == 0 and s["folds"] is None


def test_ckplus_summary_json_and_table(tmp_path, capsys):
    make_ckplus(tmp_path, subjects=10)
    assert main(["datasets", "ckplus", "--data-path", str(tmp_path), "--json", "--option", "last_n=2"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["images"] == 20 and s["subjects"] == 10 and s["options"] == {"last_n": 2}
    assert s["folds"]["num_folds"] == 10 and s["folds"]["subjects_per_fold"] == [1] * 10
    assert sum(s["folds"]["images_per_fold"]) == 20
    assert main(["datasets", "ckplus", "--data-path", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "10 subject-independent folds" in table and "contempt" in table


def test_errors_exit_nonzero_with_one_sentence(tmp_path, capsys):
    assert main(["datasets", "rafdb", "--data-path", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error: Dataset root") and err.count("\n") == 1
    assert main(["datasets", "nope", "--data-path", str(tmp_path)]) == 2
    assert "Unknown dataset 'nope'" in capsys.readouterr().err


def test_splits_from_config_folds_and_val(tmp_path):
    make_ckplus(tmp_path, subjects=10)
    cfg = DataConfig(dataset="ckplus", data_path=str(tmp_path), fold=3, num_folds=5, val_fraction=0.25)
    splits = splits_from_config(cfg)
    subj = {k: set(v.subjects.tolist()) for k, v in splits.items()}
    assert len(subj["test"]) == 2 and len(subj["val"]) == 2 and len(subj["train"]) == 6
    assert subj["train"] | subj["val"] | subj["test"] == set(range(1, 11))
    assert not (subj["train"] & subj["test"]) and not (subj["train"] & subj["val"])
    folds = splits["test"].info["folds"]
    assert folds["test_fold"] == 3 and set(folds["subjects_per_fold"][3]) == subj["test"]
    json.dumps(folds)                                               # saved as folds.json by the trainer


def test_splits_from_config_synthetic_folder(tmp_path):
    make_synthfer_folder(tmp_path)
    splits = splits_from_config(DataConfig(dataset="synthetic", data_path=str(tmp_path)))
    assert [len(splits[k]) for k in ("train", "val", "test")] == [28, 7, 7]
    assert splits["val"].info["val_source"] == "native"


def test_splits_from_config_renders_synthfer_in_memory():
    cfg = DataConfig(dataset="synthetic", data_path="", synth_identities=6, synth_images_per_identity=7)
    splits = splits_from_config(cfg)
    subj = {k: set(v.subjects.tolist()) for k, v in splits.items()}
    assert sum(len(v) for v in splits.values()) == 42
    assert not (subj["train"] & subj["val"]) and not (subj["train"] & subj["test"]) and not (subj["val"] & subj["test"])
    img = splits["train"].samples[0].image
    assert img.dtype.name == "uint8" and img.ndim == 3 and splits["train"].info["rendered"]["identities"] == 6
