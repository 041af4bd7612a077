"""``ferkit export`` of an external ONNX model: its own graph, wrapped to ferkit's exported interface.

The original graph is kept node for node; ferkit adds a leading input "image" (B, C, S, S) (transposed
to NHWC when the spec says so), then "probs" (a softmax over the first output when the spec says
logits) and "uncertainty" = 1 - max_c p_c, and stores the model's metadata in metadata_props, so the
result runs with ``ferkit predict model.onnx`` like any ``ferkit export`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def export_external_onnx(method, out: Path, check: bool = True, check_batch: int = 3, seed: int = 0) -> dict:
    """Write the wrapped graph to ``out``; with ``check``, compare it with ``method.predict`` on a batch."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from ferkit.export.metadata import attach_metadata

    net = method.onnx_net
    pre = method.preprocessing()
    model = onnx.load(str(net.path))
    g = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
    original = next(i for i in g.input if i.name == net.input_name)
    batch_dim = original.type.tensor_type.shape.dim[0]
    batch = batch_dim.dim_value if batch_dim.HasField("dim_value") else "batch"
    g.input.remove(original)
    g.input.insert(0, helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                    [batch, pre.channels, pre.size, pre.size]))
    nodes = [helper.make_node("Transpose", ["image"], [net.input_name], perm=[0, 2, 3, 1])
             if method.spec.layout == "nhwc" else helper.make_node("Identity", ["image"], [net.input_name])]
    tail = [helper.make_node("Flatten", [net.output_name], ["_ferkit_scores"], axis=1)]
    if method.spec.output == "logits":
        tail.append(helper.make_node("Softmax", ["_ferkit_scores"], ["probs"], axis=1))
    else:
        tail.append(helper.make_node("Identity", ["_ferkit_scores"], ["probs"]))
    g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "_ferkit_one"))
    if opset >= 18:
        g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "_ferkit_axes"))
        tail.append(helper.make_node("ReduceMax", ["probs", "_ferkit_axes"], ["_ferkit_pmax"], keepdims=0))
    else:
        tail.append(helper.make_node("ReduceMax", ["probs"], ["_ferkit_pmax"], axes=[1], keepdims=0))
    tail.append(helper.make_node("Sub", ["_ferkit_one", "_ferkit_pmax"], ["uncertainty"]))
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old + tail)
    del g.output[:]
    k = len(method.spec.classes)
    g.output.extend([helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, k]),
                     helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [batch])])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(model, str(tmp))
        names = ["probs", "uncertainty"]
        attach_metadata(tmp, getattr(method, "checkpoint_meta", {}) or {},
                         {"outputs": names, "uncertainty_kind": "max_prob", "opset": opset,
                          "input": {"name": "image", "shape": [batch, pre.channels, pre.size, pre.size]},
                          "wrapped": str(net.path.name)})
        tmp.replace(out)
    finally:
        if tmp.exists():
            tmp.unlink()
    info = {"path": str(out), "outputs": names, "uncertainty_kind": "max_prob", "opset": opset}
    if check:
        from ferkit.inference.engines import OnnxEngine

        n = batch if isinstance(batch, int) else check_batch
        x = torch.randn(n, pre.channels, pre.size, pre.size, generator=torch.Generator().manual_seed(seed + 1))
        ref = method.predict(x).probs.numpy()                                           # (n, K)
        got = OnnxEngine.load(out, device="cpu").forward(x.numpy())
        info["max_abs_diff"] = {"probs": float(np.abs(got["probs"] - ref).max()),
                                "uncertainty": float(np.abs(got["uncertainty"] - (1 - ref.max(axis=1))).max())}
    return info
