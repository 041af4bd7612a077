"""Device and precision choice: ``--device auto|cpu|cuda|cuda:N`` and ``--precision auto|bf16|fp32``.

``auto`` picks CUDA when present, else CPU. Mixed precision is bf16 autocast where the hardware runs bf16
natively: CUDA devices that report bf16 support, and CPUs with AVX512-BF16 or AMX (x86) or the BF16
extension (Arm). Elsewhere ``auto`` means fp32, because emulated bf16 is slower than fp32.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from ferkit.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(spec: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for ``spec``; under torchrun ``local_rank`` picks the GPU of this process."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"Device '{spec}' was asked for but no CUDA GPU is available; use --device cpu.")
        if spec == "cuda":
            index = local_rank if local_rank is not None else torch.cuda.current_device()
            return torch.device("cuda", index)
        try:
            index = int(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise ConfigError(f"Device '{spec}' is not understood; use auto, cpu, cuda or cuda:N.") from None
        if index >= torch.cuda.device_count():
            raise ConfigError(f"Device '{spec}' does not exist; this machine has {torch.cuda.device_count()} GPU(s).")
        return torch.device("cuda", index)
    raise ConfigError(f"Device '{spec}' is not understood; use auto, cpu, cuda or cuda:N.")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bf16 matrix maths natively (AVX512-BF16/AMX on x86, BF16 on Arm)."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.lower().startswith(("flags", "features")):
                flags.update(line.split(":", 1)[1].split())
    if flags & {"avx512_bf16", "amx_bf16"}:
        return True
    if platform.machine().lower() in ("arm64", "aarch64") and ("bf16" in flags or os.uname().sysname == "Darwin"):
        return True
    return False


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = full fp32)."""
    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"Precision '{precision}' is not known; use one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        supported = cpu_has_native_bf16()
    else:
        supported = False
    if precision == "bf16":
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"bf16 autocast is not available on device '{device}'; use --precision fp32.")
        return torch.bfloat16
    return torch.bfloat16 if supported else None


def describe_precision(dtype: torch.dtype | None) -> str:
    return "bf16 autocast" if dtype == torch.bfloat16 else "fp32"
