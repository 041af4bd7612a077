"""SynthFER rendering speed: images per second, one process and N worker processes, side by side.

    .venv/bin/python benchmarks/speed/bench_synth.py [--images 1000] [--size 112] [--workers 2]

Renders the same rows (planned once) with ``render_rows`` in one process and with ``--workers``
processes, checks the two give identical bytes, and prints images/s (wall clock) for each, the
single-process CPU-time rate (what one core does when it is not shared) and the speed-up ratio.
Planning the metadata (no drawing) is timed separately. Run it on an otherwise idle machine: the wall-clock
numbers count every other process that shares the cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> int:
    from ferkit.data.synthetic import plan_synthfer, render_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000, help="images to render per run")
    ap.add_argument("--size", type=int, default=112, help="image side in pixels")
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", action="store_true", help="store the result in benchmarks/results/speed/synth.json")
    args = ap.parse_args()

    per_id = 50
    identities = max(3, -(-args.images // per_id))
    t0 = time.perf_counter()
    rows = plan_synthfer(identities, per_id, args.size, 0.5, args.seed)[: args.images]
    plan_s = time.perf_counter() - t0
    render_rows(rows[:8], args.size, args.seed)                                  # warm caches and imports

    w0, c0 = time.perf_counter(), time.process_time()
    single = render_rows(rows, args.size, args.seed, workers=1)
    single_wall, single_cpu = time.perf_counter() - w0, time.process_time() - c0
    w0 = time.perf_counter()
    multi = render_rows(rows, args.size, args.seed, workers=args.workers)
    multi_wall = time.perf_counter() - w0
    same = all(np.array_equal(a, b) for a, b in zip(single, multi, strict=True))

    n = len(rows)
    result = {
        "images": n, "size": args.size, "plan_rows_per_s": round(n / plan_s, 1),
        "single_images_per_s": round(n / single_wall, 1),
        "single_cpu_images_per_s": round(n / single_cpu, 1),
        f"workers{args.workers}_images_per_s": round(n / multi_wall, 1),
        "speedup": round(single_wall / multi_wall, 2), "identical_bytes": same,
    }
    print(f"SynthFER {args.size}px, {n} images: 1 process {n / single_wall:.0f} img/s "
          f"(CPU-time rate {n / single_cpu:.0f} img/s); {args.workers} processes {n / multi_wall:.0f} img/s "
          f"(x{single_wall / multi_wall:.2f}); identical bytes: {same}")
    print(json.dumps(result))
    if args.store:
        from stored import store

        store("synth", result, threads=1)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
