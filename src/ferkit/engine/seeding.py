"""Seeds, RNG state capture/restore, and the per-sample RNG that makes augmentation reproducible.

Resuming a run must continue exactly where it stopped, so the RNG state of torch, numpy and Python is
saved in every checkpoint (as plain tensors and ints, loadable with ``torch.load(weights_only=True)``).
Augmentation does not draw from the process-wide generators: :func:`sample_rng` seeds them from
(run seed, phase, epoch, sample index) for the duration of one item and then restores them, so the
augmented image of a sample is the same whatever the number of workers, processes, or resumes.
Deterministic kernels (``train.deterministic``, ``--deterministic``) are :func:`deterministic_run`.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels, or give them back (``enabled=False``).

    Sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless already set; it must be in place before cuBLAS starts),
    ``torch.use_deterministic_algorithms(enabled, warn_only=True)`` (an op without a deterministic kernel warns
    and runs anyway; :func:`deterministic_run` collects which), ``cudnn.deterministic`` and no cudnn benchmark.
    Runs use it through the config key ``train.deterministic`` (``ferkit train|compare|demo --deterministic``).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


#: the start of torch's warning for an op without a deterministic kernel under warn_only=True
_NONDETERMINISTIC = " does not have a deterministic implementation"


@dataclass
class DeterministicRun:
    """What :func:`deterministic_run` found: whether it was on, and the ops that warned (names, sorted on read)."""

    enabled: bool
    ops: set[str] = field(default_factory=set)

    def summary(self) -> str:
        """One run-log line."""
        if not self.enabled:
            return "deterministic kernels: off (train.deterministic / --deterministic turns them on)"
        if not self.ops:
            return "deterministic kernels: on; no op warned that it has no deterministic implementation"
        return (f"deterministic kernels: on; {len(self.ops)} op(s) have no deterministic implementation and ran "
                f"as usual, so results may still vary: {', '.join(sorted(self.ops))}")


@contextlib.contextmanager
def deterministic_run(enabled: bool) -> Iterator[DeterministicRun]:
    """With ``enabled``, :func:`set_deterministic` for the block, collecting the names of the ops that warned
    they have no deterministic implementation (their warnings are caught, not printed; any other warning
    passes as usual), and the previous settings restored afterwards. Without, nothing changes."""
    found = DeterministicRun(enabled)
    if not enabled:
        yield found
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=f".*{_NONDETERMINISTIC}")
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            text = str(message)
            if _NONDETERMINISTIC in text:
                found.ops.add(text.split(_NONDETERMINISTIC, 1)[0].strip())
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        set_deterministic(True)
        try:
            yield found
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (numpy SeedSequence, so nearby inputs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


@contextlib.contextmanager
def sample_rng(seed: int) -> Iterator[None]:
    """Seed torch (CPU), numpy and Python RNGs with ``seed`` inside the block; restore them afterwards."""
    t_state = torch.random.default_generator.get_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    torch.random.default_generator.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.random.default_generator.set_state(t_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


def capture_rng() -> dict:
    """The RNG state of this process as tensors/ints/tuples (safe for ``weights_only`` loading)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.random.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.random.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _to_lists(x):
    if isinstance(x, tuple):
        return [_to_lists(v) for v in x]
    return x


def _to_tuples(x):
    if isinstance(x, list):
        return tuple(_to_tuples(v) for v in x)
    return x
