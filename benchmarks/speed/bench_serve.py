"""Throughput and latency of `ferkit serve` on loopback, with and without request batching.

    .venv/bin/python benchmarks/speed/bench_serve.py [--checkpoint CKPT] [--requests 32] [--concurrency 1 8 32]

Starts the server in this process (uvicorn in a background thread, 127.0.0.1 only) over a real checkpoint
(without --checkpoint, a ResNet-18 baseline trained for a few steps on tiny SynthFER is written to a temp
folder) with real MTCNN face detection, then for each concurrency sends a fixed number of POST /predict
requests with scikit-image's astronaut photo and reports requests per second and latency percentiles
(p50/p90/p99). Each concurrency runs twice side by side: batching on (--max-batch, --batch-wait-ms) and
off (max_batch=1), so the ratio shows what batching buys on this machine. Any non-200 answer is counted
as an error and makes the exit status 1. The client runs in the same process and shares the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def tiny_checkpoint(out: Path) -> Path:
    """A baseline (ResNet-18 + linear head, 64 px gray) trained for 3 steps on a small SynthFER."""
    from ferkit.config import build_experiment
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.trainer import train

    synth = render_synthfer(identities=6, images_per_identity=14, size=64, seed=0)
    cfg = build_experiment(
        "baseline", data={"dataset": "synthetic", "cache": False},
        train={"epochs": 1, "batch_size": 16, "max_steps": 3, "device": "cpu", "precision": "fp32",
               "out": str(out), "eval_every": 0},
        model={"image_size": 64, "channels": 1, "align": "mtcnn5"})
    return Path(train(cfg, splits=synth.splits, progress=False).checkpoint)


def photo_bytes(side: int) -> bytes:
    """scikit-image's astronaut (one face) as a JPEG, resized to ``side`` x ``side``."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


async def load(url: str, payload: bytes, requests: int, concurrency: int) -> dict:
    """Send ``requests`` POSTs with at most ``concurrency`` in flight; latencies in ms and the error count."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < requests:
            next_index += 1
            t0 = time.perf_counter()
            r = await client.post("/predict", files={"file": ("astronaut.jpg", payload, "image/jpeg")})
            latencies.append((time.perf_counter() - t0) * 1000.0)
            if r.status_code != 200 or not r.json()["rows"] or r.json()["rows"][0]["face"] is None:
                errors.append(f"{r.status_code}: {r.text[:120]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.asarray(latencies)
    return {"requests": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
            "wall_s": round(wall, 3), "rps": round(len(latencies) / wall, 2),
            **{f"p{q}_ms": round(float(np.percentile(lat, q)), 1) for q in (50, 90, 99)}}


def run(model, payload: bytes, requests: int, concurrency: int, max_batch: int, wait_ms: float) -> dict:
    import httpx

    from ferkit.serve.app import create_app
    from ferkit.serve.limits import Limits
    from ferkit.serve.server import BackgroundServer

    app = create_app(model, Limits(max_batch=max_batch, batch_wait_ms=wait_ms, queue_size=max(64, concurrency),
                                   timeout=300))
    with BackgroundServer(app, host="127.0.0.1") as srv:
        asyncio.run(load(srv.url, payload, 2, 1))                      # warm-up: detector, allocator
        res = asyncio.run(load(srv.url, payload, requests, concurrency))
        health = httpx.get(srv.url + "/health").json()
    res["largest_batch"] = health["largest_batch"]
    res["mean_batch"] = round(health["served"] / max(1, health["batches"]), 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="a ferkit checkpoint (default: train a tiny one)")
    ap.add_argument("--requests", type=int, default=32, help="requests per setting (default 32)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--side", type=int, default=256, help="side of the photo sent, in pixels (256)")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--batch-wait-ms", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from ferkit.inference import load_model

    ckpt = Path(args.checkpoint) if args.checkpoint else tiny_checkpoint(Path(tempfile.mkdtemp()) / "run")
    model = load_model(ckpt, device=args.device)
    payload = photo_bytes(args.side)
    print(f"ferkit serve benchmark: {model.method} from {ckpt}, astronaut {args.side}x{args.side} JPEG "
          f"({len(payload)} bytes), {args.requests} requests per setting, torch threads "
          f"{torch.get_num_threads()}", file=sys.stderr)
    header = (f"{'conc':>4} {'batching':>9} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
              f"{'mean batch':>10} {'errors':>6} {'rps ratio':>9}")
    print(header)
    results = []
    for c in args.concurrency:
        on = run(model, payload, args.requests, c, args.max_batch, args.batch_wait_ms)
        off = run(model, payload, args.requests, c, 1, 0.0)
        for name, r in (("on", on), ("off", off)):
            ratio = f"{on['rps'] / off['rps']:.2f}" if name == "on" else ""
            print(f"{c:>4} {name:>9} {r['rps']:>7.2f} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                  f"{r['mean_batch']:>10.2f} {r['errors']:>6} {ratio:>9}", flush=True)
            results.append({"concurrency": c, "batching": name, **r})
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(ckpt), "side": args.side, "results": results},
                                              indent=2))
    errors = sum(r["errors"] for r in results)
    if errors:
        first = next(r["first_error"] for r in results if r["errors"])
        print(f"{errors} requests failed; the first: {first}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
