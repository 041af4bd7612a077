"""What DICE-FER's stages decide between epochs: stage 1's collapse warnings and plateau stop, stage 3's fit
of the classifier to convergence. Pure of the engine: the method feeds them numbers and tensors.

Stage1Monitor (METHODS.md A.9): per epoch, the mean MI estimate (global + local, nats) and the mean
per-dimension batch variance of E. It warns, with what to try, when E's variance falls below
``collapse_var`` (the code is becoming a constant: delta * L1 wins while the MI gradient is noise) or when
the epoch's MI estimate stays within ``collapse_mi`` nats of 0; it declares stage 1 done when the MI has
not risen by more than ``tol`` (relative) for ``patience`` epochs, once it is above ``collapse_mi``.

converge_classifier: the stage-3 classifier trained on frozen codes until its loss on a held-out part of
them (subject-disjoint where subjects are known) stops improving, capped at ``max_steps``; then refit on
all codes for the best number of steps. Inputs are standardised and the standardisation is folded into the
first linear layer, so the classifier keeps taking raw E.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def grad_norm(module: nn.Module) -> float:
    """L2 norm of the gradients a backward left on ``module``'s parameters (after clipping, if any)."""
    grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def code_stats(e_m: torch.Tensor, e_n: torch.Tensor) -> dict[str, float]:
    """Per-dimension batch variance of the expression codes (mean and minimum over dims; E_M and E_N)."""
    v_m, v_n = e_m.detach().float().var(0), e_n.detach().float().var(0)        # (d,) each
    return {"e_var_m": float(v_m.mean()), "e_var_n": float(v_n.mean()),
            "e_var_min": float(torch.minimum(v_m.min(), v_n.min()))}


def code_pull(mi: torch.Tensor, l1_term: torch.Tensor, e_m: torch.Tensor, e_n: torch.Tensor) -> dict[str, float]:
    """Norms of the gradients on the codes (E_M, E_N) from the MI part and from delta * L1: while the first
    is below the second, the step mostly pulls E_M and E_N together (towards a constant code)."""
    if not (e_m.requires_grad and mi.requires_grad):
        return {}
    g_mi = torch.autograd.grad(mi, [e_m, e_n], retain_graph=True, allow_unused=True)
    g_l1 = torch.autograd.grad(l1_term, [e_m, e_n], retain_graph=True, allow_unused=True)

    def norm(gs) -> float:
        return float(torch.stack([g.float().norm() for g in gs if g is not None]).norm()) if any(
            g is not None for g in gs) else 0.0
    return {"code_grad_mi": norm(g_mi), "code_grad_l1": norm(g_l1)}


TRY = ("try model.critic_form=separable with model.marginal=all_pairs (the defaults; the concatenation critic "
       "is slow to find a weak dependence), model.delta_warmup_steps (delta off while the MI estimate learns), "
       "a higher train.lr or more stage-1 epochs, a larger train.batch_size, or an identity-pretrained start "
       "(train.backbone_weights)")


class Stage1Monitor:
    """Per-epoch collapse warnings and the plateau stop of stage 1 (see module docstring)."""

    def __init__(self, collapse_var: float = 1e-3, collapse_mi: float = 0.05, patience: int = 0,
                 tol: float = 0.02):
        self.collapse_var, self.collapse_mi, self.patience, self.tol = collapse_var, collapse_mi, patience, tol
        self.history: list[dict] = []          # per epoch: {"epoch", "mi", "e_var"}
        self.warnings: list[str] = []
        self.done: str | None = None
        self._mi: list[float] = []
        self._var: list[float] = []

    def add(self, mi: float, e_var: float) -> None:
        if math.isfinite(mi) and math.isfinite(e_var):
            self._mi.append(mi)
            self._var.append(e_var)

    def end_epoch(self, epoch: int, budget: int) -> list[tuple[str, str]]:
        """Close epoch ``epoch`` (0-based) of ``budget``; returns the (level, message) pairs it raised,
        level "warning" (collapse) or "info" (why stage 1 ended)."""
        if not self._mi:
            return []
        mi, var = float(np.mean(self._mi)), float(np.mean(self._var))
        self._mi, self._var = [], []
        self.history.append({"epoch": epoch + 1, "mi": mi, "e_var": var})
        out = []
        if var < self.collapse_var:
            out.append(("warning", f"stage 1 epoch {epoch + 1}: the expression code is collapsing (mean per-dimension "
                       f"variance of E {var:.2g} < {self.collapse_var:g}): delta * L1 is winning over an MI "
                       f"estimate that carries no signal; {TRY}."))
        if abs(mi) < self.collapse_mi:
            out.append(("warning", f"stage 1 epoch {epoch + 1}: the MI estimate stayed at ~0 nats ({mi:.3f}, global + local) "
                       f"for the whole epoch: the statistics networks find no dependence between an image and "
                       f"its partner's code yet; {TRY}."))
        if self.done is None and self._plateaued():
            best = max(self.history, key=lambda h: h["mi"])
            self.done = (f"MI plateaued at {mi:.3f} nats (best {best['mi']:.3f} at epoch {best['epoch']}; no rise "
                         f"above {self.tol:.0%} in the last {self.patience} epochs) after {epoch + 1} of {budget} "
                         f"epochs")
            out.append(("info", f"stage 1 done: {self.done}."))
        elif self.done is None and epoch + 1 >= budget:
            trend = mi - self.history[max(0, len(self.history) - 1 - max(self.patience, 1))]["mi"]
            out.append(("info", f"stage 1 used its whole budget of {budget} epochs; MI at the end {mi:.3f} nats "
                       f"({'still rising' if trend > 0 else 'not rising'}, {trend:+.3f} over the last "
                       f"{min(len(self.history) - 1, max(self.patience, 1))} epochs)."))
        self.warnings.extend(msg for level, msg in out if level == "warning")
        return out

    def _plateaued(self) -> bool:
        p = self.patience
        if p <= 0 or len(self.history) <= p:
            return False
        before = max(h["mi"] for h in self.history[:-p])
        recent = max(h["mi"] for h in self.history[-p:])
        return before > self.collapse_mi and recent <= before + self.tol * abs(before)

    def state(self) -> dict:
        return {"history": self.history, "warnings": self.warnings, "done": self.done}

    def load(self, state: dict) -> None:
        self.history = list(state.get("history", []))
        self.warnings = list(state.get("warnings", []))
        self.done = state.get("done")


