"""face-api's tiny face detector and tiny landmark net (``ferkit.data.tiny_face``) find the faces face-api itself
finds: boxes, scores and 68 landmarks against face-api run in Node on the same real photos
(``fixtures/faceapi/reference.json``, written by ``make_reference.py``); its weights install from a checked
tarball, and every refusal is one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from ferkit.errors import FerkitError

REFERENCE = Path(__file__).parent / "fixtures" / "faceapi" / "reference.json"


def feat_photos() -> dict[str, Path]:
    import importlib.util

    spec = importlib.util.find_spec("feat")                      # its data, not its imports
    if spec is None or not spec.submodule_search_locations:
        return {}
    data = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"
    names = ("multi_face.jpg", "single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg")
    return {Path(n).stem: data / n for n in names if (data / n).is_file()}


def reference_photos() -> dict[str, np.ndarray]:
    """The reference's photos, decoded as ferkit decodes them: sizes square, wide, tall and odd; none, one and
    five faces."""
    from ferkit.data.io import read_image

    astro = skdata.astronaut()
    photos = {"astronaut": astro, "coffee": skdata.coffee(),
              "astronaut_crop": np.ascontiguousarray(astro[15:392, 101:448]),
              "astronaut_645x483": cv2.resize(astro, (645, 483), interpolation=cv2.INTER_AREA),
              "astronaut_203x259": cv2.resize(astro, (203, 259), interpolation=cv2.INTER_AREA)}
    photos.update({k: read_image(v) for k, v in feat_photos().items()})
    return photos


@pytest.fixture(scope="module")
def weights_dir():
    from ferkit.data.faceapi_weights import installed

    d = installed()
    if d is None:
        pytest.skip("face-api's model files are not installed (ferkit install face-api; make test does it)")
    return d


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("size", [416, 224])
def test_boxes_scores_and_landmarks_match_face_api_itself(weights_dir, reference, size):
    from ferkit.data.tiny_face import TinyFaceDetector

    ref = reference["sizes"][str(size)]
    photos = {k: v for k, v in reference_photos().items() if k in ref}
    assert {"astronaut", "coffee", "astronaut_203x259"} <= set(photos)
    det = TinyFaceDetector(input_size=size)
    names = list(photos)
    found = det.detect_boxes([photos[n] for n in names])        # all sizes through the network together
    for name, (boxes, scores) in zip(names, found, strict=True):
        want = ref[name]
        assert len(boxes) == len(want["boxes"]), name
        if len(boxes):
            assert np.abs(boxes - np.array(want["boxes"])).max() <= 0.01, name
            assert np.abs(scores - np.array(want["scores"])).max() <= 1e-4, name
            lm = det.detect_landmarks(photos[name], boxes)
            assert np.abs(lm - np.array(want["landmarks"])).max() <= 0.01, name
    if size == 416:                                              # the known answers
        counts = {n: len(b) for n, (b, _) in zip(names, found, strict=True)}
        assert counts["astronaut"] == 1 and counts["coffee"] == 0
        if "multi_face" in counts:
            assert counts["multi_face"] == 5


def test_faces_carry_five_points_from_the_68_inside_their_box(weights_dir):
    from ferkit.data.tiny_face import TinyFaceDetector

    (face,) = TinyFaceDetector().detect(skdata.astronaut())
    x1, y1, x2, y2 = face.box
    lm = face.landmarks
    assert lm.shape == (5, 2)
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]           # image-left eye and mouth corner first
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]                        # eyes above the nose above the mouth


def test_photos_detected_together_give_each_photos_own_faces(weights_dir, reference):
    """detect_batch runs the landmark net once over every photo's faces (and photos without a face between
    them): each photo's boxes, scores and five points are those it gets alone (<= 1e-3 px)."""
    from ferkit.data.tiny_face import TinyFaceDetector

    photos = reference_photos()
    order = [photos["astronaut"], np.zeros((40, 60, 3), np.uint8), photos["coffee"], photos["astronaut_203x259"],
             *[v for k, v in photos.items() if k not in ("astronaut", "coffee", "astronaut_203x259")]]
    det = TinyFaceDetector(input_size=224)
    together = det.detect_batch(order)
    assert sum(len(f) for f in together) >= 3
    for img, faces in zip(order, together, strict=True):
        alone = det.detect(img)
        assert len(alone) == len(faces)
        for a, b in zip(alone, faces, strict=True):
            assert np.abs(a.box - b.box).max() <= 1e-3 and abs(a.score - b.score) <= 1e-5
            assert np.abs(a.landmarks - b.landmarks).max() <= 1e-3


