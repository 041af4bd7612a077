"""Predict runs only what it needs and its rows are unchanged: DICE-FER's identity encoder stays off for rows
(on for the leakage audit), crops are preprocessed in batches, and photos are detected together; every
probability equals the one-image-at-a-time path with both encoders within 1e-6 (plus the rows' rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data.faces import align_face
from ferkit.data.transforms import FERTransform, preprocess_batch
from ferkit.inference.model import model_from_method

#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")
#: rows hold probabilities rounded to 6 decimals: 1e-6 plus that rounding
ROUNDED = 1e-6 + 5e-7


@pytest.fixture(scope="module")
def dicefer():
    from ferkit.config import build_experiment
    from ferkit.data.labels import RAFDB
    from ferkit.engine.registry import get_method

    torch.manual_seed(0)
    cfg = build_experiment("dicefer", data={"dataset": "rafdb"},
                           model={"image_size": 32, "critic_hidden": 16, "disc_hidden": (16, 8)})
    method = get_method("dicefer")(cfg, RAFDB, torch.device("cpu"))
    method.eval_mode()
    calls = {"identity": 0}
    method.nets["id_encoders"]["m"].register_forward_hook(lambda *a: calls.__setitem__("identity",
                                                                                       calls["identity"] + 1))
    return method, calls


def reference_probs(method, crops: list[np.ndarray]) -> np.ndarray:
    """The old path: each crop through FERTransform alone, both encoders."""
    t = FERTransform(method.preprocessing(), train=False)
    with torch.no_grad():
        return method.predict(torch.stack([t(c) for c in crops])).probs.numpy()


def test_batched_preprocessing_equals_the_per_image_transform():
    from ferkit.data.preprocessing import Preprocessing

    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(3)] + \
            [rng.integers(0, 256, (50, 30), dtype=np.uint8)]
    for pre in (Preprocessing(size=32, channels=1, mean=(0.5,), std=(0.5,), whitening="per_image"),
                Preprocessing(size=24, channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4), resize="bicubic")):
        t = FERTransform(pre, train=False)
        torch.testing.assert_close(preprocess_batch(crops, pre), torch.stack([t(c) for c in crops]),
                                   rtol=0, atol=1e-6)


def test_aligned_rows_skip_the_identity_encoder_and_keep_their_probabilities(dicefer):
    method, calls = dicefer
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(7)] + \
            [rng.integers(0, 256, (45, 45, 3), dtype=np.uint8)]
    model = model_from_method(method)
    calls["identity"] = 0
    rows = model.predict(crops, aligned=True, batch_size=3)
    assert calls["identity"] == 0
    got = np.array([[r["probs"][c] for c in model.classes] for r in rows])
    ref = reference_probs(method, crops)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ROUNDED)
    np.testing.assert_allclose(model.predict_crops(crops, 3)["probs"], ref, rtol=0, atol=1e-6)
    # the leakage audit still gets the identity code
    from ferkit.data.labels import RAFDB
    from ferkit.data.records import DatasetSplit, Sample
    from ferkit.engine.evaluate import collect_predictions

    split = DatasetSplit("rafdb", "test", RAFDB, [Sample(c, 0, i) for i, c in enumerate(crops[:4])])
    out = collect_predictions(method, split, batch_size=4)
    assert calls["identity"] > 0 and out["identity_embedding"].shape[0] == 4


def test_photo_rows_detected_together_equal_one_photo_at_a_time(dicefer):
    from skimage import data as skdata

    method, _ = dicefer
    photo = skdata.astronaut()                                            # 512 x 512, one face
    photos = [photo, np.ascontiguousarray(photo[:, ::-1]), np.ascontiguousarray(photo[40:, 20:])]
    model = model_from_method(method)
    rows = model.predict(photos, batch_size=4)
    assert [r["status"] for r in rows] == ["ok"] * 3
    pre = model.preprocessing
    ref_crops, ref_boxes = [], []
    for p in photos:                                                      # one image per MTCNN pass
        face = model.detector.detect_batch([p])[0][0]
        ref_boxes.append(face.box)
        ref_crops.append(align_face(p, face.landmarks, pre.size, pre.template))
    np.testing.assert_allclose([r["box"] for r in rows], ref_boxes, atol=0.01)
    got = np.array([[r["probs"][c] for c in model.classes] for r in rows])
    np.testing.assert_allclose(got, reference_probs(method, ref_crops), rtol=0, atol=ROUNDED)


@pytest.mark.parametrize("amx,flags,expected", [(False, set(), "torch"), (False, {"avx512_bf16"}, "torch-bf16"),
                                                 (True, {"amx_bf16"}, "torch-bf16")])
def test_precision_auto_picks_bf16_only_where_measured_harmless_and_faster(amx, flags, expected, tmp_path,
                                                                            monkeypatch):
    """``--precision auto`` runs a baseline or DICE-FER in bf16 where the CPU runs its convolutions faster in it
    (AMX, Arm BF16, and AVX512-BF16 without AMX), fp32 elsewhere; the models whose bf16 inference is not measured
    (the built-in mini-Xception) stay fp32 even with AMX. ``--engine auto`` takes torch for a checkpoint, onnx for
    a .onnx."""
    import platform

    from ferkit.engine import devices
    from ferkit.export import export_onnx
    from ferkit.inference.model import load_model
    from ferkit_testmodels import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "m", channels=3)
    monkeypatch.setattr(devices, "cpu_bf16_is_faster", lambda: amx)
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    model = load_model(ckpt, device="cpu", engine="auto", precision="auto")
    assert model.engine.name == expected
    assert load_model("fer-minixception", device="cpu", precision="auto").engine.name == "torch"
    export_onnx(ckpt, tmp_path / "m.onnx", check=False)
    assert load_model(tmp_path / "m.onnx", device="cpu", engine="auto").engine.name.startswith("onnx")
