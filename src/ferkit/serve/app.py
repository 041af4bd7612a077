"""The HTTP service over a trained model: a web page, ``POST /predict``, ``GET /health`` and ``GET /model``.

The model is injected: any object with ``predict(list_of_uint8_rgb_arrays, abstain_above=U) -> rows``
and ``info() -> dict`` (:class:`ferkit.inference.FERModel` is one). ``predict`` returns, in input order,
one row per detected face (``face`` = 0, 1, ...) or a single row with ``face`` None and an ``error``
when an image has no face; :func:`split_rows` uses that (and the rows' ``file``) to hand each request
its own rows, whose ``file`` then becomes the uploaded file's name.

Every refusal is JSON ``{"error": "<one sentence>"}`` with a 4xx/5xx status; a failure in one request
never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest

from ferkit.errors import FerkitError
from ferkit.serve.batching import Batcher, QueueFull
from ferkit.serve.limits import (
    Limits,
    UploadError,
    check_file_part,
    check_request_type,
    decode_image,
    read_body_limited,
)

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("ferkit.serve")


def jsonable(obj: Any) -> Any:
    """Plain JSON types for numpy scalars/arrays, tuples and paths; NaN and infinities become None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def split_rows(rows: list[dict], n_images: int) -> list[list[dict]]:
    """Group ``predict``'s rows by image, in order: a row starts the next image's rows when its ``file``
    differs from the previous row's (FERModel names arrays "<array i>") or its ``face`` is None or 0."""
    groups: list[list[dict]] = []
    for row in rows:
        if not groups or row.get("face") in (None, 0) or row.get("file") != groups[-1][-1].get("file"):
            groups.append([])
        groups[-1].append(row)
    if len(groups) != n_images:
        raise RuntimeError(f"The model returned rows for {len(groups)} images, expected {n_images}.")
    return groups


def create_app(model: Any, limits: Limits | None = None, abstain_above: float | None = None) -> FastAPI:
    """The FastAPI application serving ``model`` under ``limits``."""
    limits = limits or Limits()
    limits.check()
    info = jsonable(dict(model.info()))
    info.pop("source", None)                              # the checkpoint's path on this machine stays private

    def run_batch(items: list[tuple[np.ndarray, str]]) -> list[list[dict]]:
        rows = model.predict([img for img, _ in items], abstain_above=abstain_above)
        groups = split_rows(list(rows), len(items))
        for (_, name), group in zip(items, groups, strict=True):
            for row in group:
                row["file"] = name
        return [jsonable(g) for g in groups]

    batcher = Batcher(run_batch, limits.max_batch, limits.batch_wait_ms, limits.queue_size)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="ferkit", version=str(info.get("version", "")), lifespan=lifespan,
                  docs_url=None, redoc_url=None)          # the docs pages would load scripts from a CDN
    app.state.batcher = batcher
    app.state.limits = limits
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error(404, f"There is nothing at {request.url.path}; the API has GET /health, "
                              "GET /model and POST /predict.")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}.")
        return error(exc.status_code, str(exc.detail))

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health():
        s = batcher.stats
        return {"status": "ok", "waiting": batcher.waiting, "running": batcher.running,
                "queue_size": limits.queue_size, "served": s.requests, "batches": s.batches,
                "largest_batch": s.largest_batch, "dropped": s.dropped}

    @app.get("/model")
    async def model_info():
        return {**info, "abstain_above": abstain_above,
                "limits": {"max_upload_mb": limits.max_upload_mb, "max_pixels": limits.max_pixels,
                           "timeout": limits.timeout, "max_batch": limits.max_batch}}

    async def read_upload(request: Request) -> tuple[np.ndarray, str]:
        check_request_type(request.headers.get("content-type"))
        body = await read_body_limited(request.stream(), request.headers.get("content-length"),
                                       limits.max_upload_bytes)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await StarletteRequest(request.scope, replay).form(max_files=2, max_fields=8)
        except Exception as e:  # multipart errors surface as HTTPException or MultiPartException
            detail = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
            raise UploadError(400, f"The multipart body is malformed ({str(detail).rstrip('.')}).") from None
        part = form.get("file")
        check_file_part(part, limits.max_upload_bytes)
        data = await part.read()
        image = await asyncio.to_thread(decode_image, data, limits.max_pixels)
        return image, str(part.filename or "upload")

    def busy() -> JSONResponse:
        return error(503, f"The server is busy ({limits.queue_size} requests are waiting); retry in a moment.",
                     headers={"Retry-After": "1"})

    @app.post("/predict")
    async def predict(request: Request):
        start = time.perf_counter()
        if batcher.full:                                  # refuse before reading and decoding the upload
            return busy()
        try:
            image, name = await asyncio.wait_for(read_upload(request), limits.timeout)
        except UploadError as e:
            return error(e.status, e.message)
        except asyncio.TimeoutError:
            return error(408, f"The upload took longer than {limits.timeout:g} s to arrive.")
        left = max(0.001, limits.timeout - (time.perf_counter() - start))
        try:
            rows = await batcher.submit((image, name), timeout=left)
        except QueueFull:
            return busy()
        except asyncio.TimeoutError:
            return error(504, f"The model did not answer within the {limits.timeout:g} s timeout; "
                              "retry later or with a smaller image.")
        except FerkitError as e:
            return error(422, str(e))
        except Exception as e:
            log.exception("prediction failed")
            return error(500, f"The model failed on this image ({type(e).__name__}: {e}).")
        h, w = image.shape[:2]
        return {"rows": rows, "image": {"width": w, "height": h}, "model": info,
                "abstain_above": abstain_above,
                "elapsed_ms": round((time.perf_counter() - start) * 1000.0, 2)}

    return app