def _holdout(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of held-out rows: whole groups (subjects) where >= 3 are known, else random rows."""
    known = np.unique(groups[groups >= 0])
    if known.size >= 3:
        k = max(1, int(round(fraction * known.size)))
        return np.isin(groups, rng.choice(known, k, replace=False))
    return rng.random(len(groups)) < fraction


def _train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, batch: int,
           gen: torch.Generator, val: tuple[torch.Tensor, torch.Tensor] | None = None, every: int = 25,
           patience: int = 10) -> dict:
    """Adam on minibatches; with ``val``, early stopping on its cross-entropy (best weights restored)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best = {"loss": math.inf, "step": 0, "state": copy.deepcopy(net.state_dict())}
    stale = 0
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=gen).to(x.device)   # (batch,)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if val is not None and (step % every == 0 or step == steps):
            with torch.no_grad():
                v = float(F.cross_entropy(net(val[0]), val[1]))
            if v < best["loss"] - 1e-4:
                best, stale = {"loss": v, "step": step, "state": copy.deepcopy(net.state_dict())}, 0
            else:
                stale += 1
                if stale >= patience:
                    break
    if val is not None:
        net.load_state_dict(best["state"])
    return {"steps": step, "best_step": best["step"], "val_loss": best["loss"]}


def _fold_standardisation(net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make net(e) equal the trained net((e - mean) / std) by rewriting its first Linear layer."""
    first = next(m for m in net.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.bias -= first.weight @ (mean / std)
        first.weight /= std


def converge_classifier(net: nn.Module, codes: torch.Tensor, labels: torch.Tensor, groups: np.ndarray,
                        max_steps: int = 4000, patience: int = 10, holdout: float = 0.2, lr: float = 1e-3,
                        batch: int = 256, seed: int = 0) -> dict:
    """Fit ``net`` (codes (N, d) -> logits) to convergence (see module docstring); returns what it did.
    The codes may sit on the host (DICE-FER keeps them there between epochs): they move to ``net``'s device."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)                                     # on the host, as the RNG draws
    device = next(net.parameters()).device
    x = codes.float().to(device)
    y = labels.long().to(device)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std                                                          # (N, d)
    start = copy.deepcopy(net.state_dict())
    held = torch.from_numpy(_holdout(np.asarray(groups), holdout, rng))
    if held.all() or not held.any():
        held = torch.zeros(len(x), dtype=torch.bool)
        held[torch.randperm(len(x), generator=gen)[: max(1, len(x) // 5)]] = True
    held = held.to(device)
    search = _train(net, z[~held], y[~held], max_steps, lr, batch, gen, val=(z[held], y[held]), patience=patience)
    stopped = "held-out loss stopped improving" if search["steps"] < max_steps else f"cap of {max_steps} steps"
    net.load_state_dict(start)                                                    # refit on every code
    _train(net, z, y, max(1, search["best_step"]), lr, batch, gen)
    _fold_standardisation(net, mean, std)
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    return {"rows": len(x), "held_out_rows": int(held.sum()), "search_steps": search["steps"],
            "refit_steps": max(1, search["best_step"]), "held_out_loss": search["val_loss"],
            "train_accuracy": acc, "stopped": stopped}
