"""`ferkit doctor` and the first use of face detection without facenet-pytorch: one sentence with the fix."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from packaging.requirements import Requirement
from PIL import Image

from ferkit.cli import main
from ferkit.data.faces import MTCNN_REMEDY
from ferkit.doctor import check_face_detector, check_requirement
from ferkit_testmodels import tiny_checkpoint


@pytest.fixture
def no_facenet(monkeypatch):
    """This environment as a plain `pip install ferkit` leaves it: facenet-pytorch not found."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "facenet_pytorch" else real(name, *a, **k))


def test_doctor_passes_here_and_lists_every_check(capsys):
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[-1].startswith("ferkit ") and "checks passed" in lines[-1]
    assert all(line.startswith(("ok   ", "opt  ")) for line in lines[:-1]), out   # opt: an optional part missing
    names = {line.split()[1] for line in lines[:-1]}
    assert {"torch", "numpy", "onnxruntime", "facenet-pytorch", "face-api"} <= names


def test_doctor_reports_a_missing_optional_part_with_its_command_and_still_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FERKIT_HOME", str(tmp_path))                # no face-api model files there
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    (opt,) = [line for line in out.splitlines() if line.startswith("opt ")]
    assert "face-api tiny detector" in opt and opt.endswith("-> ferkit install face-api")
    assert out.strip().splitlines()[-1].endswith("1 optional part not installed (the command after '->' adds it).")


def test_doctor_without_facenet_fails_with_the_install_command(no_facenet, capsys):
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    (bad,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert "facenet-pytorch" in bad and bad.endswith(f"-> {MTCNN_REMEDY}")
    lines = out.strip().splitlines()
    assert lines[-1].endswith(f"1 of {len(lines) - 1} checks failed; run the commands after '->'.")


def test_requirement_checks_know_the_answer():
    too_new = check_requirement(Requirement("numpy>=999"))
    assert not too_new.ok and "ferkit needs >=999" in too_new.found and too_new.remedy == "pip install 'numpy>=999'"
    absent = check_requirement(Requirement("ferkit-no-such-distribution>=1"))
    assert not absent.ok and absent.found.startswith("not installed")
    here = check_requirement(Requirement("numpy>=1.24"))
    assert here.ok and here.found.startswith(np.__version__)
    assert check_face_detector().ok


def test_predict_on_a_photo_without_facenet_says_how_to_install_it(no_facenet, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "models", channels=3)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(photo)
    code = main(["predict", str(ckpt), str(photo), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert MTCNN_REMEDY in err[0] and "--aligned" in err[0] and "Traceback" not in err[0]
    code = main(["predict", str(ckpt), str(photo), "--device", "cpu", "--aligned"])   # crops need no detector
    assert code == 0
