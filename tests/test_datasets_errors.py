"""Malformed layouts fail with one sentence naming the file and line; missing things are named."""

from __future__ import annotations

import pytest

from ferkit.data.datasets import load_dataset
from ferkit.errors import DataError
from fixtures_layouts import (
    make_affectnet,
    make_ckplus,
    make_fer2013,
    make_ferplus,
    make_folder,
    make_lists_rafdb,
    make_rafdb,
)


def _one_sentence(msg: str) -> None:
    assert msg.endswith(".") and "\n" not in msg


def test_rafdb_malformed_line_names_file_and_line(tmp_path):
    make_rafdb(tmp_path)
    lst = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lines = lst.read_text().splitlines()
    lines[6] = "train_00007.jpg"
    lst.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset("rafdb", tmp_path)
    assert str(e.value) == ("EmoLabel/list_patition_label.txt line 7: expected 'NAME LABEL', "
                            "got 'train_00007.jpg'.")


@pytest.mark.parametrize("line,needle", [("train_00009.jpg 8", "a label 1..7"),
                                         ("val_00001.jpg 3", "train_ or test_")])
def test_rafdb_bad_label_or_prefix(tmp_path, line, needle):
    make_rafdb(tmp_path)
    lst = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lst.write_text(lst.read_text() + line + "\n")
    with pytest.raises(DataError, match="line 9") as e:
        load_dataset("rafdb", tmp_path)
    assert needle in str(e.value)
    _one_sentence(str(e.value))


def test_missing_root_list_and_image_are_named(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        load_dataset("rafdb", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value) and "ferkit datasets rafdb" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("rafdb", tmp_path / "empty")
    assert "EmoLabel/list_patition_label.txt" in str(e.value) and "'rafdb' expects" in str(e.value)
    make_rafdb(tmp_path / "r")
    (tmp_path / "r" / "Image" / "aligned" / "test_0002_aligned.jpg").unlink()
    with pytest.raises(DataError, match="test_0002_aligned.jpg") as e:
        load_dataset("rafdb", tmp_path / "r")
    _one_sentence(str(e.value))


def test_lists_must_agree_on_idx(tmp_path):
    make_lists_rafdb(tmp_path)
    f = tmp_path / "EmoLabel" / "image_class_labels.txt"
    f.write_text("".join(line + "\n" for line in f.read_text().splitlines()[:-1]))
    with pytest.raises(DataError) as e:
        load_dataset("lists", tmp_path)
    assert str(e.value) == ("EmoLabel/images.txt line 5: idx 5 has no entry in EmoLabel/image_class_labels.txt; "
                            "the three lists must agree.")
    s = tmp_path / "EmoLabel" / "train_test_split.txt"
    make_lists_rafdb(tmp_path)
    s.write_text(s.read_text().replace("2 1", "2 7"))
    with pytest.raises(DataError, match=r"EmoLabel/train_test_split.txt line 2: expected 'IDX 1'"):
        load_dataset("lists", tmp_path)


def test_affectnet_bad_header_and_row(tmp_path):
    make_affectnet(tmp_path)
    f = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    good = f.read_text().splitlines()
    f.write_text("\n".join([good[0], good[1], "1/x.jpg,1,2,3"]) + "\n")
    with pytest.raises(DataError, match=r"training.csv line 3: expected 9 comma-separated fields"):
        load_dataset("affectnet", tmp_path)
    f.write_text("path,label\n" + "\n".join(good[1:]) + "\n")
    with pytest.raises(DataError, match=r"training.csv line 1: expected the header subDirectory_filePath"):
        load_dataset("affectnet", tmp_path)


def test_ckplus_malformed_emotion_file(tmp_path):
    make_ckplus(tmp_path, subjects=2)
    bad = next((tmp_path / "Emotion" / "S002" / "001").glob("*_emotion.txt"))
    bad.write_text("   three\n")
    with pytest.raises(DataError) as e:
        load_dataset("ckplus", tmp_path, split="all")
    assert str(e.value).startswith("Emotion/S002/001/S002_001_00000005_emotion.txt line 1: expected a number")
    bad.write_text("   9.0000000e+00\n")
    with pytest.raises(DataError, match="line 1: CK\\+ emotion codes are 0..7"):
        load_dataset("ckplus", tmp_path, split="all")


def test_ckplus_has_no_fixed_split(tmp_path):
    make_ckplus(tmp_path, subjects=3)
    with pytest.raises(DataError, match="no fixed train split; pass a fold"):
        load_dataset("ckplus", tmp_path, split="train")


def test_fer2013_short_pixels(tmp_path):
    make_fer2013(tmp_path)
    f = tmp_path / "fer2013.csv"
    lines = f.read_text().splitlines()
    lines[3] = "3,1 2 3,Training"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset("fer2013", tmp_path)
    assert str(e.value) == "fer2013.csv line 4: expected 2304 values 0..255 in 'pixels', got '3 values'."


def test_ferplus_row_count_mismatch(tmp_path):
    make_ferplus(tmp_path)
    f = tmp_path / "fer2013new.csv"
    f.write_text("\n".join(f.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="fer2013new.csv has 5 rows but fer2013.csv has 6"):
        load_dataset("ferplus", tmp_path)


def test_folder_unknown_class_and_unknown_option(tmp_path):
    make_folder(tmp_path, splits=False)
    (tmp_path / "bored").mkdir()
    with pytest.raises(DataError, match="Folder bored is not an expression name"):
        load_dataset("folder", tmp_path, split="all")
    with pytest.raises(DataError, match="Unknown option 'colour' for dataset 'rafdb'; it takes: image_dir"):
        load_dataset("rafdb", tmp_path, colour="red")
    with pytest.raises(DataError, match="Unknown dataset 'raf'"):
        load_dataset("raf", tmp_path)
