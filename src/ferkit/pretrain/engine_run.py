"""How both pretrainers run: as a method the engine trains (one loop, one seeding, exact resume).

``run_on_engine`` builds the run's ``ExperimentConfig`` from a pretraining config (epochs, lr, seed, device,
precision), lets the caller build its method, and trains it over the one ``split`` with no validation; the
run folder is ``out`` (kept, resumable, with checkpoints) or a temporary folder (no checkpoints).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path


def run_on_engine(name: str, split, cfg, batch_size: int, build: Callable, out: str | Path | None = None,
                  resume: str | None = None, progress: bool = True, console: bool = True):
    """Train the method ``build(exp, device)`` returns on ``split``; returns (method, engine RunResult)."""
    from ferkit.config import DataConfig, ExperimentConfig, TrainConfig
    from ferkit.engine.devices import resolve_device
    from ferkit.engine.trainer import train

    with tempfile.TemporaryDirectory(prefix="ferkit-pretrain-") as tmp:
        run_dir = Path(out) if out is not None else Path(tmp)
        exp = ExperimentConfig(
            method=name, data=DataConfig(dataset=split.name, cache=out is not None),
            train=TrainConfig(epochs=cfg.epochs, batch_size=batch_size, lr=cfg.lr, seed=cfg.seed, device=cfg.device,
                              precision=cfg.precision, out=str(run_dir), eval_every=0,
                              channels_last=bool(getattr(cfg, "channels_last", False))),
            model=cfg)
        method = build(exp, resolve_device(cfg.device))
        result = train(exp, resume=resume, splits={"train": split}, progress=progress, method=method,
                       console=console, checkpoints=out is not None)
    return method, result
