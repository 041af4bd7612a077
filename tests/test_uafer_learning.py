"""Both UA-FER variants, with the tiny CLIP from random initialisation, fit a small SynthFER training set.

This checks that every loss term moves the model towards the labels (train accuracy far above chance within
60 steps). It does not show generalisation to unseen identities: a ViT from random weights on a few
SynthFER identities memorises them (UA-FER depends on pretrained CLIP weights, which no tiny model has).
"""

import logging

import pytest
import torch

from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.data.synthetic import render_synthfer
from ferkit.data.transforms import build_transform
from ferkit.engine.method import StepContext
from ferkit.methods.uafer import UAFERMethod


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on shared CPUs two OpenMP threads spin and make these small steps much slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def batch():
    s = render_synthfer(identities=6, images_per_identity=14, size=64, seed=0, split_fractions=(1.0, 0.0, 0.0))
    train = s.splits["train"]
    return train.samples[:32], torch.tensor(train.expressions[:32])


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_tiny_uafer_fits_synthfer_images(batch, variant, caplog):
    samples, labels = batch
    cfg = build_experiment("uafer", train={"epochs": 1000, "lr": 3e-3, "seed": 0, "precision": "fp32"},
                           model={"model_size": "tiny", "variant": variant, "alpha": 0.5, "fix_layer": -1,
                                  "warmup_epochs": 0})
    with caplog.at_level(logging.ERROR):
        method = UAFERMethod(cfg, SYNTHFER, torch.device("cpu"))
    transform = build_transform(method.preprocessing(), train=False)
    x = torch.stack([transform(s.image) for s in samples])                   # (32, 3, 64, 64)
    phase = method.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    ctx.iters_per_epoch = 1
    first = None
    for step in range(60):
        ctx.epoch = step
        out = method.train_step(phase, {"image": x, "expression": labels, "image_teacher": x}, ctx)
        first = out["cls"] if first is None else first
    pred = method.predict(x)
    accuracy = (pred.probs.argmax(1) == labels).float().mean().item()
    assert accuracy > 0.6, (variant, accuracy)
    assert out["cls"] < first
