"""read_image: every bad input raises ImageReadError naming the path; every odd mode decodes to uint8 RGB."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from ferkit.data.io import read_image
from ferkit.errors import ImageReadError


def _jpeg_bytes(size=32) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _png_bytes(size=32) -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("case", ["missing", "empty", "truncated_jpeg", "truncated_png", "not_image", "directory"])
def test_bad_inputs_raise_with_path(tmp_path, case):
    p = tmp_path / f"{case}.jpg"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "truncated_jpeg":
        p.write_bytes(_jpeg_bytes()[:300])
    elif case == "truncated_png":
        p = tmp_path / "t.png"
        p.write_bytes(_png_bytes()[:200])
    elif case == "not_image":
        p.write_bytes(b"this is a text file, not a picture\n" * 10)
    elif case == "directory":
        p.mkdir()
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert str(p) in str(e.value)


def test_decompression_bomb_is_an_error_not_a_warning(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)      # just over the warning limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match="decompression bomb") as e:
            read_image(p)
    assert str(p) in str(e.value)


def _check_rgb(arr, shape=(6, 5)):
    assert arr.dtype == np.uint8 and arr.shape == (*shape, 3)


def test_16bit_png_scaled_to_8bit(tmp_path):
    p = tmp_path / "g16.png"
    a = np.zeros((6, 5), dtype=np.uint16)
    a[0, 0], a[0, 1], a[0, 2] = 65535, 257 * 100, 0
    Image.fromarray(a).save(p)
    out = read_image(p)
    _check_rgb(out)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [100, 100, 100]
    assert out[0, 2].tolist() == [0, 0, 0]


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "I"])
def test_modes_decode_to_rgb(tmp_path, mode):
    rgb = np.zeros((6, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    img = Image.fromarray(rgb).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I") else "PNG"
    p = tmp_path / f"m.{fmt.lower()}"
    img.save(p, format=fmt)
    out = read_image(p)
    _check_rgb(out)
    if mode == "CMYK":
        assert abs(int(out[0, 0, 0]) - 200) <= 2 and out[0, 0, 1] <= 2
    if mode == "L":
        assert len(set(out[0, 0].tolist())) == 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_composited_on_white(tmp_path, mode):
    rgba = np.zeros((6, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 255                 # red ...
    rgba[0, 0, 3] = 0                  # transparent pixel -> white
    rgba[1:, :, 3] = 255               # opaque rows keep their colour
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":
        img = Image.fromarray(rgba[..., :3]).convert("P")
        img.info["transparency"] = int(np.asarray(img)[0, 0])
    p = tmp_path / "a.png"
    img.save(p, transparency=img.info.get("transparency")) if mode == "P" else img.save(p)
    out = read_image(p)
    _check_rgb(out)
    assert out[0, 0].tolist() == [255, 255, 255]
    if mode == "RGBA":
        assert out[2, 2].tolist() == [255, 0, 0]


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((4, 8, 3), dtype=np.uint8)           # wide image, left half bright
    a[:, :4] = 255
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6                                   # rotate 90 CW on display
    p = tmp_path / "o.jpg"
    img.save(p, exif=exif, quality=100)
    out = read_image(p)
    assert out.shape == (8, 4, 3)                      # displayed upright: tall
    assert out[:3].mean() > 200 and out[-3:].mean() < 50
