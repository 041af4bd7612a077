"""Device and precision choice: ``--device auto|cpu|cuda|cuda:N`` and ``--precision auto|bf16|fp32``.

``auto`` picks CUDA when present, else CPU. Precision defaults to ``fp32`` everywhere (training, evaluation,
the UA-FER teacher, pretraining, prediction): bf16 autocast changes the numbers (UA-FER's released variant by
up to 6.8e-4 in p and 2.0e-3 in u), so it is opt-in. ``bf16`` forces autocast; ``auto`` (also opt-in) means
bf16 where the hardware runs it natively (CUDA devices that report bf16 support, CPUs with AMX (x86) or the
BF16 extension (Arm)) and fp32 elsewhere, because emulated bf16 is slower than fp32.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from pathlib import Path

import torch

from ferkit.config import PRECISIONS
from ferkit.errors import ConfigError

log = logging.getLogger(__name__)


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
            # ranks beyond the GPU count share them (gloo only: FERKIT_DIST_BACKEND, engine/distributed.py)
            index = local_rank % torch.cuda.device_count() if local_rank is not None else torch.cuda.current_device()
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
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags /proc/cpuinfo lists (empty where there is none)."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            if line.lower().startswith(("flags", "features")):
                flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


def cpu_bf16_is_faster() -> bool:
    """True where bf16 autocast speeds training up on this CPU: x86 with AMX tiles, Arm with BF16.

    AVX512-BF16 alone is not enough: on such a CPU (2 cores, no AMX) oneDNN's bf16 matmul took 85 ms where
    MKL's fp32 one took 49 ms (1576x768 @ 768x3072), a ResNet-18 training step at 112 px 0.69 s against
    0.49-0.55 s, and UA-FER's ViT-B/16 step 6.9 s against 4.4 s.
    """
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True
    return platform.machine().lower() in ("arm64", "aarch64") and ("bf16" in flags or os.uname().sysname == "Darwin")


def cpu_bf16_convs_are_faster() -> bool:
    """True where bf16 autocast speeds up a convolutional network's inference on this CPU: where it speeds up
    training (:func:`cpu_bf16_is_faster`), and on x86 with AVX512-BF16 but no AMX, where oneDNN's bf16
    convolutions are faster though its matrix products are not: DICE-FER's ResNet-18 at 112 px classified 361
    aligned faces/s in bf16 against 198 in fp32 (2-core AMD EPYC, 2 threads; benchmarks/results/speed/
    inference_dicefer_tiny224.json)."""
    return cpu_bf16_is_faster() or (platform.machine().lower() in ("x86_64", "amd64") and "avx512_bf16" in cpu_flags())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions at all (x86 AVX512-BF16 or AMX; Arm BF16)."""
    flags = cpu_flags()
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "bf16" in flags or os.uname().sysname == "Darwin"
    return bool({"avx512_bf16", "amx_bf16"} & flags)


@functools.lru_cache(maxsize=1)
def _warn_emulated_bf16() -> None:
    log.warning("--precision bf16 on a CPU without bf16 instructions (no AVX512-BF16 or AMX): its matrix "
                "products are emulated, measured 75x slower than fp32 on such a CPU (AVX2 only: 1576x768 @ "
                "768x3072 in 7.6 s against 0.1 s); --precision auto would train in fp32 here.")


def amp_dtype(device: torch.device, precision: str = "fp32") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = full fp32, the default and the reference
    numerics): ``bf16`` forces autocast; ``auto`` (opt-in) is bf16 on GPUs that support it and on CPUs where
    it is faster (:func:`cpu_bf16_is_faster`), else fp32."""
    precision = (precision or "fp32").strip().lower()
    if precision not in PRECISIONS:
        raise ConfigError(f"Precision '{precision}' is not known; use one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        supported = cpu_bf16_is_faster()
    else:
        supported = False
    if precision == "bf16":
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"bf16 autocast is not available on device '{device}'; use --precision fp32.")
        if device.type == "cpu" and not cpu_has_native_bf16():
            _warn_emulated_bf16()
        return torch.bfloat16
    return torch.bfloat16 if supported else None


def onnx_session_options():
    """onnxruntime ``SessionOptions`` for a session that shares this process's CPU with torch: torch's thread
    count for its operators, one thread between them, and no spin-waiting. onnxruntime's threads otherwise spin
    for a while after each run, and whatever torch ran next (the face detector of the next photos, a torch
    engine) ran at half speed beside them: face-api's tiny detector at 224 px over 8 photos right after an ONNX
    batch, 93 photos/s with spinning, 181 without (2-core AMD EPYC; ``detector_photos_per_s.together`` in
    benchmarks/results/speed/inference_dicefer_tiny224.json, before and after this setting)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()     # the same CPU budget as the torch engine
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def describe_precision(dtype: torch.dtype | None) -> str:
    return "bf16 autocast" if dtype == torch.bfloat16 else "fp32"
