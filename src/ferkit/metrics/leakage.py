"""Identity leakage of an expression embedding: a linear identity probe (also at a matched dimension, PCA to
the smaller embedding's size, since probe accuracy grows with dimension), nearest-neighbour retrieval
purity (the DICE-FER paper's Fig. 3 check), and a seeded 2-D map of the embedding for plotting.

An expression embedding free of identity gives probe accuracy near chance (1 / #subjects) and
neighbours that share the query's expression but not its subject.
"""

from __future__ import annotations

import numpy as np


def _subject_stratified_split(subjects: np.ndarray, test_fraction: float,
                              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): per subject with >= 2 images, max(1, round(f * n)) images held out."""
    train, test = [], []
    for s in np.unique(subjects):
        idx = rng.permutation(np.flatnonzero(subjects == s))
        if idx.size < 2:
            continue
        n_test = min(idx.size - 1, max(1, int(round(test_fraction * idx.size))))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    if not test:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(train), np.concatenate(test)


def identity_probe(embeddings: np.ndarray, subjects: np.ndarray, seed: int = 0,
                   test_fraction: float = 0.3, max_iter: int = 500, pca_dim: int | None = None) -> dict:
    """Linear probe accuracy predicting the subject from the embedding on held-out images.

    Images of known subjects (subject >= 0, at least 2 images each) are split per subject (so every
    probed subject appears in both parts); a standardised multinomial logistic regression (sklearn
    ``LogisticRegression``, L2, C = 1) is fit on one part and scored on the other.
    ``pca_dim``: embeddings wider than this are first cut to their ``pca_dim`` leading principal
    components (sklearn ``PCA``, fit on the probe's training part only, so the held-out part stays unseen;
    at most as many components as training embeddings), so embeddings of different widths are probed
    at one matched dimension.
    Args: embeddings (N, D) float; subjects (N,) int, -1 = unknown.
    Returns {"accuracy", "chance" = 1/#subjects, "majority" (accuracy of always answering the most
    frequent training subject), "num_subjects", "num_train", "num_test"}; "accuracy" is None (with a
    "reason") when fewer than two subjects qualify.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(embeddings, dtype=np.float64)
    s = np.asarray(subjects, dtype=np.int64).ravel()
    known = np.flatnonzero(s >= 0)
    train, test = _subject_stratified_split(s[known], test_fraction, np.random.default_rng(seed))
    train, test = known[train], known[test]
    n_subj = int(np.unique(s[test]).size) if test.size else 0
    out = {"num_subjects": n_subj, "num_train": int(train.size), "num_test": int(test.size)}
    if n_subj < 2:
        return {**out, "accuracy": None, "chance": None, "majority": None,
                "reason": "fewer than two subjects with at least two images each"}
    if pca_dim is not None and x.shape[1] > pca_dim:
        from sklearn.decomposition import PCA

        keep = min(pca_dim, train.size)                  # no more components than training embeddings
        x = PCA(n_components=keep, random_state=seed).fit(x[train]).transform(x)      # (N, keep)
        out["pca_dim"] = int(pca_dim)
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(x[train]), s[train])
    acc = float(np.mean(clf.predict(scaler.transform(x[test])) == s[test]))
    values, counts = np.unique(s[train], return_counts=True)
    majority = float(np.mean(s[test] == values[np.argmax(counts)]))
    return {**out, "accuracy": acc, "chance": 1.0 / n_subj, "majority": majority}


#: DICE-FER's code size: the dimension at which ferkit also probes larger embeddings (leakage grows with D)
MATCHED_DIM = 64


def identity_probe_at_dim(embeddings: np.ndarray, subjects: np.ndarray, dim: int = MATCHED_DIM,
                          seed: int = 0) -> dict:
    """``identity_probe`` on the embedding cut to ``dim`` dimensions by PCA, with "dim" and "native_dim".

    A linear probe's accuracy grows with the embedding's dimension, so probes of a 512-D feature and a
    64-D code are comparable only after cutting the larger one to the smaller size.
    """
    x = np.asarray(embeddings)
    return {**identity_probe(x, subjects, seed=seed, pca_dim=dim), "dim": min(dim, x.shape[1]),
            "native_dim": int(x.shape[1])}


