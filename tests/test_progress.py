"""Progress: a tqdm bar on a terminal, one line per bar (per epoch) off a terminal, nothing when disabled.

Before, every bar was tqdm whatever the stream, so a CI log or `2> log.txt` received a carriage-return
update per batch (hundreds per epoch).
"""

from __future__ import annotations

import io

import pytest

from ferkit.cli import main
from ferkit.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def progress_on(monkeypatch):
    monkeypatch.delenv("FERKIT_NO_PROGRESS", raising=False)     # conftest turns progress off for the suite


def test_off_a_terminal_one_line_per_bar(progress_on):
    log = io.StringIO()
    bar = progress_bar(range(300), 300, "stage1 2/5", unit="batch", stream=log)
    assert isinstance(bar, LineProgress)
    for i in bar:
        bar.set_postfix({"loss": f"{1 / (i + 1):.3g}"})
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("stage1 2/5: 300/300 batch in ") and text.rstrip().endswith("loss=0.00333")
    manual = io.StringIO()
    with progress_bar(total=10, desc="SynthFER", unit="img", stream=manual) as bar:
        bar.update(4)
        bar.update(6)
    assert manual.getvalue().startswith("SynthFER: 10/10 img in ") and manual.getvalue().count("\n") == 1


def test_a_loop_stopped_early_still_writes_its_line(progress_on):
    log = io.StringIO()
    for i in progress_bar(range(100), 100, "epoch 1/1", stream=log):
        if i == 6:
            break
    assert log.getvalue().startswith("epoch 1/1: 6/100 it in ")


def test_on_a_terminal_the_tqdm_bar_and_disabled_is_silent(progress_on, monkeypatch):
    from tqdm import tqdm

    tty = Terminal()
    bar = progress_bar(range(50), 50, "predict test", stream=tty)
    assert isinstance(bar, tqdm)
    assert sum(1 for _ in bar) == 50 and "\r" in tty.getvalue()
    quiet = io.StringIO()
    assert list(progress_bar(range(3), 3, "x", enabled=False, stream=quiet)) == [0, 1, 2]
    monkeypatch.setenv("FERKIT_NO_PROGRESS", "1")
    assert list(progress_bar(range(3), 3, "x", stream=quiet)) == [0, 1, 2] and quiet.getvalue() == ""


def test_train_off_a_terminal_logs_one_progress_line_per_epoch(progress_on, tmp_path, capsys):
    code = main(["train", "--method", "baseline", "--dataset", "synthetic", "--epochs", "2", "--limit-batches", "2",
                 "--out", str(tmp_path / "run"), "--set", "data.synth_identities=6", "--set",
                 "data.synth_images_per_identity=5", "--set", "data.cache=false", "--set", "model.image_size=32",
                 "--set", "data.synth_size=32", "--batch-size", "4", "--device", "cpu", "--precision", "fp32",
                 "--set", "train.eval_every=0"])
    err = capsys.readouterr().err
    assert code == 0 and "\r" not in err
    epochs = [line for line in err.splitlines() if line.startswith("train ")]
    assert [line.split(":")[0] for line in epochs] == ["train 1/2", "train 2/2"]
    assert all(": 2/2 batch in " in line for line in epochs)
