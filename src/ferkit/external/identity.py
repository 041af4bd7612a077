"""Built-in identity networks: face recognizers whose weights ship in a pip package, run in PyTorch.

``dlib-resnet``: dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis King; a 29-convolution ResNet,
150x150 aligned RGB chip -> 128-D descriptor, trained by metric learning on about 3 million faces; dlib
reports 99.38% on LFW), read from the ``.dat`` that PyPI ``face-recognition-models`` installs. ferkit
parses dlib's serialization itself (``ferkit.models.dlib_resnet``); dlib is not needed at run time.
The package's ``__init__`` imports ``pkg_resources``, which recent setuptools no longer ships, so the file
is found through the package's location and the package is never imported.

Preprocessing is dlib's: ``get_face_chip`` at 150 px with padding 0.25 (``ferkit.data.dlib_chip``),
from ferkit's MTCNN five points mapped onto dlib's chip template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.errors import CheckpointError, FerkitError
from ferkit.external.packages import package_file


@dataclass(frozen=True)
class IdentityModel:
    name: str
    package: str                 # the importable package whose files hold the weights
    pip_name: str                # what pip installs
    weights: str                 # path of the weights file inside that package
    dim: int
    input: str
    licence: str
    training_data: str
    provenance: str


IDENTITY_MODELS: dict[str, IdentityModel] = {
    "dlib-resnet": IdentityModel(
        name="dlib-resnet", package="face_recognition_models", pip_name="face-recognition-models",
        weights="models/dlib_face_recognition_resnet_model_v1.dat", dim=128,
        input="150x150 RGB dlib face chip (5-point alignment, padding 0.25), minus the mean pixel, /256",
        licence="public domain / CC0 1.0 (Davis King's dlib-models; the package's LICENSE file is CC0 1.0)",
        training_data="about 3 million faces (dnn_face_recognition_ex.cpp: 'about 3 million images'; dlib-models "
                      "names FaceScrub, VGG Face and scraped images); LFW 99.38% as dlib reports it",
        provenance="dlib_face_recognition_resnet_model_v1.dat (dlib examples/dnn_face_recognition_ex.cpp) as "
                   "shipped by face-recognition-models (pip), parsed from dlib's format, run in PyTorch"),
}

#: the one line that installs what the identity networks need
IDENTITY_REMEDY = "pip install 'ferkit[identity]'"


def get_identity_model(name: str) -> IdentityModel:
    if name not in IDENTITY_MODELS:
        raise CheckpointError(f"Unknown identity network '{name}'; built-in identity networks: "
                              f"{', '.join(IDENTITY_MODELS)}.")
    return IDENTITY_MODELS[name]


def installed_weights(name: str) -> Path | None:
    """The weights file of identity network ``name``, or None when its package is not installed."""
    m = get_identity_model(name)
    return package_file(m.package, m.weights)


def identity_weights(name: str) -> Path:
    """The weights file of identity network ``name``; one sentence with the install line when absent."""
    m = get_identity_model(name)
    path = installed_weights(name)
    if path is None:
        raise CheckpointError(f"The identity network {name} reads its weights from the '{m.pip_name}' package, "
                              f"which is not installed; install it with `{IDENTITY_REMEDY}` "
                              f"(or `pip install {m.pip_name}`).")
    return path


class IdentityEmbedder:
    """A loaded identity network: ``embed_chips`` on dlib chips, ``embed_faces`` on photos and their faces.

    device: "cpu", "cuda", or "auto". ``batch_size`` chips go through the network at a time.
    """

    def __init__(self, name: str = "dlib-resnet", device: str = "auto", batch_size: int = 32):
        from ferkit.engine.devices import resolve_device
        from ferkit.models.dlib_resnet import load_dlib_resnet

        self.info = get_identity_model(name)
        self.name = name
        self.dim = self.info.dim
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        path = identity_weights(name)
        try:
            self.net = load_dlib_resnet(path).to(self.device)
        except ValueError as e:
            raise CheckpointError(f"{path} does not hold dlib's face-recognition network ({e}); reinstall it "
                                  f"with `pip install --force-reinstall {self.info.pip_name}`.") from None

    def embed_chips(self, chips: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """uint8 RGB chips (N, 150, 150, 3) -> float32 descriptors (N, 128), as dlib's compute_face_descriptor."""
        import torch

        from ferkit.data.dlib_chip import CHIP_SIZE

        arr = np.asarray(chips) if len(chips) else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise FerkitError(f"{self.name} embeds uint8 RGB chips of shape (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), "
                              f"got {arr.dtype} {arr.shape}.")
        out = [np.zeros((0, self.dim), np.float32)]
        with torch.no_grad():
            for i in range(0, len(arr), self.batch_size):
                x = torch.from_numpy(arr[i:i + self.batch_size]).permute(0, 3, 1, 2).float()   # (B, 3, 150, 150)
                out.append(self.net(x.to(self.device)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def chips(self, image: np.ndarray, faces: list) -> list[np.ndarray]:
        """dlib chips of ``faces`` (ferkit ``Face`` objects from MTCNN) in the RGB uint8 ``image``."""
        from ferkit.data.dlib_chip import mtcnn_chip

        return [mtcnn_chip(image, f.landmarks) for f in faces]

    def embed_faces(self, image: np.ndarray, faces: list) -> np.ndarray:
        """Descriptors (len(faces), 128) of the MTCNN ``faces`` of ``image``."""
        return self.embed_chips(self.chips(image, faces))
