"""The frozen-output cache (``ferkit.methods.frozen_cache``) and its UA-FER use: outputs remembered by exact
input content give what the network computes; UA-FER trained with its teacher cache equals training without
it, and a resumed run reads the same targets. DICE-FER's use is tested in test_dicefer_cache.py."""

from __future__ import annotations

import logging

import pytest
import torch

from engine_helpers import toy_splits, weights
from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.engine.checkpoint import read_train_state
from ferkit.engine.method import StepContext
from ferkit.engine.seeding import set_deterministic
from ferkit.engine.trainer import train
from ferkit.methods.frozen_cache import OutputCache, content_keys
from ferkit.methods.uafer import UAFERMethod


def test_keys_are_equal_exactly_for_equal_bytes():
    x = torch.randn(3, 3, 8, 8)
    k = content_keys(x)
    assert len(set(k)) == 3 and content_keys(x.clone()) == k
    assert content_keys(x.contiguous(memory_format=torch.channels_last)) == k     # layout is not content
    y = x.clone()
    y[1, 0, 0, 0] = torch.nextafter(y[1, 0, 0, 0], torch.tensor(1e9))             # one ulp
    assert content_keys(y)[1] != k[1] and content_keys(y)[0] == k[0]
    assert content_keys(x.flip(-1))[0] != k[0]
    assert content_keys(x.double())[0] != k[0]                                      # dtype is part of the key


def test_fetch_computes_only_what_it_has_not_seen():
    cache = OutputCache(capacity=10)
    teacher = torch.nn.Linear(12, 4)
    x = torch.randn(5, 12)
    calls = []

    def run(batch):
        def compute(rows):
            calls.append(None if rows is None else rows.tolist())
            return teacher(batch if rows is None else batch[rows]).detach()
        return compute

    first = cache.fetch(content_keys(x[:3]), run(x[:3]), torch.device("cpu"))
    both = torch.cat([x[3:], x[:2]])                                   # two new rows, two known ones
    second = cache.fetch(content_keys(both), run(both), torch.device("cpu"))
    third = cache.fetch(content_keys(x), run(x), torch.device("cpu"))
    assert calls == [None, [0, 1]]                                     # the third fetch computed nothing
    ref = teacher(x).detach()
    assert torch.equal(first, ref[:3].float())
    assert torch.allclose(second, torch.cat([ref[3:], ref[:2]]), atol=1e-6)
    assert torch.allclose(third, ref, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (2 + 5, 3 + 2, 5)
    restored = OutputCache(capacity=10)
    restored.load_state(cache.state())
    assert torch.equal(restored.fetch(content_keys(x), run(x), torch.device("cpu")), third)
    assert calls == [None, [0, 1]]
    full = OutputCache(capacity=2)
    full.fetch(content_keys(x), run(x), torch.device("cpu"))
    assert len(full) == 2                                              # stops storing at capacity


def _method(cache: str, variant: str = "released") -> UAFERMethod:
    cfg = build_experiment("uafer", train={"epochs": 4, "lr": 1e-3, "seed": 0, "precision": "fp32"},
                           model={"model_size": "tiny", "variant": variant, "fix_layer": 1, "warmup_epochs": 0,
                                  "teacher_cache": cache, "augment": "flip"})
    return UAFERMethod(cfg, SYNTHFER, torch.device("cpu"))


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_training_with_the_cache_equals_training_without_it(variant, caplog):
    torch.manual_seed(0)
    batches = [torch.randn(6, 3, 64, 64) for _ in range(2)]
    labels = torch.arange(6) % 7
    set_deterministic(True)
    try:
        runs = {}
        for cache in ("on", "off"):
            with caplog.at_level(logging.ERROR):
                method = _method(cache, variant)
            phase = method.phases()[0]
            ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
            ctx.iters_per_epoch = 2
            losses = []
            for step in range(6):                                       # b0 b1 b0 b1 b0 b1
                ctx.epoch = step // 2
                x = batches[step % 2]
                out = method.train_step(phase, {"image": x, "expression": labels, "image_teacher": x.flip(-1)},
                                        ctx)
                losses.append(out["kd"])
            runs[cache] = (losses, {k: v.clone() for k, v in method.net.state_dict().items()}, method)
    finally:
        set_deterministic(False)
    assert runs["on"][0] == runs["off"][0]
    assert all(torch.equal(v, runs["off"][1][k]) for k, v in runs["on"][1].items())
    cache = runs["on"][2].teacher_cache
    assert (cache.misses, cache.hits, len(cache)) == (12, 24, 12)
    assert runs["off"][2].teacher_cache is None


def test_auto_is_off_for_continuous_augmentation():
    for augment, on in (("rafdb", True), ("flip", True), ("none", True), ("affectnet", False)):
        cfg = build_experiment("uafer", model={"model_size": "tiny", "augment": augment})
        assert (UAFERMethod(cfg, SYNTHFER, torch.device("cpu")).teacher_cache is not None) == on, augment


def test_resume_reads_the_remembered_targets(tmp_path, caplog):
    """2 epochs straight == a stop after epoch 1 + resume, with the cache in the resume state (flip
    augmentation, 2 batches per epoch)."""
    def cfg(out, max_steps=None):
        return build_experiment("uafer", {"dataset": "toy"},
                                {"epochs": 2, "batch_size": 8, "lr": 1e-3, "precision": "fp32", "device": "cpu",
                                 "out": str(out), "eval_every": 0, "seed": 0, "max_steps": max_steps},
                                {"model_size": "tiny", "fix_layer": 1, "warmup_epochs": 0, "augment": "flip",
                                 "teacher_cache": "on"})

    splits = toy_splits(n_train=16, n_eval=7, size=64)
    set_deterministic(True)
    try:
        with caplog.at_level(logging.ERROR):
            straight = train(cfg(tmp_path / "a"), splits=splits, progress=False)
            train(cfg(tmp_path / "b", max_steps=2), splits=splits, progress=False)
            state = read_train_state(tmp_path / "b" / "checkpoints" / "last.safetensors")
            resumed = train(cfg(tmp_path / "b"), resume=str(tmp_path / "b"), splits=splits, progress=False)
    finally:
        set_deterministic(False)
    assert state["method"]["teacher_cache"]["values"].shape == (16, 64)   # every image seen once in epoch 1
    with caplog.at_level(logging.ERROR):
        fresh = UAFERMethod(cfg(tmp_path / "c"), SYNTHFER, torch.device("cpu"))
    fresh.load_train_state(state["method"])
    assert len(fresh.teacher_cache) == 16
    ref = weights(straight.run_dir / "checkpoints" / "last.safetensors")
    got = weights(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert not [k for k in ref if not torch.equal(ref[k], got[k])]
