"""What machine a measurement came from, in the words the docs print beside it: CPU model and the flags that
decide its speed (AMX, AVX-512 BF16, AVX-512, AVX2), cores, the thread settings, the versions of the libraries that
do the work, the date and the commit. Benchmarks store it with every result (``benchmarks/results/speed/``), so a
figure never travels without its machine."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

#: the CPU flags that change ferkit's speed, in the order they matter
SPEED_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="ignore").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_class() -> str:
    """A short description of what the CPU runs natively: "AMX", "AVX-512 BF16, no AMX", "AVX-512", "AVX2 only"."""
    from ferkit.engine.devices import cpu_flags

    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16, no AMX"
    if "avx512f" in flags:
        return "AVX-512, no BF16"
    return "AVX2 only" if "avx2" in flags else platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("ferkit", "torch", "numpy", "onnxruntime", "facenet-pytorch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue                     # not installed here: the record names only what is
    return out


def _commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def machine_facts(threads: int | None = None) -> dict:
    """The facts stored beside a measurement (JSON-ready)."""
    import torch

    from ferkit.engine.devices import cpu_flags

    flags = cpu_flags()
    facts = {"cpu": cpu_model(), "cpu_class": cpu_class(),
             "cpu_flags": [f for f in SPEED_FLAGS if f in flags], "cores": os.cpu_count(),
             "torch_threads": threads if threads is not None else torch.get_num_threads(),
             "isa_overrides": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                           "MKL_ENABLE_INSTRUCTIONS") if k in os.environ},
             "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
             "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
             "versions": _versions(), "commit": _commit(),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    return facts


def write_measurement(path: str | Path, benchmark: str, command: str, results, threads: int | None = None) -> Path:
    """Store one benchmark's results with their machine: ``{"benchmark", "command", "machine", "results"}``,
    written atomically as indented JSON (the docs' performance page is generated from these files)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": benchmark, "command": command, "machine": machine_facts(threads), "results": results}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
