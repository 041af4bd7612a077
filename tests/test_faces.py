"""Face detection and 5-point alignment on real photos that ship with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from ferkit.data.faces import (
    TEMPLATES,
    FaceDetector,
    align_face,
    estimate_alignment,
    similarity_transform,
    template_landmarks,
    transform_points,
)

pytestmark = pytest.mark.usefixtures("module_one_thread")


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, t = np.deg2rad(17.0), 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_templates_scale_with_size_and_name_eye_positions():
    np.testing.assert_allclose(template_landmarks(112)[:2], [[38.2946, 51.6963], [73.5318, 51.5014]])
    np.testing.assert_allclose(template_landmarks(224), 2 * template_landmarks(112))
    wide = TEMPLATES["wide"]
    assert wide[1, 0] - wide[0, 0] < TEMPLATES["default"][1, 0] - TEMPLATES["default"][0, 0]


def test_astronaut_one_face_aligned_onto_template(detector):
    img = skdata.astronaut()
    faces = detector.detect(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.99
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 200          # the face is top-centre of the photo
    assert face.landmarks[0, 0] < face.landmarks[1, 0]          # left eye has the smaller x
    for size in (112, 224):
        m = estimate_alignment(face.landmarks, size)
        moved = transform_points(m, face.landmarks)
        eyes_err = np.linalg.norm(moved[:2] - template_landmarks(size)[:2], axis=1)
        assert eyes_err.max() < 3.0 * size / 112, eyes_err
        crop = align_face(img, face.landmarks, size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        again = detector.detect(crop)
        assert len(again) == 1
        eyes_again = np.linalg.norm(again[0].landmarks[:2] - template_landmarks(size)[:2], axis=1)
        assert eyes_again.max() < 5.0 * size / 112, eyes_again


def test_grayscale_photo_and_downscaled_search(detector):
    gray = skdata.astronaut().mean(axis=2).astype(np.uint8)       # (512, 512) gray
    assert len(detector.detect(gray)) == 1
    small = FaceDetector(max_side=256)                            # searched at half size, mapped back
    f_small, f_full = small.detect(skdata.astronaut())[0], detector.detect(skdata.astronaut())[0]
    assert np.abs(f_small.landmarks - f_full.landmarks).max() < 6.0


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_pictures_without_faces_give_no_faces(detector, name):
    assert detector.detect(getattr(skdata, name)()) == []


def test_tiny_and_blank_images_give_no_faces(detector):
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []
    assert detector.detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_align_command_writes_crops_csv_and_reports_failures(tmp_path, capsys):
    from PIL import Image

    from ferkit.cli import main

    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()).save(src / "sub" / "astronaut.jpg")
    Image.fromarray(skdata.coffee()).save(src / "coffee.png")
    (src / "broken.jpg").write_bytes(b"not really a jpeg")
    out = tmp_path / "aligned"
    code = main(["align", str(src), "--out", str(out), "--size", "64", "--gray"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.jpg" in err and "coffee.png" in err
    crop = np.asarray(Image.open(out / "sub" / "astronaut.png"))
    assert crop.shape == (64, 64)
    rows = (out / "faces.csv").read_text().strip().splitlines()
    assert rows[0].startswith("file,aligned,face,score,box,landmarks,error")
    assert len(rows) == 4
    assert sum("no face found" in r for r in rows) == 1
    assert not (out / "coffee.png").exists()
