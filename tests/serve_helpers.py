"""Shared by the serve tests (not a test module): one real FERModel per test session.

The checkpoint is ``ferkit_testmodels.tiny_checkpoint`` (a ResNet-18 baseline trained for two steps,
shared with the predict tests under the session's base temp folder); loading it and MTCNN once saves
the serve tests several seconds each.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ferkit_testmodels import tiny_checkpoint


@functools.lru_cache(maxsize=2)
def served_model(base: str):
    """The FERModel of the session's tiny checkpoint under ``base`` (loaded once, CPU)."""
    from ferkit.inference import load_model

    return load_model(tiny_checkpoint(Path(base) / "models"), device="cpu")
