"""Each adapter on a tiny tree in its real layout: counts, labels mapped right, subjects, splits, exclusions."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data import labels
from ferkit.data.datasets import DATASETS, load_dataset
from fixtures_layouts import (
    FER_ROWS,
    RAF_ROWS,
    make_affectnet,
    make_ckplus,
    make_fer2013,
    make_ferplus,
    make_folder,
    make_lists_affectnet,
    make_lists_rafdb,
    make_oulu,
    make_rafdb,
    make_synthfer_folder,
)


def _names(split) -> list[str]:
    return [split.label_space.classes[e] for e in split.expressions]


def test_registry_lists_every_layout():
    assert set(DATASETS) == {"rafdb", "lists", "affectnet", "affectnet8", "ckplus", "oulu", "fer2013", "ferplus",
                             "folder", "synthetic"}
    assert all(info.layout.count("\n") >= 1 for info in DATASETS.values())


def test_rafdb_labels_splits_and_image_dirs(tmp_path):
    make_rafdb(tmp_path, image_dirs=("aligned", "original"))
    train = load_dataset("rafdb", tmp_path, split="train")
    test = load_dataset("rafdb", tmp_path, split="test")
    assert len(train) == 5 and len(test) == 3
    assert _names(train)[0] == "happy"                           # RAF label 4 = Happiness
    assert _names(train)[1] == "surprise" and _names(train)[2] == "neutral"
    assert train.samples[0].image.name == "train_00001_aligned.jpg"
    assert all(s.subject == -1 for s in train.samples)
    orig = load_dataset("rafdb", tmp_path, split="test", image_dir="original")
    assert orig.samples[0].image.name == "test_0001.jpg" and orig.samples[0].meta["original_label"] == 4


def test_rafdb_aligned_224_chosen_when_only_one(tmp_path):
    make_rafdb(tmp_path, image_dirs=("aligned_224",))
    split = load_dataset("rafdb", tmp_path, split="all")
    assert len(split) == len(RAF_ROWS) and split.info["image_dir"] == "aligned_224"


def test_lists_rafdb_and_affectnet_flavours(tmp_path):
    make_lists_rafdb(tmp_path / "raf")
    tr = load_dataset("lists", tmp_path / "raf", split="train")
    assert tr.label_space == labels.RAFDB and _names(tr) == ["happy", "neutral", "surprise"]
    assert len(load_dataset("lists", tmp_path / "raf", split="test")) == 2
    make_lists_affectnet(tmp_path / "aff")
    a7 = load_dataset("lists", tmp_path / "aff", split="all")
    assert a7.label_space == labels.AFFECTNET7 and a7.info["excluded"] == {"code_7": 1}
    assert _names(a7) == ["happy", "neutral", "anger", "surprise"]
    assert a7.samples[-1].image.is_absolute() and a7.samples[-1].image.is_file()
    a8 = load_dataset("lists", tmp_path / "aff", split="train", flavour="affectnet8")
    assert a8.label_space == labels.AFFECTNET8 and "contempt" in _names(a8)


def test_affectnet_exclusions_counted_and_meta_kept(tmp_path):
    make_affectnet(tmp_path, header_in_validation=False)
    train = load_dataset("affectnet", tmp_path, split="train")
    assert _names(train) == ["neutral", "happy", "happy", "sad", "anger"]
    assert train.info["excluded"]["train"] == {"contempt": 1, "none": 1, "uncertain": 1, "no_face": 1}
    assert train.info["excluded"]["test"] == {"contempt": 1, "none": 0, "uncertain": 0, "no_face": 0}
    meta = train.samples[0].meta
    assert meta["face_box"] == (10.0, 12.0, 80.0, 90.0) and meta["landmarks"].shape == (68, 2)
    assert meta["landmarks"][1, 0] == pytest.approx(2.5)
    test = load_dataset("affectnet", tmp_path, split="test")
    assert _names(test) == ["surprise", "fear", "disgust"]
    assert any("no header" in n for n in test.info["notes"])
    t8 = load_dataset("affectnet8", tmp_path, split="test")
    assert _names(t8)[-1] == "contempt" and len(t8) == 4 and "contempt" not in t8.info["excluded"]["test"]


def test_ckplus_last_frames_subjects_and_neutral(tmp_path):
    written = make_ckplus(tmp_path, subjects=10, frames=5)
    split = load_dataset("ckplus", tmp_path, split="all")
    assert len(split) == 3 * len(written) and split.label_space == labels.CKPLUS7
    s1 = [s for s in split.samples if s.subject == 1]
    assert [s.meta["frame"] for s in s1] == [2, 3, 4]
    code = dict(((s, q), c) for s, q, c in written)[(1, "001")]      # 2 -> contempt
    assert _names(split)[0] == labels.CKPLUS_CODES[code]
    assert split.info["unlabelled_sequences"] == 10
    with_neutral = load_dataset("ckplus", tmp_path, split="all", include_neutral=True, last_n=2)
    assert with_neutral.label_space == labels.CKPLUS8 and len(with_neutral) == 3 * 10
    assert _names(with_neutral)[0] == "neutral" and with_neutral.samples[0].meta["frame"] == 0
    assert set(split.subjects.tolist()) == set(range(1, 11))


def test_oulu_last_three_frames_six_classes(tmp_path):
    expected = make_oulu(tmp_path, persons=3, frames=5)
    split = load_dataset("oulu", tmp_path, split="all")
    assert len(split) == expected and split.label_space.num_classes == 6
    assert sorted(set(_names(split))) == sorted(labels.OULU.classes)
    assert [s.image.name for s in split.samples[:3]] == ["002.jpeg", "003.jpeg", "004.jpeg"]
    assert set(split.subjects.tolist()) == {1, 2, 3}


def test_fer2013_pixels_and_usage(tmp_path):
    pixels = make_fer2013(tmp_path)
    train = load_dataset("fer2013", tmp_path, split="train")
    val = load_dataset("fer2013", tmp_path, split="val")
    test = load_dataset("fer2013", tmp_path, split="test")
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    assert np.array_equal(train.samples[0].image, pixels[0]) and train.samples[0].image.shape == (48, 48)
    assert _names(train) == ["happy", "anger", "neutral"]
    assert val.expressions.tolist() == [FER_ROWS[3][0]]


def test_ferplus_majority_and_probability(tmp_path):
    pixels = make_ferplus(tmp_path)
    maj = load_dataset("ferplus", tmp_path, split="all")
    assert _names(maj) == ["happy", "neutral", "surprise"]
    assert maj.info["excluded"] == {"removed_by_ferplus": 1, "tie": 1, "NF": 1}
    assert np.array_equal(maj.samples[2].image, pixels[5])           # pixels joined by row order
    prob = load_dataset("ferplus", tmp_path, split="all", label_mode="probability")
    last = prob.samples[-1]
    assert _names(prob)[-1] == "surprise"
    assert last.meta["soft_label"][2] == pytest.approx(0.6) and last.meta["soft_label"][6] == pytest.approx(0.4)
    assert prob.info["excluded"] == {"removed_by_ferplus": 1, "no_emotion_votes": 1}


def test_folder_with_and_without_splits(tmp_path):
    make_folder(tmp_path / "s", splits=True)
    train = load_dataset("folder", tmp_path / "s", split="train")
    assert train.label_space.classes == ("happy", "sad", "anger")    # CANONICAL order
    assert len(train) == 7 and train.info["ignored_files"] == 1
    assert sorted(_names(train)) == ["anger"] * 2 + ["happy"] * 3 + ["sad"] * 2
    make_folder(tmp_path / "flat", splits=False)
    assert len(load_dataset("folder", tmp_path / "flat", split="all")) == 7


def test_synthetic_folder(tmp_path):
    rows = make_synthfer_folder(tmp_path)
    train = load_dataset("synthetic", tmp_path, split="train")
    val = load_dataset("synthetic", tmp_path, split="val")
    assert len(train) == sum(r["split"] == "train" for r in rows) and len(val) == 7
    assert train.samples[3].meta["au_12"] == pytest.approx(0.75) and train.samples[0].subject == 0
    assert set(train.subjects.tolist()).isdisjoint(val.subjects.tolist())


def test_fixed_split_val_fraction_carves_images(tmp_path):
    make_rafdb(tmp_path)
    train = load_dataset("rafdb", tmp_path, split="train", val_fraction=0.4)
    val = load_dataset("rafdb", tmp_path, split="val", val_fraction=0.4)
    assert len(train) + len(val) == 5 and len(val) == 2
    assert {s.source for s in train.samples}.isdisjoint({s.source for s in val.samples})
