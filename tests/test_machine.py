"""The machine facts stored beside every speed figure, and the stored file's shape the docs page reads."""

from __future__ import annotations

import json

import pytest

from ferkit import machine


@pytest.mark.parametrize("flags,expected", [({"amx_bf16", "avx512_bf16", "avx2"}, "AMX"),
                                            ({"avx512_bf16", "avx512f", "avx2"}, "AVX-512 BF16, no AMX"),
                                            ({"avx512f", "avx2"}, "AVX-512, no BF16"), ({"avx2", "fma"}, "AVX2 only")])
def test_cpu_class_names_what_the_cpu_runs_natively(flags, expected, monkeypatch):
    from ferkit.engine import devices

    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    assert machine.cpu_class() == expected


def test_a_stored_measurement_carries_its_machine_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    path = machine.write_measurement(tmp_path / "speed" / "x.json", "x", "python bench.py --store",
                                     {"faces_per_s": 12.5}, threads=2)
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "x" and doc["command"] == "python bench.py --store"
    assert doc["results"] == {"faces_per_s": 12.5}
    m = doc["machine"]
    assert m["torch_threads"] == 2 and m["cores"] >= 1 and m["cpu"] and m["date"][:2] == "20"
    assert m["isa_overrides"] == {"ATEN_CPU_CAPABILITY": "avx2"}          # an emulated ISA is said, not hidden
    assert "torch" in m["versions"] and set(m["cpu_flags"]) <= set(machine.SPEED_FLAGS)
    assert list(tmp_path.joinpath("speed").iterdir()) == [path]            # no temporary file left behind
