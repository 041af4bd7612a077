"""HTTP API of `ferkit serve` against a test double of the model: good and bad uploads, limits, the
bounded queue (503), the timeout (504) and request batching. The real model is exercised end to end in
test_serve_browser.py."""

from __future__ import annotations

import io
import math
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from ferkit.serve.app import create_app, split_rows
from ferkit.serve.limits import Limits
from ferkit.serve.server import BackgroundServer


class FakeModel:
    """TEST DOUBLE for ferkit.inference.FERModel: one 'face' per image (its central half), classes
    red/green/blue, probabilities the softmax of the mean channel values / 20; a black image has no face."""

    classes = ("red", "green", "blue")

    def __init__(self):
        self.calls: list[int] = []

    def info(self) -> dict:
        return {"classes": list(self.classes), "method": "fake", "preprocessing": {"size": 8}, "version": "test"}

    def predict(self, images, abstain_above=None):
        self.calls.append(len(images))
        rows = []
        for im in images:
            assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
            h, w = im.shape[:2]
            base = {"file": None, "frame": None, "time": None}
            if im.max() == 0:
                rows.append({**base, "face": None, "box": None, "landmarks": None, "probs": None,
                             "label": None, "confidence": None, "uncertainty": None, "abstained": None,
                             "error": "no face found"})
                continue
            z = im.reshape(-1, 3).mean(0) / 20.0
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            u = float(1.0 - p.max())
            rows.append({**base, "face": 0, "box": np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4]),
                         "landmarks": None, "probs": {c: np.float32(v) for c, v in zip(self.classes, p, strict=True)},
                         "label": self.classes[int(p.argmax())], "confidence": float(p.max()),
                         "uncertainty": u, "abstained": abstain_above is not None and u > abstain_above,
                         "error": None})
        return rows


