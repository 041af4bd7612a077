"""Bad input loses nothing: each broken file gives one line and an error row, the rest is processed.

The corpus is written by the test: corrupt, truncated, non-image, empty, 16-bit, CMYK, palette, alpha,
grayscale (into an RGB model), a decompression bomb, an unreadable video and a missing path, next to a
good photo. Odd-but-valid modes are converted and predicted; broken ones fail with their reason.
Foreign or damaged checkpoints are refused with a sentence and never unpickled.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ferkit.cli import main
from ferkit_testmodels import single_thread, tiny_checkpoint

ODD_BUT_VALID = ("gray16.png", "cmyk.jpg", "palette.png", "alpha.png", "gray.png")
BROKEN = {"corrupt.jpg": "not an image", "truncated.png": "truncated", "text.png": "not an image",
          "empty.jpg": "empty", "bomb.png": "decompression bomb", "broken.mp4": "cannot be opened",
          "missing.jpg": "does not exist"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_corpus(d):
    face = np.asarray(Image.fromarray(skdata.astronaut()).resize((256, 256)))
    Image.fromarray(face).save(d / "good.png")
    gray = face.mean(axis=2)
    Image.fromarray((gray * 257).astype(np.uint16)).save(d / "gray16.png")
    Image.fromarray(face).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(d / "palette.png")
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:20, :20, 3] = 0
    Image.fromarray(rgba).save(d / "alpha.png")
    Image.fromarray(gray.astype(np.uint8)).save(d / "gray.png")
    (d / "corrupt.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "truncated.png").write_bytes((d / "good.png").read_bytes()[:3000])
    (d / "text.png").write_text("hello, I am a text file with an image suffix\n")
    (d / "empty.jpg").write_bytes(b"")
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 1, 0, 0, 0, 0)        # 1.6 gigapixels, 1-bit gray
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                                 + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)


@pytest.fixture(scope="module")
def rgb_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.getbasetemp() / "models", channels=3)


def test_every_bad_input_named_once_and_everything_else_processed(rgb_ckpt, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    out = tmp_path / "rows.json"
    code = main(["predict", str(rgb_ckpt), str(corpus), str(corpus / "missing.jpg"), "--out", str(out),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    rows = json.loads(out.read_text())["rows"]
    by_name = {}
    for r in rows:
        by_name.setdefault(r["file"].rsplit("/", 1)[-1], []).append(r)
    assert set(by_name) == {"good.png", *ODD_BUT_VALID, *BROKEN}
    for name in ("good.png", *ODD_BUT_VALID):
        (r,) = by_name[name]
        assert r["status"] == "ok" and r["error"] is None, (name, r["error"])
        assert abs(sum(r["probs"].values()) - 1) < 1e-4
    for name, reason in BROKEN.items():
        (r,) = by_name[name]
        assert r["status"] == "failed" and name in r["error"] and reason in r["error"], (name, r["error"])
        lines = [ln for ln in err.splitlines() if name in ln]
        assert len(lines) == 1 and reason in lines[0], (name, lines)
    assert all(ln.startswith("ferkit predict: ") for ln in err.strip().splitlines()), err
    good_box = np.array(by_name["good.png"][0]["box"])
    for name in ODD_BUT_VALID:                       # converted, not mangled: the same face is found
        assert np.abs(np.array(by_name[name][0]["box"]) - good_box).max() < 6.0, name


def _write_pickle_bomb(path, marker):
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({"state_dict": Payload()}))


@pytest.mark.parametrize("kind", ["pickle", "truncated", "text", "onnx-garbage", "missing"])
def test_foreign_or_damaged_checkpoints_are_refused_with_a_sentence(kind, rgb_ckpt, tmp_path, capsys):
    marker = tmp_path / "unpickled.txt"
    path = tmp_path / ("model.onnx" if kind == "onnx-garbage" else "model.safetensors")
    if kind == "pickle":
        _write_pickle_bomb(path, marker)
    elif kind == "truncated":
        path.write_bytes(rgb_ckpt.read_bytes()[: rgb_ckpt.stat().st_size // 2])
    elif kind == "text":
        path.write_text("weights: none\n")
    elif kind == "onnx-garbage":
        path.write_bytes(b"\x08\x07garbage" * 50)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    code = main(["predict", str(path), str(image), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and str(path) in err[0], err
    assert err[0].startswith("ferkit: error: ") and err[0].endswith(".")
    assert not marker.exists()
    if kind == "truncated":
        assert "truncated" in err[0]
