"""`ferkit evaluate` end to end on a tiny baseline trained here for two steps on tiny in-memory SynthFER."""

import csv
import json
import shutil

import numpy as np
import pytest

from ferkit.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from ferkit.config import build_experiment
    from ferkit.engine.trainer import train

    out = tmp_path_factory.mktemp("train") / "run"
    cfg = build_experiment("baseline", {"synth_identities": 8, "synth_images_per_identity": 14, "cache": False},
                           {"epochs": 1, "max_steps": 2, "batch_size": 16, "out": str(out), "eval_every": 0},
                           {"image_size": 32})
    return train(cfg, progress=False).run_dir


def test_evaluate_writes_report_files(run_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(run_dir), "--out", str(out), "--abstain-above", "0.8"]) == 0
    printed = capsys.readouterr().out
    assert "Accuracy" in printed and "Mean class accuracy" in printed and "report.html" in printed
    for name in ("metrics.json", "predictions.csv", "report.html", "confusion.png", "reliability.png",
                 "risk_coverage.png", "uncertainty_hist.png", "per_class_f1.png", "embedding_2d.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    # no --dataset: the checkpoint's own in-memory SynthFER, its test split (2 of 8 identities x 14 images)
    assert metrics["num_samples"] == len(rows) == 28
    assert {r["subject"] for r in rows} != {""}
    probs = np.array([[float(r[f"p_{c}"]) for c in metrics["classes"]] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    acc = np.mean([r["true_label"] == r["pred_label"] for r in rows])
    assert metrics["headline"]["accuracy"] == pytest.approx(acc)
    assert f"{acc:.4f}" in printed
    ab = metrics["abstention"]
    assert ab["abstained"] == sum(float(r["uncertainty"]) > 0.8 for r in rows)
    assert metrics["facts"]["method"] == "baseline"
    assert metrics["leakage"]["expression_embedding"]["identity_probe"]["chance"] == pytest.approx(0.5)
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_evaluate_folds_all_per_fold_runs(run_dir, tmp_path, capsys):
    folds_root = tmp_path / "cv"
    for k in (0, 1):
        shutil.copytree(run_dir / "checkpoints", folds_root / f"fold_{k}" / "checkpoints")
    out = tmp_path / "eval"
    code = main(["evaluate", str(folds_root), "--folds", "all", "--num-folds", "2", "--out", str(out),
                 "--no-leakage"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    per_fold = [json.loads((out / f"fold_{k}" / "metrics.json").read_text()) for k in (0, 1)]
    assert metrics["folds"]["num_folds"] == 2
    # two subject-disjoint folds of all 112 images, pooled
    assert sum(m["num_samples"] for m in per_fold) == metrics["num_samples"] == 112
    accs = [m["headline"]["accuracy"] for m in per_fold]
    assert metrics["folds"]["mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert metrics["folds"]["std"]["accuracy"] == pytest.approx(np.std(accs, ddof=1))
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert sorted({r["fold"] for r in rows}) == ["0", "1"]
    assert "over 2 folds" in capsys.readouterr().out


def test_evaluate_errors_are_one_sentence(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ferkit: error: Checkpoint") and "\n" not in err
    assert main(["evaluate", "--zero-shot", "--dataset", "synthetic"]) == 2
    assert "--clip-path" in capsys.readouterr().err


def _folder_with_contempt(root, classes=(("happy", 3), ("sad", 2), ("contempt", 2))):
    """A folder dataset: happy (3), sad (2), contempt (2); the SynthFER model has no contempt class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cname, n in classes:
        (root / cname).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / cname / f"{i}.png")
    return root


def test_evaluate_other_label_space_reports_excluded(run_dir, tmp_path, capsys):
    data = _folder_with_contempt(tmp_path / "faces")
    out = tmp_path / "eval"
    assert main(["evaluate", str(run_dir), "--dataset", "folder", "--data-path", str(data), "--split", "all",
                 "--out", str(out), "--no-leakage"]) == 0
    assert "contempt 2" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["crossdata"]["excluded_counts"] == {"contempt": 2}
    assert metrics["crossdata"]["dropped_model_classes"] == ["neutral", "surprise", "fear", "disgust", "anger"]
    assert metrics["classes"] == ["happy", "sad"] and metrics["num_samples"] == 5
    assert "Label mapping" in (out / "report.html").read_text()


def test_crossdata_matrix(run_dir, tmp_path, capsys):
    data = _folder_with_contempt(tmp_path / "faces")
    other = _folder_with_contempt(tmp_path / "split" / "test", (("neutral", 2), ("anger", 2), ("fear", 1)))
    _folder_with_contempt(tmp_path / "split" / "train", (("neutral", 1),))
    out = tmp_path / "cross"
    assert main(["crossdata", str(run_dir), "--datasets", f"folder:{other.parent}", f"folder:{data}",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.reader((out / "crossdata.csv").open()))
    assert rows[0] == ["trained_on \\ tested_on", "folder (split)", "folder (faces)"]
    assert rows[1][0] == "synthetic"
    # each cell is what `ferkit evaluate` gives the same checkpoint on the same data
    for value, path, split in ((rows[1][1], other.parent, "test"), (rows[1][2], data, "all")):
        ev = tmp_path / f"ev_{path.name}"
        assert main(["evaluate", str(run_dir), "--dataset", "folder", "--data-path", str(path), "--split", split,
                     "--out", str(ev), "--no-leakage"]) == 0
        assert float(value) == pytest.approx(json.loads((ev / "metrics.json").read_text())["headline"]["accuracy"],
                                             abs=1e-4)
    capsys.readouterr()                                        # the evaluations printed their own tables
    detail = json.loads((out / "crossdata.json").read_text())
    split_cell, folder_cell = detail["cells"]
    assert split_cell["split"] == "test" and split_cell["images"] == 5 and split_cell["excluded_counts"] == {}
    assert split_cell["classes"] == ["neutral", "fear", "anger"]
    assert folder_cell["excluded_counts"] == {"contempt": 2} and folder_cell["images"] == 5
    assert folder_cell["split"] == "all"                       # this tree has no test split
    assert (out / "crossdata.png").read_bytes()[:4] == b"\x89PNG"
    assert "excluded contempt 2" in printed


def test_zero_shot_uafer_with_tiny_clip(tmp_path, capsys):
    import torch

    from ferkit.models.clip import build_clip

    torch.save(build_clip("tiny", quick_gelu=True, seed=3).state_dict(), tmp_path / "clip.pt")
    data = _folder_with_contempt(tmp_path / "faces")
    out = tmp_path / "zs"
    assert main(["evaluate", "--method", "uafer", "--zero-shot", "--clip-path", str(tmp_path / "clip.pt"),
                 "--model-option", "model_size=tiny", "--dataset", "folder", "--data-path", str(data),
                 "--split", "all", "--out", str(out), "--no-leakage"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # zero-shot prompts are built for the dataset's own classes: nothing is mapped or excluded
    assert metrics["classes"] == ["happy", "sad", "contempt"] and metrics["num_samples"] == 7
    assert metrics["uncertainty"]["uncertainty_source"] == "evidential u = C/S"
    assert metrics["facts"]["checkpoint"] == "none (zero-shot)"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    u = np.array([float(r["uncertainty"]) for r in rows])
    right = np.array([r["true_label"] == r["pred_label"] for r in rows])
    unc = metrics["uncertainty"]
    if right.any():
        assert unc["mean_uncertainty_right"] == pytest.approx(u[right].mean(), abs=1e-5)
    assert unc["mean_uncertainty_wrong"] == pytest.approx(u[~right].mean(), abs=1e-5)
    assert main(["evaluate", "--method", "baseline", "--zero-shot", "--clip-path", "x", "--dataset", "folder"]) == 2
    assert "UA-FER only" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_dicefer_shows_modified_mig_beside_mig(tmp_path):
    from ferkit.config import build_experiment
    from ferkit.engine.trainer import train

    model = {"image_size": 32, "critic_hidden": 16, "disc_hidden": [16, 8], "classifier_hidden": [16, 8]}
    cfg = build_experiment("dicefer", {"synth_identities": 8, "synth_images_per_identity": 14, "cache": False},
                           {"epochs": 1, "max_steps": 3, "batch_size": 16, "out": str(tmp_path / "run"),
                            "eval_every": 0}, model)
    run = train(cfg, progress=False).run_dir
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--out", str(out), "--modified-mig-steps", "20"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    mm = metrics["modified_mig"]
    assert mm["value"] == pytest.approx(mm["i_exp_exp"] - mm["i_exp_id"], abs=1e-9)
    assert metrics["leakage"]["mig"]["codes"] == "expression embedding + identity embedding"
    assert "identity_embedding" in metrics["leakage"]
    page = (out / "report.html").read_text()
    assert "modified MIG" in page and "disentanglement_lib" in page
    assert (out / "identity_embedding_2d.png").is_file()


def test_evaluate_renders_the_runs_own_synthfer_test_set():
    """A run on in-memory SynthFER at 32 px is evaluated on the same 32 px test images it was split from
    (the data config's every synth_* field, synth_size included), not on fresh 112 px renders."""
    from ferkit.config import build_experiment
    from ferkit.data.datasets import splits_from_config
    from ferkit.report.pipeline import DataSource

    cfg = build_experiment("baseline", {"synth_identities": 6, "synth_images_per_identity": 5, "synth_size": 32,
                                        "synth_seed": 3, "cache": False}, {}, {"image_size": 32})
    trained_on = splits_from_config(cfg.data)["test"].samples
    evaluated = DataSource(cfg.data, None, None, {}).split("test", None).samples
    assert len(evaluated) == len(trained_on) == 5 and evaluated[0].image.shape[:2] == (32, 32)
    for a, b in zip(evaluated, trained_on, strict=True):
        assert np.array_equal(a.image, b.image) and (a.expression, a.subject) == (b.expression, b.subject)
