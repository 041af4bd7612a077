"""SynthFER scene nuisance: the background texture behind the face, the lighting gradient and sensor noise.

``background`` makes the 2x canvas the face is drawn on; ``finish`` box-downsamples it, multiplies a linear
lighting gradient (direction ``light_angle``, strength ``light_strength``, gain ``brightness``) and adds
Gaussian noise of standard deviation ``noise_sigma`` grey levels, drawn as a seeded crop of a fixed bank.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=64)
def unit_range(n: int) -> np.ndarray:
    """``n`` points evenly spaced on [-1, 1] (cached; read-only)."""
    out = np.linspace(-1.0, 1.0, n)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed (512, 512*3) standard-normal field; images take seeded crops of it (cheap Gaussian noise)."""
    return np.random.default_rng(20240917).standard_normal((512, 512 * 3), dtype=np.float32)


def background(rng: np.random.Generator, nz: dict, side: int) -> Image.Image:
    """Background canvas (side x side RGB): a colour plus a flat/gradient/blotch/stripes texture."""
    base = np.array([nz["bg_r"], nz["bg_g"], nz["bg_b"]], dtype=np.float32)
    amp = 255.0 * nz["bg_texture_strength"]
    tex = nz["bg_texture"]
    if tex == "flat":
        return Image.new("RGB", (side, side), tuple(int(v + 0.5) for v in base))
    if tex == "blotch":
        small = base + amp * (rng.random((5, 5, 3), dtype=np.float32) - 0.5)      # (5, 5, 3)
    elif tex == "gradient":
        small = base + amp * np.array([[-0.5], [0.5]], dtype=np.float32)[:, :, None] * np.ones((1, 2, 1))
    else:
        small = base + amp * 0.5 * np.sign(np.sin(np.linspace(0, 12 * np.pi, 48)))[None, :, None]
    small = Image.fromarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))
    mode = Image.NEAREST if tex == "stripes" else Image.BILINEAR
    return small.resize((side // 2, side // 2), mode).resize((side, side), Image.NEAREST)   # smooth at 1x


def finish(canvas: Image.Image, nz: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """Downsample 2x (box filter), multiply by the lighting gradient, add Gaussian noise, round to uint8."""
    img = np.asarray(canvas.reduce(2)).astype(np.float32).reshape(size, size * 3)   # (size, size*3) RGB rows
    g = unit_range(size)
    ang, strength = nz["light_angle"], nz["light_strength"]
    across = np.repeat((nz["brightness"] + strength * np.cos(ang) * g).astype(np.float32), 3)    # (size*3,)
    down = (strength * np.sin(ang) * g).astype(np.float32)                                      # (size,)
    img *= across[None, :] + down[:, None]
    sigma = np.float32(nz["noise_sigma"])
    if sigma > 0:
        if size <= 256:
            oy, ox = rng.integers(0, 512 - size, 2)
            noise = _noise_bank()[oy:oy + size, 3 * ox:3 * (ox + size)]         # (size, size*3) view
        else:
            noise = rng.standard_normal(img.shape, dtype=np.float32)
        img += noise * sigma
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8).reshape(size, size, 3)
