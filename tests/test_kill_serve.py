"""`ferkit serve` killed with SIGKILL while requests are in flight, then started again on the same port.

Four clients post six different views of the astronaut photo in a loop; each image's answer is known beforehand (the same
checkpoint's ``predict`` in this process). The server process is killed mid-stream: requests in flight get a
transport error, never a wrong answer; the restarted server (same port, at once) answers every image right
(it used to refuse the port for a minute: its check bound without SO_REUSEADDR, and the killed server's
connections sat in TIME_WAIT). About 50 s on a loaded 2-core machine (two server starts with MTCNN), so slow.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from ferkit_testmodels import tiny_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _start(ckpt: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", str(ckpt), "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"ferkit serve exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except httpx.TransportError:
            assert time.monotonic() < deadline, "ferkit serve did not start listening within 120 s"
            time.sleep(0.2)


def _right(body: dict, want: dict, name: str) -> bool:
    (row,) = body["rows"]
    return row["file"] == name and row["label"] == want["label"] and all(
        abs(row["probs"][c] - p) <= 1e-5 for c, p in want["probs"].items())


@pytest.mark.slow
def test_serve_killed_with_requests_in_flight_errors_then_answers_right_again(tmp_path_factory):
    from skimage import data

    from ferkit.inference import load_model
    from ferkit.serve.server import free_port

    ckpt = tiny_checkpoint(tmp_path_factory.getbasetemp() / "models")      # the serve tests' checkpoint
    half = np.ascontiguousarray(data.astronaut()[::2, ::2])                  # (256, 256, 3), one face
    images = [half, half[:, ::-1].copy(), half[10:240, 5:250].copy(), half[0:230, 20:256].copy(),
              (half * 0.8).astype(np.uint8), np.clip(half.astype(int) + 30, 0, 255).astype(np.uint8)]
    model = load_model(ckpt, device="cpu")
    want = [model.predict([img])[0] for img in images]
    for a in range(len(want)):                              # any two answers differ, so a mix-up shows
        for b in range(a):
            assert max(abs(want[a]["probs"][c] - want[b]["probs"][c]) for c in want[a]["probs"]) > 1e-4
    files = [_png(img) for img in images]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(ckpt, port)
    answers: list[tuple[int, float, object]] = []          # (image, time sent, response or exception)
    lock, killed, stop = threading.Lock(), threading.Event(), threading.Event()

    def client(c: int) -> None:
        k = c
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                i, sent = k % len(files), time.monotonic()
                k += 1
                try:
                    got: object = http.post(url + "/predict", files={"file": (f"img{i}.png", files[i], "image/png")})
                except httpx.TransportError as e:
                    got = e
                with lock:
                    answers.append((i, sent, got))
                if killed.is_set() and isinstance(got, Exception):
                    return                                   # this client has seen the outage
    try:
        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while sum(isinstance(a[2], httpx.Response) for a in answers) < 12:
            assert time.monotonic() < deadline, "the server answered too few requests"
            time.sleep(0.05)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        killed.set()
        proc.wait(30)
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        proc = _start(ckpt, port)                            # the same port, straight away
        with httpx.Client(timeout=60) as http:
            again = [http.post(url + "/predict", files={"file": (f"img{i}.png", f, "image/png")})
                     for i, f in enumerate(files)]
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    in_flight = [a for a in answers if isinstance(a[2], Exception) and a[1] < killed_at]
    assert in_flight, "no request was in flight when the server was killed"
    for i, _, got in answers:
        if isinstance(got, httpx.Response):
            assert got.status_code == 200, got.text
            assert _right(got.json(), want[i], f"img{i}.png"), f"a wrong answer for img{i}.png"
    for i, r in enumerate(again):
        assert r.status_code == 200 and _right(r.json(), want[i], f"img{i}.png")


def test_a_port_another_server_listens_on_is_still_refused():
    import socket

    from ferkit.errors import FerkitError
    from ferkit.serve.server import serve_forever

    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as uvicorn's listening socket
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(FerkitError, match=f"Cannot listen on 127.0.0.1 port {port} .*; pick another --port"):
            serve_forever(None, "127.0.0.1", port)
