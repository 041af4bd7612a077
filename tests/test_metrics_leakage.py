"""Identity probe, retrieval purity, 2-D maps and cross-dataset label mapping, with known answers."""

import numpy as np
import pytest

from ferkit.data.labels import CKPLUS7, OULU, RAFDB, SYNTHFER
from ferkit.metrics.crossdata import map_to_dataset
from ferkit.metrics.leakage import embedding_2d, identity_probe, retrieval_purity


def _data(n_subj=10, per=24, seed=0):
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subj), per)
    expressions = np.tile(np.arange(6), n_subj * per // 6)
    return rng, subjects, expressions


def test_probe_near_chance_without_identity_and_high_with_it():
    rng, s, e = _data()
    independent = np.eye(6)[e] * 3 + rng.normal(size=(len(e), 6))        # expression only
    leaky = np.c_[independent, np.eye(10)[s] * 3 + rng.normal(0, 0.3, (len(s), 10))]
    p0 = identity_probe(independent, s, seed=0)
    p1 = identity_probe(leaky, s, seed=0)
    assert p0["chance"] == pytest.approx(0.1) and p0["num_subjects"] == 10
    assert p0["accuracy"] < 0.25
    assert p1["accuracy"] > 0.95
    assert p0["num_test"] + p0["num_train"] == len(s)


def test_probe_at_a_matched_dimension_keeps_only_the_leading_components():
    """Identity in 10 low-variance dimensions beside 6 high-variance expression ones: the full probe finds
    it, the probe cut by PCA to the 6 leading components (fit on the probe's training part) does not."""
    rng, s, e = _data()
    expression = np.eye(6)[e] * 30 + rng.normal(size=(len(e), 6))
    identity = np.eye(10)[s] * 0.5 + rng.normal(0, 0.05, (len(s), 10))
    x = np.c_[expression, identity]                                       # (240, 16)
    full, cut = identity_probe(x, s, seed=0), identity_probe(x, s, seed=0, pca_dim=6)
    assert full["accuracy"] > 0.95 and cut["accuracy"] < 0.25 and cut["pca_dim"] == 6
    assert "pca_dim" not in identity_probe(x, s, seed=0, pca_dim=16)      # already that narrow: unchanged
    assert identity_probe(x, s, seed=0, pca_dim=16)["accuracy"] == full["accuracy"]


def test_probe_without_subjects_says_why():
    out = identity_probe(np.zeros((5, 3)), np.full(5, -1))
    assert out["accuracy"] is None and "subjects" in out["reason"]


def test_retrieval_purity_expression_vs_identity():
    rng, s, e = _data()
    expr_code = np.eye(6)[e] + rng.normal(0, 0.05, (len(e), 6))
    id_code = np.eye(10)[s] + rng.normal(0, 0.05, (len(s), 10))
    pe = retrieval_purity(expr_code, e, s, k=5)
    pi = retrieval_purity(id_code, e, s, k=5)
    assert pe["expression"] == 1.0 and pe["subject"] < 0.3
    assert pi["subject"] == 1.0 and pi["expression"] < 0.4
    assert pe["expression_chance"] == pytest.approx((40 * 39 * 6) / (240 * 239))
    # chunking does not change the answer
    assert retrieval_purity(expr_code, e, s, k=5, chunk=7) == pe


def test_embedding_2d_tsne_and_pca_fallback():
    rng = np.random.default_rng(0)
    small = embedding_2d(rng.normal(size=(12, 5)))
    assert small["method"] == "PCA" and small["xy"].shape == (12, 2)
    x = rng.normal(size=(60, 5))
    big = embedding_2d(x, seed=1)
    assert big["method"] == "t-SNE" and big["xy"].shape == (60, 2)
    assert np.array_equal(big["xy"], embedding_2d(x, seed=1)["xy"])          # seeded: repeatable
    capped = embedding_2d(x, seed=1, max_points=40)
    assert capped["xy"].shape == (40, 2) and len(np.unique(capped["index"])) == 40


def test_crossdata_drops_and_reports_classes():
    # an Oulu model (6 classes, no neutral) on RAF-DB (7 classes incl. neutral)
    probs = np.full((4, 6), 0.1)
    probs[:, OULU.index("happy")] = 0.5
    labels = np.array([RAFDB.index("happy"), RAFDB.index("neutral"), RAFDB.index("anger"),
                       RAFDB.index("neutral")])
    out = map_to_dataset(probs, labels, OULU, RAFDB)
    assert out["excluded_counts"] == {"neutral": 2} and out["num_excluded"] == 2
    assert out["dropped_model_classes"] == []
    assert out["classes"] == [c for c in RAFDB.classes if c != "neutral"]
    assert out["labels"].tolist() == [out["classes"].index("happy"), out["classes"].index("anger")]
    # nothing of the model's mass is dropped (it has no neutral): every row keeps happy 0.5 and 0.1 elsewhere
    happy = out["classes"].index("happy")
    assert np.allclose(out["probs"][:, happy], 0.5) and np.allclose(np.delete(out["probs"], happy, axis=1), 0.1)
    # a SynthFER model (with neutral) on CK+ 7 (contempt, no neutral): neutral's mass dropped, renormalised
    p = np.array([[0.5, 0.25, 0.05, 0.05, 0.05, 0.05, 0.05]])
    lab = np.array([CKPLUS7.index("happy")])
    o2 = map_to_dataset(p, lab, SYNTHFER, CKPLUS7)
    assert o2["dropped_model_classes"] == ["neutral"]
    assert o2["probs"][0, o2["classes"].index("happy")] == pytest.approx(0.5)
    assert "contempt" not in o2["classes"]
    lab_c = np.array([CKPLUS7.index("contempt")])
    assert map_to_dataset(p, lab_c, SYNTHFER, CKPLUS7)["excluded_counts"] == {"contempt": 1}


def test_matched_dimension_probe_cuts_the_larger_embedding_by_pca():
    """512-D: identity in 8 low-variance dims under 64 high-variance noise dims is lost at 64-D (PCA keeps
    the noise), identity in high-variance dims survives; a 64-D code is probed unchanged."""
    from ferkit.metrics.leakage import matched_dimension_probes

    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(10), 30)
    proto = rng.normal(size=(10, 8))
    hidden = np.concatenate([5.0 * rng.normal(size=(300, 64)), 0.2 * proto[subjects] + 0.02 * rng.normal(size=(300, 8)),
                             0.01 * rng.normal(size=(300, 440))], 1)                   # (300, 512)
    loud = np.concatenate([5.0 * proto[subjects] + rng.normal(size=(300, 8)), rng.normal(size=(300, 504))], 1)
    code = proto[subjects] + rng.normal(size=(300, 8))
    code = np.concatenate([code, rng.normal(size=(300, 56))], 1)                        # (300, 64)
    out = matched_dimension_probes({"hidden": hidden, "loud": loud, "code": code}, subjects)
    p = out["probes"]
    assert out["dim"] == 64 and "matched" in out["comparable"]
    assert p["hidden"]["native"] > 0.4 and p["hidden"]["matched"] < 0.25, p           # chance 0.1
    assert p["loud"]["matched"] > 0.9, p
    assert p["code"]["matched"] == p["code"]["native"], p
