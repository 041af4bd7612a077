"""Known answers for DICE-FER's modified MIG (``ferkit.metrics.modified_mig``): codes built disentangled read
clearly positive, codes built entangled about 0 or less, the shuffled control about 0, and the "other image"
control separates identity from per-image factors the same-image term also counts."""

import numpy as np
import pytest

from ferkit.metrics.modified_mig import dv_mutual_information, modified_mig, other_image_rows

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"seeds": (0, 1), "steps": 250, "hidden": 64}


def _codes(n: int, identity_in_e: float, nuisance: float, seed: int = 0) -> dict:
    """Pairs (M, N) of one of 7 expressions, N of a different subject (20 subjects); 8-d codes.

    E = expression part + identity_in_e * identity part + nuisance * image factor + noise;
    I = identity part + nuisance * the same image factor + noise (the factor is M's own: pose, light).
    """
    rng = np.random.default_rng(seed)
    expr_proto, subj_proto = rng.normal(size=(7, 8)), rng.normal(size=(20, 8))
    y = rng.integers(0, 7, n)
    s_m = rng.integers(0, 20, n)
    s_n = (s_m + rng.integers(1, 20, n)) % 20
    f_m, f_n = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))                     # per-image factors

    def code(subj, factor):
        return (2.0 * expr_proto[y] + identity_in_e * 2.0 * subj_proto[subj] + nuisance * factor
                + 0.3 * rng.normal(size=(n, 8)))

    i_m = 2.0 * subj_proto[s_m] + nuisance * f_m + 0.3 * rng.normal(size=(n, 8))
    return {"e_m": code(s_m, f_m), "e_n": code(s_n, f_n), "i_m": i_m, "subjects": s_m}


def test_disentangled_codes_give_a_clearly_positive_mig_and_controls_near_zero():
    c = _codes(1600, identity_in_e=0.0, nuisance=0.0)
    out = modified_mig(c["e_m"], c["e_n"], c["i_m"], subjects=c["subjects"], **FAST)
    assert out["i_exp_exp"] > 1.2, out          # the shared class: at most ln 7 = 1.95 nats
    assert out["i_exp_id"] < 0.1, out
    assert out["mig"] > 1.0 and out["interval"][0] > 0.5, out
    assert out["controls"]["shuffled_exp_exp"] < 0.1 and out["controls"]["shuffled_exp_id"] < 0.1, out
    assert out["controls"]["mig_other_image"] > 1.0, out


def test_entangled_codes_give_a_mig_of_about_zero_or_less():
    c = _codes(1600, identity_in_e=1.0, nuisance=0.0)
    out = modified_mig(c["e_m"], c["e_n"], c["i_m"], subjects=c["subjects"], **FAST)
    assert out["i_exp_id"] > 1.5, out           # E carries the subject (ln 20 = 3.0 nats available)
    assert out["mig"] < 0.1, out
    assert out["controls"]["mig_other_image"] < 0.1, out


def test_other_image_control_drops_per_image_factors_the_same_image_term_counts():
    """No identity in E, but E and I of one image share a per-image factor: the paper's term reads it as
    dependence (MIG pulled down), the other-image control does not."""
    c = _codes(1600, identity_in_e=0.0, nuisance=1.5)
    out = modified_mig(c["e_m"], c["e_n"], c["i_m"], subjects=c["subjects"], **FAST)
    assert out["i_exp_id"] > 0.5, out
    assert out["controls"]["i_exp_id_other_image"] < 0.1, out
    assert out["controls"]["mig_other_image"] > out["mig"] + 0.4, out


def test_every_term_is_bounded_by_twice_the_critic_bound():
    """Identical deterministic codes: unbounded DV grows with training; the bounded family stays <= 2b."""
    x = np.random.default_rng(0).normal(size=(1200, 4)).astype(np.float32)
    value = dv_mutual_information(x, x.copy(), steps=300, hidden=64, bound=1.0)
    assert 0.5 < value <= 2.0


def test_other_image_rows_pick_another_row_of_the_same_subject():
    subjects = np.array([0, 0, 0, 1, 1, 2, -1])
    rows = other_image_rows(subjects, seed=3)
    for i, j in enumerate(rows[:5]):
        assert j != i and subjects[j] == subjects[i]
    assert rows[5] == -1 and rows[6] == -1                                            # single image; unknown
