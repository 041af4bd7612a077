"""External models: shipped community specs checked end to end on tiny ONNX models whose outputs reveal
their input statistics; ResNet state dicts; `ferkit import`; export; the evaluation report; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.cli import main
from ferkit.errors import CheckpointError, ConfigError
from ferkit.external.spec import read_spec, shipped_specs

pytestmark = pytest.mark.usefixtures("one_thread")

COLOUR = (200, 100, 30)                          # R, G, B of the flat test image


class ChannelMeans(nn.Module):
    """Scores = [mean of channel 0, 1, 2 (NCHW or NHWC), 0, ...]: the logits reveal the input it was fed."""

    def __init__(self, k: int, nhwc: bool = False):
        super().__init__()
        self.k, self.nhwc = k, nhwc

    def forward(self, x):
        m = x.mean(dim=(1, 2)) if self.nhwc else x.mean(dim=(2, 3))                    # (B, C)
        return torch.cat([m, torch.zeros(x.shape[0], self.k - m.shape[1])], dim=1)     # (B, K)


def tiny_onnx(path: Path, shape: tuple, k: int, input_name: str = "input", dynamic: bool = True,
              nhwc: bool = False, two_inputs: bool = False) -> Path:
    import warnings

    model = ChannelMeans(k, nhwc)
    args: tuple = (torch.zeros(shape),)
    names = [input_name]
    if two_inputs:
        inner = model

        class Two(nn.Module):
            def forward(self, a, b):
                return inner(a) + b.mean()
        model, args, names = Two(), (torch.zeros(shape), torch.zeros(1)), [input_name, "extra"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["logits"], opset_version=17,
                          dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}} if dynamic else None,
                          dynamo=False)
    return path


def revealed(model, image: np.ndarray) -> np.ndarray:
    """The first three logits recovered from the probabilities (log p_c - log p_last = logit_c)."""
    p = model.predict_crops([image])["probs"][0]                   # unrounded (rows round probabilities)
    logp = np.log(p.astype(np.float64))
    return logp[:3] - logp[-1]


@pytest.mark.parametrize("stem,name,size", [("emotiefflib_enet_b0_8_best_vgaf", "input", 224),
                                            ("emotiefflib_enet_b2_8", "input", 260),
                                            ("opencv_zoo_fer_mobilefacenet", "data", 112)])
def test_shipped_spec_preprocessing_end_to_end(tmp_path, stem, name, size):
    import ferkit

    spec = read_spec(shipped_specs()[stem])
    assert spec.input_size == size
    onnx = tiny_onnx(tmp_path / "m.onnx", (1, 3, size, size), len(spec.classes), name,
                     dynamic=stem.startswith("emoti"))                 # the zoo graph: fixed batch 1
    model = ferkit.load_model(onnx, spec=shipped_specs()[stem], device="cpu")
    image = np.zeros((300, 280, 3), np.uint8) + np.array(COLOUR, np.uint8)          # RGB, not at model size
    want = (np.array(COLOUR) / 255.0 - np.array(spec.mean)) / np.array(spec.std)    # what the authors feed
    np.testing.assert_allclose(revealed(model, image), want, atol=1e-4)
    assert model.classes == spec.classes and len(model.predict([image] * 3, aligned=True)) == 3


def test_emotiefflib_class_order_maps_to_canonical_names():
    spec = read_spec(shipped_specs()["emotiefflib_enet_b0_8_best_vgaf"])
    assert spec.classes == ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    zoo = read_spec(shipped_specs()["opencv_zoo_fer_mobilefacenet"])
    assert zoo.classes == ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert zoo.preprocessing().align == "mtcnn5" and zoo.preprocessing().template == "default"


def write_spec(path: Path, **over) -> Path:
    base = {"name": "tiny", "input_size": 32, "color_order": "bgr", "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0],
            "classes": ["happy", "sad", "neutral", "anger"], "crop": "box", "output": "logits"}
    path.write_text(json.dumps({**base, **over}))
    return path


def test_bgr_nhwc_and_raw_range_reach_the_model(tmp_path):
    import ferkit

    onnx = tiny_onnx(tmp_path / "m.onnx", (1, 32, 32, 3), 4, nhwc=True)
    spec = write_spec(tmp_path / "s.json", layout="nhwc", divide_by=1, mean=[10, 90, 150], std=[8, 4, 20])
    model = ferkit.load_model(onnx, spec=spec, device="cpu")
    want = (np.array(COLOUR[::-1], float) - [10, 90, 150]) / [8, 4, 20]             # B, G, R on 0..255
    np.testing.assert_allclose(revealed(model, np.full((32, 32, 3), COLOUR, np.uint8)), want, atol=1e-4)


def test_import_onnx_keeps_the_graph_beside_and_checks_it(tmp_path, capsys):
    import ferkit

    onnx = tiny_onnx(tmp_path / "m.onnx", (1, 3, 32, 32), 4)
    spec = write_spec(tmp_path / "s.json")
    out = tmp_path / "imp" / "model.safetensors"
    assert main(["import", str(onnx), "--spec", str(spec), "--out", str(out)]) == 0
    assert (tmp_path / "imp" / "model.model.onnx").is_file() and "model.model.onnx" in capsys.readouterr().out
    image = np.full((40, 40, 3), COLOUR, np.uint8)
    direct = ferkit.load_model(onnx, spec=spec, device="cpu").predict(image, aligned=True)[0]["probs"]
    imported = ferkit.load_model(out, device="cpu")
    assert imported.method == "external" and imported.preprocessing.channel_order == "bgr"
    assert imported.predict(image, aligned=True)[0]["probs"] == pytest.approx(direct, abs=1e-6)
    (tmp_path / "imp" / "model.model.onnx").write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="SHA-256"):
        ferkit.load_model(out, device="cpu")


def resnet_state(path: Path, k: int = 4) -> Path:
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=k)
    torch.save({"state_dict": {f"module.{k_}": v for k_, v in net.state_dict().items()}}, path)
    return path


def test_resnet_state_dict_import_predict_export(tmp_path):
    import ferkit
    from ferkit.export import export_onnx

    sd = resnet_state(tmp_path / "r18.pth")
    spec = write_spec(tmp_path / "s.json", format="torchvision_resnet", strip_prefix="module.", color_order="rgb")
    out = tmp_path / "r18.safetensors"
    assert main(["import", str(sd), "--spec", str(spec), "--out", str(out)]) == 0
    crops = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    direct = ferkit.load_model(sd, spec=spec, device="cpu").predict_crops(crops)
    again = ferkit.load_model(out, device="cpu").predict_crops(crops)
    np.testing.assert_allclose(again["probs"], direct["probs"], atol=1e-6)
    assert again["embedding"].shape == (3, 512)                           # pooled features: leakage audits
    info = export_onnx(out, tmp_path / "r18.onnx")
    assert max(info["max_abs_diff"].values()) < 1e-4
    onnx_model = ferkit.load_model(tmp_path / "r18.onnx", device="cpu")
    np.testing.assert_allclose(onnx_model.predict_crops(crops)["probs"], direct["probs"], atol=1e-4)


def test_export_wraps_an_external_onnx_graph(tmp_path):
    import ferkit
    from ferkit.export import export_onnx

    onnx = tiny_onnx(tmp_path / "m.onnx", (1, 3, 32, 32), 4)
    spec = write_spec(tmp_path / "s.json")
    info = export_onnx(onnx, tmp_path / "wrapped.onnx", spec=spec)
    assert info["outputs"] == ["probs", "uncertainty"] and max(info["max_abs_diff"].values()) < 1e-6
    image = np.full((32, 32, 3), COLOUR, np.uint8)
    a = ferkit.load_model(tmp_path / "wrapped.onnx").predict(image, aligned=True)[0]
    b = ferkit.load_model(onnx, spec=spec).predict(image, aligned=True)[0]
    assert a["probs"] == pytest.approx(b["probs"], abs=1e-6) and a["uncertainty"] == pytest.approx(b["uncertainty"])


def test_evaluate_external_writes_the_same_report_as_own_checkpoints(tmp_path):
    from ferkit_testmodels import tiny_checkpoint
    from fixtures_layouts import make_synthfer_folder

    make_synthfer_folder(tmp_path / "data")
    resnet_state(tmp_path / "r18.pth", k=7)
    spec = write_spec(tmp_path / "s.json", format="torchvision_resnet", strip_prefix="module.", color_order="rgb",
                      classes=["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"],
                      model=str(tmp_path / "r18.pth"))
    own = tiny_checkpoint(tmp_path / "own", channels=3, size=32, align="none")
    outs = {}
    for label, model in (("external", spec), ("own", own)):
        outs[label] = tmp_path / f"report-{label}"
        assert main(["evaluate", str(model), "--dataset", "synthetic", "--data-path", str(tmp_path / "data"),
                     "--split", "all", "--out", str(outs[label]), "--batch-size", "16"]) == 0
    files = {k: sorted(p.name for p in v.iterdir()) for k, v in outs.items()}
    assert files["external"] == files["own"] and "report.html" in files["own"]
    m = {k: json.loads((v / "metrics.json").read_text()) for k, v in outs.items()}
    assert set(m["external"]) == set(m["own"])
    assert m["external"]["num_samples"] == 42 and m["external"]["leakage"]       # embeddings: leakage audited
    html = (outs["external"] / "report.html").read_text()
    assert "tiny" in html and "torchvision_resnet" in html
    assert main(["crossdata", str(spec), str(own), "--datasets", f"synthetic:{tmp_path / 'data'}",
                 "--out", str(tmp_path / "cross")]) == 0
    cross = json.loads((tmp_path / "cross" / "crossdata.json").read_text())
    assert cross["rows"][0].endswith("/s.json)") and cross["cells"][0]["images"] == 7   # named by its spec file


def test_bad_inputs_are_one_sentence(tmp_path):
    import ferkit

    spec = write_spec(tmp_path / "s.json")
    with pytest.raises(CheckpointError, match=r"spec says height 32"):
        ferkit.load_model(tiny_onnx(tmp_path / "a.onnx", (1, 3, 48, 48), 4, dynamic=False), spec=spec)
    with pytest.raises(CheckpointError, match=r"outputs 5 scores per image but its spec lists 4 classes"):
        ferkit.load_model(tiny_onnx(tmp_path / "b.onnx", (1, 3, 32, 32), 5), spec=spec)
    with pytest.raises(CheckpointError, match=r"has 2 inputs \(input, extra\)"):
        ferkit.load_model(tiny_onnx(tmp_path / "c.onnx", (1, 3, 32, 32), 4, two_inputs=True), spec=spec)
    rspec = write_spec(tmp_path / "r.json", format="torchvision_resnet", color_order="rgb")
    sd = torch.load(resnet_state(tmp_path / "r.pth"), weights_only=True)["state_dict"]
    with pytest.raises(CheckpointError, match=r"missing 102 key\(s\).*102 unexpected key\(s\) such as module\."):
        ferkit.load_model(resnet_state(tmp_path / "r.pth"), spec=rspec)       # the prefix not stripped
    clean = {k[len("module."):]: v for k, v in sd.items()}
    torch.save({**clean, "extra.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\) such as extra.weight"):
        ferkit.load_model(tmp_path / "x.pth", spec=rspec)
    torch.save({k: v for k, v in clean.items() if k != "layer4.1.bn2.weight"}, tmp_path / "y.pth")
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\) such as layer4.1.bn2.weight"):
        ferkit.load_model(tmp_path / "y.pth", spec=rspec)
    with pytest.raises(CheckpointError, match=r"fc layer has 4 outputs but the spec lists 7"):
        ferkit.load_model(tmp_path / "x.pth", spec=write_spec(tmp_path / "r7.json", format="torchvision_resnet",
                          classes=["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]))
    with pytest.raises(CheckpointError, match=r"Unknown built-in model 'fer-minixcepton'"):
        ferkit.load_model("fer-minixcepton")
    with pytest.raises(ConfigError, match=r"'joyful' is not an expression name"):
        ferkit.load_model(tmp_path / "a.onnx", spec=write_spec(tmp_path / "j.json", classes=["joyful", "sad"]))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) mean_rgb"):
        ferkit.load_model(tmp_path / "a.onnx", spec=write_spec(tmp_path / "k.json", mean_rgb=[1]))


def test_cli_refuses_with_one_sentence_and_exit_2(tmp_path, capsys):
    onnx = tiny_onnx(tmp_path / "a.onnx", (1, 3, 48, 48), 4, dynamic=False)
    code = main(["import", str(onnx), "--spec", str(write_spec(tmp_path / "s.json")), "--out",
                 str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ferkit: error: ONNX model a.onnx's input") and len(err.splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()
    assert main(["predict", "fer-minixcepton", str(tmp_path)]) == 2
    assert "Unknown built-in model 'fer-minixcepton'" in capsys.readouterr().err
