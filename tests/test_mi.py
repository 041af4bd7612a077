"""MI bounds against analytic answers: correlated Gaussians, I = -0.5 * d * log(1 - rho^2) nats."""

import math

import pytest
import torch

from ferkit.errors import ConfigError
from ferkit.losses.mi import (
    DVEma,
    critic_mi,
    dv_bound,
    infonce_bound,
    jsd_bound,
    log_mean_exp,
    reduce_locations,
)
from ferkit.models.critics import (
    GlobalStatistics,
    LocalStatistics,
    SeparableGlobalStatistics,
    SeparableLocalStatistics,
    VectorStatistics,
)

D, RHO = 2, 0.8
TRUE_MI = -0.5 * D * math.log(1 - RHO**2)   # 1.0217 nats


#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


def gaussians(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, D, generator=gen)
    z = RHO * x + math.sqrt(1 - RHO**2) * torch.randn(n, D, generator=gen)
    return x, z


def train_critic(estimator: str, steps: int = 600, batch: int = 256, ema: bool = False) -> VectorStatistics:
    gen = torch.Generator().manual_seed(1)
    critic = VectorStatistics(D, D, hidden=64)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    tracker = DVEma(0.05) if ema else None
    for _ in range(steps):
        x, z = gaussians(batch, gen)
        loss = -critic_mi(critic, x, z, estimator, ema=tracker, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return critic


def held_out_dv(critic: VectorStatistics, n: int = 20000) -> float:
    gen = torch.Generator().manual_seed(99)
    x, z = gaussians(n, gen)
    with torch.no_grad():
        joint, marg = critic.joint_and_marginal(x, z, torch.randperm(n, generator=gen))
        return float(dv_bound(joint, marg))


@pytest.mark.parametrize("ema", [False, True])
def test_dv_trained_critic_is_a_tight_lower_bound(ema):
    est = held_out_dv(train_critic("dv", ema=ema))
    # below the truth (0.03 nats of finite-sample noise allowed), and within 0.15 nats of it
    assert est <= TRUE_MI + 0.03, (est, TRUE_MI)
    assert est >= TRUE_MI - 0.15, (est, TRUE_MI)


def test_jsd_and_infonce_sanity():
    gen = torch.Generator().manual_seed(5)
    critic = train_critic("jsd", steps=200)
    x, z = gaussians(4096, gen)
    with torch.no_grad():
        joint, marg = critic.joint_and_marginal(x, z, torch.randperm(4096, generator=gen))
        jsd = float(jsd_bound(joint, marg))
    assert -2 * math.log(2) < jsd <= 0.0
    assert jsd > -2 * math.log(2) + 0.1          # clearly above the independent-variables value

    critic = train_critic("infonce", steps=200, batch=64)
    x, z = gaussians(64, gen)
    with torch.no_grad():
        nce = float(infonce_bound(critic.pairwise(x, z)))
        nce_indep = float(infonce_bound(critic.pairwise(x, z[torch.randperm(64, generator=gen)])))
    assert nce <= math.log(64) + 1e-6
    assert 0.5 < nce <= TRUE_MI + 0.2            # InfoNCE is a lower bound; B=64 makes it nearly tight here
    assert nce_indep < 0.3


def test_infonce_upper_limit_on_perfect_scores():
    scores = torch.full((8, 8), -1e4)
    scores.fill_diagonal_(0.0)
    assert float(infonce_bound(scores)) == pytest.approx(math.log(8), abs=1e-5)


def test_log_mean_exp_is_stable_and_exact():
    x = torch.tensor([1000.0, 1000.0, 1000.0])
    assert float(log_mean_exp(x)) == pytest.approx(1000.0)
    y = torch.tensor([0.1, -0.3, 2.0, 0.5])
    assert float(log_mean_exp(y)) == pytest.approx(math.log(float(y.exp().mean())), abs=1e-6)


def test_ema_keeps_the_value_and_changes_only_the_gradient():
    joint = torch.tensor([1.0, 2.0, 0.5])
    marg = torch.tensor([0.2, -1.0, 3.0], requires_grad=True)
    plain = dv_bound(joint, marg)
    ema = DVEma(0.5)
    ema.log_ema = torch.tensor(math.log(10.0))   # a stale average, far from this batch's mean
    corrected = dv_bound(joint, marg, ema)
    assert float(corrected.detach()) == pytest.approx(float(plain.detach()))
    (g_plain,) = torch.autograd.grad(plain, marg)
    (g_corr,) = torch.autograd.grad(corrected, marg)
    assert not torch.allclose(g_plain, g_corr)
    # gradient of -log term is -exp(U)/(B * EMA): check against the updated EMA
    expected = -marg.detach().exp() / (3 * ema.log_ema.exp())
    torch.testing.assert_close(g_corr, expected)


@pytest.mark.parametrize("form", ["concat", "separable"])
def test_local_and_global_critic_shapes_and_reduction(form):
    fmap, code = torch.randn(5, 8, 3, 3), torch.randn(5, 4)
    local_cls, glob_cls = ((LocalStatistics, GlobalStatistics) if form == "concat"
                           else (SeparableLocalStatistics, SeparableGlobalStatistics))
    local = local_cls(8, 4, hidden=16)
    glob = glob_cls(8, (3, 3), 4, hidden=16)
    perm = torch.randperm(5)
    j, m = local.joint_and_marginal(fmap, code, perm)
    assert j.shape == m.shape == (5, 3, 3)
    torch.testing.assert_close(j, local(fmap, code))
    torch.testing.assert_close(m, local(fmap, code[perm]))
    pw = local.pairwise(fmap, code)
    assert pw.shape == (5, 5, 3, 3)
    torch.testing.assert_close(pw[2, 4], local(fmap[2:3], code[4:5])[0])
    jg, mg = glob.joint_and_marginal(fmap, code, perm)
    torch.testing.assert_close(jg, glob(fmap, code))
    torch.testing.assert_close(mg, glob(fmap, code[perm]))
    torch.testing.assert_close(glob.pairwise(fmap, code)[1, 3], glob(fmap[1:2], code[3:4])[0])
    per_loc = dv_bound(j, m)
    assert per_loc.shape == (3, 3)
    with torch.no_grad():
        s = critic_mi(local, fmap, code, "dv", "sum", "roll")
        mean = critic_mi(local, fmap, code, "dv", "mean", "roll")
    assert float(s) == pytest.approx(9 * float(mean), rel=1e-5)
    with pytest.raises(ConfigError):
        reduce_locations(per_loc, "max")
    with pytest.raises(ConfigError):
        critic_mi(local, fmap, code, "mine")


def test_separable_critic_dv_is_a_lower_bound_on_gaussians():
    """The separable global critic <g(F), h(z)>, trained by DV on correlated Gaussians (F as a 1x1 map):
    positive and below the analytic MI, so it estimates the same quantity as the concatenation critic."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    critic = SeparableGlobalStatistics(D, (1, 1), D, hidden=64)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(600):
        x, z = gaussians(256, gen)
        loss = -critic_mi(critic, x[:, :, None, None], z, "dv", generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, z = gaussians(20000, torch.Generator().manual_seed(99))
    with torch.no_grad():
        joint, marg = critic.joint_and_marginal(x[:, :, None, None], z, torch.randperm(20000))
        est = float(dv_bound(joint, marg))
    assert 0.6 * TRUE_MI < est <= TRUE_MI + 0.03, (est, TRUE_MI)
