"""`ferkit predict` / `ferkit align` on folders holding nothing to process: the sentence names where it looked
and the suffixes it looked for."""

from __future__ import annotations

from ferkit.cli import main
from ferkit.data.io import IMAGE_SUFFIXES
from ferkit.inference.inputs import VIDEO_SUFFIXES
from ferkit_testmodels import tiny_checkpoint


def test_predict_empty_folders_names_them_and_the_suffixes(tmp_path_factory, tmp_path, capsys):
    a, b = tmp_path / "empty", tmp_path / "notes"
    a.mkdir()
    (b / ".hidden").mkdir(parents=True)
    (b / ".hidden" / "face.jpg").write_bytes(b"")          # hidden: not looked at
    (b / "readme.txt").write_text("no images here")
    ckpt = tiny_checkpoint(tmp_path_factory.getbasetemp() / "models")      # shared with the predict tests
    code = main(["predict", str(ckpt), str(a), str(b), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "readme.txt" in err[0]                            # the passed-over file, as before
    assert err[-1] == (f"ferkit: error: No images or videos found in {a}, {b}: searched recursively for files "
                       f"ending in {' '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)} (hidden files and folders "
                       "skipped); pass files or folders holding them.")


def test_align_empty_folder_names_it_and_the_image_suffixes(tmp_path, capsys):
    code = main(["align", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"No images found in {tmp_path}: searched recursively for files ending in .jpg .jpeg" in err
    assert ".mp4" not in err and not (tmp_path / "out").exists()
