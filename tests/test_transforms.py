"""Transforms (known values), the prepared cache (identical to decoding on the fly) and FERDataset items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.data.datasets import load_dataset
from ferkit.data.pairs import PairDataset
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.torch_dataset import FERDataset
from ferkit.data.transforms import build_transform, convert_channels, preprocess_batch, to_chw_uint8
from ferkit.errors import ConfigError, ImageReadError
from fixtures_layouts import make_ckplus, make_fer2013, make_rafdb

GRAY = Preprocessing(size=16, channels=1, mean=(0.5,), std=(0.5,), whitening="none", align="none")
RGB = Preprocessing(size=20, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), align="none")


def _image(seed=0, h=24, w=30) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_normalisation_known_values():
    white = np.full((16, 16, 3), 255, dtype=np.uint8)
    x = build_transform(GRAY, train=False)(white)
    assert x.shape == (1, 16, 16) and torch.allclose(x, torch.ones_like(x))
    x = build_transform(RGB, train=False)(np.zeros((20, 20), dtype=np.uint8))
    expected = -torch.tensor(RGB.mean) / torch.tensor(RGB.std)
    assert x.shape == (3, 20, 20) and torch.allclose(x[:, 0, 0], expected)


def test_gray_conversion_is_pillows_luma():
    img = _image(1)
    ours = convert_channels(to_chw_uint8(img), 1)[0].numpy()
    assert np.array_equal(ours, np.asarray(Image.fromarray(img).convert("L")))


def test_per_image_whitening_and_resize():
    pre = Preprocessing(size=12, channels=1, whitening="per_image", align="none")
    x = build_transform(pre, train=False)(_image(2))
    assert x.shape == (1, 12, 12)
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(unbiased=False)) - 1) < 1e-4


def test_preprocess_batch_equals_test_transform():
    imgs = [_image(3), _image(4, 40, 40)]
    batch = preprocess_batch(imgs, RGB)
    t = build_transform(RGB, train=False)
    assert batch.shape == (2, 3, 20, 20) and torch.equal(batch[1], t(imgs[1]))
    assert torch.equal(build_transform(RGB, train=False, augment="affectnet")(imgs[0]), batch[0])


def test_augmentations_random_but_bounded():
    img = _image(5, 16, 16)
    t = build_transform(GRAY, train=True, augment="flip")
    plain = build_transform(GRAY, train=False)(img)
    outs = [t(img) for _ in range(30)]
    assert all(torch.equal(o, plain) or torch.equal(o, plain.flip(-1)) for o in outs)
    assert any(torch.equal(o, plain) for o in outs) and any(torch.equal(o, plain.flip(-1)) for o in outs)
    d14 = build_transform(GRAY, train=True, augment="dicefer14")
    variants = {d14(img).numpy().tobytes() for _ in range(150)}
    assert 4 < len(variants) <= 14
    aff = build_transform(RGB, train=True, augment="affectnet")(img)
    assert aff.shape == (3, 20, 20) and torch.isfinite(aff).all()
    with pytest.raises(ConfigError, match="Unknown augmentation 'mixup'"):
        build_transform(GRAY, train=True, augment="mixup")


def test_cache_identical_to_on_the_fly_and_reused(tmp_path):
    make_rafdb(tmp_path / "raf", image_dirs=("original",))
    split = load_dataset("rafdb", tmp_path / "raf", split="train")
    t = build_transform(GRAY, train=False)
    cached = FERDataset(split, t, cache_dir=str(tmp_path / "cache"), progress=False)
    direct = FERDataset(split, t)
    assert cached.cache is not None and direct.cache is None
    for i in range(len(split)):
        assert torch.equal(cached[i]["image"], direct[i]["image"])
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    FERDataset(split, t, cache_dir=str(tmp_path / "cache"), progress=False)
    assert files[0].stat().st_mtime_ns == mtime                    # reused, not rebuilt
    img_path = split.samples[0].image
    Image.fromarray(_image(9, 12, 12)).save(img_path)              # changed source -> new cache key
    FERDataset(split, t, cache_dir=str(tmp_path / "cache"), progress=False)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_items_views_and_in_memory_samples(tmp_path):
    make_fer2013(tmp_path)
    split = load_dataset("fer2013", tmp_path, split="train")
    views = {"image_teacher": build_transform(RGB, train=False)}
    ds = FERDataset(split, build_transform(GRAY, train=False), extra_views=views, cache_dir=str(tmp_path / "c"))
    assert ds.cache is None and not (tmp_path / "c").exists()     # arrays need no cache
    item = ds[1]
    assert item["image"].shape == (1, 16, 16) and item["image_teacher"].shape == (3, 20, 20)
    assert item["expression"] == split.samples[1].expression and item["subject"] == -1 and item["index"] == 1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 1, 16, 16) and batch["expression"].dtype == torch.int64


def test_unreadable_image_raises_with_path(tmp_path):
    make_rafdb(tmp_path)
    split = load_dataset("rafdb", tmp_path, split="test")
    bad = split.samples[1].image
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    ds = FERDataset(split, build_transform(GRAY, train=False))
    with pytest.raises(ImageReadError) as e:
        ds[1]
    assert str(bad) in str(e.value)
    with pytest.raises(ImageReadError):
        FERDataset(split, build_transform(GRAY, train=False), cache_dir=str(tmp_path / "cache"), progress=False)
    assert not list((tmp_path / "cache").glob("*.npy"))           # no half-written cache left behind


def test_pairs_over_a_real_layout(tmp_path):
    make_ckplus(tmp_path, subjects=10)
    split = load_dataset("ckplus", tmp_path, split="all")
    pairs = PairDataset(FERDataset(split, build_transform(GRAY, train=False)), seed=0)
    for i in range(0, len(pairs), 7):
        item = pairs[i]
        assert item["image_pair"].shape == (1, 16, 16) and item["expression_pair"] == item["expression"]
    # codes (s % 7) + 1 for subjects 1..10: four classes have a single subject (3 frames each)
    assert pairs.info == {"same_subject_fallback": 12, "self_pairs": 0}
    subj = split.subjects
    ok = subj[pairs.partners] != subj
    assert ok.sum() + pairs.info["same_subject_fallback"] + pairs.info["self_pairs"] == len(split)


def test_align_option_warps_faces_into_the_cache(tmp_path, monkeypatch):
    from ferkit.data import faces

    marks = faces.template_landmarks(64, "default") + 3.0         # a "detected" face, shifted by 3 px

    class StubDetector:
        min_face_size = 20

        def __init__(self, device="cpu"):
            pass

        def detect(self, image):
            return [faces.Face(box=np.array([0, 0, 64, 64], dtype=np.float32), landmarks=marks, score=0.99)]

    monkeypatch.setattr(faces, "FaceDetector", StubDetector)
    make_rafdb(tmp_path, rows=[("train_00001.jpg", 4), ("train_00002.jpg", 1)])
    img = _image(7, 64, 64)
    split = load_dataset("rafdb", tmp_path, split="train", align=True)
    Image.fromarray(img).save(split.samples[0].image, quality=100)
    pre = Preprocessing(size=16, channels=3, mean=(0.5,), std=(0.5,), align="mtcnn5")
    t = build_transform(pre, train=False)
    ds = FERDataset(split, t, cache_dir=str(tmp_path / "c"), progress=False)
    decoded = np.asarray(Image.open(split.samples[0].image).convert("RGB"))
    assert torch.equal(ds[0]["image"], t(faces.align_face(decoded, marks, 16, "default")))
    assert ds.cache.manifest["no_face_found"] == 1                # the 12-px image is too small to search
    plain = FERDataset(load_dataset("rafdb", tmp_path, split="train"), t)
    assert not plain.align and not torch.equal(plain[0]["image"], ds[0]["image"])
