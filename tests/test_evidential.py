"""Evidential maths on hand-computed values: Dirichlet opinions, EDL losses, KL, AvU, Dempster-Shafer fusion."""

import math

import pytest
import torch

from ferkit.losses.evidential import (
    annealing_coef,
    avuc_loss,
    dirichlet,
    ds_combine,
    edl_mse,
    edl_nll,
    euc_loss,
    evidence_from_scores,
    evidential_loss,
    kl_to_uniform,
)


def test_opinion_of_known_scores():
    out = dirichlet(evidence_from_scores(torch.tensor([[1.0, 0.0, -1.0]])))
    assert torch.allclose(out["alpha"], torch.tensor([[2.0, 1.0, 1.0]]))
    assert torch.allclose(out["probs"], torch.tensor([[0.5, 0.25, 0.25]]))
    assert torch.allclose(out["uncertainty"], torch.tensor([0.75]))
    assert torch.allclose(out["belief"], torch.tensor([[0.25, 0.0, 0.0]]))


@pytest.mark.parametrize("kind, evidence", [
    ("relu", [2.0, 0.0, 0.0]),
    ("exp", [math.exp(2.0), 1.0, math.exp(-1.0)]),
    ("softplus", [math.log1p(math.exp(2.0)), math.log(2.0), math.log1p(math.exp(-1.0))]),
])
def test_opinion_of_each_evidence_function_hand_computed(kind, evidence):
    """scores (2, 0, -1): alpha = e + 1, S = sum alpha, p = alpha / S, u = K / S, b = e / S (K = 3)."""
    out = dirichlet(evidence_from_scores(torch.tensor([[2.0, 0.0, -1.0]]), kind))
    strength = sum(evidence) + 3
    assert out["probs"][0].tolist() == pytest.approx([(e + 1) / strength for e in evidence], abs=1e-6)
    assert out["uncertainty"].item() == pytest.approx(3 / strength, abs=1e-6)
    assert out["belief"][0].tolist() == pytest.approx([e / strength for e in evidence], abs=1e-6)


def test_released_uncertainty_is_highest_on_peaked_scores():
    """The released code's bounded evidence (METHODS.md B.7 quirk 4) in numbers: a unit-norm score with ReLU
    evidence has total evidence between 1 (one class) and sqrt(C) (all classes alike), so u = C / S is
    C / (C + 1) = 0.875 on a score peaked at the label and C / (C + sqrt C) = 0.726 on a flat one (C = 7),
    and the released loss sum_c (y_c - p_c)^2 is lower on the peaked score: training towards the labels
    raises u, whatever the prediction's correctness."""
    c = 7
    peaked = torch.zeros(1, c)
    peaked[0, 2] = 1.0
    flat = torch.full((1, c), 1 / math.sqrt(c))
    op, of = dirichlet(evidence_from_scores(peaked)), dirichlet(evidence_from_scores(flat))
    assert op["uncertainty"].item() == pytest.approx(c / (c + 1))
    assert of["uncertainty"].item() == pytest.approx(c / (c + math.sqrt(c)))
    label = torch.tensor([2])
    assert edl_mse(op["alpha"], label)["err"].item() < edl_mse(of["alpha"], label)["err"].item()
    # random unit-norm scores stay inside those two values
    s = torch.nn.functional.normalize(torch.randn(512, c), dim=1)
    u = dirichlet(evidence_from_scores(s))["uncertainty"]
    assert (u >= c / (c + math.sqrt(c)) - 1e-6).all() and (u <= 1.0).all()


def test_evidence_functions():
    s = torch.tensor([[-20.0, 0.0, 2.0]])
    assert torch.equal(evidence_from_scores(s, "relu"), torch.tensor([[0.0, 0.0, 2.0]]))
    assert torch.allclose(evidence_from_scores(s, "exp"), torch.tensor([[math.exp(-10), 1.0, math.exp(2)]]))
    assert torch.allclose(evidence_from_scores(s, "softplus"), torch.nn.functional.softplus(s))