def test_tfjs_weights_are_dequantised_as_tfjs_does(tmp_path):
    from ferkit.data.tiny_face import read_tfjs_weights

    manifest = [{"paths": ["w.bin"], "weights": [
        {"name": "a", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "b", "shape": [3], "dtype": "float32"}]}]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    (tmp_path / "w.bin").write_bytes(bytes([0, 1, 2, 255]) + np.array([1.5, -2.0, 3.25], np.float32).tobytes())
    w = read_tfjs_weights(tmp_path / "m.json", tmp_path / "w.bin")
    assert w["a"].tolist() == [[-1.0, -0.5], [0.0, 126.5]]
    assert w["b"].tolist() == [1.5, -2.0, 3.25]
    (tmp_path / "w.bin").write_bytes(bytes([0, 1, 2, 255]))     # shorter than described
    with pytest.raises(FerkitError, match="hold 4 bytes where .* describes 16"):
        read_tfjs_weights(tmp_path / "m.json", tmp_path / "w.bin")


def test_tf_resize_matches_the_legacy_formula_and_face_apis_padding():
    from ferkit.data.tiny_face import tf_resize_square

    x = np.arange(12, dtype=np.uint8).reshape(3, 4, 1).repeat(3, 2)
    # padded to 4x4 below (a zero row), then src = dst * (4 / 2): rows 0 and 2, cols 0 and 2
    assert tf_resize_square(x, 2, centre=False)[..., 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
    # centred, one row of padding: Math.round(0.5) = 1 puts it after the photo, so the same
    assert tf_resize_square(x, 2, centre=True)[..., 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
    x5 = np.arange(10, dtype=np.uint8).reshape(2, 5, 1).repeat(3, 2)   # 5 wide, 2 tall: 3 rows of padding,
    y = tf_resize_square(x5, 5, centre=True)[..., 0]                 # 1 before the photo, 2 after
    assert y[0].tolist() == [0.0] * 5 and y[1].tolist() == [0, 1, 2, 3, 4] and y[3:].tolist() == [[0.0] * 5] * 2
    # upsampling interpolates: 2 -> 4 samples the source at 0, 0.5, 1, 1.5 (the last clamped to 1)
    y = tf_resize_square(np.array([[0, 8], [16, 24]], np.uint8)[..., None].repeat(3, 2), 4, centre=False)
    assert y[0, :, 0].tolist() == [0.0, 4.0, 8.0, 8.0]


def test_install_checks_the_tarball_and_refuses_in_one_sentence(tmp_path, monkeypatch):
    from ferkit.data import faceapi_weights as fw

    monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "home"))
    bad = tmp_path / "face-api.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(FerkitError, match=r"has sha256 [0-9a-f]{64}, not that of @vladmandic/face-api@1.7.15"):
        fw.install(bad, log=lambda s: None)
    with pytest.raises(FerkitError, match="is not a file"):
        fw.install(tmp_path / "missing.tgz", log=lambda s: None)
    assert fw.installed() is None
    with pytest.raises(FerkitError, match="run `ferkit install face-api`"):
        fw.faceapi_weights_dir()


def test_bad_detector_settings_are_refused(weights_dir):
    from ferkit.data.tiny_face import TinyFaceDetector

    with pytest.raises(FerkitError, match="multiple of 32"):
        TinyFaceDetector(input_size=400)
    with pytest.raises(FerkitError, match="from 32 to 2048"):
        TinyFaceDetector(input_size=65536)
    with pytest.raises(FerkitError, match=r"score threshold must lie in \(0, 1\)"):
        TinyFaceDetector(score_threshold=1.5)


