"""Mutual-information lower bounds from critic scores (DICE-FER Eq. 3-5), computed in float32.

Notation: a critic (statistics network) U scores a pair (x, z). Joint scores are U(x_b, z_b) for the B
pairs of a batch; marginal scores are U(x_b, z_pi(b)) with pi a within-batch permutation, i.e. samples of
p(x)p(z). Local critics give a score per feature-map location: shapes (B, h, w); the bound is taken per
location i over the batch and then summed or averaged over locations (DICE-FER Eq. 5 writes the sum).

Estimators (all in nats):
  Donsker-Varadhan (MINE; Belghazi et al. 2018; the DICE-FER paper's choice, Eq. 3)
      I_DV = E_p(x,z)[U] - log E_p(x)p(z)[exp U]
           ~ (1/B) sum_b U(x_b, z_b) - (logsumexp_b U(x_b, z_pi(b)) - log B)
  Jensen-Shannon (DIM; Hjelm et al. 2019; Sanchez et al. 2020 use it)
      I_JSD = E_p(x,z)[-softplus(-U)] - E_p(x)p(z)[softplus(U)]   (= 2 JSD - 2 log 2 at the optimum, <= 0)
  InfoNCE (van den Oord et al. 2018), from all B x B scores S[i, j] = U(x_i, z_j)
      I_NCE = (1/B) sum_i (S[i, i] - logsumexp_j S[i, j]) + log B                     (<= log B)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ferkit.errors import ConfigError

ESTIMATORS = ("dv", "jsd", "infonce")


def log_mean_exp(scores: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log((1/n) sum exp(scores)) along ``dim``, computed stably as logsumexp - log n (float32)."""
    scores = scores.float()
    return torch.logsumexp(scores, dim=dim) - math.log(scores.shape[dim])


def dv_bound(joint: torch.Tensor, marginal: torch.Tensor, ema: DVEma | None = None) -> torch.Tensor:
    """Donsker-Varadhan bound per location: joint.mean(0) - log_mean_exp(marginal, 0).

    joint, marginal: (B,) or (B, h, w) scores. Returns () or (h, w) in nats. With ``ema`` (MINE's bias
    correction), the value is unchanged but the gradient of the log term uses an exponential moving
    average of E[exp U] as denominator: grad = E[exp(U) grad U] / EMA(E[exp U]).
    """
    joint, marginal = joint.float(), marginal.float()  # (B, ...) each
    log_term = log_mean_exp(marginal, 0)                # (...)
    if ema is not None:
        log_term = ema.corrected(marginal, log_term)
    return joint.mean(0) - log_term


def jsd_bound(joint: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon MI estimator per location: E_joint[-softplus(-U)] - E_marginal[softplus(U)] (<= 0)."""
    joint, marginal = joint.float(), marginal.float()  # (B, ...) each
    return (-F.softplus(-joint)).mean(0) - F.softplus(marginal).mean(0)


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE per location from pairwise scores (B, B[, h, w]), rows = x, columns = z; <= log B."""
    scores = scores.float()                                          # (B, B, ...)
    b = scores.shape[0]
    diag = torch.diagonal(scores, dim1=0, dim2=1)                    # (..., B)
    diag = diag.movedim(-1, 0)                                       # (B, ...)
    return (diag - torch.logsumexp(scores, dim=1)).mean(0) + math.log(b)


class DVEma:
    """MINE's moving average of E[exp U] for the bias-corrected DV gradient (Belghazi et al. 2018, Sec. 3.2).

    State is log EMA per location, updated each call with rate ``alpha``; the first call initialises it.
    """

    def __init__(self, alpha: float = 0.01):
        self.alpha = alpha
        self.log_ema: torch.Tensor | None = None

    def corrected(self, marginal: torch.Tensor, log_term: torch.Tensor) -> torch.Tensor:
        m = marginal.detach().amax(0)                                     # (...) shift for stability
        mean_exp = torch.exp(marginal - m).mean(0)                        # (...) E[exp(U - m)], has grad
        log_batch = torch.log(mean_exp.detach()) + m                      # (...) log E[exp U] of this batch
        if self.log_ema is None or self.log_ema.shape != log_batch.shape:
            self.log_ema = log_batch
        else:
            self.log_ema = torch.logaddexp(self.log_ema + math.log1p(-self.alpha), log_batch + math.log(self.alpha))
        scale = torch.exp(m - self.log_ema)                               # (...) e^m / EMA
        return log_term.detach() + (mean_exp - mean_exp.detach()) * scale


def reduce_locations(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Sum (DICE-FER Eq. 5) or mean (DIM, Zouitine) of per-location bounds (h, w) -> (); () passes through."""
    if values.dim() == 0:
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    raise ConfigError(f"Local MI reduction must be 'sum' or 'mean', got {reduction!r}.")


def all_pair_scores(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint and marginal samples from pairwise scores (B, B[, h, w]): the diagonal (B, ...) and every
    off-diagonal pair (B(B-1), ...), i.e. all B(B-1) product-of-marginals samples a batch holds instead of
    one permutation's B (the same DV/JSD bound, a lower-variance estimate of its log term)."""
    b = scores.shape[0]
    diag = torch.diagonal(scores, dim1=0, dim2=1).movedim(-1, 0)        # (B, ...)
    off = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    return diag, scores[off]                                             # boolean mask over the first two dims


def marginal_permutation(batch: int, mode: str, device: torch.device,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices pi for marginal samples z_pi(b): "permute" (uniform random permutation, MINE) or
    "roll" (shift by one, a derangement, as Zouitine rolls the feature maps)."""
    if mode == "permute":
        return torch.randperm(batch, generator=generator).to(device)
    if mode == "roll":
        return torch.roll(torch.arange(batch, device=device), 1)
    raise ConfigError(f"Marginal sampling must be 'permute', 'roll' or 'all_pairs', got {mode!r}.")


def critic_mi(critic: Callable, x: torch.Tensor, z: torch.Tensor, estimator: str = "dv",
              reduction: str = "sum", marginal: str = "permute", ema: DVEma | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The MI lower bound between x (features (B, ...)) and z (codes (B, d)) under ``critic``, in nats.

    ``critic`` must offer ``joint_and_marginal(x, z, perm) -> (joint, marginal)`` and ``pairwise(x, z)``
    (see ``ferkit.models.critics``). Runs outside autocast with float32 inputs (DESIGN: MI in fp32).
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"MI estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}.")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, z = x.float(), z.float()
        if estimator == "infonce":
            per_loc = infonce_bound(critic.pairwise(x, z))                 # (...)
        elif marginal == "all_pairs":
            joint, marg = all_pair_scores(critic.pairwise(x, z))           # (B, ...), (B(B-1), ...)
            per_loc = dv_bound(joint, marg, ema) if estimator == "dv" else jsd_bound(joint, marg)
        else:
            perm = marginal_permutation(x.shape[0], marginal, x.device, generator)
            joint, marg = critic.joint_and_marginal(x, z, perm)            # (B, ...) each
            per_loc = dv_bound(joint, marg, ema) if estimator == "dv" else jsd_bound(joint, marg)
        return reduce_locations(per_loc, reduction)
