"""`make demo` from a fresh clone, install included, timed stage by stage: the figure issue 26's budget is about.

    python benchmarks/speed/time_make_demo.py [--avx2] [--store]

Clones this checkout's HEAD into a temporary folder (a fresh clone: no .venv, no runs), runs `make demo` there
and stamps every line it prints, so the wall time splits into the install (up to make's echo of the demo command), each
starting-weights pretraining and each method's row (``== ... ==`` headers, up to the next header), and the
whole. ``--avx2`` runs it with PyTorch, oneDNN and MKL held to their AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``): an AVX2-only CPU's code paths at this machine's clock,
the nearest a faster machine gets to the slowest CPU the budget is for. ``--store`` writes
``benchmarks/results/speed/make_demo.json``, or ``make_demo_avx2.json`` for a run on AVX2 kernels (an AVX2-only
CPU, natively, or ``--avx2``; the file's ``isa`` says which), with the machine facts and, measured right after the
demo, the machine's ResNet-18 step time at 48 px (``resnet18_step_ms``): demo times of two machines compare
through it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ferkit.engine.devices import cpu_flags

ROOT = Path(__file__).resolve().parents[2]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
HEADER = re.compile(r"^== (.+) ==$")


def timed_run(cmd: list[str], cwd: Path, env: dict) -> tuple[int, list[tuple[float, str]]]:
    """Run ``cmd``, echoing its output; returns its exit code and every line with its time since the start."""
    t0 = time.monotonic()
    lines = []
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        for line in proc.stdout:
            lines.append((time.monotonic() - t0, line.rstrip("\n")))
            print(line, end="", flush=True)
        code = proc.wait()
    lines.append((time.monotonic() - t0, ""))
    return code, lines


def split(lines: list[tuple[float, str]]) -> dict:
    """Seconds per stage: ``install`` up to make's echo of the demo command, ``start`` (imports, rendering) up to
    the first ``== name ==`` header, then one entry per header up to the next one, the last up to the end (the
    table and the probes included)."""
    total = lines[-1][0]
    start = next((t for t, s in lines if s.endswith("ferkit demo --out runs/demo")), None)
    if start is None:
        return {"total_s": round(total, 1)}
    marks = [(t, m.group(1)) for t, s in lines if (m := HEADER.match(s))]
    stages = {"install": round(start, 1), "start": round((marks[0][0] if marks else total) - start, 1)}
    for i, (t, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else total
        stages[name] = round(end - t, 1)
    return {"stages_s": stages, "demo_s": round(total - start, 1), "total_s": round(total, 1)}


def yardstick(python: Path, env: dict) -> dict:
    """This machine's speed in the demo's unit of work, measured right after the demo with the clone's own
    install: ms per forward + backward of one ResNet-18 trunk at 48 px, batch 64, by threads and memory format
    (``profile_demo_dicefer.resnet_step``), so that demo times taken on different machines compare as ratios."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from profile_demo_dicefer import resnet_step; "
            "print(json.dumps(resnet_step(48)['ms_per_step']))")
    out = subprocess.run([str(python), "-c", code, str(ROOT / "benchmarks" / "diagnostics")], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--avx2", action="store_true", help="hold PyTorch, oneDNN and MKL to their AVX2 kernels")
    p.add_argument("--store", action="store_true",
                   help="write benchmarks/results/speed/make_demo.json (make_demo_avx2.json on AVX2 kernels)")
    args = p.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    env = {**os.environ, **(AVX2 if args.avx2 else {})}
    with tempfile.TemporaryDirectory(prefix="ferkit-fresh-") as tmp:
        clone = Path(tmp) / "ferkit"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        code, lines = timed_run(["make", "demo"], clone, env)
        if code != 0:
            print(f"make demo exited {code} in the fresh clone of {commit}", file=sys.stderr)
            return code
        step = yardstick(clone / ".venv" / "bin" / "python", env)
    flags = cpu_flags()
    native_avx2 = "avx512f" not in flags and "avx2" in flags
    isa = "avx2 (emulated)" if args.avx2 else "avx2 (native)" if native_avx2 else "native"
    results = {"commit": commit, "isa": isa, **split(lines),
               "budget_s": 600, "resnet18_step_ms": step}
    print(results)
    if args.store:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        for k, v in (AVX2 if args.avx2 else {}).items():   # machine facts record the overrides it ran under
            os.environ[k] = v
        from stored import store

        store("make_demo_avx2" if isa.startswith("avx2") else "make_demo", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
