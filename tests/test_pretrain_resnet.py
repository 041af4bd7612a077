"""`ferkit pretrain resnet18`: identity pretraining writes weights that --backbone-weights loads, and learns.

The stand-in for DICE-FER's CASIA-WebFace start: a ResNet-18 trained to tell SynthFER people apart. Checks
that the file is the torchvision layout (every trunk tensor loaded, nothing missing), that the trunk learned
identity well above chance on its training people, and that bad input is refused with one sentence.
"""

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.data.labels import SYNTHFER
from ferkit.data.records import DatasetSplit, Sample
from ferkit.errors import DataError
from ferkit.models.resnet import ResNet18Trunk, load_backbone_weights
from ferkit.pretrain.resnet import IdentityPretrainConfig, identity_split, pretrain_identity_resnet

#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


def test_cli_writes_torchvision_weights_that_dicefer_loads(tmp_path, capsys):
    out = tmp_path / "resnet18_faceid.pth"
    rc = main(["pretrain", "resnet18", "--out", str(out), "--synth-identities", "6", "--synth-images", "14",
               "--size", "32", "--epochs", "4", "--precision", "fp32"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "6 subjects" in text and "--backbone-weights" in text
    rows = (tmp_path / "resnet18_faceid.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,seconds" and len(rows) == 5
    # identity learned on the training people: last-epoch accuracy far above chance (1/6)
    assert float(rows[-1].split(",")[2]) > 0.6, rows
    report = load_backbone_weights(ResNet18Trunk(1), out)
    assert report["missing"] == [] and report["ignored"] == []
    assert len(report["loaded"]) == len(ResNet18Trunk(1).state_dict())
    # and DICE-FER's encoders start from it
    from ferkit.api.dicefer import DICEFER

    model = DICEFER(image_size=32, backbone_weights=str(out), device="cpu", precision="fp32")
    trained = torch.load(out, weights_only=True)["state_dict"]["layer4.1.conv2.weight"]
    enc = model.method.nets["exp_encoders"]["n"].trunk.layer4[1].conv2.weight
    assert torch.equal(enc, trained)
    assert "tensors loaded" in model.describe()["weights"]


def test_pretrained_trunk_separates_people_it_never_saw_better_than_random():
    """Features transfer: nearest-centroid identity accuracy on held-out images of the training people."""
    split = identity_split("synthetic", None, synth={"identities": 6, "images_per_identity": 24, "size": 32,
                                                      "seed": 3})
    rng = np.random.default_rng(0)
    fit_idx, hold_idx = [], []
    for s in np.unique(split.subjects):
        idx = rng.permutation(np.flatnonzero(split.subjects == s))
        hold_idx += idx[:6].tolist()
        fit_idx += idx[6:].tolist()
    fit = DatasetSplit("synthetic", "train", split.label_space, [split.samples[i] for i in fit_idx])
    hold = DatasetSplit("synthetic", "test", split.label_space, [split.samples[i] for i in hold_idx])
    cfg = IdentityPretrainConfig(image_size=32, epochs=8, precision="fp32", batch_size=32)
    trunk, hist = pretrain_identity_resnet(fit, cfg, log=None)
    assert len(hist) == 8 and hist[-1]["loss"] < hist[0]["loss"]

    from ferkit.data.transforms import preprocess_batch
    from ferkit.pretrain.resnet import preprocessing

    def feats(net, sp):
        with torch.no_grad():
            x = preprocess_batch([s.image for s in sp.samples], preprocessing(cfg))
            return torch.nn.functional.normalize(net(x)["pooled"], dim=1).numpy()

    def centroid_acc(net):
        f_fit, f_hold = feats(net, fit), feats(net, hold)
        subs = np.unique(fit.subjects)
        cents = np.stack([f_fit[fit.subjects == s].mean(0) for s in subs])
        return float((subs[(f_hold @ cents.T).argmax(1)] == hold.subjects).mean())

    torch.manual_seed(0)
    trained, random = centroid_acc(trunk.eval()), centroid_acc(ResNet18Trunk(1).eval())
    assert trained > 0.6 and trained > random, (trained, random)


def test_refuses_data_without_subjects_and_bad_out(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    split = DatasetSplit("rafdb", "all", SYNTHFER, [Sample(image=img, expression=0, subject=-1) for _ in range(4)])
    with pytest.raises(DataError, match="subject"):
        pretrain_identity_resnet(split, IdentityPretrainConfig(image_size=32, epochs=1), log=None)
    assert main(["pretrain", "resnet18", "--out", str(tmp_path / "w.txt"), "--epochs", "1"]) != 0


def test_channels_last_pretraining_moves_the_weights_by_float_rounding_only():
    """``channels_last`` (the demo's ResNet layout option) reaches the engine: the same two steps with the summation
    order changed, so the trunk differs from the contiguous one, not bit for bit, and only within what rounding can
    do through Adam (whose step on a near-zero gradient flips with its sign: at most lr per step per weight)."""
    split = identity_split("synthetic", None, synth={"identities": 4, "images_per_identity": 8, "size": 32,
                                                      "seed": 5})
    trunks = [pretrain_identity_resnet(split, IdentityPretrainConfig(image_size=32, epochs=1, batch_size=16,
                                                                     precision="fp32", device="cpu",
                                                                     channels_last=cl), log=None)[0]
              for cl in (False, True)]
    a, b = (t.state_dict() for t in trunks)
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a if a[k].is_floating_point()])
    assert 0 < diff.max() <= 2 * 1e-3 * 1.01                    # 32 images at batch 16: 2 steps of lr 1e-3
    assert diff.median() < 1e-5                                 # most weights: rounding alone
