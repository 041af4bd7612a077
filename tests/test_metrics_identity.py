"""Identity alignment metrics with known answers: linear CKA (plain and debiased), the rank correlation of
pairwise similarities, verification AUC, and their bootstrap intervals and shuffled controls."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.metrics.identity import (
    identity_alignment,
    linear_cka,
    similarity_rank_correlation,
    verification_auc,
)


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_cka_is_one_for_the_same_space_up_to_rotation_scale_and_shift():
    x = _gaussian(200, 16, 0)
    q, _ = np.linalg.qr(_gaussian(16, 16, 1))                       # a random rotation
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-10)


def test_cka_of_a_known_pair():
    """X = [e1 | e2] columns, Y = X's first column only: CKA = ||Y^T X||^2 / (||X^T X|| ||Y^T Y||) = 1/sqrt(2)
    for centred, orthogonal, equal-norm columns."""
    x = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert linear_cka(x, x[:, :1]) == pytest.approx(1 / np.sqrt(2), abs=1e-12)


def test_independent_noise_scores_near_zero_debiased_and_rank_correlation():
    x, noise = _gaussian(400, 32, 0), _gaussian(400, 24, 1)
    assert abs(linear_cka(x, noise, debiased=True)) < 0.02
    assert abs(similarity_rank_correlation(x, noise)) < 0.03
    assert 0.0 < linear_cka(x, noise) < 0.15                          # the plug-in estimate's known upward bias


def test_rank_correlation_is_one_for_monotone_similarities_and_minus_one_reversed():
    x = _gaussian(30, 8, 2)
    assert similarity_rank_correlation(x, 2.0 * x) == pytest.approx(1.0)
    # one-dimensional positive codes: cosine similarity is 1 for every pair, no ranking: 0 by convention
    assert similarity_rank_correlation(np.ones((5, 1)), x[:5]) == 0.0


def test_verification_auc_known_values():
    # subjects 0, 0, 1: the same-person pair (0, 1) has cosine 0.5; the different pairs 0.9 and 0.1 -> AUC 1/2
    a = np.array([1.0, 0.0])
    b = np.array([0.5, np.sqrt(0.75)])
    c = np.array([0.9, -np.sqrt(1 - 0.81)])
    x = np.stack([a, b, c])
    sims = x @ x.T
    assert sims[0, 1] == pytest.approx(0.5) and sims[0, 2] == pytest.approx(0.9)
    assert sims[1, 2] < 0.5
    assert verification_auc(x, np.array([0, 0, 1]))["auc"] == pytest.approx(0.5)
    centres = _gaussian(5, 16, 3) * 10
    subj = np.repeat(np.arange(5), 6)
    tight = centres[subj] + _gaussian(30, 16, 4)
    assert verification_auc(tight, subj)["auc"] == 1.0
    many = np.repeat(np.arange(20), 10)
    assert abs(verification_auc(_gaussian(200, 16, 5), many)["auc"] - 0.5) < 0.05
    assert verification_auc(tight, np.full(30, -1))["auc"] is None


def test_alignment_against_itself_noise_and_the_shuffled_control():
    ref = _gaussian(120, 16, 6)
    same = identity_alignment(ref, ref, n_boot=50, n_shuffle=50)
    assert same["cka"]["value"] == pytest.approx(1.0) and same["similarity_rank_correlation"]["value"] == pytest.approx(1.0)
    assert same["cka"]["interval"][0] == pytest.approx(1.0) and same["cka"]["p_shuffled"] == pytest.approx(1 / 51)
    assert same["cka"]["shuffled_mean"] < 0.3
    noise = identity_alignment(_gaussian(120, 8, 7), ref, n_boot=50, n_shuffle=50)
    for key in ("cka", "similarity_rank_correlation"):
        lo, hi = noise[key]["shuffled_interval"]
        assert lo <= noise[key]["value"] <= hi or noise[key]["p_shuffled"] > 0.025      # like its control
    assert abs(noise["cka_debiased"]["value"]) < 0.05 and abs(noise["similarity_rank_correlation"]["value"]) < 0.05
    half = identity_alignment(np.concatenate([ref[:, :8], _gaussian(120, 8, 8)], axis=1), ref, n_boot=50,
                              n_shuffle=20)
    lo, hi = half["cka"]["interval"]
    assert 0.2 < lo <= half["cka"]["value"] <= hi < 0.9 and half["cka"]["p_shuffled"] == pytest.approx(1 / 21)
    sub = identity_alignment(ref, ref, n_boot=0, n_shuffle=0, max_faces=40)
    assert sub["similarity_rank_correlation"]["num_faces"] == 40 and "interval" not in sub["cka"]
    with pytest.raises(ValueError, match="same faces"):
        identity_alignment(ref, ref[:10])
