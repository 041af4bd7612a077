"""The checks and the final table of benchmarks/device_check.sh, one subcommand each.

    python benchmarks/device_report.py cuda [--dry-run] [--site DIR]   torch.version.cuda against the driver, the GPU
    python benchmarks/device_report.py same-weights RUN_A RUN_B        are two runs' last weights bit-identical?
    python benchmarks/device_report.py onnx MODEL.onnx CKPT --device D which onnxruntime provider ran, rows agree?
    python benchmarks/device_report.py table WORK                      the final table from WORK/results
    python benchmarks/device_report.py rows WORK                       the same as JSON (OUT/device_check.json)

Each prints ``result:`` lines (device_check.sh copies them into its report) and exits non-zero on a failed check.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path


def driver_cuda() -> tuple[int, int] | None:
    """The CUDA version the driver supports, from nvidia-smi's header (None when nvidia-smi is not there)."""
    try:
        text = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cuda_check(dry_run: bool, site: str | None) -> int:
    import torch

    print(f"torch {torch.__version__} from {torch.__file__}")
    if site and str(Path(site).resolve()) in str(Path(torch.__file__).resolve()):
        print(f"result: FAILED: torch was imported from the wheels folder {site}: it must stay the machine's")
        return 1
    built = torch.version.cuda
    if dry_run:
        print(f"result: cpu dry run: torch {torch.__version__}, torch.version.cuda {built}, "
              f"CUDA available {torch.cuda.is_available()} (not used)")
        return 0
    if built is None:
        print(f"result: FAILED: torch {torch.__version__} is a CPU build (torch.version.cuda is None)")
        return 1
    if not torch.cuda.is_available():
        print(f"result: FAILED: torch {torch.__version__} (CUDA {built}) sees no CUDA device")
        return 1
    driver = driver_cuda()
    need = tuple(int(x) for x in built.split(".")[:2])
    if driver is not None and need > driver:
        print(f"result: FAILED: torch is built for CUDA {built} but the driver supports CUDA {driver[0]}.{driver[1]}")
        return 1
    props = torch.cuda.get_device_properties(0)
    x = torch.randn(1024, 1024, device="cuda")
    value = float((x @ x).abs().sum())                       # a kernel runs and comes back
    assert value > 0
    drv = "unknown (no nvidia-smi)" if driver is None else f"{driver[0]}.{driver[1]}"
    print(f"result: {torch.cuda.get_device_name(0)}, compute capability {props.major}.{props.minor}, "
          f"{props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s); torch {torch.__version__} "
          f"built for CUDA {built}, driver supports CUDA {drv}; bf16 {torch.cuda.is_bf16_supported()}; "
          f"cudnn {torch.backends.cudnn.version()}")
    return 0


def same_weights(a: str, b: str) -> int:
    import torch

    from ferkit.engine.checkpoint import read_checkpoint

    ta, tb = (read_checkpoint(Path(r) / "checkpoints" / "last.safetensors").tensors for r in (a, b))
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    ops = json.loads((Path(a) / "metrics.json").read_text()).get("nondeterministic_ops", [])
    steps = json.loads((Path(a) / "metrics.json").read_text()).get("steps")
    warned = f"ops without a deterministic kernel: {', '.join(ops)}" if ops else "no op warned"
    if not differ:
        print(f"result: --deterministic, {steps} steps twice: bit-identical weights ({len(ta)} tensors); {warned}")
        return 0
    worst = max(float((ta[k].double() - tb[k].double()).abs().max()) for k in differ)
    print(f"result: --deterministic, {steps} steps twice: NOT bit-identical: {len(differ)} of {len(ta)} tensors "
          f"differ (max |diff| {worst:.3g}, e.g. {differ[:3]}); {warned}")
    return 1


