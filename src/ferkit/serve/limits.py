"""What an upload may be, and how it is read safely.

A public endpoint must not let one request exhaust the machine. Each upload passes these checks in
order, and the first that fails answers with an HTTP status and one sentence:

1. the request is ``multipart/form-data`` (415 otherwise);
2. the body is read in chunks and abandoned as soon as it exceeds the upload limit (413), whatever the
   ``Content-Length`` header claims (a declared length over the limit is refused before reading);
3. the form has a ``file`` part (400), which is a file (400), declared as an image or as
   ``application/octet-stream`` (415), and not empty (400);
4. Pillow reads the *header only*; the format must be a still-image format Pillow decodes (400), and
   width x height must not exceed the pixel limit (413) -- checked before any pixel is decoded, so a
   decompression bomb costs a few bytes of header parsing;
5. the pixels are decoded (truncated or corrupt data gives 400; truncated images are never padded),
   EXIF orientation is applied, and any mode is converted to uint8 RGB by
   :func:`ferkit.data.io.to_rgb_array` (alpha composited on white, 16-bit scaled to 8).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from ferkit.errors import FerkitError

#: formats accepted (Pillow format names); others are refused even if Pillow could open them
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM", "MPO")

#: part content types accepted besides ``image/*`` (some clients send no specific type)
GENERIC_TYPES = ("application/octet-stream", "")

#: bytes a multipart envelope may add around the file (boundaries, part headers, small fields)
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-request limits of the server (the ``ferkit serve`` flags of the same names)."""

    max_upload_mb: float = 10.0       # largest accepted file, in MiB
    max_pixels: int = 40_000_000      # largest accepted width x height (decompression-bomb guard)
    timeout: float = 30.0             # seconds a request may wait and run before a 504
    queue_size: int = 64              # requests waiting for the model before new ones get a 503
    max_batch: int = 16               # requests run together in one forward pass at most
    batch_wait_ms: float = 10.0       # how long the first request of a batch waits for company

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def check(self) -> None:
        """Raise FerkitError naming the first limit that makes no sense."""
        for name in ("max_upload_mb", "max_pixels", "timeout", "queue_size", "max_batch"):
            if not getattr(self, name) > 0:
                raise FerkitError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}.")
        if self.batch_wait_ms < 0:
            raise FerkitError(f"--batch-wait-ms must be zero or positive, got {self.batch_wait_ms}.")


class UploadError(Exception):
    """A request the server refuses: an HTTP status and one sentence for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_request_type(content_type: str | None) -> None:
    """415 unless the request body is multipart/form-data."""
    main = (content_type or "").split(";")[0].strip().lower()
    if main != "multipart/form-data":
        raise UploadError(415, f"The request must be multipart/form-data with the image in field 'file', "
                               f"not '{main or 'no content type'}'.")


async def read_body_limited(chunks: AsyncIterator[bytes], declared_length: str | None, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is (or claims to be) longer than ``limit`` bytes."""
    mib = limit / (1024 * 1024)
    too_big = f"The upload is larger than the server's limit of {mib:.1f} MiB; send a smaller image."
    if declared_length is not None:
        try:
            declared = int(declared_length)
        except ValueError:
            raise UploadError(400, "The Content-Length header is not a number.") from None
        if declared > limit + MULTIPART_SLACK:
            raise UploadError(413, too_big)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit + MULTIPART_SLACK:
            raise UploadError(413, too_big)
    return bytes(body)


def check_file_part(part, limit: int) -> None:
    """Checks on the form's ``file`` entry before decoding: present, a file, an image type, not empty."""
    if part is None:
        raise UploadError(400, "The form has no 'file' field; send the image as multipart field 'file'.")
    if isinstance(part, str):
        raise UploadError(400, "The form field 'file' holds text, not an uploaded file.")
    ctype = (part.content_type or "").split(";")[0].strip().lower()
    if not (ctype.startswith("image/") or ctype in GENERIC_TYPES):
        raise UploadError(415, f"The uploaded file has content type '{ctype}'; send an image "
                               f"(JPEG, PNG, WebP, BMP, GIF or TIFF).")
    size = part.size if part.size is not None else None
    if size == 0:
        raise UploadError(400, "The uploaded file is empty (0 bytes).")
    if size is not None and size > limit:
        raise UploadError(413, f"The uploaded file is larger than the server's limit of "
                               f"{limit / (1024 * 1024):.1f} MiB; send a smaller image.")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode image bytes into uint8 (H, W, 3) RGB after checking the format and size from the header."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from ferkit.data.io import to_rgb_array

    if not data:
        raise UploadError(400, "The uploaded file is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:         # header only: no pixels decoded yet
                if img.format not in ALLOWED_FORMATS:
                    raise UploadError(400, f"The uploaded file is a {img.format} image, which the server "
                                           f"does not accept; send JPEG, PNG, WebP, BMP, GIF or TIFF.")
                w, h = img.size
                if w <= 0 or h <= 0:
                    raise UploadError(400, f"The uploaded image declares an empty size {w}x{h}.")
                if w * h > max_pixels:
                    raise UploadError(413, f"The uploaded image is {w}x{h} = {w * h} pixels, above the "
                                           f"server's limit of {max_pixels}; send a smaller image.")
                img.load()                                   # decodes the first frame only
                img = ImageOps.exif_transpose(img)
                return to_rgb_array(img, "the upload")
    except UploadError:
        raise
    except FerkitError as e:
        raise UploadError(400, str(e)) from None
    except UnidentifiedImageError:
        raise UploadError(400, "The uploaded file is not an image the server can read.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(413, f"The uploaded image declares more pixels than the server's limit of "
                               f"{max_pixels} (a decompression bomb); send a smaller image.") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise UploadError(400, f"The uploaded image cannot be decoded; it is truncated or corrupt ({e}).") from None
