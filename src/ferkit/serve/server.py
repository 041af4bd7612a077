"""Running the app under uvicorn: in the foreground (``ferkit serve``) or in a background thread (tests,
benchmarks), always on an address the caller names: IPv4 (``127.0.0.1``, ``0.0.0.0``), IPv6 (``::1``,
``[::1]``, ``::``) or a name such as ``localhost``."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
import time
from typing import Any

from ferkit.errors import FerkitError


def listen_host(host: str) -> tuple[str, socket.AddressFamily]:
    """``host`` without IPv6 brackets, and the address family to listen with; a name that does not resolve
    is a FerkitError."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    with contextlib.suppress(ValueError):              # not an address literal: resolve it as a name
        return bare, socket.AF_INET6 if ipaddress.ip_address(bare).version == 6 else socket.AF_INET
    try:
        return bare, socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError, IndexError):
        raise FerkitError(f"--host {host} is neither an IP address nor a name this machine resolves; use e.g. "
                          "127.0.0.1, ::1 or 0.0.0.0.") from None


def url_for(host: str, port: int) -> str:
    """``http://HOST:PORT`` with an IPv6 address in brackets (``http://[::1]:8000``)."""
    bare, _ = listen_host(host)
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    bare, family = listen_host(host)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((bare, 0))
        return int(s.getsockname()[1])


def _config(app: Any, host: str, port: int, log_level: str, access_log: bool):
    import uvicorn

    # one worker process: the model lives in this process and the batcher serialises its use
    return uvicorn.Config(app, host=host, port=int(port), log_level=log_level, access_log=access_log,
                          timeout_graceful_shutdown=5, lifespan="on")


def serve_forever(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve until interrupted; a port already in use is a FerkitError with one sentence."""
    import uvicorn

    bare, family = listen_host(host)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            if os.name != "nt":       # as uvicorn binds: a port a killed server left in TIME_WAIT is free
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bare, int(port)))
    except OSError as e:
        raise FerkitError(f"Cannot listen on {host} port {port} ({e.strerror}); pick another --port or "
                          "--host.") from None
    uvicorn.Server(_config(app, bare, port, log_level, access_log=True)).run()


class BackgroundServer:
    """``with BackgroundServer(app) as srv: httpx.get(srv.url + "/health")`` -- uvicorn in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None,
                 log_level: str = "warning", start_timeout: float = 30.0):
        import uvicorn

        self.host, _ = listen_host(host)
        self.port = port or free_port(self.host)
        self.server = uvicorn.Server(_config(app, self.host, self.port, log_level, access_log=False))
        self.start_timeout = start_timeout
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)

    def __enter__(self) -> BackgroundServer:
        self.thread = threading.Thread(target=self.server.run, name="ferkit-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"The server on {self.url} exited during start-up.")
            if time.monotonic() > deadline:
                raise RuntimeError(f"The server on {self.url} did not start within {self.start_timeout} s.")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)
