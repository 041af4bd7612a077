"""Reading image files robustly: every file becomes uint8 (H, W, 3) RGB or an :class:`ImageReadError`.

What is converted, and how:
- EXIF orientation is applied first (``ImageOps.exif_transpose``), so phone photos come out upright.
- 16-bit images (``I;16*`` modes, or ``I`` holding values above 255) are scaled to 8 bits by ``v / 257``
  (65535 -> 255), rounded; 32-bit float images (``F``) in [0, 1] are scaled by 255, others clipped to [0, 255].
- CMYK, YCbCr, palette, bilevel and grayscale images are converted to RGB by Pillow.
- Images with an alpha channel (LA, RGBA, PA, palette with transparency) are **composited on white**
  (a transparent background reads as white, as in image viewers), then the alpha channel is dropped.
- Pillow's decompression-bomb *warning* (an image above ``Image.MAX_IMAGE_PIXELS``) is an error here.
- Missing, empty, truncated, non-image files and modes Pillow cannot turn into RGB raise ImageReadError
  with the path and the reason; truncated images are never padded (``LOAD_TRUNCATED_IMAGES`` stays off).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ferkit.errors import ImageReadError

#: file name suffixes treated as images by the folder-style adapters
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def is_image_name(name: str | Path) -> bool:
    """True when the file name has an image suffix (case-insensitive) and is not hidden."""
    p = Path(name)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into a uint8 (H, W, 3) RGB array; raises ImageReadError naming the path."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"Image {p} does not exist; check the path.")
    if p.is_dir():
        raise ImageReadError(f"Image {p} is a directory, not an image file.")
    if p.stat().st_size == 0:
        raise ImageReadError(f"Image {p} is empty (0 bytes); replace or remove it.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb_array(img, p)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"Image {p} is too large to decode safely (decompression bomb: {e}).") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"Image {p} is not an image Pillow can read (unknown format).") from None
    except PermissionError:
        raise ImageReadError(f"Image {p} cannot be read (permission denied).") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise ImageReadError(f"Image {p} cannot be decoded (truncated or corrupt: {e}).") from None


def to_rgb_array(img, source: str | Path = "<image>") -> np.ndarray:
    """Convert a loaded PIL image of any common mode to uint8 (H, W, 3) RGB (rules in the module doc)."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img)
        gray = _high_depth_to_uint8(arr, mode)                # (H, W) uint8
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img).convert("RGB")
    elif mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as e:
            raise ImageReadError(f"Image {source} has mode {mode}, which cannot be converted to RGB ({e}).") from None
    arr = np.array(img, dtype=np.uint8)                    # a writable copy
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(f"Image {source} decoded to shape {arr.shape}, not (H, W, 3).")
    return arr


def _high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit integer / float gray -> uint8 gray (see module doc for the scaling)."""
    a = arr.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and a.size and a.max() > 255):
        a = np.clip(a, 0, 65535) / 257.0
    elif mode == "F" and a.size and a.max() <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
