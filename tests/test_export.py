"""ONNX export: parity with PyTorch, dynamic batch, self-describing metadata, `predict --engine onnx`."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data as skdata

from ferkit.cli import main
from ferkit.inference import load_model
from ferkit_testmodels import single_thread, tiny_checkpoint


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.getbasetemp() / "models")


@pytest.fixture(scope="module")
def onnx_path(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_parity_with_pytorch_on_a_batch_of_any_size(ckpt, onnx_path):
    import torch

    from ferkit.engine.checkpoint import load_method

    method = load_method(ckpt, device="cpu")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["probs", "uncertainty", "embedding"]
    for batch in (1, 5):
        x = torch.randn(batch, 1, 64, 64, generator=torch.Generator().manual_seed(batch))
        probs, unc, emb = sess.run(None, {"image": x.numpy()})
        with torch.no_grad():
            ref = method.predict(x)
        assert probs.shape == (batch, 7) and unc.shape == (batch,)
        assert np.abs(probs - ref.probs.numpy()).max() < 1e-4
        assert np.abs(unc - (1 - ref.probs.numpy().max(1))).max() < 1e-4
        assert np.abs(emb - ref.embedding.numpy()).max() < 1e-4


def test_metadata_makes_the_onnx_file_self_sufficient(ckpt, onnx_path):
    props = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_modelmeta()
    meta = json.loads(props.custom_metadata_map["ferkit"])
    assert meta["method"] == "baseline" and meta["label_space"]["classes"][1] == "happy"
    assert meta["preprocessing"]["size"] == 64
    export = json.loads(props.custom_metadata_map["ferkit_export"])
    assert export["uncertainty_kind"] == "max_prob" and export["opset"] >= 17


def test_predict_with_onnx_engine_matches_torch_rows(ckpt, onnx_path, tmp_path):
    from PIL import Image

    img = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(img)
    by_torch = load_model(ckpt, device="cpu").predict(img)
    by_onnx = load_model(onnx_path).predict(img)
    assert load_model(onnx_path).info()["engine"] == "onnx"
    assert len(by_torch) == len(by_onnx) == 1
    a, b = by_torch[0], by_onnx[0]
    assert a["box"] == b["box"] and a["label"] == b["label"]
    assert max(abs(a["probs"][c] - b["probs"][c]) for c in a["probs"]) < 1e-4
    out = tmp_path / "rows.json"
    assert main(["predict", str(ckpt), str(img), "--engine", "onnx", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert max(abs(a["probs"][c] - row["probs"][c]) for c in a["probs"]) < 1e-4


def test_export_refuses_a_bad_out_name_and_torch_engine_on_onnx(ckpt, onnx_path, tmp_path, capsys):
    assert main(["export", str(ckpt), "--out", str(tmp_path / "model.bin")]) == 2
    assert main(["predict", str(onnx_path), str(tmp_path), "--engine", "torch"]) == 2
    err = capsys.readouterr().err
    assert "must end in .onnx" in err and "is an ONNX file" in err


@pytest.mark.parametrize("name,model_cfg,outputs,kind", [
    ("dicefer", {"image_size": 64}, ["probs", "uncertainty", "embedding"], "max_prob"),
    ("uafer", {"model_size": "tiny"}, ["probs", "uncertainty", "embedding", "belief"], "evidential"),
])
def test_dicefer_and_uafer_export_with_their_embeddings_and_uncertainty(name, model_cfg, outputs, kind, tmp_path):
    import torch

    from ferkit.config import build_experiment
    from ferkit.data.labels import RAFDB
    from ferkit.export import export_method_onnx
    from ferkit.inference.model import model_from_method
    from ferkit.methods.registry import get_method

    cfg = build_experiment(name, data={"dataset": "rafdb"}, model=model_cfg)
    method = get_method(name)(cfg, RAFDB, torch.device("cpu"))
    fer = model_from_method(method)
    assert fer.uncertainty_kind == kind and fer.classes == RAFDB.classes
    info = export_method_onnx(method, tmp_path / f"{name}.onnx")
    assert info["outputs"] == outputs and info["uncertainty_kind"] == kind
    assert max(info["max_abs_diff"].values()) < 1e-4, info["max_abs_diff"]
    crop = skdata.astronaut()[40:220, 150:300]
    by_torch = fer.predict(crop, aligned=True)[0]
    by_onnx = load_model(tmp_path / f"{name}.onnx").predict(crop, aligned=True)[0]
    assert by_onnx["label"] == by_torch["label"]
    assert abs(by_onnx["uncertainty"] - by_torch["uncertainty"]) < 1e-4


def _initializer_elements(path) -> int:
    import onnx

    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)


def test_dicefer_export_runs_the_expression_path_only_unless_the_identity_code_is_asked(tmp_path):
    """The default export holds no identity-encoder weights (the graph's initializers are fewer than the model's
    parameters by at least the identity encoder's) and its probabilities equal the full model's (<= 1e-6);
    ``outputs=("identity",)`` adds the identity code, equal to the identity encoder's."""
    import onnxruntime as ort
    import torch

    from ferkit.config import build_experiment
    from ferkit.data.labels import RAFDB
    from ferkit.errors import FerkitError
    from ferkit.export import export_method_onnx
    from ferkit.methods.registry import get_method

    cfg = build_experiment("dicefer", data={"dataset": "rafdb"}, model={"image_size": 32})
    method = get_method("dicefer")(cfg, RAFDB, torch.device("cpu"))
    lean = export_method_onnx(method, tmp_path / "lean.onnx")
    full = export_method_onnx(method, tmp_path / "full.onnx", outputs=("identity",))
    assert lean["outputs"] == ["probs", "uncertainty", "embedding"]
    assert full["outputs"] == ["probs", "uncertainty", "embedding", "identity"]
    id_params = sum(p.numel() for p in method.nets["id_encoders"]["m"].parameters())
    assert _initializer_elements(tmp_path / "full.onnx") - _initializer_elements(tmp_path / "lean.onnx") >= id_params * 0.99
    x = torch.randn(5, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    ref = method.predict(x)                                              # the full model, identity encoder and all
    for name in ("lean", "full"):
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x.numpy()}), strict=True))
        assert np.abs(got["probs"] - ref.probs.numpy()).max() <= 1e-6
    assert np.abs(got["identity"] - ref.extra["identity"].numpy()).max() <= 1e-5
    with pytest.raises(FerkitError, match="optional outputs are: identity"):
        export_method_onnx(method, tmp_path / "x.onnx", outputs=("gaze",))
    base = get_method("baseline")(build_experiment("baseline", data={"dataset": "rafdb"}, model={"image_size": 32}),
                                  RAFDB, torch.device("cpu"))
    with pytest.raises(FerkitError, match="no 'identity' output"):
        export_method_onnx(base, tmp_path / "y.onnx", outputs=("identity",))


def test_onnx_sessions_share_the_cpu_with_torch_without_spin_waiting(onnx_path):
    """onnxruntime's threads must not spin after a run: beside them the face detector (torch, in predict's
    prefetch worker) ran at half speed. Each session ferkit opens uses torch's thread count and no spinning."""
    import torch

    session = load_model(onnx_path, device="cpu", engine="onnx").engine.session
    opts = session.get_session_options()
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert opts.get_session_config_entry(key) == "0", key
    assert opts.intra_op_num_threads == torch.get_num_threads() and opts.inter_op_num_threads == 1
