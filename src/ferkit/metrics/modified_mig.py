"""DICE-FER's modified MIG, I(E_M; E_N) - I(E_M; I_M), in nats, with both terms measured alike (METHODS.md A.4, A.9).

The paper gives the quantity but not its estimator ([INFERRED] here). Every MI value below comes from one
estimator: a *fresh* Donsker-Varadhan critic from one bounded family,

    U(x, z) = b * tanh(MLP([x; z]) / b),   MLP = Linear(d_x + d_z, H) -> ReLU -> Linear(H, H) -> ReLU -> Linear(H, 1)

trained on one half of the held-out codes (seeded split) and scored on the other half,

    I_DV = (1/n) sum_b U(x_b, z_b) - log mean_{b, k} exp U(x_b, z_pi_k(b))   (K seeded permutations pi_k)

so no critic is scored on the pairs it was fit to, and no term can exceed 2b whatever the codes (an
unbounded critic makes the same-image term grow without limit on deterministic codes, while
I(E_M; E_N) over same-class pairs is capped by H(class)). Codes are standardised with the training half's
statistics (MI is invariant to that). A term's held-out value below zero is reported as 0 (MI >= 0, so
max(0, bound) is still a lower bound); raw values are kept per seed.

Reported beside the paper's number (all from the same estimator):
  * each term, per critic seed, and a 95% t-interval of the MIG over critic seeds;
  * control "shuffled": both terms with the pairing destroyed (z permuted); about 0 when the estimator
    does not invent dependence;
  * control "other image": I(E_M; I_M') with M' *another* image of M's subject. The paper's I(E_M; I_M)
    pairs two codes of the *same* image, so it counts every per-image factor they share (pose, light,
    noise), not only identity; I(E_M; I_M') keeps identity and drops the per-image factors, and
    ``mig_other_image`` = I(E_M; E_N) - I(E_M; I_M') is the identity-only reading.
Unlike the standard MIG (``ferkit.metrics.mig``) it uses no ground-truth factors, no discretisation and
no entropy normalisation, so its values are not comparable with the paper's numbers (+0.42..0.59).
"""

from __future__ import annotations

import numpy as np

CRITIC_BOUND = 5.0          # b: |U| <= b, so every term is <= 2b nats


def dv_mutual_information(x: np.ndarray, z: np.ndarray, seed: int = 0, steps: int = 500,
                          batch_size: int = 256, hidden: int = 512, lr: float = 1e-3,
                          bound: float = CRITIC_BOUND, permutations: int = 8) -> float:
    """Held-out DV lower bound on I(x; z) in nats from a fresh bounded critic (train half / score half).

    x: (N, Dx), z: (N, Dz) paired rows, N >= 8. Returns the raw held-out estimate (it may be slightly
    negative when there is no dependence).
    """
    import torch

    x = np.asarray(x, dtype=np.float32)
    z = np.asarray(z, dtype=np.float32)
    if x.ndim != 2 or z.ndim != 2 or len(x) != len(z):
        raise ValueError(f"x and z must be paired 2-D arrays, got shapes {x.shape} and {z.shape}")
    if len(x) < 8:
        raise ValueError(f"modified MIG needs at least 8 paired embeddings, got {len(x)}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen).numpy()
    half = len(x) // 2
    tr, ev = order[:half], order[half:]

    def standardise(a: np.ndarray) -> torch.Tensor:
        mu, sd = a[tr].mean(0), a[tr].std(0) + 1e-6
        return torch.from_numpy((a - mu) / sd)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small MLP: one thread is fastest, and avoids OpenMP spinning on shared CPUs
    try:
        xt, zt = standardise(x), standardise(z)
        critic = _fit_critic(xt[tr], zt[tr], seed, steps, batch_size, hidden, lr, bound, gen)
        return _score(critic, xt[ev], zt[ev], bound, permutations, gen)
    finally:
        torch.set_num_threads(threads)


def _bounded(scores, bound: float):
    """The bounded critic family: b * tanh(U / b), |result| <= b."""
    import torch

    return bound * torch.tanh(scores / bound)


def _fit_critic(x, z, seed: int, steps: int, batch_size: int, hidden: int, lr: float, bound: float, gen):
    """A VectorStatistics critic trained to maximise the bounded DV bound on (x, z) rows."""
    import torch

    from ferkit.losses.mi import dv_bound, marginal_permutation
    from ferkit.models.critics import VectorStatistics

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = VectorStatistics(x.shape[1], z.shape[1], hidden)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    bs = min(batch_size, len(x))
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=gen)[:bs]
        perm = marginal_permutation(bs, "permute", x.device, gen)
        joint, marg = critic.joint_and_marginal(x[idx], z[idx], perm)                  # (bs,), (bs,)
        loss = -dv_bound(_bounded(joint, bound), _bounded(marg, bound))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return critic


