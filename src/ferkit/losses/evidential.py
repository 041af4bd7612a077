"""Evidential deep learning (subjective logic over a Dirichlet), as UA-FER uses it.

Notation (Sensoy et al., NeurIPS 2018; UA-FER, Neurocomputing 2025, METHODS.md B.1-B.2): scores s (B, C) ->
evidence e = g(s) >= 0 (g = ReLU, exp or softplus), Dirichlet parameters alpha = e + 1, strength
S = sum_c alpha_c, expected probabilities p = alpha / S, belief b = e / S, uncertainty u = C / S, so
sum_c b_c + u = 1. Everything here runs in float32 outside autocast (``fp32`` decorator).

The classification losses are those of UA-FER's ``utils/edl_loss.py`` (itself from DEAR, ICCV 2021):
mse (the one the released code runs), log and digamma (Type-II maximum likelihood and Bayes risk of
cross-entropy) and the KL regulariser towards Dir(1) with annealing. UA-FER's L_RUC has two readings
(METHODS.md B.9): ``euc_loss``, the per-sample term the released code calls ``loss_avu`` (DEAR's EUC), and
``avuc_loss``, the batch-level AvUC of Krishnan & Tickoo (NeurIPS 2020), which the paper variant uses.
``ds_combine`` is the Dempster-Shafer reduced combination of two opinions of TMC (Han et al., ICLR 2021,
``DS_Combin_two``), the paper figure's "Fusion" block.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

EPS = 1e-10


def fp32(fn):
    """Run ``fn`` outside autocast with its tensor arguments cast to float32."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        kwargs = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                  for k, v in kwargs.items()}
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*args, **kwargs)
    return wrapper


def evidence_from_scores(scores: torch.Tensor, kind: str = "relu") -> torch.Tensor:
    """e = ReLU(s) | exp(clamp(s, -10, 10)) | softplus(s); (B, C) -> (B, C), float32."""
    s = scores.float()
    if kind == "relu":
        return F.relu(s)
    if kind == "exp":
        return torch.exp(torch.clamp(s, -10, 10))
    if kind == "softplus":
        return F.softplus(s)
    raise ValueError(f"evidence must be relu, exp or softplus, got {kind!r}")


@fp32
def dirichlet(evidence: torch.Tensor) -> dict[str, torch.Tensor]:
    """Opinion of a Dirichlet with alpha = e + 1: alpha (B,C), strength S (B,1), probs p = alpha/S (B,C),
    belief b = e/S (B,C), uncertainty u = C/S (B,)."""
    alpha = evidence + 1.0                                     # (B, C)
    strength = alpha.sum(dim=1, keepdim=True)                  # (B, 1)
    num_classes = evidence.shape[1]
    return {"evidence": evidence, "alpha": alpha, "strength": strength, "probs": alpha / strength,
            "belief": evidence / strength, "uncertainty": (num_classes / strength).squeeze(1)}


@fp32
def ds_combine(belief1: torch.Tensor, u1: torch.Tensor, belief2: torch.Tensor,
               u2: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dempster-Shafer reduced combination of two opinions (TMC ``DS_Combin_two``).

    conflict C = sum_{i != j} b1_i b2_j;  b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - C);
    u = u1 u2 / (1 - C);  then S = K / u, e = b S, alpha = e + 1.
    Shapes: beliefs (B, K), uncertainties (B,). Returns the fused opinion as ``dirichlet`` does.
    """
    num_classes = belief1.shape[1]
    u1, u2 = u1.unsqueeze(1), u2.unsqueeze(1)                                 # (B, 1)
    outer = belief1.unsqueeze(2) * belief2.unsqueeze(1)                       # (B, K, K)
    conflict = outer.sum(dim=(1, 2)) - torch.diagonal(outer, dim1=1, dim2=2).sum(dim=1)   # (B,)
    scale = (1.0 - conflict).unsqueeze(1)                                     # (B, 1)
    belief = (belief1 * belief2 + belief1 * u2 + belief2 * u1) / scale        # (B, K)
    u = u1 * u2 / scale                                                       # (B, 1)
    strength = num_classes / u                                                # (B, 1)
    evidence = belief * strength                                              # (B, K)
    alpha = evidence + 1.0
    return {"evidence": evidence, "alpha": alpha, "strength": strength, "probs": alpha / strength,
            "belief": belief, "uncertainty": u.squeeze(1)}


def annealing_coef(epoch: float, total_epochs: int, method: str = "step", step: float = 10.0,
                   start: float = 0.01) -> float:
    """lambda_t: 'step' = min(1, epoch / step); 'exp' = start * exp(-ln(start) * epoch / total_epochs)."""
    if method == "step":
        return min(1.0, epoch / step)
    if method == "exp":
        return start * math.exp(-math.log(start) / total_epochs * epoch)
    raise ValueError(f"annealing must be step or exp, got {method!r}")


@fp32
def kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Dir(alpha) || Dir(1)) per sample, (B, C) -> (B,).

    = ln Gamma(S) - sum ln Gamma(alpha_c) - ln Gamma(C) + sum_c (alpha_c - 1)(psi(alpha_c) - psi(S)).
    """
    num_classes = alpha.shape[1]
    strength = alpha.sum(dim=1)                                                       # (B,)
    ln_b = torch.lgamma(strength) - torch.lgamma(alpha).sum(dim=1)                    # (B,)
    ln_b_uniform = -math.lgamma(num_classes)
    digamma_term = ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength).unsqueeze(1))).sum(dim=1)
    return digamma_term + ln_b + ln_b_uniform


