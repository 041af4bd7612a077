"""DICE-FER's frozen-psi cache: stages 2 and 3 read psi's remembered (F, E) by input content, train to the
same weights as when psi runs every step, forget psi when stage 1 may change it, and resume exactly."""

from __future__ import annotations

import logging

import pytest
import torch

from engine_helpers import toy_splits, weights
from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.engine.method import StepContext
from ferkit.engine.seeding import set_deterministic
from ferkit.engine.trainer import train
from ferkit.errors import ConfigError
from ferkit.methods.registry import get_method

TINY = {"image_size": 32, "critic_hidden": 16, "disc_hidden": [16, 8], "classifier_hidden": [16, 8]}


#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


def _method(cache: str, **model):
    torch.manual_seed(0)
    cfg = build_experiment("dicefer", data={"dataset": "synthetic"}, train={"precision": "fp32", "seed": 0, "batch_size": 6},
                           model={**TINY, "frozen_cache": cache, **model})
    return get_method("dicefer")(cfg, SYNTHFER, torch.device("cpu"))


def test_stages_2_and_3_with_the_cache_equal_them_without_it():
    g = torch.Generator().manual_seed(1)
    x = [torch.randn(6, 1, 32, 32, generator=g) for _ in range(3)]
    y = torch.arange(6) % 7
    mixed = torch.cat([x[0][:3], x[2][3:]])                   # three known rows, three new ones
    pairs = [{"image": a, "image_pair": b, "expression": y} for a, b in
             ((x[0], x[1]), (x[1], x[0]), (x[0], x[1]), (mixed, x[1]), (x[1], x[0]))]
    singles = [{"image": a, "expression": y} for a in (x[0], x[1], mixed, x[0])]
    set_deterministic(True)
    try:
        runs = {}
        for cache in ("on", "off"):
            method = _method(cache)
            stats = []
            for phase in method.phases()[1:]:
                ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
                method.on_phase_start(phase)
                method.train_mode(phase)
                for batch in pairs if phase.name == "stage2" else singles:
                    torch.manual_seed(len(stats))                     # the same shuffles for both runs
                    stats.append(method.train_step(phase, batch, ctx))
            runs[cache] = (stats, {n: {k: v.clone() for k, v in net.state_dict().items()}
                                   for n, net in method.networks().items()}, method)
    finally:
        set_deterministic(False)
    assert runs["on"][0] == runs["off"][0]                              # every loss term, every step
    on, off = runs["on"][1], runs["off"][1]
    assert not [(n, k) for n in off for k in off[n] if not torch.equal(on[n][k], off[n][k])]
    cache = runs["on"][2].frozen_cache
    # slot m saw x0, x1, x0, mixed, x1 then stage 3's x0, x1, mixed, x0: 15 rows computed, 39 read back
    assert (cache["m"].misses, cache["m"].hits, len(cache["m"])) == (15, 39, 15)
    assert (cache["n"].misses, cache["n"].hits, len(cache["n"])) == (12, 18, 12)
    assert runs["off"][2].frozen_cache is None


def test_cached_rows_are_what_psi_computes():
    method = _method("on")
    phase = method.phases()[1]
    method.on_phase_start(phase)
    method.train_mode(phase)
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        f, e = method.nets["exp_encoders"]["n"](x)
    for _ in range(2):                                                   # computed, then read back
        got_f, got_e = method._frozen_psi("n", x)
        assert got_f.shape == f.shape and torch.equal(got_f, f) and torch.equal(got_e, e)
    assert not got_f.requires_grad


def test_stage1_forgets_what_was_remembered_of_psi():
    method = _method("on")
    s1, s2 = method.phases()[:2]
    method.on_phase_start(s2)
    method.train_mode(s2)
    method._frozen_psi("m", torch.randn(4, 1, 32, 32))
    assert len(method.frozen_cache["m"]) == 4
    method.on_phase_start(s1)                                            # psi trainable again
    assert len(method.frozen_cache["m"]) == 0


def test_auto_follows_the_augmentation_and_the_size_is_bounded():
    for augment, on in (("none", True), ("flip", True), ("dicefer14", True), ("affectnet", False)):
        assert (_method("auto", augment=augment).frozen_cache is not None) == on, augment
    assert _method("auto", frozen_cache_mb=0).frozen_cache is None
    method = _method("on", frozen_cache_mb=1)                            # 32 px: F is 512 x 1 x 1, E 64
    assert method.frozen_cache["m"].capacity == 2**20 // (2 * 4 * (512 + 64))
    with pytest.raises(ConfigError, match="frozen_cache"):
        _method("sometimes")


def test_resume_in_stage2_with_the_cache_gives_identical_weights(tmp_path, caplog):
    """Stages 1/2/3 = 1/2/1 epochs straight == a stop in stage 2's first epoch + resume (the cache starts
    empty after the resume and is refilled by recomputing psi)."""
    def cfg(out, max_steps=None):
        return build_experiment("dicefer", {"dataset": "toy"},
                                {"epochs": 1, "batch_size": 8, "lr": 1e-3, "precision": "fp32", "device": "cpu",
                                 "out": str(out), "eval_every": 0, "seed": 0, "max_steps": max_steps},
                                {**TINY, "image_size": 16, "augment": "flip", "frozen_cache": "on",
                                 "stage1_epochs": 1, "stage2_epochs": 2, "stage3_epochs": 1})

    splits = toy_splits(n_train=16, n_eval=7)                           # 2 batches per epoch
    set_deterministic(True)
    try:
        with caplog.at_level(logging.ERROR):
            straight = train(cfg(tmp_path / "a"), splits=splits, progress=False)
            train(cfg(tmp_path / "b", max_steps=3), splits=splits, progress=False)
            resumed = train(cfg(tmp_path / "b"), resume=str(tmp_path / "b"), splits=splits, progress=False)
    finally:
        set_deterministic(False)
    ref = weights(straight.run_dir / "checkpoints" / "last.safetensors")
    got = weights(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert set(got) == set(ref)
    assert not [k for k in ref if not torch.equal(ref[k], got[k])]


def test_auto_is_off_on_a_gpu():
    """Hashing inputs on the host costs more than a GPU's frozen forward: "auto" remembers on the CPU only."""
    from ferkit.methods.frozen_cache import auto_cache

    assert auto_cache("dicefer14", torch.device("cpu")) and auto_cache("rafdb", torch.device("cpu"))
    assert not auto_cache("dicefer14", torch.device("cuda")) and not auto_cache("affectnet", torch.device("cpu"))
