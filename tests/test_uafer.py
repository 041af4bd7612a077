"""UA-FER with the tiny CLIP: prompts, variants, shared teacher computation, schedule, API and checkpoints."""

import logging

import numpy as np
import pytest
import torch

from ferkit.config import build_experiment
from ferkit.data import labels
from ferkit.engine.method import StepContext
from ferkit.errors import ConfigError
from ferkit.methods.uafer import UAFERMethod, prompt_words, zero_shot_method
from ferkit.methods.uafer_optim import lr_at


def _method(label_space=labels.SYNTHFER, train=None, **model):
    cfg = build_experiment("uafer", train={"precision": "fp32", "epochs": 4, "lr": 1e-3, **(train or {})},
                           model={"model_size": "tiny", "fix_layer": 1, **model})
    return UAFERMethod(cfg, label_space, torch.device("cpu"))


def _batch(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g), "expression": torch.arange(n) % 7}


def test_prompt_words_follow_each_dataset():
    assert prompt_words(labels.RAFDB, None) == ["surprise", "fear", "disgusted", "happy", "sad", "anger", "neutral"]
    assert prompt_words(labels.AFFECTNET7, None) == ["neutral", "happy", "sad", "surprise", "fear", "disgusted",
                                                     "anger"]
    assert prompt_words(labels.AFFECTNET8, None)[-1] == "contempt"
    assert prompt_words(labels.SYNTHFER, None) == list(labels.SYNTHFER.classes)
    with pytest.raises(ConfigError, match="one name per class"):
        prompt_words(labels.RAFDB, ["a", "b"])
    assert _method(variant="paper").prompts[0] == "a photo of a neutral facial expression."


def test_random_init_is_said_in_log_and_describe(caplog):
    with caplog.at_level(logging.WARNING):
        m = _method()
    assert "RANDOM" in caplog.text and "RANDOM" in m.describe()["weights"]


def test_bad_options_raise_one_sentence():
    for bad in ({"fusion": "max"}, {"variant": "other"}, {"loss_type": "mse", "with_avu": True, "ruc_form": "euc"},
                {"prompt_template": "no slot"}):
        with pytest.raises(ConfigError):
            _method(**bad)


def test_shared_frozen_blocks_give_the_teachers_exact_output():
    m = _method()
    m._build_teacher(None)
    assert m._share
    x = _batch()["image"]
    with torch.no_grad():
        shared = m.teacher(h=m.net.lower(x), start=m.net.num_frozen_blocks)
        full = m.teacher(x=x)
        v = m.teacher.visual
        h = v.ln_post(v.transformer(v.ln_pre(_stem_ref(v, x))))
        plain = h[:, 0] @ v.proj                                          # CLS-only last block == full block
    assert torch.allclose(shared, full, atol=1e-5) and torch.allclose(full, plain, atol=1e-5)


def _stem_ref(v, x):
    h = v.conv1(x).flatten(2).transpose(1, 2)
    return torch.cat([v.class_embedding.expand(h.shape[0], 1, -1), h], 1) + v.positional_embedding


def test_paper_variant_uses_its_own_view_and_ds_fusion():
    m = _method(variant="paper")
    assert set(m.extra_views()) == {"image_teacher"}
    b = _batch()
    phase = m.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    ctx.iters_per_epoch, ctx.epoch = 4, 2
    b["image_teacher"] = torch.flip(b["image"], dims=[3])
    out = m.train_step(phase, b, ctx)
    assert not m._share and {"cls", "kl", "ruc", "kd"} <= set(out)
    assert out["loss"] == pytest.approx(out["cls"] + out["kl"] + out["ruc"] + out["kd"], rel=1e-5)
    pred = m.predict(b["image"])
    assert "branches" not in pred.extra
    # a Dirichlet opinion: p_k = b_k + u / C (b_k = e_k / S, u = C / S), the fused one included
    torch.testing.assert_close(pred.probs, pred.extra["belief"] + pred.uncertainty[:, None] / 7, atol=1e-5, rtol=0)


def test_training_moves_only_unfrozen_layers_and_sets_lr_per_iteration():
    m = _method(fix_layer=2)
    before = {k: v.clone() for k, v in m.net.visual.state_dict().items()}
    phase = m.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), torch.bfloat16)
    ctx.iters_per_epoch, ctx.epoch, ctx.iteration = 4, 1, 2
    out = m.train_step(phase, _batch(), ctx)
    assert out["lr"] == pytest.approx(lr_at(1.5, 1e-3, 1e-8, 5.0, 4))
    after = m.net.visual.state_dict()
    assert torch.equal(before["transformer.resblocks.1.mlp.c_fc.weight"], after["transformer.resblocks.1.mlp.c_fc.weight"])
    assert torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert not torch.equal(before["transformer.resblocks.2.mlp.c_fc.weight"], after["transformer.resblocks.2.mlp.c_fc.weight"])
    assert not torch.equal(before["proj"], after["proj"])


def test_warmup_then_cosine_schedule():
    assert lr_at(0.0, 1e-4, 1e-8, 5, 50) == 0.0
    assert lr_at(2.5, 1e-4, 1e-8, 5, 50) == pytest.approx(5e-5)
    assert lr_at(5.0, 1e-4, 1e-8, 5, 50) == pytest.approx(1e-4)
    assert lr_at(27.5, 1e-4, 1e-8, 5, 50) == pytest.approx((1e-4 + 1e-8) / 2)
    assert lr_at(50.0, 1e-4, 1e-8, 5, 50) == pytest.approx(1e-8)


def test_zero_shot_needs_weights_and_predicts_with_them(tmp_path):
    cfg = build_experiment("uafer", model={"model_size": "tiny"})
    with pytest.raises(ConfigError, match="clip-path"):
        zero_shot_method(cfg, labels.RAFDB, torch.device("cpu"))
    from ferkit.models.clip import build_clip

    torch.save(build_clip("tiny", seed=4).state_dict(), tmp_path / "tiny.pt")
    cfg = build_experiment("uafer", model={"model_size": "tiny", "clip_path": str(tmp_path / "tiny.pt")})
    m = zero_shot_method(cfg, labels.RAFDB, torch.device("cpu"))
    pred = m.predict(_batch()["image"])
    assert pred.probs.shape == (4, 7)
    torch.testing.assert_close(pred.probs, pred.extra["belief"] + pred.uncertainty[:, None] / 7, atol=1e-5, rtol=0)
    assert "tiny.pt" in m.describe()["weights"]


def test_api_predict_inputs_and_checkpoint_round_trip(tmp_path):
    from PIL import Image

    from ferkit import UAFER

    model = UAFER(num_classes=7, model_size="tiny", fix_layer=1, device="cpu", precision="fp32")
    x = _batch(3)["image"]
    probs, unc = model.predict(x)
    assert probs.shape == (3, 7) and unc.shape == (3,)
    img = (np.random.default_rng(0).random((80, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "face.png")
    p_path, _ = model.predict([tmp_path / "face.png"])
    p_pil, _ = model.predict([Image.fromarray(img)])
    assert torch.allclose(p_path, p_pil)
    model.save(tmp_path / "uafer.safetensors")
    again = UAFER.load(tmp_path / "uafer.safetensors", device="cpu")
    assert torch.allclose(again.predict(x)[0], probs, atol=1e-6)
    assert again.label_space == labels.RAFDB