@fp32
def edl_mse(alpha: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sensoy's squared-error EDL loss per sample: err = sum_c (y_c - p_c)^2 (the term UA-FER's released
    code optimises), var = sum_c p_c (1 - p_c) / (S + 1). alpha (B, C), target (B,) -> two (B,) tensors."""
    y = F.one_hot(target, alpha.shape[1]).float()                                     # (B, C)
    strength = alpha.sum(dim=1, keepdim=True)                                          # (B, 1)
    p = alpha / strength
    err = ((y - p) ** 2).sum(dim=1)
    var = (alpha * (strength - alpha) / (strength * strength * (strength + 1))).sum(dim=1)
    return {"err": err, "var": var}


@fp32
def edl_nll(alpha: torch.Tensor, target: torch.Tensor, kind: str = "log") -> torch.Tensor:
    """Per-sample EDL classification loss sum_c y_c (f(S) - f(alpha_c)), f = log (Type-II ML) or
    digamma (Bayes risk of cross-entropy). alpha (B, C), target (B,) -> (B,)."""
    func = {"log": torch.log, "digamma": torch.digamma}[kind]
    strength = alpha.sum(dim=1)                                                        # (B,)
    return func(strength) - func(alpha.gather(1, target.unsqueeze(1)).squeeze(1))


@fp32
def euc_loss(alpha: torch.Tensor, target: torch.Tensor, coef: float, disentangle: bool = False) -> torch.Tensor:
    """The released code's ``loss_avu`` (DEAR's EUC, UA-FER's ``edl_loss.py``), per sample (B,).

    p_hat = max_c alpha_c / S, u = C / S, match = 1[argmax = y];
    L = coef * match * (-p_hat log(1 - u + eps)) + (1 - coef) * (1 - match) * (-(1 - p_hat) log(u + eps));
    with ``disentangle``: -log(p_hat (1 - u) + eps) and -log((1 - p_hat) u + eps) instead. Note that with
    'step' annealing the wrong-prediction half is off once coef reaches 1, and that on a wrong prediction with
    u < 1/e its gradient adds evidence to the wrong class (d/de_max = (S - alpha_max)/S^2 (log u + 1);
    tests/test_evidential.py).
    """
    strength = alpha.sum(dim=1)                                                        # (B,)
    u = alpha.shape[1] / strength
    p_hat, pred = (alpha / strength.unsqueeze(1)).max(dim=1)                           # (B,), (B,)
    match = (pred == target).float()
    if disentangle:
        acc_uncertain = -torch.log(p_hat * (1 - u) + EPS)
        inacc_certain = -torch.log((1 - p_hat) * u + EPS)
    else:
        acc_uncertain = -p_hat * torch.log(1 - u + EPS)
        inacc_certain = -(1 - p_hat) * torch.log(u + EPS)
    return coef * match * acc_uncertain + (1 - coef) * (1 - match) * inacc_certain


@fp32
def avuc_loss(alpha: torch.Tensor, target: torch.Tensor, threshold: float | None = None,
              detach_confidence: bool = True) -> torch.Tensor:
    """Accuracy-versus-uncertainty calibration loss (Krishnan & Tickoo, NeurIPS 2020), one value per batch.

    With p_hat = max_c alpha_c / S, u = C / S (the Dirichlet uncertainty in place of their predictive entropy)
    and the threshold u_th, the soft counts over the batch are
        n_AC = sum_{right, u <= u_th} p_hat (1 - tanh u),  n_AU = sum_{right, u > u_th} p_hat tanh u,
        n_IC = sum_{wrong, u <= u_th} (1 - p_hat)(1 - tanh u),  n_IU = sum_{wrong, u > u_th} (1 - p_hat) tanh u,
    and L_AvUC = log(1 + (n_AU + n_IC) / (n_AC + n_IU)) = -log AvU.

    [INFERRED] ``threshold`` None: u_th is the batch's mean u (no gradient), since neither paper fixes it for
    a Dirichlet u. [INFERRED] ``detach_confidence`` (default): the p_hat weights carry no gradient, so the loss
    moves u only: up on wrong predictions, down on right ones, in all four cells. With the gradient through
    p_hat as well, a wrong prediction with u below about 0.7 in the "certain" cell gets *more* evidence for
    its wrong class (d/de_max of (1 - p_hat)(1 - tanh u) < 0 there; tests/test_evidential.py).
    alpha (B, C), target (B,) -> scalar.
    """
    strength = alpha.sum(dim=1)                                                        # (B,)
    u = alpha.shape[1] / strength                                                      # (B,)
    p_hat, pred = (alpha / strength.unsqueeze(1)).max(dim=1)                           # (B,), (B,)
    conf = p_hat.detach() if detach_confidence else p_hat
    right = pred == target
    u_th = u.detach().mean() if threshold is None else torch.as_tensor(threshold, dtype=u.dtype, device=u.device)
    certain = u <= u_th
    t = torch.tanh(u)
    zero = u.new_zeros(())
    n_ac = torch.where(right & certain, conf * (1 - t), zero).sum()
    n_au = torch.where(right & ~certain, conf * t, zero).sum()
    n_ic = torch.where(~right & certain, (1 - conf) * (1 - t), zero).sum()
    n_iu = torch.where(~right & ~certain, (1 - conf) * t, zero).sum()
    return torch.log1p((n_au + n_ic) / (n_ac + n_iu + EPS))


RUC_FORMS = ("avuc", "euc")


def evidential_loss(alpha: torch.Tensor, target: torch.Tensor, loss_type: str = "mse", with_kl: bool = False,
                    coef: float = 0.0, ruc: str | None = None, ruc_threshold: float | None = None,
                    detach_confidence: bool = True, euc_disentangle: bool = False) -> dict[str, torch.Tensor]:
    """The batch-mean EDL terms, by name.

    "cls": mse err | log | digamma classification loss; "kl": coef * KL(Dir(alpha~) || Dir(1)) with
    alpha~ = (alpha - 1)(1 - y) + 1 on the mse path and alpha (1 - y) + y (the same numbers) on the
    log/digamma path; "ruc" (when ``ruc`` is given): ``avuc_loss`` or ``euc_loss`` (the latter on log/digamma
    only, as in the reference). alpha (B, C), target (B,).
    """
    y = F.one_hot(target, alpha.shape[1]).to(alpha.dtype)                            # (B, C)
    out: dict[str, torch.Tensor] = {}
    if loss_type == "mse":
        out["cls"] = edl_mse(alpha, target)["err"].mean()
        kl_alpha = (alpha - 1) * (1 - y) + 1
    elif loss_type in ("log", "digamma"):
        out["cls"] = edl_nll(alpha, target, loss_type).mean()
        kl_alpha = alpha * (1 - y) + y
    else:
        raise ValueError(f"loss_type must be mse, log or digamma, got {loss_type!r}")
    if with_kl:
        out["kl"] = coef * kl_to_uniform(kl_alpha).mean()
    if ruc == "avuc":
        out["ruc"] = avuc_loss(alpha, target, ruc_threshold, detach_confidence)
    elif ruc == "euc":
        if loss_type == "mse":
            raise ValueError("the EUC term needs loss_type log or digamma (as in UA-FER's edl_loss.py)")
        out["ruc"] = euc_loss(alpha, target, coef, euc_disentangle).mean()
    elif ruc is not None:
        raise ValueError(f"ruc must be avuc, euc or None, got {ruc!r}")
    return out
