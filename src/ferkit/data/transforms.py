"""Image -> tensor preprocessing as a :class:`Preprocessing` says, with the training augmentations.

The order is fixed and shared by training, evaluation and inference (and by the prepared cache, which
stores step 1's output so that cached and uncached images give identical tensors):

1. resize the uint8 image to (size, size) (antialiased ``bilinear``/``bicubic``, or ``cv2_linear``:
   ``cv2.resize`` with INTER_LINEAR as OpenCV-based models were fed; a no-op at that size);
2. convert channels: RGB -> gray with Pillow's ITU-R 601-2 luma ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``
   (bit-exact ``Image.convert("L")``), gray -> RGB by replication; ``channel_order="bgr"`` then reverses
   the three channels (models trained on OpenCV's BGR arrays);
3. training only: the augmentation (uint8 geometry);
4. divide by ``divide_by`` (255: to [0, 1]), subtract ``mean``, divide by ``std`` (per channel);
5. ``whitening="per_image"``: standardise each image to mean 0, std 1 over all its pixels (DICE-FER);
6. training only, ``augment="affectnet"``: RandomErasing (after normalisation, as in UA-FER).

Augmentations: ``none``; ``flip`` / ``rafdb`` (horizontal flip, p = 0.5); ``dicefer14`` (one of 7 angles
{0, +-5, +-10, +-15} degrees x flip or not, drawn uniformly: the paper's 14 variants, sampled);
``affectnet`` (UA-FER: flip + RandomApply(RandomAffine(20, scale=(0.8, 1), translate=(0.2, 0.2)), p=0.7)
+ RandomErasing()). Randomness comes from torch's global generator (seeded per worker by the engine).
"""

from __future__ import annotations

import numpy as np
import torch

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import ConfigError

AUGMENTS = ("none", "flip", "rafdb", "dicefer14", "affectnet")
#: augmentations under which an image becomes one of a few fixed tensors (what a frozen network sees repeats)
REPEATING_AUGMENTS = ("none", "flip", "rafdb", "dicefer14")
DICEFER_ANGLES = (0.0, 5.0, -5.0, 10.0, -10.0, 15.0, -15.0)


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) array -> uint8 tensor (C, H, W) with C in {1, 3} (alpha dropped)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 arrays, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"images must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {arr.shape}")
    arr = arr[:, :, :3] if arr.shape[2] == 4 else arr
    arr = np.ascontiguousarray(arr) if arr.flags.writeable else np.array(arr)          # torch needs writable
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()                         # (C, H, W)


