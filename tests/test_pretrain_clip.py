"""`ferkit pretrain clip`: contrastive CLIP pretraining on captioned faces writes an open_clip checkpoint that
UA-FER's --clip-path loads (model size detected from the file), with captions written from the metadata.
"""

import csv
import json
import re

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.errors import CheckpointError
from ferkit.models.clip import build_clip, infer_clip_size, load_clip, tokenize
from ferkit.pretrain.captions import CAPTION_STYLES, caption_for
from ferkit.pretrain.clip_towers import encode_image, encode_text

#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


ROW = {"intensity": 0.95, "hair_colour": "dark_brown", "hair_style": "curly", "glasses": "round", "yaw": 9.0,
       "brightness": 0.88, "light_strength": 0.2, "bg_texture": "stripes", "bg_r": 40.0, "bg_g": 60.0,
       "bg_b": 200.0}


def test_captions_describe_expression_and_the_attributes_the_row_holds():
    rng = np.random.default_rng(0)
    caps = [caption_for("happy", ROW, rng) for _ in range(300)]
    assert len(set(caps)) > 100                                   # many templates and attribute subsets
    assert all(any(w in c for w in ("happy", "smiling", "joyful", "cheerful", "happiness")) for c in caps)
    text = " ".join(caps)
    for phrase in ("dark brown hair", "curly", "round glasses", "dim light", "striped", "blue background",
                   "turned slightly to the"):
        assert phrase in text, phrase
    # a mirrored image turns its head the other way
    turned = {c.split("to the ")[1][:4] for c in caps if "turned slightly" in c}
    flipped = {c.split("to the ")[1][:4] for c in (caption_for("happy", ROW, rng, flipped=True) for _ in range(300))
               if "turned slightly" in c}
    assert len(turned) == 1 and len(flipped) == 1 and turned != flipped
    # a dataset with labels only still gets captions (no attributes invented)
    bare = [caption_for("anger", {}, rng) for _ in range(50)]
    assert not any("hair" in c or "glasses" in c or "background" in c for c in bare)
    assert all(any(w in c for w in ("anger", "angry", "furious", "annoyed", "mad")) for c in bare)


def test_expression_captions_name_the_expression_only():
    rng = np.random.default_rng(0)
    style = CAPTION_STYLES["expression"]
    caps = [style(c, ROW, rng, bool(i % 2)) for i, c in enumerate(["surprise", "disgust", "happy"] * 100)]
    assert set(caps) == {"a photo of a surprised face.", "surprise", "a photo of a disgusted face.", "disgust",
                         "a photo of a happy face.", "happy"}
    assert 0.35 < sum(c.startswith("a photo") for c in caps) / len(caps) < 0.65


