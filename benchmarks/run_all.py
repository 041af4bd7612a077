"""Run every benchmark with its default (side-by-side) settings, one after another.

    .venv/bin/python benchmarks/run_all.py [--quick]

Each benchmark prints its own table; speed targets are ratios measured within one run, never timed asserts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

#: (script, quick arguments, full arguments)
BENCHMARKS = [
    ("speed/bench_synth.py", ["--images", "500"], []),
    ("diagnostics/probe_synth.py", [], []),
    ("diagnostics/bench_baseline_synth.py", ["--seeds", "0"], []),
    ("speed/bench_dicefer.py", ["--part", "speed"], ["--part", "all"]),
    ("speed/bench_uafer.py", ["--steps", "2"], []),
    ("speed/bench_inference.py", ["--models", "dicefer", "uafer-tiny"], []),
    ("speed/bench_serve.py", ["--requests", "16"], []),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs of each benchmark")
    args = parser.parse_args(argv)
    failed = []
    for script, quick, full in BENCHMARKS:
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n### {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
