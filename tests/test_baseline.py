"""The baseline learns SynthFER well above chance on identities it never saw, and predicts what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.errors import CheckpointError, ConfigError


def test_baseline_learns_synthfer_on_unseen_identities(tmp_path):
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.trainer import train

    synth = render_synthfer(identities=21, images_per_identity=24, size=48, seed=0, split_fractions=(0.7, 0.0, 0.3))
    train_ids = set(synth.splits["train"].subjects.tolist())
    assert not train_ids & set(synth.splits["test"].subjects.tolist())
    cfg = build_experiment("baseline", {"dataset": "synthetic"},
                           {"epochs": 4, "batch_size": 16, "lr": 1e-3, "eval_every": 0, "device": "cpu",
                            "out": str(tmp_path / "run")},
                           {"image_size": 48, "whitening": "per_image"})
    result = train(cfg, splits=synth.splits, progress=False)
    test = result.metrics["test"]
    # chance is 1/7 = 0.143; on 144 test images 0.25 is 3.7 binomial standard deviations above it
    # (this setting reached 0.42 after 4 epochs when written)
    assert test["n"] == 144 and test["accuracy"] > 0.25, test


def test_predict_returns_probabilities_and_the_pooled_embedding():
    from ferkit.methods.registry import get_method

    cfg = build_experiment("baseline", {"dataset": "synthetic"}, {}, {"image_size": 32})
    method = get_method("baseline")(cfg, SYNTHFER, torch.device("cpu"))
    method.eval_mode()
    pred = method.predict(torch.randn(3, 1, 32, 32))
    assert pred.probs.shape == (3, 7) and pred.embedding.shape == (3, 512) and pred.uncertainty is None
    # the probabilities are the linear head's softmax over the very embedding returned beside them
    head = method.net.head
    want = torch.softmax(pred.embedding.float() @ head.weight.detach().T + head.bias.detach(), dim=1)
    torch.testing.assert_close(pred.probs.float(), want, atol=1e-5, rtol=1e-4)
    assert "random init" in method.describe()["backbone"]
    pre = method.preprocessing()
    assert (pre.size, pre.channels, pre.align) == (32, 1, "none")


def test_backbone_weights_are_loaded_and_described(tmp_path):
    from torchvision.models import resnet18

    from ferkit.methods.registry import get_method

    torch.manual_seed(5)
    ref = resnet18(weights=None)
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    cfg = build_experiment("baseline", {"dataset": "rafdb"}, {"backbone_weights": str(path)},
                           {"image_size": 32, "channels": 3})
    method = get_method("baseline")(cfg, SYNTHFER, torch.device("cpu"))
    assert torch.equal(method.net.trunk.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert str(path) in method.describe()["backbone"]
    assert method.preprocessing().align == "mtcnn5" and method.preprocessing().channels == 3
    bad = build_experiment("baseline", {}, {"backbone_weights": str(tmp_path / "missing.pth")}, {})
    with pytest.raises(CheckpointError, match="does not exist"):
        get_method("baseline")(bad, SYNTHFER, torch.device("cpu"))
    with pytest.raises(ConfigError, match="channels"):
        get_method("baseline")(build_experiment("baseline", {}, {}, {"channels": 2}), SYNTHFER, torch.device("cpu"))
    assert np.isfinite(method.net.head.weight.detach().numpy()).all()