def test_trimmed_towers_equal_open_clip_encoders():
    model = build_clip("tiny", seed=1)
    x = torch.randn(3, 3, 64, 64)
    tokens = tokenize(["a smiling face.", "a photo of a very furious person with round glasses.", "sad"])
    assert torch.allclose(encode_image(model, x), model.encode_image(x), atol=1e-5)
    assert torch.allclose(encode_text(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_model_size_is_detected_from_the_weights(tmp_path):
    sd = build_clip("tiny", seed=2).state_dict()
    assert infer_clip_size(sd) == "tiny"
    torch.save({"epoch": 1, "name": "run-quickgelu", "state_dict": {"module." + k: v for k, v in sd.items()}},
               tmp_path / "ckpt.pt")
    model, info = load_clip("auto", tmp_path / "ckpt.pt")
    assert info.model_size == "tiny" and info.format == "open_clip-checkpoint" and info.quick_gelu
    assert torch.equal(model.visual.conv1.weight, sd["visual.conv1.weight"])
    with pytest.raises(CheckpointError, match="they are the tiny CLIP"):
        load_clip("ViT-B-16", tmp_path / "ckpt.pt")
    del sd["visual.proj"]
    torch.save(sd, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="fit none of the known CLIP sizes"):
        load_clip("auto", tmp_path / "broken.pt")


def test_cli_writes_a_checkpoint_that_uafer_train_and_zero_shot_load(tmp_path, capsys):
    out = tmp_path / "clip_tiny_faces.pt"
    rc = main(["pretrain", "clip", "--out", str(out), "--synth-identities", "8", "--synth-images", "8",
               "--synth-seed", "1000", "--epochs", "2", "--batch-size", "16", "--precision", "bf16"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ClipLoss" in text and "--clip-path" in text
    rows = list(csv.DictReader((tmp_path / "clip_tiny_faces.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(np.isfinite(float(r["loss"])) for r in rows)
    # an accuracy over the n held-out images the log names is k / n for a whole k
    n = int(re.search(r"zero-shot on (\d+) held-out images", text).group(1))
    k = float(rows[-1]["zero_shot_name"]) * n
    assert n > 0 and k == pytest.approx(round(k), abs=1e-6)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["name"].endswith("quickgelu") and ckpt["epoch"] == 2
    meta = json.loads(ckpt["ferkit_pretrain"])
    assert meta["model_size"] == "tiny" and meta["config"]["precision"] == "bf16"
    # the words of its alt-text captions, so UA-FER can warn about prompts outside them
    assert {"a", "photo", "of", "happy", "smiling", "face"} <= set(meta["caption_vocabulary"])
    # UA-FER fine-tunes from it through --clip-path, the size taken from the file
    run = tmp_path / "run"
    assert main(["train", "--method", "uafer", "--dataset", "synthetic", "--clip-path", str(out), "--epochs", "1",
                 "--max-steps", "2", "--batch-size", "8", "--out", str(run), "--set", "data.synth_identities=6",
                 "--set", "data.synth_images_per_identity=7", "--set", "data.synth_size=64",
                 "--set", "train.eval_every=0"]) == 0
    config = (run / "config.yaml").read_text()
    assert "model_size: tiny" in config
    assert "words the stand-in CLIP" not in (run / "log.txt").read_text()      # "{}": the class names it saw
    assert str(out) in (run / "log.txt").read_text()
    # and zero-shot evaluation reads it as well
    assert main(["evaluate", "--method", "uafer", "--zero-shot", "--clip-path", str(out), "--dataset",
                 "synthetic", "--out", str(tmp_path / "zs"), "--no-leakage"]) == 0
    metrics = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    zs_rows = list(csv.DictReader((tmp_path / "zs" / "predictions.csv").open()))
    assert metrics["num_samples"] == len(zs_rows) > 0
    assert metrics["headline"]["accuracy"] == pytest.approx(
        np.mean([r["true_label"] == r["pred_label"] for r in zs_rows]))


@pytest.mark.parametrize("args, message", [
    (["--model", "huge"], "not a known CLIP size"),
    (["--batch-size", "1"], "batch size >= 2"),
    (["--synth-identities", "1"], "too few"),
])
def test_bad_input_is_one_sentence(tmp_path, capsys, args, message):
    rc = main(["pretrain", "clip", "--out", str(tmp_path / "c.pt"), "--epochs", "1", *args])
    assert rc != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c.pt").exists()


def test_out_must_be_a_weights_file(tmp_path, capsys):
    assert main(["pretrain", "clip", "--out", str(tmp_path / "c.txt")]) != 0
    assert ".pt" in capsys.readouterr().err


def test_uafer_warns_when_a_prompt_leaves_the_stand_in_clips_caption_vocabulary():
    from types import SimpleNamespace

    from ferkit.methods.uafer import outside_vocabulary_warning
    from ferkit.pretrain.captions import caption_vocabulary

    classes = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]
    vocab = caption_vocabulary("expression", classes * 3, [{}] * 21)
    assert set(vocab) == {"a", "photo", "of", "face", *classes, "surprised", "fearful", "disgusted", "angry"}
    clip = SimpleNamespace(caption_vocabulary=tuple(vocab), source="clip_tiny.pt")
    paper = [f"a photo of a {c} facial expression." for c in classes]
    text = outside_vocabulary_warning(paper, clip)
    assert "(expression, facial)" in text and "clip_tiny.pt" in text and "prompt_template='{}'" in text
    assert outside_vocabulary_warning(classes, clip) is None                         # the bare class words
    assert outside_vocabulary_warning(paper, SimpleNamespace(caption_vocabulary=None, source="ViT-B-16.pt")) is None
    assert outside_vocabulary_warning(paper, None) is None                           # random init
