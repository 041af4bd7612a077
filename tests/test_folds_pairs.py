"""Subject-independent folds, validation carving, same-expression pairs and the class-balanced sampler."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data.datasets import load_dataset
from ferkit.data.folds import carve_validation, subject_folds
from ferkit.data.pairs import PairDataset, draw_partners
from ferkit.data.samplers import ClassBalancedSampler
from ferkit.errors import DataError
from fixtures_layouts import make_ckplus


def test_subject_folds_disjoint_balanced_and_seeded():
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, 37, size=600)
    folds = subject_folds(subjects, 10, seed=3)
    for s in np.unique(subjects):
        assert len(np.unique(folds[subjects == s])) == 1            # no subject in two folds
    assert set(folds.tolist()) == set(range(10))                    # union = all
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= np.bincount(subjects).max()
    assert np.array_equal(folds, subject_folds(subjects, 10, seed=3))
    assert not np.array_equal(folds, subject_folds(subjects, 10, seed=4))


def test_unknown_subjects_fold_per_image_and_too_few_subjects():
    folds = subject_folds(np.full(20, -1), 4, seed=0)
    assert np.bincount(folds).tolist() == [5, 5, 5, 5]
    with pytest.raises(DataError, match="Cannot make 10 subject-independent folds from 3 subjects"):
        subject_folds(np.array([1, 2, 3, 1]), 10, seed=0)


def test_carve_validation_by_subject():
    subjects = np.repeat(np.arange(10), 3)
    mask = carve_validation(subjects, 0.2, seed=0)
    assert len(np.unique(subjects[mask])) == 2 and mask.sum() == 6
    assert set(subjects[mask]).isdisjoint(subjects[~mask])
    assert not carve_validation(subjects, 0.0, seed=0).any()


def test_folds_over_ckplus_cover_everything(tmp_path):
    make_ckplus(tmp_path, subjects=10)
    tests = [load_dataset("ckplus", tmp_path, split="test", fold=k, num_folds=5) for k in range(5)]
    all_sources = sorted(s.source for t in tests for s in t.samples)
    assert all_sources == sorted(s.source for s in load_dataset("ckplus", tmp_path, split="all").samples)
    train = load_dataset("ckplus", tmp_path, split="train", fold=0, num_folds=5)
    assert set(train.subjects.tolist()).isdisjoint(tests[0].subjects.tolist())
    assert len(train) + len(tests[0]) == 30


def test_partners_same_expression_different_subject():
    rng = np.random.default_rng(0)
    expr = rng.integers(0, 4, 200)
    subj = rng.integers(0, 12, 200)
    partners, info = draw_partners(expr, subj, np.random.default_rng(1))
    assert np.array_equal(expr[partners], expr)
    assert (subj[partners] != subj).all() and info == {"same_subject_fallback": 0, "self_pairs": 0}


def test_partner_fallbacks_counted():
    expr = np.array([0, 0, 0, 1, 2])
    subj = np.array([5, 5, 5, 6, 7])                                # class 0: one subject; classes 1, 2: one image
    partners, info = draw_partners(expr, subj, np.random.default_rng(0))
    assert (partners[:3] != np.arange(3)).all() and set(partners[:3]) <= {0, 1, 2}
    assert partners[3] == 3 and partners[4] == 4
    assert info == {"same_subject_fallback": 3, "self_pairs": 2}


class _Base:
    """A minimal FERDataset stand-in (expressions, subjects, dict items)."""

    def __init__(self, expr, subj):
        self.expressions, self.subjects = np.asarray(expr), np.asarray(subj)

    def __len__(self):
        return len(self.expressions)

    def __getitem__(self, i):
        return {"image": float(i), "expression": int(self.expressions[i]), "subject": int(self.subjects[i]),
                "index": i}


def test_pair_dataset_deterministic_per_seed_epoch():
    base = _Base(np.arange(60) % 3, np.arange(60) % 7)
    a, b = PairDataset(base, seed=5), PairDataset(base, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert np.array_equal(a.partners, b.partners)
    first = a.partners.copy()
    a.set_epoch(3)
    assert not np.array_equal(first, a.partners)
    item = a[10]
    assert item["expression_pair"] == item["expression"] and item["subject_pair"] != item["subject"]
    assert item["image_pair"] == float(a.partners[10])


def test_class_balanced_sampler():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    s = ClassBalancedSampler(labels, num_samples=30000, seed=1)
    drawn = np.array(list(s))
    share = np.bincount(labels[drawn], minlength=3) / len(drawn)
    assert np.allclose(share, 1 / 3, atol=0.02)
    s.set_epoch(0)
    again = np.array(list(s))
    assert np.array_equal(drawn, again)
    s.set_epoch(1)
    assert not np.array_equal(drawn, np.array(list(s)))
    halves = [ClassBalancedSampler(labels, 100, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(halves[0]) == 50 and sorted(list(halves[0]) + list(halves[1])) == sorted(halves[0].draw().tolist())
