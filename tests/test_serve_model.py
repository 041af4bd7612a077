"""`ferkit serve` over a real trained checkpoint and real MTCNN face detection: the astronaut photo over
HTTP, batched answers identical to one-at-a-time answers, and the CLI's argument checks."""

from __future__ import annotations

import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from ferkit.serve.app import create_app
from ferkit.serve.limits import Limits
from ferkit.serve.server import BackgroundServer
from serve_helpers import served_model


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    return served_model(str(tmp_path_factory.getbasetemp()))


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()                                  # (512, 512, 3) uint8, one face


def test_astronaut_over_http_matches_predict(real_model, astronaut):
    direct = real_model.predict([astronaut], abstain_above=0.5)
    with BackgroundServer(create_app(real_model, Limits(), abstain_above=0.5)) as srv:
        r = httpx.post(srv.url + "/predict", files={"file": ("astronaut.png", encode(astronaut), "image/png")},
                       timeout=60)
        blank = httpx.post(srv.url + "/predict", timeout=60,
                           files={"file": ("blank.png", encode(np.full((64, 64, 3), 128, np.uint8)), "image/png")})
        model = httpx.get(srv.url + "/model").json()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 512, "height": 512}
    assert model["method"] == "baseline" and model["classes"] == list(real_model.classes)
    assert model["preprocessing"]["size"] == 64 and model["version"]
    (row,) = body["rows"]
    x1, y1, x2, y2 = row["box"]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 220     # the astronaut's face
    assert row["file"] == "astronaut.png" and row["status"] == "ok" and row["error"] is None
    assert set(row["probs"]) == set(real_model.classes)
    assert sum(row["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert row["label"] == direct[0]["label"]
    for c in real_model.classes:
        assert row["probs"][c] == pytest.approx(direct[0]["probs"][c], abs=1e-5)
    # a 7-class model this little trained is uncertain: u = 1 - max p > 0.5, so it abstains
    assert row["uncertainty"] > 0.5 and row["abstained"] is True
    (none,) = blank.json()["rows"]
    assert blank.status_code == 200 and none["face"] is None and none["error"] == "no face found"


def test_batched_answers_equal_single_answers(real_model, astronaut):
    """Three different views of the photo sent at once share forward passes yet get their own rows."""
    half = np.ascontiguousarray(astronaut[::2, ::2])        # (256, 256, 3): keeps detection quick
    crops = [half, half[:, ::-1].copy(), half[10:240, 5:250].copy()]
    singles = [real_model.predict([c])[0] for c in crops]
    app = create_app(real_model, Limits(max_batch=3, batch_wait_ms=500))
    out: dict[int, httpx.Response] = {}
    with BackgroundServer(app) as srv:
        def go(i: int) -> None:
            out[i] = httpx.post(srv.url + "/predict", timeout=60,
                                files={"file": (f"c{i}.png", encode(crops[i]), "image/png")})
        threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        health = httpx.get(srv.url + "/health").json()
    assert health["served"] == 3 and health["largest_batch"] >= 2       # at least two shared a batch
    for i, single in enumerate(singles):
        (row,) = out[i].json()["rows"]
        assert row["file"] == f"c{i}.png"
        assert row["box"] == pytest.approx(single["box"], abs=0.05)
        for c in real_model.classes:
            assert row["probs"][c] == pytest.approx(single["probs"][c], abs=1e-5)


def _serve_subprocess(args: list[str], base: str, extra: tuple[str, ...] = ()) -> tuple[dict, dict | None, int, str]:
    """Run `python -m ferkit serve ARGS`, wait (90 s at most) for BASE/health, read BASE/model when ``extra``
    asks for it, stop it with SIGINT; returns (health, model or None, exit code, stderr)."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    model = None
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "ferkit serve did not start listening within 90 s"
                time.sleep(0.25)
        if "model" in extra:
            model = httpx.get(f"{base}/model").json()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    return health, model, proc.returncode, err


def test_cli_serves_a_checkpoint(real_model):
    """`python -m ferkit serve CKPT --port P` in a subprocess answers /health and /model, then stops on SIGINT."""
    from ferkit.serve.server import free_port

    port = free_port()
    health, model, code, err = _serve_subprocess(
        [real_model.source, "--port", str(port), "--abstain-above", "0.3", "--max-batch", "4", "--log-level",
         "warning"], f"http://127.0.0.1:{port}", extra=("model",))
    assert health["status"] == "ok" and health["queue_size"] == 64
    assert model["abstain_above"] == 0.3 and model["limits"]["max_batch"] == 4
    assert model["classes"] == list(real_model.classes) and "source" not in model
    assert code == 0 and f"open http://127.0.0.1:{port}/" in err and "stopped" in err


@pytest.mark.slow
def test_cli_serves_on_ipv6_loopback(real_model):
    """`ferkit serve CKPT --host [::1]` (brackets accepted) listens on IPv6 loopback and answers there (slow: a
    second server process; test_serve_api binds ::1 in-process in the default suite)."""
    from ferkit.serve.server import free_port

    port = free_port("::1")
    health, _, code, err = _serve_subprocess(
        [real_model.source, "--host", "[::1]", "--port", str(port), "--log-level", "warning"],
        f"http://[::1]:{port}")
    assert health["status"] == "ok" and code == 0
    assert f"open http://[::1]:{port}/" in err and "anyone who can reach" not in err


def test_cli_refuses_bad_limits_before_loading(tmp_path, capsys):
    from ferkit.cli import main

    code = main(["serve", str(tmp_path / "missing.safetensors"), "--queue-size", "0"])
    assert code == 2 and "--queue-size must be positive" in capsys.readouterr().err
    code = main(["serve", str(tmp_path / "missing.safetensors")])
    err = capsys.readouterr().err
    assert code != 0 and "missing.safetensors" in err and "Traceback" not in err
