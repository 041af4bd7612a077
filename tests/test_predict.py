"""`ferkit predict` and `load_model(...).predict` on real photos (scikit-image's astronaut and coffee)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ferkit.cli import main
from ferkit.data.faces import FaceDetector, align_face
from ferkit.inference import load_model
from ferkit.inference.rows import KEYS, read_rows_csv
from ferkit_testmodels import single_thread, tiny_checkpoint


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.getbasetemp() / "models")


@pytest.fixture(scope="module")
def model(ckpt):
    return load_model(ckpt, device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    (d / "nested").mkdir()
    Image.fromarray(skdata.astronaut()).save(d / "nested" / "astronaut.png")
    Image.fromarray(skdata.coffee()).save(d / "coffee.jpg")
    (d / "notes.txt").write_text("not an image, passed over by suffix in folders")
    return d


def test_info_names_classes_method_preprocessing_and_uncertainty(model):
    info = model.info()
    assert info["classes"] == ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]
    assert info["method"] == "baseline" and info["engine"] == "torch"
    assert info["preprocessing"]["size"] == 64 and info["preprocessing"]["channels"] == 1
    assert info["uncertainty_kind"] == "max_prob" and "1 - max" in info["uncertainty"]


def test_astronaut_one_face_and_coffee_a_no_face_row(model):
    rows = model.predict([skdata.astronaut(), skdata.coffee()])
    assert [r["status"] for r in rows] == ["ok", "no_face"]
    face, empty = rows
    assert set(face) == set(KEYS) and face["face"] == 0 and face["frame"] is None
    det = FaceDetector().detect(skdata.astronaut())[0]
    np.testing.assert_allclose(face["box"], det.box, atol=0.01)
    p = np.array(list(face["probs"].values()))
    assert abs(p.sum() - 1) < 1e-4 and face["label"] == model.classes[int(p.argmax())]
    assert face["uncertainty"] == pytest.approx(1 - p.max(), abs=1e-5)
    assert face["abstained"] is False
    assert empty["error"] == "no face found" and empty["face"] is None and empty["probs"] == {}


def test_aligned_crop_gives_exactly_the_detect_and_align_prediction(model):
    img = skdata.astronaut()
    det = FaceDetector().detect(img)[0]
    crop = align_face(img, det.landmarks, 64, "default")
    via_detect = model.predict(img)[0]
    via_crop = model.predict(crop, aligned=True)[0]
    assert via_crop["box"] is None and via_crop["face"] == 0
    for c in model.classes:
        assert via_crop["probs"][c] == pytest.approx(via_detect["probs"][c], abs=1e-6)


def test_several_faces_largest_first_and_batching_does_not_change_results(model):
    img = skdata.astronaut()
    small = np.asarray(Image.fromarray(img).resize((256, 256)))
    two = np.zeros((512, 768, 3), np.uint8)
    two[:, :512] = img
    two[128:384, 512:] = small[:, ::-1]                      # a smaller, mirrored second face on the right
    rows = model.predict([two, Image.fromarray(img), img.mean(axis=2).astype(np.uint8)], batch_size=1)
    assert [(r["file"], r["face"]) for r in rows] == [("<array 0>", 0), ("<array 0>", 1), ("<image 1>", 0),
                                                        ("<array 2>", 0)]
    assert rows[0]["box"][0] < 512 <= rows[1]["box"][0]       # largest (left) face first
    crops = [two[:300, :300], two[100:400, 500:], img[50:200, 150:300], img]
    one_by_one = model.predict(crops, aligned=True, batch_size=1)
    batched = model.predict(crops, aligned=True, batch_size=32)
    for a, b in zip(one_by_one, batched, strict=True):
        assert max(abs(a["probs"][c] - b["probs"][c]) for c in model.classes) < 1e-5


def test_abstain_above_marks_uncertain_faces(model):
    crop = skdata.astronaut()[60:180, 170:280]
    u = model.predict(crop, aligned=True)[0]["uncertainty"]
    assert model.predict(crop, aligned=True, abstain_above=u - 1e-3)[0]["abstained"] is True
    assert model.predict(crop, aligned=True, abstain_above=u + 1e-3)[0]["abstained"] is False


def test_cli_json_csv_and_annotations(ckpt, photos, tmp_path, capsys):
    out_json, out_csv, ann = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "ann"
    assert main(["predict", str(ckpt), str(photos), "--out", str(out_json), "--annotate", str(ann),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "notes.txt" in err                                 # passed-over files are reported, not hidden
    doc = json.loads(out_json.read_text())
    assert doc["summary"] == {"inputs": 2, "faces": 1, "no_face": 1, "failed": 0, "abstained": 0}
    assert doc["model"]["method"] == "baseline"
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in doc["rows"]}
    assert by_name["astronaut.png"]["status"] == "ok" and by_name["coffee.jpg"]["status"] == "no_face"
    drawn = np.asarray(Image.open(ann / "nested" / "astronaut.png"))
    assert drawn.shape == (512, 512, 3) and np.abs(drawn.astype(int) - skdata.astronaut()).sum() > 0
    assert (ann / "coffee.png").is_file()
    assert main(["predict", str(ckpt), str(photos / "nested" / "astronaut.png"), "--out", str(out_csv),
                 "--abstain-above", "0.0", "--device", "cpu"]) == 0
    rows = read_rows_csv(out_csv)
    assert len(rows) == 1 and rows[0]["abstained"] == "True"
    want = by_name["astronaut.png"]["probs"]                    # the same photo's row in the JSON output
    assert {c: float(rows[0][f"p_{c}"]) for c in want} == pytest.approx(want, abs=1e-4)
    assert rows[0]["label"] == by_name["astronaut.png"]["label"]


def test_cli_prints_rows_without_out(ckpt, photos, capsys):
    assert main(["predict", str(ckpt), str(photos / "coffee.jpg"), "--device", "cpu"]) == 0
    assert "coffee.jpg: no face found" in capsys.readouterr().out


def test_the_worker_runs_only_where_it_has_cores_of_its_own(ckpt, monkeypatch):
    """prefetch None (the default): on when the CPU has 2+ cores beyond torch's threads; True/False force it."""
    import os

    import torch

    m = load_model(ckpt, device="cpu")
    assert m.prefetch is None
    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(threads + 1)), raising=False)
    assert m.use_prefetch() is False                             # one spare core: contention, measured slower
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(threads + 2)), raising=False)
    assert m.use_prefetch() is True
    m.prefetch = False
    assert m.use_prefetch() is False
    m.prefetch = True
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert m.use_prefetch() is True
