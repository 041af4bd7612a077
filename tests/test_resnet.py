"""ResNet-18 trunk: output shapes, and pretrained weights loaded identically from every accepted form."""

import pytest
import torch

from ferkit.errors import CheckpointError, ConfigError
from ferkit.models.resnet import ResNet18Trunk, load_backbone_weights

#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


def _torchvision_state() -> dict:
    """A fabricated torchvision resnet18 state dict (3-channel conv1, with fc), random but fixed."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    net = resnet18(weights=None, num_classes=1000)
    with torch.no_grad():  # non-trivial BN statistics, so a missed buffer would change the output
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def test_shapes_112():
    trunk = ResNet18Trunk(in_channels=1).eval()
    out = trunk(torch.randn(2, 1, 112, 112))
    assert out["layer3"].shape == (2, 256, 7, 7)
    assert out["layer4"].shape == (2, 512, 4, 4)
    assert out["pooled"].shape == (2, 512)


def test_bad_arguments_refused():
    with pytest.raises(ConfigError):
        ResNet18Trunk(in_channels=2)
    with pytest.raises(ConfigError):
        ResNet18Trunk(gray_mode="average")


def test_every_form_loads_to_identical_outputs(tmp_path):
    sd = _torchvision_state()
    forms = {
        "plain.pth": sd,
        "wrapped.pth": {"state_dict": sd, "epoch": 40},
        "module.pth": {"state_dict": {"module." + k: v for k, v in sd.items()}},
        "backbone.pth": {"backbone." + k: v for k, v in sd.items()},
    }
    x = torch.rand(3, 1, 64, 64)
    outs = []
    for name, obj in forms.items():
        torch.save(obj, tmp_path / name)
        trunk = ResNet18Trunk(in_channels=1).eval()
        report = load_backbone_weights(trunk, tmp_path / name)
        assert report["missing"] == []
        assert all(k.split(".")[-2] == "fc" for k in report["ignored"]) and len(report["ignored"]) == 2
        with torch.no_grad():
            outs.append(trunk(x)["layer4"])
    for o in outs[1:]:
        assert torch.equal(o, outs[0])

    # the gray trunk equals the 3-channel trunk fed the gray image in all three channels
    rgb = ResNet18Trunk(in_channels=3).eval()
    load_backbone_weights(rgb, tmp_path / "plain.pth")
    with torch.no_grad():
        ref = rgb(x.repeat(1, 3, 1, 1))["layer4"]
    torch.testing.assert_close(outs[0], ref, rtol=1e-4, atol=1e-4)


def test_non_weights_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_backbone_weights(ResNet18Trunk(), garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone_weights(ResNet18Trunk(), tmp_path / "absent.pth")
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3, 3)}}, other)
    with pytest.raises(CheckpointError, match="no ResNet-18 keys"):
        load_backbone_weights(ResNet18Trunk(), other)
    wrong = tmp_path / "wrong.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(5, 5, 3, 3)}, wrong)
    with pytest.raises(CheckpointError, match="not ResNet-18"):
        load_backbone_weights(ResNet18Trunk(), wrong)
