"""Checkpoints: round trip of weights and metadata, resume sidecar, and clear refusal of foreign files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from torch import nn

from engine_helpers import TinyMethod, tiny_config, toy_splits
from ferkit.data.labels import RAFDB
from ferkit.data.preprocessing import Preprocessing
from ferkit.engine.checkpoint import (
    load_method,
    read_checkpoint,
    read_train_state,
    resolve_checkpoint_path,
    save_checkpoint,
)
from ferkit.engine.evaluate import collect_predictions
from ferkit.engine.trainer import train
from ferkit.errors import CheckpointError


def _nets():
    torch.manual_seed(1)
    return {"enc": nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), "head": nn.Linear(4, 7)}


def test_round_trip_weights_meta_label_space_preprocessing(tmp_path):
    nets = _nets()
    nets["enc"][1].running_mean.fill_(0.25)                          # buffers are saved too
    pre = Preprocessing(size=64, channels=3, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0), align="none")
    meta = {"method": "x", "label_space": RAFDB.to_dict(), "preprocessing": pre.to_dict(),
            "describe": {"backbone": "random init"}, "config": {"a": [1, 2]}}
    state = {"optimizers": {"p": {"step": torch.tensor(3.0)}}, "position": {"epoch": 2}}
    path = save_checkpoint(tmp_path / "c.safetensors", nets, meta, state)
    ck = read_checkpoint(path)
    assert set(ck.tensors) == {f"{n}.{k}" for n, m in nets.items() for k in m.state_dict()}
    for n, m in nets.items():
        for k, v in m.state_dict().items():
            assert torch.equal(ck.tensors[f"{n}.{k}"], v)
    assert ck.meta["format"] == "ferkit-checkpoint" and ck.meta["ferkit_version"]
    assert ck.meta["label_space"] == {"name": "rafdb", "classes": list(RAFDB.classes)}
    assert Preprocessing.from_dict(ck.meta["preprocessing"]) == pre
    assert ck.meta["describe"] == {"backbone": "random init"}
    st = read_train_state(path, expect_token=ck.meta["save_token"])
    assert st["position"] == {"epoch": 2} and torch.equal(st["optimizers"]["p"]["step"], torch.tensor(3.0))
    assert not list(tmp_path.glob(".*tmp*"))                       # atomic writes leave no temp files


def test_load_method_predicts_as_trained(tmp_path):
    splits = toy_splits()
    result = train(tiny_config(tmp_path / "run", epochs=1), splits=splits, progress=False)
    live = collect_predictions(TinyMethod.last, splits["test"], batch_size=5)   # the model as training left it
    method = load_method(result.run_dir, device="cpu")             # a run folder resolves to last.safetensors
    assert method.checkpoint_meta["method"] == "tiny_test"
    out = collect_predictions(method, splits["test"], batch_size=5)
    assert out["probs"].shape == (21, 7) and np.array_equal(out["probs"], live["probs"])
    acc = float((out["probs"].argmax(1) == out["labels"]).mean())
    assert acc == pytest.approx(result.metrics["test_last"]["accuracy"])


def test_refuses_foreign_truncated_and_missing_files(tmp_path):
    path = save_checkpoint(tmp_path / "good.safetensors", _nets(), {"method": "x"})
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) - 100])
    (tmp_path / "noise.safetensors").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "tiny.pt").write_bytes(b"abc")
    (tmp_path / "json.safetensors").write_bytes(struct.pack("<Q", 2) + b"[]")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "plain.safetensors"))
    torch.save({"w": torch.zeros(3)}, tmp_path / "model.pth")
    cases = {"trunc.safetensors": "truncated", "noise.safetensors": "not a ferkit checkpoint",
             "tiny.pt": "not a ferkit checkpoint", "json.safetensors": "not a ferkit checkpoint",
             "plain.safetensors": "not a ferkit checkpoint", "model.pth": "not a ferkit checkpoint",
             "missing.safetensors": "does not exist"}
    for name, words in cases.items():
        with pytest.raises(CheckpointError, match=words) as e:
            read_checkpoint(tmp_path / name)
        assert str(e.value).count(". ") == 0 and str(e.value).endswith(".")    # one sentence
    with pytest.raises(CheckpointError, match="holds no checkpoints"):
        resolve_checkpoint_path(tmp_path)
    with pytest.raises(CheckpointError, match="no resume state"):
        read_train_state(path)


def _with_header(path, header: dict, data: bytes = b"\0" * 12):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("header, words", [
    ({"w": {"dtype": "F32", "shape": [3]}}, "tensor 'w' has no valid data_offsets"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": "0-12"}}, "tensor 'w' has no valid data_offsets"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [12, 0]}}, "tensor 'w' has no valid data_offsets"),
    ({"w": {"shape": [3], "data_offsets": [0, 12]}}, "tensor 'w' has no dtype"),
    ({"w": {"dtype": "F32", "shape": "3", "data_offsets": [0, 12]}}, "tensor 'w' has no valid shape"),
    ({"w": [0, 12]}, "tensor 'w' is described by list, not a mapping"),
    ({"__metadata__": ["ferkit"]}, "__metadata__ is not a mapping of strings"),
    ({"__metadata__": {"ferkit": {"format": "ferkit-checkpoint"}}}, "__metadata__ is not a mapping of strings"),
])
def test_malformed_safetensors_header_is_one_sentence_naming_the_file(tmp_path, header, words):
    path = _with_header(tmp_path / "bad.safetensors", header)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert msg.startswith(f"Checkpoint {path} has a malformed safetensors header ({words})")
    assert msg.count(". ") == 0 and msg.endswith(".")


def test_ferkit_metadata_with_a_malformed_version_is_refused(tmp_path):
    meta = json.dumps({"format": "ferkit-checkpoint", "format_version": "one"})
    path = _with_header(tmp_path / "v.safetensors", {"__metadata__": {"ferkit": meta},
                                                     "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})
    with pytest.raises(CheckpointError, match=f"^Checkpoint {path} has a malformed format_version 'one'"):
        read_checkpoint(path)


def test_mismatched_sidecar_and_model_are_refused(tmp_path):
    a = save_checkpoint(tmp_path / "a.safetensors", _nets(), {"method": "x"}, {"position": {}})
    first = read_checkpoint(a).meta["save_token"]
    save_checkpoint(tmp_path / "a.safetensors", _nets(), {"method": "x"}, {"position": {}})
    with pytest.raises(CheckpointError, match="does not belong"):
        read_train_state(a, expect_token=first)
    from ferkit.engine.checkpoint import load_network_weights

    with pytest.raises(CheckpointError, match="does not match the model"):
        load_network_weights({"enc": nn.Linear(2, 2)}, read_checkpoint(a))
    meta = json.loads(json.dumps(read_checkpoint(a).meta))
    assert meta["method"] == "x"
