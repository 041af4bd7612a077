"""The metadata an exported ONNX file carries, so ``ferkit predict model.onnx`` needs nothing else: the
checkpoint's description under "ferkit" and the export facts under "ferkit_export" (``metadata_props``)."""

from __future__ import annotations

import json
from pathlib import Path

from ferkit.inference.engines import ONNX_EXPORT_KEY, ONNX_META_KEY


def attach_metadata(path: Path, meta: dict, export_info: dict) -> None:
    """Replace the ONNX file's metadata_props with ``meta`` (the checkpoint's) and ``export_info``."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for key, value in ((ONNX_META_KEY, meta), (ONNX_EXPORT_KEY, export_info)):
        prop = m.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value, default=str)
    m.producer_name = "ferkit"
    onnx.save(m, str(path))