def resize_uint8(img: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """([B,] C, H, W) uint8 -> ([B,] C, size, size) uint8, antialiased; returns ``img`` itself at that size."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    modes = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
    if mode == "cv2_linear":
        if tuple(img.shape[-2:]) == (size, size):
            return img
        if img.dim() == 4:                                                              # a batch, one by one
            return torch.stack([resize_uint8(one, size, mode) for one in img])         # (B, C, S, S)
        import cv2

        arr = cv2.resize(img.permute(1, 2, 0).numpy(), (size, size), interpolation=cv2.INTER_LINEAR)
        arr = arr[:, :, None] if arr.ndim == 2 else arr                                # (S, S, C)
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()  # (C, S, S)
    if mode not in modes:
        raise ConfigError(f"Preprocessing resize must be bilinear, bicubic or cv2_linear, got '{mode}'.")
    return F.resize(img, [size, size], interpolation=modes[mode], antialias=True)        # (C, S, S)


def convert_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """([B,] C, H, W) uint8 -> ([B,] channels, H, W) uint8 (Pillow's luma for RGB -> gray)."""
    c = img.shape[-3]
    if c == channels:
        return img
    if channels == 1 and c == 3:
        w = img.to(torch.int32)
        gray = (19595 * w[..., 0, :, :] + 38470 * w[..., 1, :, :] + 7471 * w[..., 2, :, :] + 32768) >> 16  # ([B,] H, W)
        return gray.to(torch.uint8).unsqueeze(-3)                                            # ([B,] 1, H, W)
    if channels == 3 and c == 1:
        return img.expand(*img.shape[:-3], 3, -1, -1).contiguous()                          # ([B,] 3, H, W)
    raise ConfigError(f"Preprocessing channels must be 1 or 3, got {channels}.")


class DiceFer14:
    """One of the 14 DICE-FER variants: rotation in {0, +-5, +-10, +-15} degrees x horizontal flip."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        angle = DICEFER_ANGLES[int(torch.randint(len(DICEFER_ANGLES), ()).item())]
        if angle:
            img = F.rotate(img, angle, interpolation=InterpolationMode.BILINEAR, fill=0)
        if torch.rand(()) < 0.5:
            img = F.horizontal_flip(img)
        return img


class FERTransform:
    """uint8 image (H, W[, 3]) -> float tensor (C, size, size); picklable for DataLoader workers."""

    def __init__(self, pre: Preprocessing, train: bool = False, augment: str = "none"):
        from torchvision.transforms import v2

        if augment not in AUGMENTS:
            raise ConfigError(f"Unknown augmentation '{augment}'; use one of {', '.join(AUGMENTS)}.")
        if len(pre.mean) not in (1, pre.channels) or len(pre.std) not in (1, pre.channels):
            raise ConfigError(f"Preprocessing mean/std need 1 or {pre.channels} values, got {pre.mean}/{pre.std}.")
        if pre.whitening not in ("none", "per_image"):
            raise ConfigError(f"Preprocessing whitening must be none or per_image, got '{pre.whitening}'.")
        if pre.channel_order not in ("rgb", "bgr"):
            raise ConfigError(f"Preprocessing channel_order must be rgb or bgr, got '{pre.channel_order}'.")
        if not pre.divide_by > 0:
            raise ConfigError(f"Preprocessing divide_by must be positive, got {pre.divide_by}.")
        self.preprocessing = pre
        self.train = train
        self.augment = augment if train else "none"
        self.geometry = None
        self.erasing = None
        if self.augment in ("flip", "rafdb"):
            self.geometry = v2.RandomHorizontalFlip(0.5)
        elif self.augment == "dicefer14":
            self.geometry = DiceFer14()
        elif self.augment == "affectnet":
            self.geometry = v2.Compose([
                v2.RandomHorizontalFlip(0.5),
                v2.RandomApply([v2.RandomAffine(20, translate=(0.2, 0.2), scale=(0.8, 1.0))], p=0.7),
            ])
            self.erasing = v2.RandomErasing()
        self.mean = torch.tensor(pre.mean, dtype=torch.float32).view(-1, 1, 1)             # (C|1, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32).view(-1, 1, 1)               # (C|1, 1, 1)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        pre = self.preprocessing
        img = resize_uint8(to_chw_uint8(image), pre.size, pre.resize)                       # (c, S, S) uint8
        img = convert_channels(img, pre.channels)                                          # (C, S, S) uint8
        if pre.channel_order == "bgr" and pre.channels == 3:
            img = img.flip(0)                                                              # RGB -> BGR
        if self.geometry is not None:
            img = self.geometry(img)
        x = img.to(torch.float32) / float(pre.divide_by)                                   # (C, S, S)
        x = (x - self.mean) / self.std
        if pre.whitening == "per_image":
            x = (x - x.mean()) / x.std(unbiased=False).clamp_min(1e-6)
        if self.erasing is not None:
            x = self.erasing(x)
        return x.contiguous()

    def __repr__(self) -> str:
        return f"FERTransform(size={self.preprocessing.size}, channels={self.preprocessing.channels}, " \
               f"train={self.train}, augment={self.augment!r})"


def build_transform(pre: Preprocessing, train: bool, augment: str = "none") -> FERTransform:
    """The image -> tensor transform for ``pre``; augmentation only when ``train``."""
    return FERTransform(pre, train=train, augment=augment)


def preprocess_batch(images: list[np.ndarray], pre: Preprocessing) -> torch.Tensor:
    """Already aligned/cropped uint8 images -> (B, C, S, S), the test-time transform.

    Images of one shape go through it together (one resize, one luma, one normalisation for the group:
    the per-image transform's steps on a batch axis, equal to it up to float summation order in the
    whitening); an image alone in its shape goes through ``FERTransform`` itself."""
    t = FERTransform(pre, train=False)
    if not images:
        return torch.empty(0, pre.channels, pre.size, pre.size)
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(np.shape(im), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(images)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = t(images[idx[0]])
            continue
        img = torch.stack([to_chw_uint8(images[i]) for i in idx])                          # (G, c, H, W) uint8
        img = convert_channels(resize_uint8(img, pre.size, pre.resize), pre.channels)      # (G, C, S, S) uint8
        x = (img.to(torch.float32) / 255.0 - t.mean) / t.std                              # (G, C, S, S)
        if pre.whitening == "per_image":
            flat = x.flatten(1)                                                            # (G, C*S*S)
            mean = flat.mean(1).view(-1, 1, 1, 1)
            x = (x - mean) / flat.std(1, unbiased=False).clamp_min(1e-6).view(-1, 1, 1, 1)
        for j, i in enumerate(idx):
            out[i] = x[j]
    return torch.stack(out)                                                                # (B, C, S, S)
