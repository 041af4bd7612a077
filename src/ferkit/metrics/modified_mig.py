"""DICE-FER's modified MIG: MIG = I(E_M; E_N) - I(E_M; I_M), in nats (METHODS.md A.4, [INFERRED] estimator).

The paper gives the quantity but not its estimator. ferkit follows the recommended reconstruction: for each
pair of embeddings a *fresh* Donsker-Varadhan critic U(x, z) = MLP([x; z]) (Linear(d_x + d_z = 128, 512)
-> ReLU -> Linear(512, 512) -> ReLU -> Linear(512, 1)) is trained on one half of the held-out embeddings
(seeded split) and the DV bound

    I_DV = (1/n) sum_b U(x_b, z_b) - log((1/n) sum_b exp U(x_b, z_pi(b)))   (pi: a seeded permutation)

is evaluated on the other half, so the critic is not scored on the pairs it was fit to. A held-out DV value
below zero (an over-fit critic) is reported as 0: MI >= 0, so max(0, bound) is still a lower bound; the raw
values are kept in the details. Embeddings are
standardised per dimension with the training half's statistics (MI is invariant to that). The result is
averaged over ``seeds``. Unlike the standard MIG (``ferkit.metrics.mig``) it uses no ground-truth factors,
no discretisation and no entropy normalisation, so its values are not comparable with the paper's numbers.
"""

from __future__ import annotations

import numpy as np


def dv_mutual_information(x: np.ndarray, z: np.ndarray, seed: int = 0, steps: int = 500,
                          batch_size: int = 256, hidden: int = 512, lr: float = 1e-3) -> float:
    """DV lower bound on I(x; z) in nats from a fresh MLP critic (train half / evaluate half).

    x: (N, Dx), z: (N, Dz) paired rows, N >= 8. Returns the raw held-out DV estimate (it may be negative
    when there is no dependence and the critic over-fits its half).
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
        return _fit_and_score(standardise(x), standardise(z), tr, ev, seed, steps, batch_size, hidden, lr, gen)
    finally:
        torch.set_num_threads(threads)


def _fit_and_score(xt, zt, tr: np.ndarray, ev: np.ndarray, seed: int, steps: int, batch_size: int,
                   hidden: int, lr: float, gen) -> float:
    """Train a VectorStatistics critic with the DV bound on rows ``tr``; the DV bound on rows ``ev``."""
    import torch

    from ferkit.losses.mi import dv_bound, marginal_permutation
    from ferkit.models.critics import VectorStatistics

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = VectorStatistics(xt.shape[1], zt.shape[1], hidden)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    xtr, ztr = xt[tr], zt[tr]
    bs = min(batch_size, len(tr))
    for _ in range(steps):
        idx = torch.randperm(len(tr), generator=gen)[:bs]
        joint, marg = critic.joint_and_marginal(xtr[idx], ztr[idx], marginal_permutation(bs, "permute",
                                                                                         xtr.device, gen))
        loss = -dv_bound(joint, marg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        perm = marginal_permutation(len(ev), "permute", xt.device, gen)
        joint, marg = critic.joint_and_marginal(xt[ev], zt[ev], perm)
        return float(dv_bound(joint, marg))


def modified_mig(e_m: np.ndarray, e_n: np.ndarray, i_m: np.ndarray, seeds: tuple[int, ...] = (0, 1, 2),
                 steps: int = 500, hidden: int = 512) -> dict:
    """I(E_M; E_N) - I(E_M; I_M) from paired expression codes (E_M, E_N of same-expression images) and
    M's identity code I_M; all (N, 64). Returns {"mig", "i_exp_exp", "i_exp_id", "per_seed", "unit": "nats"}.
    """
    per_seed = []
    for s in seeds:
        ee = dv_mutual_information(e_m, e_n, seed=s, steps=steps, hidden=hidden)
        ei = dv_mutual_information(e_m, i_m, seed=s, steps=steps, hidden=hidden)
        per_seed.append({"seed": s, "i_exp_exp": max(0.0, ee), "i_exp_id": max(0.0, ei),
                         "mig": max(0.0, ee) - max(0.0, ei), "raw_i_exp_exp": ee, "raw_i_exp_id": ei})
    mean = {k: float(np.mean([p[k] for p in per_seed])) for k in ("mig", "i_exp_exp", "i_exp_id")}
    std = float(np.std([p["mig"] for p in per_seed]))
    return {**mean, "mig_std": std, "per_seed": per_seed, "num_pairs": int(len(e_m)), "unit": "nats",
            "estimator": f"DV critic MLP({np.shape(e_m)[1] + np.shape(e_n)[1]}->{hidden}->{hidden}->1), "
                         f"{steps} Adam steps on half, evaluated on the other half, {len(seeds)} seeds"}