def matched_dimension_probes(embeddings: dict[str, np.ndarray], subjects: np.ndarray, seed: int = 0) -> dict:
    """Identity probes of several embeddings at their own size and all at the smallest size among them.

    Returns {"dim": the matched size, "probes": {name: {"native_dim", "native", "matched"}}, "comparable":
    a sentence naming which numbers can be compared}.
    """
    dim = min(int(np.shape(e)[1]) for e in embeddings.values())
    probes = {name: {"native_dim": int(np.shape(e)[1]),
                     "native": identity_probe(e, subjects, seed=seed)["accuracy"],
                     "matched": identity_probe_at_dim(e, subjects, dim, seed)["accuracy"]}
              for name, e in embeddings.items()}
    return {"dim": dim, "probes": probes,
            "comparable": f"compare the 'matched' accuracies (every embedding cut to {dim}-D by PCA); "
                          "native-size accuracies favour the larger embedding as more leaky"}


def _chance_share(labels: np.ndarray, valid: np.ndarray) -> float:
    """Probability that a random other sample shares the label: sum_c n_c (n_c - 1) / (N (N - 1))."""
    lab = labels[valid]
    if lab.size < 2:
        return float("nan")
    _, n = np.unique(lab, return_counts=True)
    return float(np.sum(n * (n - 1)) / (lab.size * (lab.size - 1)))


def retrieval_purity(embeddings: np.ndarray, expressions: np.ndarray, subjects: np.ndarray, k: int = 5,
                     chunk: int = 1024) -> dict:
    """Fraction of each query's k nearest neighbours (cosine, query excluded) sharing its expression and
    sharing its subject, averaged over queries (subject purity over queries with a known subject).

    Args: embeddings (N, D); expressions (N,) int; subjects (N,) int with -1 = unknown.
    Returns {"k", "expression", "subject", "expression_chance", "subject_chance"}, the chance values
    being the same fractions for uniformly random neighbours.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    e = np.asarray(expressions, dtype=np.int64).ravel()
    s = np.asarray(subjects, dtype=np.int64).ravel()
    n = x.shape[0]
    if n < 2:
        raise ValueError("retrieval purity needs at least two embeddings")
    k = min(k, n - 1)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)    # (N, D) unit rows
    same_e = np.zeros(n)
    same_s = np.zeros(n)
    for start in range(0, n, chunk):
        q = slice(start, min(start + chunk, n))
        sim = x[q] @ x.T                                                   # (b, N)
        rows = np.arange(sim.shape[0])
        sim[rows, rows + start] = -np.inf                                  # exclude the query itself
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]                   # (b, k) unordered top-k
        same_e[q] = np.mean(e[nn] == e[q, None], axis=1)
        same_s[q] = np.mean((s[nn] == s[q, None]) & (s[q, None] >= 0), axis=1)
    known = s >= 0
    return {
        "k": int(k),
        "expression": float(same_e.mean()),
        "subject": float(same_s[known].mean()) if known.any() else None,
        "expression_chance": _chance_share(e, np.ones(n, dtype=bool)),
        "subject_chance": _chance_share(s, known) if known.sum() >= 2 else None,
    }


def embedding_2d(embeddings: np.ndarray, seed: int = 0, max_points: int = 1500, max_iter: int = 500) -> dict:
    """A 2-D map of the embedding: sklearn t-SNE (seeded, PCA init, Barnes-Hut, ``max_iter`` iterations),
    or PCA for fewer than 30 points.

    At most ``max_points`` rows (a seeded random subset) are mapped. t-SNE runs with one OpenMP thread:
    on a shared machine its multi-threaded gradient spins and can be 20x slower. Returns {"xy" (M, 2),
    "index" (M,) rows of the input that were mapped, "method" ("t-SNE" or "PCA")}.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(embeddings, dtype=np.float64)
    idx = np.arange(x.shape[0])
    if idx.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    x = x[idx]
    if x.shape[0] < 30:
        n_comp = min(2, x.shape[0], x.shape[1])
        xy = PCA(n_components=n_comp, random_state=seed).fit_transform(x) if n_comp > 0 else x[:, :0]
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))                   # (M, 2) even when D or M < 2
        return {"xy": xy, "index": idx, "method": "PCA"}
    perplexity = float(min(30.0, (x.shape[0] - 1) / 3.0))
    with threadpool_limits(limits=1, user_api="openmp"):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  max_iter=max_iter).fit_transform(x)
    return {"xy": xy, "index": idx, "method": "t-SNE"}
