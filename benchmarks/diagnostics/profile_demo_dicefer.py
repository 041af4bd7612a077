"""Where `ferkit demo`'s DICE-FER row spends its time (issue 26: the row is most of `make demo`'s 10 minutes).

    .venv/bin/python benchmarks/diagnostics/profile_demo_dicefer.py [--stage1-epochs 2] [--threads 2] [--store]

Trains the demo's own DICE-FER entry (``ferkit.commands.demo.demo_entries``: its SynthFER, sizes, lr, batch and
stage settings, stage 1 cut to ``--stage1-epochs``, random init: a step's cost does not depend on the weights)
under ``torch.profiler`` and reports each group of operators' share of the CPU time: convolution forward and
backward, batch norm, pooling, the optimizers' steps, data loading, the rest. Beside it, one ResNet-18 of the
row (1 channel, its side, batch 64) forward + backward, the median of 8 steps: at 1 and 2 threads (how much a
second core buys) and in channels-last memory (whether oneDNN's NHWC kernels are faster here); and the whole
row (stage 3 cut to one epoch) in contiguous against channels-last memory, interleaved three times
(``row_seconds``: what a faster step buys the row). ``--store`` writes
``benchmarks/results/speed/demo_dicefer_profile.json`` with the machine (docs' Speed page).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: operator groups by the profiler's names (self CPU time)
GROUPS = {
    "convolution forward": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution"),
    "convolution backward": ("aten::convolution_backward",),
    "batch norm": ("aten::native_batch_norm", "aten::native_batch_norm_backward"),
    "pooling": ("aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward",
                "aten::adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d_backward"),
}
#: groups measured by their total CPU time (what runs inside them)
SPANS = {"optimizer steps": "Optimizer.step", "data loading": "enumerate(DataLoader)"}


def _train_row(stage1_epochs: int, epochs: int = 8, channels_last: bool | None = None, profiler=None):
    """Train the demo's DICE-FER entry (stage 1 cut to ``stage1_epochs``) once; returns (entry, wall seconds)."""
    import contextlib

    from ferkit.commands.demo import RESNET_SIZE, demo_entries
    from ferkit.config import build_experiment
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.trainer import train

    entry = next(e for e in demo_entries(64, epochs, stage1_epochs, RESNET_SIZE, channels_last=channels_last)
                 if e.method == "dicefer")
    synth = render_synthfer(identities=24, images_per_identity=56, size=64, confounding=0.0, seed=0)
    data = {"dataset": "synthetic", "synth_identities": 24, "synth_images_per_identity": 56,
            "synth_confounding": 0.0, "synth_seed": 0, "synth_size": 64}
    out = Path(tempfile.mkdtemp(prefix="ferkit-prof-"))
    try:
        cfg = build_experiment("dicefer", data, {"seed": 0, "device": "cpu", "out": str(out), **entry.train},
                               entry.model)
        with profiler if profiler is not None else contextlib.nullcontext():
            t0 = time.perf_counter()
            train(cfg, splits=synth.splits, progress=False)
            wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return entry, wall


def row_seconds(stage1_epochs: int, repeats: int = 3) -> dict:
    """Wall seconds of the whole row (stage 1 cut to ``stage1_epochs``, stage 3 one epoch), contiguous against
    channels-last memory, the two interleaved ``repeats`` times so that a change in the machine's load hits both:
    what a step's speed-up (``resnet_step``) buys the row, whose critics, data loading and optimisers it leaves."""
    import statistics as st

    got: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    for _ in range(repeats):
        for fmt in got:
            entry, wall = _train_row(stage1_epochs, epochs=2, channels_last=fmt == "channels_last")
            got[fmt].append(round(wall, 1))
    return {"stage1_epochs": stage1_epochs, "stage3_epochs": entry.model["stage3_epochs"], "runs": got,
            "median_s": {k: st.median(v) for k, v in got.items()},
            "channels_last over nchw": round(st.median(got["nchw"]) / st.median(got["channels_last"]), 2)}


def profile_row(stage1_epochs: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU])
    entry, wall = _train_row(stage1_epochs, profiler=prof)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {g: sum(e.self_cpu_time_total for e in events if e.key in names) / total for g, names in GROUPS.items()}
    for g, prefix in SPANS.items():
        shares[g] = sum(e.cpu_time_total for e in events if e.key.startswith(prefix)) / total
    shares["everything else"] = max(0.0, 1.0 - sum(shares.values()))
    return {"row": entry.label, "model": entry.model, "train": entry.train, "stage1_epochs": stage1_epochs,
            "wall_s": round(wall, 1), "cpu_share": {k: round(v, 3) for k, v in shares.items()},
            "torch": torch.__version__}


def resnet_step(side: int, batch: int = 64, steps: int = 8) -> dict:
    """ms per forward + backward of one ResNet-18 trunk of the row, by threads and memory format."""
    import torch

    from ferkit.models.resnet import ResNet18Trunk

    found = {}
    x = torch.randn(batch, 1, side, side)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for fmt in ("nchw", "channels_last"):
            torch.manual_seed(0)
            net = ResNet18Trunk(in_channels=1)
            xx = x
            if fmt == "channels_last":
                net, xx = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            times = []
            for i in range(steps + 2):
                net.zero_grad()
                t0 = time.perf_counter()
                net(xx)["pooled"].sum().backward()
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            found[f"{threads} thread(s), {fmt}"] = round(1000 * statistics.median(times), 1)
    found["2 threads over 1 (nchw)"] = round(found["1 thread(s), nchw"] / found["2 thread(s), nchw"], 2)
    found["channels_last over nchw (2 threads)"] = round(found["2 thread(s), nchw"] /
                                                          found["2 thread(s), channels_last"], 2)
    return {"side": side, "batch": batch, "ms_per_step": found}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage1-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--store", action="store_true", help="write benchmarks/results/speed/demo_dicefer_profile.json")
    args = p.parse_args(argv)
    from ferkit.commands.demo import RESNET_SIZE

    torch.set_num_threads(args.threads)
    results = {"profile": profile_row(args.stage1_epochs), "resnet18_step": resnet_step(RESNET_SIZE)}
    torch.set_num_threads(args.threads)
    results["row_seconds"] = row_seconds(args.stage1_epochs)
    print(f"  the row, {results['row_seconds']['median_s']} s (median of 3, interleaved)")
    for k, v in results["profile"]["cpu_share"].items():
        print(f"  {k:<22} {v:6.1%}")
    for k, v in results["resnet18_step"]["ms_per_step"].items():
        print(f"  ResNet-18 step, {k}: {v}")
    if args.store:
        from ferkit.machine import write_measurement

        path = write_measurement(ROOT / "benchmarks/results/speed/demo_dicefer_profile.json", "demo_dicefer_profile",
                                 f"python benchmarks/diagnostics/profile_demo_dicefer.py --stage1-epochs "
                                 f"{args.stage1_epochs} --threads {args.threads} --store", results,
                                 threads=args.threads)
        print(f"stored {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