def onnx_check(model: str, ckpt: str, device: str, photos: list[str]) -> int:
    import numpy as np
    import onnxruntime as ort

    from ferkit.inference.model import load_model

    onnx = load_model(model, device=device, engine="onnx")
    used = onnx.engine.session.get_providers()
    torch_model = load_model(ckpt, device=device, engine="torch")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(8)]
    a, b = onnx.predict_crops(crops)["probs"], torch_model.predict_crops(crops)["probs"]
    diff = float(np.abs(a - b).max())
    print(f"result: onnxruntime {ort.__version__} ran on {used[0]} (session providers {used}; available "
          f"{ort.get_available_providers()}); onnx vs torch on {device}: max |p diff| {diff:.2e} over 8 crops")
    for name, path in (("onnx", photos[0]), ("torch", photos[1])):
        rows = json.loads(Path(path).read_text())
        rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
        print(f"result: ferkit predict --engine {name} --device {device}: {len(rows)} faces, labels "
              f"{[r.get('label') for r in rows]}")
    return 0 if diff < 1e-2 else 1


def collect(work: str) -> dict:
    """Everything the table shows: parts (name, status, seconds, limit), step rows, inference, result lines."""
    root = Path(work) / "results"
    parts_file = root / "parts.txt"
    parts = [line.split() for line in parts_file.read_text().splitlines()] if parts_file.is_file() else []
    steps = [r for f in sorted(root.glob("steps_*.json")) for r in json.loads(f.read_text())]
    inference = json.loads((root / "inference.json").read_text()) if (root / "inference.json").is_file() else None
    results = {}
    for f in sorted((Path(work) / "logs").glob("*.log")):
        lines = [x[len("result:"):].strip() for x in f.read_text(errors="replace").splitlines()
                 if x.startswith("result:")]
        if lines:
            results[f.stem] = lines
    return {"parts": [dict(zip(("part", "status", "seconds", "limit"), p, strict=True)) for p in parts],
            "steps": steps, "inference": inference, "results": results}


def table(work: str) -> int:
    doc = collect(work)
    parts = [tuple(p.values()) for p in doc["parts"]]
    print(f"{'part':<16} {'status':<9} {'seconds':>7} {'limit':>6}")
    for name, status, took, limit in parts:
        print(f"{name:<16} {status:<9} {took:>7} {limit:>6}")
    rows = doc["steps"]
    if rows:
        print(f"\n{'method':<9} {'model':<9} {'phase':<7} {'prec':<5} {'px':>4} {'batch':>5} {'ms/step':>8} "
              f"{'peak MiB':>9}   (median after warm-up)")
        for r in rows:
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            print(f"{r['method']:<9} {r['model']:<9} {r['phase']:<7} {r['precision']:<5} {r['size']:>4} "
                  f"{r['batch']:>5} {r['step_s'] * 1000:>8.1f} {peak:>9}")
    if doc["inference"]:
        print(f"\n{'model':<28} {'engine':<16} {'aligned faces/s':>15} {'with detection':>14}")
        for r in doc["inference"]["results"]:
            for e, v in r["engines"].items():
                print(f"{r['model'][:28]:<28} {e:<16} {v['faces_per_s_aligned']:>15.1f} "
                      f"{v['faces_per_s_with_detection']:>14.2f}")
    print()
    for name in ("setup", "tests", "determinism", "ddp", "export_predict"):
        for line in doc["results"].get(name, []):
            print(f"{name}: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cuda")
    c.add_argument("--dry-run", action="store_true")
    c.add_argument("--site")
    s = sub.add_parser("same-weights")
    s.add_argument("a")
    s.add_argument("b")
    o = sub.add_parser("onnx")
    o.add_argument("model")
    o.add_argument("checkpoint")
    o.add_argument("--device", default="cuda")
    o.add_argument("--predictions", nargs=2, required=True, metavar=("ONNX_JSON", "TORCH_JSON"))
    for name in ("table", "rows"):
        sub.add_parser(name).add_argument("work")
    args = p.parse_args(argv)
    if args.cmd == "cuda":
        return cuda_check(args.dry_run, args.site)
    if args.cmd == "same-weights":
        return same_weights(args.a, args.b)
    if args.cmd == "onnx":
        return onnx_check(args.model, args.checkpoint, args.device, args.predictions)
    if args.cmd == "rows":
        print(json.dumps(collect(args.work), indent=1))
        return 0
    return table(args.work)


if __name__ == "__main__":
    sys.exit(main())