def test_cli_predict_with_the_tiny_detector_and_without_its_weights(weights_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from ferkit.cli import main

    photo = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    assert main(["predict", str(photo), "--detector", "tiny", "--out", str(tmp_path / "rows.csv")]) == 0
    rows = (tmp_path / "rows.csv").read_text().splitlines()
    assert len(rows) == 2 and ",happy," in rows[1]                # one face, the built-in model calls it happy
    assert main(["align", str(photo), "--out", str(tmp_path / "al"), "--detector", "tiny", "--size", "64"]) == 0
    faces = (tmp_path / "al" / "faces.csv").read_text().splitlines()
    assert len(faces) == 2 and (tmp_path / "al" / "astronaut.png").is_file()
    monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "empty"))
    capsys.readouterr()
    assert main(["align", str(photo), "--out", str(tmp_path / "al2"), "--detector", "tiny"]) == 2
    assert "ferkit install face-api" in capsys.readouterr().err
    assert main(["predict", str(photo), "--detector", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ferkit: error: The tiny face detector needs face-api's model files")
    assert "run `ferkit install face-api`" in err and err.count(". ") <= 1


def test_a_face_cut_by_the_left_edge_keeps_its_landmarks_on_the_face(weights_dir):
    """face-api shifts the points by the unclipped box (off the photo here); ferkit by where the crop began."""
    from ferkit.data.tiny_face import TinyFaceDetector

    det = TinyFaceDetector()
    astro = skdata.astronaut()
    (whole,) = det.detect(astro)
    (cut,) = det.detect(np.ascontiguousarray(astro[:, 200:]))    # the face's left part is cut off
    assert cut.box[0] < 0                                        # the box reaches past the edge
    assert (cut.landmarks[:, 0] >= 0).all()
    # the right eye and mouth corner, well inside the cut photo, land where they are in the whole photo
    assert np.abs(cut.landmarks[[1, 4]] + [200, 0] - whole.landmarks[[1, 4]]).max() < 6


def test_decoding_rounds_the_reshaped_side_as_javascript_does():
    """640 x 425 at 320 px: 212.5 rows, Math.round -> 213 (Python's round gives 212)."""
    from ferkit.data.tiny_face import decode

    out = np.zeros((25, 10, 10), np.float32)
    out[4] = -20.0                                               # every anchor's score off but one
    out[4, 5, 5] = 20.0                                          # anchor 0, row 5, column 5; offsets 0
    (box,), _ = decode(out, 640, 425, 320, 0.5)
    cy = (5 + 0.5) / 10 * (320 / 213) * 425
    assert abs((box[1] + box[3]) / 2 - cy) < 1e-6


def test_empty_photos_have_no_face_and_boxes_off_the_photo_are_refused(weights_dir):
    from ferkit.data.tiny_face import TinyFaceDetector

    det = TinyFaceDetector()
    empty = np.zeros((0, 40, 3), np.uint8)
    assert [len(f) for f in det.detect_batch([empty, skdata.astronaut()])] == [0, 1]
    with pytest.raises(FerkitError, match=r"must overlap the 512x512 photo by at least 1 px"):
        det.detect_landmarks(skdata.astronaut(), np.array([[600.0, 10, 650, 60]]))


def test_install_from_a_tarball_and_a_damaged_install_is_not_installed(tmp_path, monkeypatch):
    """The install path end to end on a stand-in tarball (its hashes patched in): files land, a truncated one
    makes the folder 'damaged' (the error says so, and `ferkit install face-api` fetches it again)."""
    import hashlib
    import io
    import os
    import tarfile

    from ferkit.data import faceapi_weights as fw

    monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "home"))
    files = {name: f"content of {name}".encode() for name in fw.KEEP}
    tgz = tmp_path / "face-api.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(fw, "KEEP", {n: hashlib.sha256(d).hexdigest() for n, d in files.items()})
    monkeypatch.setattr(fw, "TARBALL_SHA256", hashlib.sha256(tgz.read_bytes()).hexdigest())
    target = fw.install(tgz, log=lambda s: None)
    assert fw.installed() == target and sorted(p.name for p in target.iterdir()) == sorted(
        Path(n).name for n in files)
    assert [p.name for p in target.parent.iterdir()] == [target.name]          # no staging folder left behind
    (target / "tiny_face_detector_model.bin").write_bytes(b"trunc")
    assert fw.installed() is None
    with pytest.raises(FerkitError, match="which are damaged in .*run `ferkit install face-api`"):
        fw.faceapi_weights_dir()
    assert fw.install(tgz, log=lambda s: None) == target and fw.installed() == target   # repaired
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask     # a folder as mkdir makes it, not mkdtemp's 0700
    (tmp_path / "plain").write_text("a file, not a folder")
    monkeypatch.setenv("FERKIT_HOME", str(tmp_path / "plain"))
    with pytest.raises(FerkitError, match=r"Cannot install into .*plain.*; nothing was changed\."):
        fw.install(tgz, log=lambda s: None)


def test_serve_with_the_tiny_detector_answers_with_face_apis_box(weights_dir, reference):
    """`ferkit serve --detector tiny` as a client meets it: a posted photo comes back with face-api's box."""
    import io

    import httpx
    from PIL import Image

    from ferkit.inference import load_model
    from ferkit.serve.app import create_app
    from ferkit.serve.limits import Limits
    from ferkit.serve.server import BackgroundServer

    model = load_model(None, device="cpu", detector="tiny")
    assert model.info()["alignment"].startswith("photos: face-api tiny detection")
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, format="PNG")
    with BackgroundServer(create_app(model, Limits())) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.post("/predict", files={"file": ("astronaut.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["label"] == "happy"
    assert np.abs(np.array(row["box"]) - np.array(reference["sizes"]["416"]["astronaut"]["boxes"][0])).max() < 0.01
