"""UA-FER with the tiny CLIP: learning on SynthFER, from random weights and from a caption-pretrained CLIP.

The real method starts from OpenAI's CLIP. The stand-in here is the tiny CLIP trained the way CLIP is
trained (open_clip's ClipLoss on faces captioned with their expression, ``ferkit.pretrain.clip``, the
``CLIP_DEMO`` recipe) on a SynthFER render with another seed, so on other people; UA-FER then fine-tunes from
that checkpoint through ``clip_path`` and is tested on identities it never saw. The random-init test checks
that every loss term moves the model towards the labels.
"""

import logging

import numpy as np
import pytest
import torch

from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.data.synthetic import render_synthfer, sample_identity
from ferkit.data.transforms import build_transform
from ferkit.engine.method import StepContext
from ferkit.methods.uafer import UAFERMethod

EVAL_SEED, PRETRAIN_SEED = 0, 1000
CHANCE = 1 / 7
#: UA-FER fine-tuning of the tiny CLIP (fix_layer 0: the patch embedding keeps its pretrained weights)
FINETUNE = {"train": {"epochs": 10, "lr": 1e-3, "batch_size": 32},
            "model": {"alpha": 0.5, "fix_layer": 0, "warmup_epochs": 1, "augment": "flip"}}


#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


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


# --- from a CLIP pretrained contrastively on captioned faces of other people ------------------------------

@pytest.fixture(scope="module")
def pretrained_clip(tmp_path_factory):
    """The tiny CLIP after ``CLIP_DEMO`` pretraining (ClipLoss, expression captions) on a render with another
    seed, written as an open_clip checkpoint: (path, history, config)."""
    from ferkit.pretrain.clip import CLIP_DEMO, pretrain_clip, pretraining_splits, save_clip_checkpoint

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, monitor = pretraining_splits("synthetic", None, {**CLIP_DEMO["synth"], "seed": PRETRAIN_SEED})
        cfg = CLIP_DEMO["config"](seed=0, device="cpu")       # 1428 faces of 51 people, 40 epochs (~3.5 min)
        model, history = pretrain_clip(train, cfg, monitor, log=None)
    finally:
        torch.set_num_threads(n)
    path = save_clip_checkpoint(model, tmp_path_factory.mktemp("clip") / "clip_tiny_captions.pt", cfg,
                                {"synth_seed": PRETRAIN_SEED}, cfg.epochs)
    return path, history, cfg


@pytest.fixture(scope="module")
def eval_render():
    return render_synthfer(identities=24, images_per_identity=56, size=64, seed=EVAL_SEED)


def test_pretraining_people_are_not_the_evaluation_people():
    from ferkit.pretrain.clip import CLIP_DEMO

    look = ("skin_rgb", "hair_rgb", "glasses", "face_w", "eye_size", "nose_len")
    ours = {tuple(sample_identity(PRETRAIN_SEED, s)[k] for k in look) for s in range(CLIP_DEMO["synth"]["identities"])}
    theirs = {tuple(sample_identity(EVAL_SEED, s)[k] for k in look) for s in range(24)}
    assert not ours & theirs


@pytest.mark.slow
def test_caption_pretraining_teaches_expression_words(pretrained_clip):
    """Image and caption towers align on expression: the epoch loss falls well below its chance value
    ln(batch) (measured 3.17 against ln 64 = 4.16), zero-shot classification of held-out people from the class
    names and from UA-FER's paper template beats chance (measured 0.40 / 0.36, chance 0.14), and the checkpoint
    loads as the tiny CLIP with QuickGELU."""
    from ferkit.models.clip import load_clip

    path, history, cfg = pretrained_clip
    print(f"caption pretraining, last epoch: {history[-1]}")            # shown with pytest -rP
    assert history[-1]["loss"] < np.log(cfg.batch_size) - 0.5, history[-1]
    assert history[-1]["zero_shot_name"] > CHANCE + 0.05, history[-1]
    assert history[-1]["zero_shot_template"] > CHANCE + 0.05, history[-1]
    _, info = load_clip("auto", path)
    assert info.model_size == "tiny" and info.quick_gelu


def _finetune(variant: str, clip_path, render, out) -> dict:
    """UA-FER fine-tuned from ``clip_path`` on the render's training people; accuracy and mean u on its test
    people (never seen by the pretraining or the fine-tuning)."""
    from ferkit.engine.checkpoint import load_method
    from ferkit.engine.evaluate import collect_predictions
    from ferkit.engine.trainer import train

    data = {"dataset": "synthetic", "synth_identities": 24, "synth_images_per_identity": 56, "synth_size": 64,
            "synth_seed": EVAL_SEED, "cache": False}
    cfg = build_experiment("uafer", data, {**FINETUNE["train"], "seed": 0, "out": str(out), "eval_every": 0,
                                           "device": "cpu"},
                           {**FINETUNE["model"], "variant": variant, "clip_path": str(clip_path)})
    result = train(cfg, splits=render.splits, progress=False)
    preds = collect_predictions(load_method(result.checkpoint, "cpu"), render.splits["test"])
    right = preds["probs"].argmax(1) == preds["labels"]
    u = preds["uncertainty"]
    return {"accuracy": float(right.mean()), "u_right": float(u[right].mean()) if right.any() else float("nan"),
            "u_wrong": float(u[~right].mean()) if (~right).any() else float("nan")}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["released", "paper"])
def test_uafer_from_caption_pretrained_clip_learns_unseen_identities(pretrained_clip, eval_render, variant,
                                                                      tmp_path):
    """Both variants learn the expressions of people neither the pretraining nor the fine-tuning saw
    (measured in fp32, seed 0, before issue 13: released 0.457, paper 0.471, chance 0.143, 280 test images).
    The paper variant (learnable evidence, DS fusion, AvUC) is more uncertain on its wrong predictions
    (the study config at seed 42: accuracy 0.468, u 0.381 wrong / 0.351 right, error-detection AUROC 0.735).
    The released u measures how peaked the score is
    (test_evidential.test_released_uncertainty_is_highest_on_peaked_scores), so it is not asserted."""
    path = pretrained_clip[0]
    r = _finetune(variant, path, eval_render, tmp_path / variant)
    print(f"UA-FER {variant} fine-tuned from the caption-pretrained CLIP, unseen people: {r}")
    assert r["accuracy"] > CHANCE + 0.1, (variant, r)
    if variant == "paper":
        assert r["u_wrong"] > r["u_right"], (variant, r)