class GateModel(FakeModel):
    """TEST DOUBLE that blocks inside predict until the test opens the gate (a slow model)."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def predict(self, images, abstain_above=None):
        self.entered.set()
        self.gate.wait(20)
        return super().predict(images, abstain_above)


def png(color=(255, 0, 0), size=(40, 30), fmt="PNG", noise=False) -> bytes:
    if noise:
        arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    else:
        arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(color, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header is rewritten to claim width x height (CRC fixed): a decompression bomb."""
    data = bytearray(png(size=(1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def post(client, data: bytes, name="x.png", ctype="image/png", field="file"):
    return client.post("/predict", files={field: (name, data, ctype)})


@pytest.fixture(scope="module")
def server():
    model = FakeModel()
    app = create_app(model, Limits(max_upload_mb=0.05, max_pixels=250_000, timeout=10), abstain_above=0.5)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=20) as client:
        yield client, model


def test_good_uploads_return_rows_image_and_model(server):
    client, _ = server
    r = post(client, png((250, 10, 10), (40, 30)), name="red.png")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 40, "height": 30}
    assert body["model"]["classes"] == ["red", "green", "blue"]
    (row,) = body["rows"]
    assert row["file"] == "red.png" and row["face"] == 0 and row["label"] == "red"
    assert row["box"] == [10.0, 7.5, 30.0, 22.5]
    # the fake model's softmax of the mean colour / 20 = (12.5, 0.5, 0.5), passed through unchanged
    tail = math.exp(-12.0) / (1 + 2 * math.exp(-12.0))
    assert row["probs"] == pytest.approx({"red": 1 - 2 * tail, "green": tail, "blue": tail}, rel=1e-4)
    assert row["abstained"] is False and row["error"] is None
    r = post(client, png((10, 10, 250), (64, 48), fmt="JPEG"), name="blue.jpg", ctype="image/jpeg")
    assert r.status_code == 200 and r.json()["rows"][0]["label"] == "blue"
    # an image with no face is a successful request whose single row carries the reason
    r = post(client, png((0, 0, 0)), name="black.png")
    assert r.status_code == 200 and r.json()["rows"][0]["error"] == "no face found"


def test_exif_orientation_and_other_modes_are_decoded(server):
    client, _ = server
    img = Image.fromarray(np.zeros((30, 40, 3), np.uint8) + np.array([250, 0, 0], np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6                                      # "rotate 90 CW to display": 40x30 shows as 30x40
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    r = post(client, buf.getvalue(), name="phone.jpg", ctype="image/jpeg")
    assert r.status_code == 200 and r.json()["image"] == {"width": 30, "height": 40}
    for mode, arr in (("L", np.full((20, 20), 200, np.uint8)), ("I;16", np.full((20, 20), 60000, np.uint16)),
                      ("RGBA", np.dstack([np.zeros((20, 20, 2), np.uint8), np.full((20, 20, 2), 255, np.uint8)]))):
        buf = io.BytesIO()
        Image.fromarray(arr, mode=mode if mode != "I;16" else None).save(buf, format="PNG")
        r = post(client, buf.getvalue(), name=f"{mode}.png")
        assert r.status_code == 200, (mode, r.text)
        row = r.json()["rows"][0]
        if mode == "RGBA":
            assert row["label"] == "blue"                 # opaque blue stays blue
        else:                                             # grey: equal channels, equal probabilities
            assert max(row["probs"].values()) - min(row["probs"].values()) < 1e-6


def test_abstention_threshold_is_applied(server):
    client, _ = server
    grey = post(client, png((128, 128, 128))).json()["rows"][0]    # uniform probabilities: u = 2/3
    assert grey["abstained"] is True and grey["uncertainty"] > 0.5


def test_health_and_model(server):
    client, _ = server
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["queue_size"] == 64 and h["waiting"] == 0
    m = client.get("/model").json()
    assert m["method"] == "fake" and m["version"] == "test" and m["abstain_above"] == 0.5
    assert m["limits"]["max_pixels"] == 250_000
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "http" not in page.text.split("<body")[0]
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("case, status, words", [
    ("non-image", 400, "not an image"),
    ("empty", 400, "empty"),
    ("truncated", 400, "truncated"),
    ("too-large", 413, "MiB"),
    ("too-large-chunked", 413, "MiB"),
    ("too-many-pixels", 413, "pixels"),
    ("bomb-header", 413, "pixels"),
    ("wrong-part-type", 415, "text/plain"),
    ("not-multipart", 415, "multipart"),
    ("missing-field", 400, "'file'"),
    ("malformed-multipart", 400, "malformed"),
])
def test_bad_uploads_get_4xx_with_one_sentence(server, case, status, words):
    client, _ = server
    if case == "non-image":
        r = post(client, b"hello, this is text and not a picture\n" * 3)
    elif case == "empty":
        r = post(client, b"")
    elif case == "truncated":
        r = post(client, png(size=(200, 200), noise=True)[:3000])
    elif case == "too-large":
        r = post(client, png(size=(300, 300), noise=True))              # ~270 KB > 0.05 MiB
    elif case == "too-large-chunked":                                   # no Content-Length to go by
        body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
                b"Content-Type: image/png\r\n\r\n" + png(size=(300, 300), noise=True) + b"\r\n--b--\r\n")
        chunks = (body[i:i + 8192] for i in range(0, len(body), 8192))
        r = client.post("/predict", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"})
    elif case == "too-many-pixels":
        r = post(client, png(size=(600, 500)))                          # 300k > 250k pixels, small file
    elif case == "bomb-header":
        r = post(client, bomb_png(100_000, 100_000))
    elif case == "wrong-part-type":
        r = post(client, png(), name="x.txt", ctype="text/plain")
    elif case == "not-multipart":
        r = client.post("/predict", content=png(), headers={"content-type": "image/png"})
    elif case == "missing-field":
        r = post(client, png(), field="image")
    else:
        r = client.post("/predict", content=b"--xyz\r\nnonsense", headers={"content-type": "multipart/form-data"})
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert words in msg and msg.endswith(".") and msg.count(". ") == 0
    # the server keeps serving
    assert post(client, png()).status_code == 200


class BrokenModel(FakeModel):
    """TEST DOUBLE whose forward pass fails on green images (a bug in a model)."""

    def predict(self, images, abstain_above=None):
        if any(im[..., 1].mean() > 200 for im in images):
            raise RuntimeError("shape mismatch in layer4")
        return super().predict(images, abstain_above)


def test_model_failure_is_a_json_500_and_the_server_goes_on():
    with BackgroundServer(create_app(BrokenModel(), Limits(max_batch=1))) as srv:
        bad = httpx.post(srv.url + "/predict", files={"file": ("g.png", png((0, 255, 0)), "image/png")})
        good = httpx.post(srv.url + "/predict", files={"file": ("r.png", png((255, 0, 0)), "image/png")})
    assert bad.status_code == 500 and "shape mismatch in layer4" in bad.json()["error"]
    assert good.status_code == 200 and good.json()["rows"][0]["label"] == "red"


def test_unknown_path_is_json_404(server):
    client, _ = server
    r = client.get("/nope")
    assert r.status_code == 404 and "/predict" in r.json()["error"]
    assert client.get("/predict").status_code == 405


def _post_in_thread(url: str, out: list, data: bytes) -> threading.Thread:
    def go():
        out.append(httpx.post(url + "/predict", files={"file": ("x.png", data, "image/png")}, timeout=30))
    t = threading.Thread(target=go)
    t.start()
    return t


def _wait_waiting(url: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(url + "/health").json()["waiting"] != n:
        assert time.monotonic() < deadline, f"queue never reached {n} waiting requests"
        time.sleep(0.02)


def test_full_queue_answers_503_and_recovers():
    model = GateModel()
    app = create_app(model, Limits(queue_size=2, max_batch=1, batch_wait_ms=0, timeout=30))
    with BackgroundServer(app) as srv:
        out: list = []
        threads = [_post_in_thread(srv.url, out, png())]
        assert model.entered.wait(10)                       # request 1 is inside the model
        threads += [_post_in_thread(srv.url, out, png()) for _ in range(2)]
        _wait_waiting(srv.url, 2)                           # requests 2 and 3 fill the queue
        r = httpx.post(srv.url + "/predict", files={"file": ("x.png", png(), "image/png")})
        assert r.status_code == 503 and "busy" in r.json()["error"] and r.headers["retry-after"] == "1"
        model.gate.set()
        for t in threads:
            t.join(30)
        assert [x.status_code for x in out] == [200, 200, 200]
        assert model.calls == [1, 1, 1]
        assert httpx.get(srv.url + "/health").json()["served"] == 3


def test_concurrent_requests_share_one_forward_pass():
    model = GateModel()
    app = create_app(model, Limits(queue_size=16, max_batch=8, batch_wait_ms=20, timeout=30))
    with BackgroundServer(app) as srv:
        out: list = []
        threads = [_post_in_thread(srv.url, out, png())]
        assert model.entered.wait(10)
        colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (0, 250, 0), (250, 0, 0)]
        threads += [_post_in_thread(srv.url, out, png(c)) for c in colours]
        _wait_waiting(srv.url, 5)
        model.gate.set()
        for t in threads:
            t.join(30)
        assert model.calls == [1, 5]                        # five waiting requests, one forward pass
        assert sorted(x.json()["rows"][0]["label"] for x in out[1:]) == sorted(
            ["red", "green", "blue", "green", "red"])
        assert httpx.get(srv.url + "/health").json()["largest_batch"] == 5


def test_timeout_answers_504():
    model = GateModel()
    app = create_app(model, Limits(timeout=0.5, max_batch=1))
    with BackgroundServer(app) as srv:
        r = httpx.post(srv.url + "/predict", files={"file": ("x.png", png(), "image/png")}, timeout=10)
        model.gate.set()
        assert r.status_code == 504 and "timeout" in r.json()["error"]
        assert httpx.post(srv.url + "/predict", files={"file": ("x.png", png(), "image/png")}).status_code == 200


def test_split_rows_groups_faces_by_image():
    rows = [{"face": 0}, {"face": 1}, {"face": None}, {"face": 0}]
    assert [len(g) for g in split_rows(rows, 3)] == [2, 1, 1]
    with pytest.raises(RuntimeError):
        split_rows(rows, 2)
    named = [{"file": "<array 0>", "face": 0}, {"file": "<array 0>", "face": 1}, {"file": "<array 1>", "face": 1}]
    assert [len(g) for g in split_rows(named, 2)] == [2, 1]


def test_bad_limits_are_refused():
    from ferkit.errors import FerkitError

    with pytest.raises(FerkitError, match="--queue-size"):
        create_app(FakeModel(), Limits(queue_size=0))


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6_loopback_binds_and_answers(host):
    from ferkit.serve.server import url_for

    with BackgroundServer(create_app(FakeModel(), Limits()), host=host) as srv:
        assert srv.url == f"http://[::1]:{srv.port}" == url_for(host, srv.port)
        health = httpx.get(srv.url + "/health", timeout=10)
        red = np.zeros((16, 16, 3), np.uint8)
        red[..., 0] = 200
        buf = io.BytesIO()
        Image.fromarray(red).save(buf, format="PNG")
        answer = httpx.post(srv.url + "/predict", files={"file": ("red.png", buf.getvalue())}, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert answer.status_code == 200 and answer.json()["rows"][0]["label"] == "red"


def test_listen_host_families_and_unresolvable_names():
    import socket

    from ferkit.errors import FerkitError
    from ferkit.serve.server import listen_host, url_for

    assert listen_host("[::1]") == ("::1", socket.AF_INET6) and listen_host("::") == ("::", socket.AF_INET6)
    assert listen_host("127.0.0.1") == ("127.0.0.1", socket.AF_INET)
    assert url_for("0.0.0.0", 80) == "http://0.0.0.0:80" and url_for("::", 80) == "http://[::]:80"
    with pytest.raises(FerkitError, match=r"^--host no-such-host\.invalid is neither an IP address"):
        listen_host("no-such-host.invalid")