def test_dempster_shafer_fusion_hand_computed():
    b1, u1 = torch.tensor([[0.5, 0.2]]), torch.tensor([0.3])
    b2, u2 = torch.tensor([[0.1, 0.6]]), torch.tensor([0.3])
    # conflict = 0.5*0.6 + 0.2*0.1 = 0.32; b = (b1 b2 + b1 u2 + b2 u1) / 0.68; u = 0.09 / 0.68
    out = ds_combine(b1, u1, b2, u2)
    assert torch.allclose(out["belief"], torch.tensor([[0.23 / 0.68, 0.36 / 0.68]]), atol=1e-6)
    assert torch.allclose(out["uncertainty"], torch.tensor([0.09 / 0.68]), atol=1e-6)
    strength = 2 / (0.09 / 0.68)
    assert torch.allclose(out["alpha"], torch.tensor([[0.23 / 0.68 * strength + 1, 0.36 / 0.68 * strength + 1]]),
                          atol=1e-4)
    assert torch.allclose(out["belief"].sum(1) + out["uncertainty"], torch.ones(1), atol=1e-6)


def test_dempster_shafer_is_commutative_and_vacuous_opinion_is_neutral():
    e1, e2 = torch.rand(5, 7) * 3, torch.rand(5, 7) * 3
    o1, o2 = dirichlet(e1), dirichlet(e2)
    ab = ds_combine(o1["belief"], o1["uncertainty"], o2["belief"], o2["uncertainty"])
    ba = ds_combine(o2["belief"], o2["uncertainty"], o1["belief"], o1["uncertainty"])
    assert torch.allclose(ab["alpha"], ba["alpha"], atol=1e-5)
    vac = dirichlet(torch.zeros(5, 7))                     # u = 1, b = 0
    same = ds_combine(o1["belief"], o1["uncertainty"], vac["belief"], vac["uncertainty"])
    assert torch.allclose(same["alpha"], o1["alpha"], atol=1e-5)
    # two agreeing opinions are more certain than either
    assert (ab["uncertainty"] < torch.minimum(o1["uncertainty"], o2["uncertainty"])).all()


def test_classification_losses_known_values():
    alpha, y = torch.tensor([[2.0, 1.0, 1.0]]), torch.tensor([0])
    m = edl_mse(alpha, y)
    assert m["err"].item() == pytest.approx(0.25 + 2 * 0.0625)
    assert m["var"].item() == pytest.approx((0.5 * 0.5 + 2 * 0.25 * 0.75) / 5)
    assert edl_nll(alpha, y, "log").item() == pytest.approx(math.log(2))
    assert edl_nll(alpha, y, "digamma").item() == pytest.approx(1 / 2 + 1 / 3)   # psi(4) - psi(2)


def test_kl_to_uniform_matches_torch_distributions():
    alpha = torch.rand(6, 7) * 4 + 0.5
    ref = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                            torch.distributions.Dirichlet(torch.ones(6, 7)))
    assert torch.allclose(kl_to_uniform(alpha), ref, atol=1e-5)
    assert torch.allclose(kl_to_uniform(torch.ones(2, 7)), torch.zeros(2), atol=1e-6)


def test_euc_known_values():
    alpha = torch.tensor([[2.0, 1.0, 1.0]])                   # p_hat = 0.5, u = 0.75, predicts class 0
    right = euc_loss(alpha, torch.tensor([0]), coef=0.3)
    wrong = euc_loss(alpha, torch.tensor([1]), coef=0.3)
    assert right.item() == pytest.approx(0.3 * -0.5 * math.log(0.25 + 1e-10))
    assert wrong.item() == pytest.approx(0.7 * -0.5 * math.log(0.75 + 1e-10))
    # coef off 1.0, so a coef that the disentangled form ignored could not pass
    dis = euc_loss(alpha, torch.tensor([0]), coef=0.4, disentangle=True)
    assert dis.item() == pytest.approx(0.4 * -math.log(0.5 * 0.25))
    dis_wrong = euc_loss(alpha, torch.tensor([1]), coef=0.4, disentangle=True)
    assert dis_wrong.item() == pytest.approx(0.6 * -math.log(0.5 * 0.75))


def test_annealing():
    assert annealing_coef(0, 50) == 0.0 and annealing_coef(5, 50) == 0.5 and annealing_coef(30, 50) == 1.0
    assert annealing_coef(0, 50, "exp") == pytest.approx(0.01)
    assert annealing_coef(50, 50, "exp") == pytest.approx(1.0)


def test_evidential_loss_terms_and_kl_targets():
    alpha, y = torch.tensor([[2.0, 3.0, 1.0]]), torch.tensor([0])
    mse = evidential_loss(alpha, y, "mse", with_kl=True, coef=0.5)
    # mse path: alpha~ = (alpha - 1)(1 - y) + 1 = [1, 3, 1]
    assert mse["kl"].item() == pytest.approx(0.5 * kl_to_uniform(torch.tensor([[1.0, 3.0, 1.0]])).item())
    log = evidential_loss(alpha, y, "log", with_kl=True, coef=0.5, ruc="euc")
    # log path: alpha~ = alpha (1 - y) + y = [1, 3, 1]
    assert log["kl"].item() == pytest.approx(mse["kl"].item())
    assert set(log) == {"cls", "kl", "ruc"}
    assert set(evidential_loss(alpha, y, "mse", ruc="avuc")) == {"cls", "ruc"}
    with pytest.raises(ValueError):
        evidential_loss(alpha, y, "mse", ruc="euc")


