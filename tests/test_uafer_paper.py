"""UA-FER's paper variant: evidence that can grow, supervised branch opinions, AvUC whose gradient flags errors.

The direction tests take one small gradient step of L_RUC on the affinities of a batch and look at what it
did to each sample's fused opinion: on wrong predictions u must rise and the predicted (wrong) class's
probability fall; on right ones u must fall.
"""

import math

import pytest
import torch
from torch import nn

from ferkit.config import build_experiment
from ferkit.data import labels
from ferkit.engine.method import StepContext
from ferkit.losses.evidential import avuc_loss, dirichlet, edl_nll, evidence_from_scores, kl_to_uniform
from ferkit.methods.uafer import UAFERMethod
from ferkit.models.uafer import UAFERNet

C = 7


class _NoTower(nn.Module):
    """Stands in for the image tower where only the opinion head is exercised."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList()


def _head(tau: float, fusion: str = "ds") -> UAFERNet:
    return UAFERNet(_NoTower(), torch.zeros(C, 4), 0.5, 16, 0, fusion=fusion, evidence="softplus",
                    extractor="learnable", scale_init=tau)


def test_learnable_evidence_grows_with_the_margin_and_the_scale():
    """Flat affinities give z = 0, softplus evidence ln 2 per class: u = 1 / (1 + ln 2) per branch and the
    Dempster-Shafer fusion of two such opinions is u^2 / (1 - conflict). A peaked affinity gives less u,
    the less the larger tau is: the reverse of the released head, whose u is higher on the peaked score."""
    flat = torch.full((1, C), 0.3)
    peaked = flat.clone()
    peaked[0, 2] = 0.5
    u1 = 1 / (1 + math.log(2))
    b = math.log(2) / (C * (1 + math.log(2)))
    conflict = (C * b) ** 2 - C * b * b
    for tau in (5.0, 50.0):
        assert _head(tau).opinion(flat, flat)["uncertainty"].item() == pytest.approx(u1 ** 2 / (1 - conflict), rel=1e-5)
    u_peaked = [_head(tau).opinion(peaked, peaked)["uncertainty"].item() for tau in (5.0, 20.0, 80.0)]
    assert u_peaked[0] < u1 ** 2 / (1 - conflict) and u_peaked[0] > u_peaked[1] > u_peaked[2]
    # 0.112 (measured): far below C / (C + sqrt C) = 0.726, the least u the released head can give
    assert u_peaked[2] < 0.15
    released = UAFERNet(_NoTower(), torch.zeros(C, 4), 0.5, 16, 0)    # fixed ReLU(A / ||A||), score fusion
    assert released.opinion(peaked, peaked)["uncertainty"] > released.opinion(flat, flat)["uncertainty"]


def _step_effect(tau: float, spread: float, noise: float, seed: int):
    """One small descent step of AvUC (batch-mean threshold, stop-gradient confidence) on the affinities of
    512 samples whose two branches are correlated; returns (wrong, right, du, dp) over the samples whose
    branches agree with the fused prediction."""
    g = torch.Generator().manual_seed(seed)
    head = _head(tau)
    base = torch.randn(512, C, generator=g) * spread
    a_g = (base + noise * torch.randn(512, C, generator=g)).requires_grad_()
    a_l = (base + noise * torch.randn(512, C, generator=g)).requires_grad_()
    target = torch.randint(0, C, (512,), generator=g)
    out = head.opinion(a_g, a_l)
    pred = out["probs"].argmax(1)
    agree = (out["branches"]["global"]["probs"].argmax(1) == pred) & (out["branches"]["local"]["probs"].argmax(1) == pred)
    grad_g, grad_l = torch.autograd.grad(avuc_loss(out["alpha"], target), [a_g, a_l])
    eta = 1e-4 / max(grad_g.abs().max().item(), grad_l.abs().max().item())
    with torch.no_grad():
        after = head.opinion(a_g - eta * grad_g, a_l - eta * grad_l)
    du = after["uncertainty"] - out["uncertainty"]
    dp = (after["probs"] - out["probs"]).gather(1, pred[:, None])[:, 0]
    wrong = agree & (pred != target)
    return wrong, agree & (pred == target), du.detach(), dp.detach()


@pytest.mark.parametrize("tau,spread,noise", [(14.3, 0.05, 0.02), (14.3, 0.2, 0.05), (100.0, 0.05, 0.01)])
def test_ruc_raises_u_and_lowers_the_wrong_class_on_errors_and_lowers_u_on_right_ones(tau, spread, noise):
    for seed in range(2):
        wrong, right, du, dp = _step_effect(tau, spread, noise, seed)
        assert wrong.sum() > 100 and right.sum() > 10
        assert (du[wrong] > 0).all() and (dp[wrong] < 0).all()
        assert (du[right] < 0).all()


def _method(**model):
    cfg = build_experiment("uafer", train={"precision": "fp32", "epochs": 4, "lr": 1e-2},
                           model={"model_size": "tiny", "fix_layer": 1, "variant": "paper", **model})
    return UAFERMethod(cfg, labels.SYNTHFER, torch.device("cpu"))


def _batch(n=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 64, 64, generator=g)
    return {"image": x, "expression": torch.arange(n) % C, "image_teacher": torch.flip(x, dims=[3])}


def test_paper_step_supervises_every_opinion_and_trains_the_evidence_scale():
    m = _method()
    tau0 = m.net.evidence_scales().detach().clone()
    assert torch.allclose(tau0, torch.full((2,), 1 / 0.07), rtol=1e-4)   # the random CLIP's logit scale
    phase = m.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    ctx.iters_per_epoch, ctx.epoch = 1, 2
    b = _batch()
    with torch.no_grad():                                 # the terms the step must sum, recomputed by hand
        v_cls, v_loc = m.net(b["image"])
        out = m.net.opinion(*m.net.affinities(v_cls, v_loc, normalize_text=True))
        y = b["expression"]
        ops = [out, out["branches"]["global"], out["branches"]["local"]]
        cls = sum(edl_nll(o["alpha"], y, "digamma").mean() for o in ops)
        yoh = torch.nn.functional.one_hot(y, C).float()
        kl = sum(0.2 * kl_to_uniform(o["alpha"] * (1 - yoh) + yoh).mean() for o in ops)   # lambda_t = 2 / 10
    scalars = m.train_step(phase, b, ctx)
    assert scalars["cls"] == pytest.approx(cls.item(), rel=1e-4) and scalars["kl"] == pytest.approx(kl.item(), rel=1e-4)
    assert scalars["loss"] == pytest.approx(scalars["cls"] + scalars["kl"] + scalars["ruc"] + scalars["kd"], rel=1e-5)
    assert not torch.equal(m.net.evidence_scales().detach(), tau0)


def test_describe_names_only_the_settings_that_act():
    paper = _method().describe()
    assert "alpha" not in paper["fusion"] and "Dempster-Shafer" in paper["fusion"]
    assert "AvUC" in paper["loss"] and "each branch" in paper["loss"] and "KL" in paper["loss"]
    assert "learnable" in paper["evidence"] and "softplus" in paper["evidence"]
    euc = _method(ruc_form="euc").describe()["loss"]
    assert "EUC" in euc and "AvUC" not in euc
    released = _method(variant="released").describe()
    assert "alpha 0.1" in released["fusion"] and "fixed" in released["evidence"]
    assert not any(w in released["loss"] for w in ("AvUC", "EUC", "KL", "annealing", "branch"))


def test_paper_checkpoint_keeps_the_evidence_scale(tmp_path):
    from ferkit import UAFER

    model = UAFER(num_classes=7, variant="paper", model_size="tiny", fix_layer=1, device="cpu",
                  evidence_scale_init=3.0)
    with torch.no_grad():
        model.method.net.evidence_log_scale.add_(torch.tensor([0.5, -0.5]))
    x = _batch(3)["image"]
    probs, unc = model.predict(x)
    model.save(tmp_path / "paper.safetensors")
    again = UAFER.load(tmp_path / "paper.safetensors", device="cpu")
    assert torch.allclose(again.method.net.evidence_scales(), torch.tensor([3 * math.e ** 0.5, 3 * math.e ** -0.5]))
    assert torch.allclose(again.predict(x)[1], unc, atol=1e-6)


def test_bad_paper_options_are_one_sentence():
    from ferkit.errors import ConfigError

    for bad, words in (({"supervise_branches": True, "fusion": "score"}, "fusion ds"),
                       ({"evidence_scale_init": 0.0}, "evidence_scale_init"), ({"ruc_threshold": 2.0}, "ruc_threshold"),
                       ({"ruc_form": "avu"}, "ruc_form"), ({"evidence_extractor": "mlp"}, "evidence_extractor")):
        with pytest.raises(ConfigError, match=words):
            _method(**bad)


def test_released_head_is_unchanged_by_the_paper_options():
    """The released opinion is ReLU of the class-normalised score fusion, whatever the new options hold."""
    a_g, a_l = torch.randn(5, C), torch.randn(5, C)
    head = UAFERNet(_NoTower(), torch.zeros(C, 4), 0.1, 16, 0)
    s = 0.1 * a_l / a_l.norm(dim=1, keepdim=True) + 0.9 * a_g / a_g.norm(dim=1, keepdim=True)
    assert torch.allclose(head.opinion(a_g, a_l)["alpha"], dirichlet(evidence_from_scores(s))["alpha"])
    assert head.extractor_parameters() == [] and head.evidence_scales() is None