def _score(critic, x, z, bound: float, permutations: int, gen) -> float:
    """DV bound on held-out rows, the marginal term pooled over ``permutations`` seeded permutations."""
    import math

    import torch

    n = len(x)
    with torch.no_grad():
        joint = _bounded(critic(x, z), bound)                                          # (n,)
        marg = torch.cat([_bounded(critic(x, z[torch.randperm(n, generator=gen)]), bound)
                          for _ in range(permutations)])                               # (K n,)
        return float(joint.mean() - (torch.logsumexp(marg, 0) - math.log(marg.numel())))


def other_image_rows(subjects: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each row, another row with the same subject (uniformly, seeded); -1 where the subject is unknown
    (< 0) or has a single row."""
    s = np.asarray(subjects, dtype=np.int64).ravel()
    rng = np.random.default_rng(seed)
    out = np.full(len(s), -1, dtype=np.int64)
    for subj in np.unique(s[s >= 0]):
        idx = np.flatnonzero(s == subj)
        if idx.size < 2:
            continue
        pick = rng.integers(0, idx.size - 1, size=idx.size)                          # skip own position
        out[idx] = idx[np.where(pick >= np.arange(idx.size), pick + 1, pick)]
    return out


def _interval(values: list[float]) -> list[float]:
    """95% t-interval of the mean of ``values`` (the single value twice when there is one)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return [float(v.mean()), float(v.mean())]
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return [float(v.mean() - half), float(v.mean() + half)]


def modified_mig(e_m: np.ndarray, e_n: np.ndarray, i_m: np.ndarray, subjects: np.ndarray | None = None,
                 seeds: tuple[int, ...] = (0, 1, 2), steps: int = 500, hidden: int = 512,
                 bound: float = CRITIC_BOUND) -> dict:
    """I(E_M; E_N) - I(E_M; I_M) from paired expression codes (E_M, E_N of same-expression images) and M's
    identity code I_M, all (N, d); ``subjects`` (N,) of M enables the "other image" control.

    Returns {"mig", "i_exp_exp", "i_exp_id", "mig_std", "interval" (95% over critic seeds), "controls":
    {"shuffled_exp_exp", "shuffled_exp_id", "i_exp_id_other_image", "mig_other_image", ...}, "per_seed",
    "num_pairs", "unit": "nats", "estimator"} (see the module docstring).
    """
    e_m, e_n, i_m = (np.asarray(a, dtype=np.float32) for a in (e_m, e_n, i_m))
    other = None if subjects is None else other_image_rows(subjects)
    keep = None if other is None else np.flatnonzero(other >= 0)
    if keep is not None and keep.size < 8:
        keep = None
    per_seed = []
    for s in seeds:
        def mi(x, z, _s=s):
            return dv_mutual_information(x, z, seed=_s, steps=steps, hidden=hidden, bound=bound)

        shuffle = np.random.default_rng(1000 + s).permutation(len(e_m))
        row = {"seed": s, "raw_i_exp_exp": mi(e_m, e_n), "raw_i_exp_id": mi(e_m, i_m),
               "raw_shuffled_exp_exp": mi(e_m, e_n[shuffle]), "raw_shuffled_exp_id": mi(e_m, i_m[shuffle])}
        if keep is not None:
            row["raw_i_exp_id_other_image"] = mi(e_m[keep], i_m[other[keep]])
        for k in [k for k in row if k.startswith("raw_")]:
            row[k[4:]] = max(0.0, row[k])
        row["mig"] = row["i_exp_exp"] - row["i_exp_id"]
        if keep is not None:
            row["mig_other_image"] = row["i_exp_exp"] - row["i_exp_id_other_image"]
        per_seed.append(row)

    def mean(key: str) -> float:
        return float(np.mean([p[key] for p in per_seed]))

    controls = {k: mean(k) for k in ("shuffled_exp_exp", "shuffled_exp_id")}
    if keep is not None:
        controls.update({"i_exp_id_other_image": mean("i_exp_id_other_image"),
                         "mig_other_image": mean("mig_other_image"),
                         "mig_other_image_interval": _interval([p["mig_other_image"] for p in per_seed]),
                         "other_image_pairs": int(keep.size)})
    else:
        controls["other_image_reason"] = "subjects unknown, or no subject with two images"
    migs = [p["mig"] for p in per_seed]
    d = e_m.shape[1] + max(e_n.shape[1], i_m.shape[1])
    return {"mig": mean("mig"), "i_exp_exp": mean("i_exp_exp"), "i_exp_id": mean("i_exp_id"),
            "mig_std": float(np.std(migs)), "interval": _interval(migs), "controls": controls,
            "per_seed": per_seed, "num_pairs": int(len(e_m)), "unit": "nats",
            "estimator": f"held-out DV, bounded critic {bound:g}*tanh(MLP({d}->{hidden}->{hidden}->1)/{bound:g}), "
                         f"{steps} Adam steps on half, scored on the other half, {len(seeds)} critic seeds"}
