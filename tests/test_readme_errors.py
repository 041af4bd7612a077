"""The README's error examples, run through the CLI: one sentence on stderr, a non-zero exit, no traceback.

README ("The command line"): "Errors a person can cause print one sentence and exit non-zero ... Examples: a
missing path, a malformed list (named with file and line), a non-image, a checkpoint from elsewhere or a
truncated one (never unpickled)." Each example is run in-process through ``ferkit.cli.main`` (an uncaught
exception would fail the test), and the first also through the installed entry point in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ferkit.cli import main
from ferkit_testmodels import tiny_checkpoint
from fixtures_layouts import make_rafdb

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.getbasetemp() / "models", channels=3)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(path)
    return path


def one_sentence(code: int, err: str, *needles: str, summary: str | None = None) -> str:
    """The one error line of ``err`` (``summary``: predict's closing count line, which may follow it)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if summary is not None:
        assert lines and lines[-1] == summary, err
        lines = lines[:-1]
    assert code != 0, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("ferkit") and lines[0].rstrip().endswith("."), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_a_missing_path(tmp_path, capsys):
    missing = tmp_path / "no_such_rafdb"
    one_sentence(main(["datasets", "rafdb", "--data-path", str(missing)]), capsys.readouterr().err, str(missing))


def test_a_missing_path_through_the_real_entry_point(tmp_path):
    missing = tmp_path / "no_such_model.safetensors"
    proc = subprocess.run([sys.executable, "-m", "ferkit", "evaluate", str(missing), "--dataset", "synthetic"],
                          capture_output=True, text=True, timeout=300)
    one_sentence(proc.returncode, proc.stderr, str(missing))
    assert proc.stdout == ""


def test_a_malformed_list_named_with_file_and_line(tmp_path, capsys):
    make_rafdb(tmp_path)
    lst = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lines = lst.read_text().splitlines()
    lines[6] = "train_00007.jpg"
    lst.write_text("\n".join(lines) + "\n")
    code = main(["datasets", "rafdb", "--data-path", str(tmp_path)])
    one_sentence(code, capsys.readouterr().err, "list_patition_label.txt line 7", "train_00007.jpg")


def test_a_non_image(ckpt, tmp_path, capsys):
    text = tmp_path / "notes.jpg"
    text.write_text("a text file with an image suffix\n")
    code = main(["predict", str(ckpt), str(text), "--aligned", "--device", "cpu"])
    # predict goes on past a bad input (one line each) and closes with its counts
    one_sentence(code, capsys.readouterr().err, str(text), "not an image",
                 summary="0 face(s) in 1 input(s); 0 without a face, 1 failed, 0 abstained")


def test_a_checkpoint_from_elsewhere(tmp_path, photo, capsys):
    other = tmp_path / "model.safetensors"
    save_file({"conv1.weight": torch.zeros(4, 3, 3, 3)}, str(other))          # valid safetensors, not ferkit's
    code = main(["predict", str(other), str(photo), "--aligned", "--device", "cpu"])
    one_sentence(code, capsys.readouterr().err, str(other))


def test_a_checkpoint_from_elsewhere_as_a_pickle_is_never_unpickled(tmp_path, photo, capsys):
    marker = tmp_path / "unpickled.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    other = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": Payload()}, other)
    code = main(["predict", str(other), str(photo), "--aligned", "--device", "cpu"])
    one_sentence(code, capsys.readouterr().err, str(other))
    assert not marker.exists()


def test_a_truncated_checkpoint(ckpt, tmp_path, photo, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 3])
    code = main(["predict", str(cut), str(photo), "--aligned", "--device", "cpu"])
    one_sentence(code, capsys.readouterr().err, str(cut), "truncated")
