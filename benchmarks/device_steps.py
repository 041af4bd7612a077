"""Training step time after warm-up, and peak device memory, of one method in fp32 and bf16 (device_check.sh).

    python benchmarks/device_steps.py --method baseline|dicefer|uafer --device cuda [--size 112] [--batch 64]
        [--warmup 2] [--steps 4] [--model-size ViT-B-16] [--precisions fp32 bf16] [--json rows.json]

The method trains through the engine (``train(cfg, method=...)``, no checkpoints) on random images of
``--size`` px with 8 subjects, for ``--warmup + --steps`` optimiser steps per phase (DICE-FER has three
phases; one epoch each). Each ``train_step`` is timed on its own, the device synchronised before and after,
so data loading is left out; the first ``--warmup`` steps of each phase (kernel selection, allocator growth,
lazy set-up) are dropped and the median of the rest is reported. Peak memory is
``torch.cuda.max_memory_allocated`` over the whole run of one precision (``-`` on the CPU). One line per
(precision, phase) starting with ``result:``; ``--json`` also writes them as a list of rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def random_splits(size: int, n_train: int, n_eval: int = 8, seed: int = 0) -> dict:
    """In-memory RGB splits of random faces-to-be (uint8, 7 classes, 8 subjects): speed needs no real images."""
    from ferkit.data.labels import SYNTHFER
    from ferkit.data.records import DatasetSplit, Sample

    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> DatasetSplit:
        return DatasetSplit("random", name, SYNTHFER, [Sample(rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                                                             i % 7, subject=i % 8) for i in range(n)])

    return {"train": split("train", n_train), "val": split("val", n_eval), "test": split("test", n_eval)}


def model_config(method: str, size: int, model_size: str | None) -> dict:
    if method == "uafer":
        return {"model_size": model_size or "ViT-B-16", "image_size": size}
    if method == "dicefer":
        return {"image_size": size, "stage1_epochs": 1, "stage2_epochs": 1, "stage3_epochs": 1}
    return {"image_size": size}


def timed_method(method):
    """Wrap ``method.train_step`` so each call's wall time lands in ``method.step_times[phase]``."""
    inner = method.train_step
    method.step_times = {}

    def step(phase, batch, ctx):
        sync(ctx.device)
        t = time.perf_counter()
        out = inner(phase, batch, ctx)
        sync(ctx.device)
        method.step_times.setdefault(phase.name, []).append(time.perf_counter() - t)
        return out

    method.train_step = step
    return method


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(method_name: str, device: str, size: int, batch: int, warmup: int, steps: int, precision: str,
        model_size: str | None, out: Path) -> list[dict]:
    from ferkit.config import build_experiment
    from ferkit.engine.devices import resolve_device
    from ferkit.engine.registry import get_method
    from ferkit.engine.trainer import train

    n = warmup + steps
    cfg = build_experiment(method_name, {"dataset": "random", "num_workers": 0, "cache": False},
                           {"epochs": 1, "batch_size": batch, "lr": 1e-4, "precision": precision, "device": device,
                            "limit_batches": n, "eval_every": 0, "out": str(out / f"{method_name}_{precision}")},
                           model_config(method_name, size, model_size))
    splits = random_splits(size, n * batch)
    dev = resolve_device(device)
    if dev.type == "cuda":                  # the previous precision's tensors gone before its peak is read
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    method = timed_method(get_method(method_name)(cfg, splits["train"].label_space, dev))
    train(cfg, splits=splits, progress=False, method=method, console=False, checkpoints=False)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    rows = []
    for phase, times in method.step_times.items():
        kept = times[warmup:] or times[-1:]
        rows.append({"method": method_name, "precision": precision, "phase": phase, "size": size, "batch": batch,
                     "device": str(dev), "steps_timed": len(kept), "warmup_dropped": len(times) - len(kept),
                     "step_s": statistics.median(kept), "peak_mib": peak,
                     "model": cfg.model.model_size if method_name == "uafer" else "ResNet-18"})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=["baseline", "dicefer", "uafer"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--model-size", help="UA-FER: ViT-B-16 (default, random weights) or tiny")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--work", default="runs/device_steps", help="folder for the run logs")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    rows = []
    for precision in args.precisions:
        got = run(args.method, args.device, args.size, args.batch, args.warmup, args.steps, precision,
                  args.model_size, Path(args.work))
        for r in got:
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} MiB"
            print(f"result: {r['method']:<8} {r['model']:<9} {r['phase']:<7} {r['precision']:<4} {r['size']} px "
                  f"batch {r['batch']}: {r['step_s'] * 1000:.1f} ms/step (median of {r['steps_timed']} after "
                  f"{r['warmup_dropped']} warm-up), peak {peak}", flush=True)
        rows += got
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
