"""UA-FER on the real ViT-B/16 architecture (random weights): parameter counts, layer-wise lr scales, and the
released variant equal to a transcription of the released code's test and training maths.

The reference below restates, in our own words, what UAFER's models/uafer.py, engine_fer.py and
utils/edl_loss.py compute (METHODS.md B.1-B.2), on an independently built open_clip model.
"""

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ferkit.config import build_experiment
from ferkit.data.labels import RAFDB
from ferkit.engine.method import StepContext
from ferkit.methods.uafer import UAFERMethod
from ferkit.methods.uafer_optim import param_groups
from ferkit.models.clip import CLIP_SIZES, build_clip

RAFDB_WORDS = ["surprise", "fear", "disgusted", "happy", "sad", "anger", "neutral"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # fp16 on disk, as OpenAI ships ViT-B-16.pt; both sides compute in fp32
    sd = {k: v.half() for k, v in build_clip("ViT-B-16", seed=7).state_dict().items()}
    path = tmp_path_factory.mktemp("clip") / "ViT-B-16-random.pt"
    torch.save(sd, path)
    cfg = build_experiment("uafer", train={"precision": "fp32", "epochs": 50, "lr": 1e-4},
                           model={"clip_path": str(path), "variant": "released", "alpha": 0.1, "topk": 16,
                                  "fix_layer": 2})
    method = UAFERMethod(cfg, RAFDB, torch.device("cpu"))
    spec = CLIP_SIZES["ViT-B-16"]
    ref = open_clip.model.CLIP(spec["embed_dim"], spec["vision_cfg"], spec["text_cfg"], quick_gelu=True)
    ref.load_state_dict(sd)
    del sd
    return method, ref.eval()


def test_trainable_parameter_counts(setup):
    method, _ = setup
    visual = method.net.visual
    assert sum(p.numel() for p in method.net.parameters() if p.requires_grad) == 71_273_472        # 71.27 M
    count = {fix: sum(p.numel() for g in param_groups(visual, fix, 5e-4, 0.65) for p in g["params"]) for fix in (2, 8)}
    assert count == {2: 71_273_472, 8: 28_746_240}                                                  # 28.75 M
    assert all(not p.requires_grad for p in visual.transformer.resblocks[1].parameters())
    assert all(p.requires_grad for p in visual.transformer.resblocks[2].parameters())


def test_layerwise_lr_scales_and_weight_decay(setup):
    method, _ = setup
    groups = method.phases()[0].optimizers["adamw"].param_groups
    assert len(groups) == 22 and len({g["lr_scale"] for g in groups}) == 11
    for g in groups:
        assert g["lr_scale"] == pytest.approx(0.65 ** (13 - g["layer_id"]))
        assert g["weight_decay"] == (5e-4 if all(p.ndim >= 2 for p in g["params"]) else 0.0)
        assert all(p.ndim == 1 for p in g["params"]) or all(p.ndim >= 2 for p in g["params"])
    scales = {g["layer_id"]: g["lr_scale"] for g in groups}
    assert scales[13] == 1.0 and scales[12] == pytest.approx(0.65) and scales[3] == pytest.approx(0.65 ** 10)


# --- reference transcription of the released code ------------------------------------------------------

def _ref_tokens(clip, x):
    """forward_features: conv1 -> CLS + positional -> ln_pre -> 12 blocks -> ln_post on all 197 tokens."""
    v = clip.visual
    x = v.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
    x = v.ln_pre(x + v.positional_embedding)
    x = v.transformer(x)              # open_clip's blocks are batch-first (the released code permutes to LND)
    return v.ln_post(x)


def _ref_logits(clip, x, label_token, alpha, topk, normalise_text):
    text = clip.encode_text(label_token)                                   # forward_text, no grad
    if normalise_text:                                                     # forward() does, test() does not
        text = text / text.norm(dim=-1, keepdim=True)
    h = _ref_tokens(clip, x)
    dist = h[:, 0] @ clip.visual.proj
    dist = dist / dist.norm(dim=-1, keepdim=True)
    pred = h[:, 1:] @ clip.visual.proj
    pred = pred / pred.norm(dim=-1, keepdim=True)
    score1 = torch.topk(pred @ text.t(), k=topk, dim=1)[0].mean(dim=1)
    score2 = dist @ text.t()
    score1 = score1 / score1.norm(dim=-1, keepdim=True)
    score2 = score2 / score2.norm(dim=-1, keepdim=True)
    return alpha * score1 + (1 - alpha) * score2, dist


def _ref_evd(logits, num_classes):
    alpha = F.relu(logits) + 1
    strength = alpha.sum(dim=1, keepdim=True)
    return alpha / strength, (num_classes / strength).squeeze(1)


@torch.no_grad()
def test_released_variant_equals_reference_test_and_training_paths(setup):
    method, ref = setup
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 224, 224, generator=g)
    labels = torch.tensor([2, 5])
    tokens = open_clip.tokenizer.tokenize(RAFDB_WORDS)
    assert method.prompts == RAFDB_WORDS

    logits, _ = _ref_logits(ref, x, tokens, 0.1, 16, normalise_text=False)
    ref_probs, ref_u = _ref_evd(logits, 7)
    pred = method.predict(x)
    assert torch.allclose(pred.probs, ref_probs, atol=1e-4)
    assert torch.allclose(pred.uncertainty, ref_u, atol=1e-4)
    assert (ref_u > 0.7).all() and (ref_u <= 1).all()

    train_logits, dist = _ref_logits(ref, x, tokens, 0.1, 16, normalise_text=True)
    p, _ = _ref_evd(train_logits, 7)
    y = torch.eye(7)[labels]
    rank_loss = ((y - p) ** 2).sum(dim=1, keepdim=True).mean()             # EvidenceLoss 'mse' -> loss_cls
    teacher_cls = ref.visual(x)                                            # second CLIP: ln_post(all)[:, 0] @ proj
    ref_loss = rank_loss + 1.0 * F.l1_loss(dist, teacher_cls.float())

    phase = method.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    ctx.iters_per_epoch = 10
    with torch.enable_grad():
        scalars = method.train_step(phase, {"image": x, "expression": labels}, ctx)
    assert method._share                                                   # frozen blocks computed once
    assert scalars["cls"] == pytest.approx(rank_loss.item(), abs=1e-4)
    assert scalars["loss"] == pytest.approx(ref_loss.item(), abs=1e-4)
