"""User-facing errors.

Anything a person can cause (a bad path, a malformed list, a non-image, a checkpoint from elsewhere)
raises :class:`FerkitError` with one sentence that names the thing and says what to do. The CLI prints
that sentence and exits non-zero; no traceback unless ``--debug``.
"""

from __future__ import annotations


class FerkitError(Exception):
    """An error whose message is one clear sentence for a person."""

    exit_code: int = 2


class DataError(FerkitError):
    """A dataset layout, list file or image is missing or malformed."""


class ImageReadError(DataError):
    """An image file cannot be decoded (names the path and the reason)."""


class CheckpointError(FerkitError):
    """A checkpoint is not ferkit's, is truncated, or does not match the model."""


class ConfigError(FerkitError):
    """A configuration key or value is unknown or invalid."""


class TrainingError(FerkitError):
    """Training cannot go on (e.g. too many non-finite steps in a row)."""