def test_runs_in_fp32_under_autocast():
    scores = torch.randn(4, 7, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dirichlet(evidence_from_scores(scores))
        fused = ds_combine(out["belief"], out["uncertainty"], out["belief"], out["uncertainty"])
    assert out["probs"].dtype == torch.float32 and fused["alpha"].dtype == torch.float32


def test_avuc_known_values():
    """Krishnan & Tickoo's AvUC on four opinions, one per cell (threshold 0.5): right-certain, right-uncertain,
    wrong-certain, wrong-uncertain; the batch-mean threshold (0.60 here) puts them in the same cells."""
    alpha = torch.tensor([[6.0, 1.0, 1.0], [2.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.5]])
    target = torch.tensor([0, 0, 0, 0])
    n_ac = 0.75 * (1 - math.tanh(3 / 8))                 # p_hat 6/8, u 3/8
    n_au = 0.5 * math.tanh(3 / 4)                        # p_hat 2/4, u 3/4
    n_ic = (1 - 5 / 7) * (1 - math.tanh(3 / 7))          # p_hat 5/7, u 3/7
    n_iu = (1 - 1.5 / 3.5) * math.tanh(3 / 3.5)          # p_hat 1.5/3.5, u 3/3.5
    expected = math.log(1 + (n_au + n_ic) / (n_ac + n_iu))
    assert avuc_loss(alpha, target, threshold=0.5).item() == pytest.approx(expected, rel=1e-5)
    assert avuc_loss(alpha, target).item() == pytest.approx(expected, rel=1e-5)
    # all right and certain: nothing in the numerator
    assert avuc_loss(alpha[:1], target[:1], threshold=0.5).item() == pytest.approx(0.0, abs=1e-7)


def _grad_on_evidence(loss_fn, evidence: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    e = evidence.clone().requires_grad_()
    loss_fn(e + 1.0, target).sum().backward()
    return e.grad


def test_released_euc_raises_the_wrong_class_probability():
    """On a wrong prediction the released code's loss_avu (EUC), -(1 - p_hat) log u, has
    d/de_max = (S - alpha_max) / S^2 (log u + 1): once u < 1/e, descent adds evidence to the predicted (wrong)
    class, raising its probability; above 1/e it removes it."""
    wrong = torch.tensor([1])
    certain = _grad_on_evidence(lambda a, t: euc_loss(a, t, coef=0.5), torch.tensor([[10.0, 0.5, 0.5]]), wrong)
    assert certain[0, 0] < 0                             # u = 3/14: -grad > 0, more evidence for the wrong class
    unsure = _grad_on_evidence(lambda a, t: euc_loss(a, t, coef=0.5), torch.tensor([[2.0, 0.5, 0.5]]), wrong)
    assert unsure[0, 0] > 0                              # u = 3/6


def test_avuc_moves_u_the_right_way_only_with_stop_gradient_confidence():
    """A wrong, certain prediction (u = 7/19 < 0.7): AvUC with the gradient through p_hat as well adds
    evidence to the wrong class (d/de_max (1 - p_hat)(1 - tanh u) < 0 there); with the p_hat weights
    detached (the default) every class loses evidence, so u rises. A right, certain one gains evidence."""
    evidence, wrong, right = torch.tensor([[10.0, 1, 0, 0, 1, 0, 0]]), torch.tensor([3]), torch.tensor([0])
    exact = _grad_on_evidence(lambda a, t: avuc_loss(a, t, 0.9, detach_confidence=False), evidence, wrong)
    assert exact[0, 0] < 0
    stop = _grad_on_evidence(lambda a, t: avuc_loss(a, t, 0.9), evidence, wrong)
    assert (stop > 0).all()                              # descent removes evidence everywhere: u up
    ok = _grad_on_evidence(lambda a, t: avuc_loss(torch.cat([a, torch.tensor([[1.0, 1, 1, 1, 1, 1, 2]])]),
                                                  torch.cat([t, torch.tensor([0])]), 0.9), evidence, right)
    assert (ok < 0).all()                                # right and certain: more evidence, u down
