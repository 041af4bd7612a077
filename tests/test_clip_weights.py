"""CLIP weights in every format users have load to the same model; wrong files give one clear sentence."""

import json

import pytest
import torch
from torch import nn

from ferkit.errors import CheckpointError
from ferkit.models.clip import build_clip, load_clip, read_clip_weights, tokenize


def _outputs(model):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 64, 64, generator=g)
    tokens = tokenize(["a photo of a happy face", "sad"], model.context_length)
    with torch.no_grad():
        return model.encode_image(x), model.encode_text(tokens)


@pytest.fixture(scope="module")
def reference():
    model = build_clip("tiny", quick_gelu=True, seed=3).eval()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    return model, sd, _outputs(model)


def _same(model, expected) -> None:
    img, txt = _outputs(model.eval())
    assert torch.equal(img, expected[0])
    assert torch.equal(txt, expected[1])


def _to_hf(sd: dict) -> dict:
    """OpenAI layout -> Hugging Face CLIPModel key names (the inverse of the converter, written here)."""
    out = {}
    for k, v in sd.items():
        if ".resblocks." in k:
            tower, rest = k.split(".resblocks.")
            idx, leaf = rest.split(".", 1)
            base = ("vision_model" if tower.startswith("visual") else "text_model") + f".encoder.layers.{idx}."
            if leaf.startswith("attn.in_proj_"):
                kind = leaf.rsplit("_", 1)[1]
                for name, part in zip("qkv", v.chunk(3, dim=0), strict=True):
                    out[base + f"self_attn.{name}_proj.{kind}"] = part.clone()
                continue
            for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                         ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")):
                if leaf.startswith(a + "."):
                    out[base + b + leaf[len(a):]] = v
            continue
        simple = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                  "positional_embedding": "text_model.embeddings.position_embedding.weight",
                  "ln_final.weight": "text_model.final_layer_norm.weight",
                  "ln_final.bias": "text_model.final_layer_norm.bias",
                  "visual.class_embedding": "vision_model.embeddings.class_embedding",
                  "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                  "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
                  "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
                  "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
                  "visual.ln_post.weight": "vision_model.post_layernorm.weight",
                  "visual.ln_post.bias": "vision_model.post_layernorm.bias", "logit_scale": "logit_scale"}
        if k in simple:
            out[simple[k]] = v
        elif k == "visual.proj":
            out["visual_projection.weight"] = v.t().contiguous()
        elif k == "text_projection":
            out["text_projection.weight"] = v.t().contiguous()
    out["vision_model.embeddings.position_ids"] = torch.arange(sd["visual.positional_embedding"].shape[0])[None]
    return out


class _OpenAIHolder(nn.Module):
    """A module with OpenAI's CLIP key names plus the JIT archive's extra entries, for tracing."""

    def __init__(self, clip):
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, p in clip.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, value in (("input_resolution", 64), ("context_length", 77), ("vocab_size", 49408)):
            self.register_buffer(name, torch.tensor(value))

    def forward(self, x):
        return self.visual(x)


def test_plain_state_dict_and_safetensors(tmp_path, reference):
    from safetensors.torch import save_file

    _, sd, expected = reference
    torch.save(sd, tmp_path / "clip.pt")
    model, info = load_clip("tiny", tmp_path / "clip.pt")
    assert info.format == "state-dict" and info.quick_gelu
    _same(model, expected)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "clip.safetensors"))
    _same(load_clip("tiny", tmp_path / "clip.safetensors")[0], expected)


def test_openai_torchscript_archive(tmp_path, reference):
    model, _, expected = reference
    traced = torch.jit.trace(_OpenAIHolder(model), torch.randn(1, 3, 64, 64))
    traced.save(str(tmp_path / "ViT-B-16.pt"))
    loaded, info = load_clip("tiny", tmp_path / "ViT-B-16.pt")
    assert info.format == "openai-torchscript" and info.quick_gelu
    _same(loaded, expected)


def test_open_clip_training_checkpoint_with_module_prefix(tmp_path, reference):
    _, sd, expected = reference
    ckpt = {"epoch": 3, "name": "2024_01_01-model_ViT-B-16-quickgelu-lr_0.0005",
            "state_dict": {"module." + k: v for k, v in sd.items()},
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}
    torch.save(ckpt, tmp_path / "epoch_3.pt")
    model, info = load_clip("tiny", tmp_path / "epoch_3.pt")
    assert info.format == "open_clip-checkpoint" and info.quick_gelu
    _same(model, expected)


@pytest.mark.parametrize("weights_file", ["model.safetensors", "pytorch_model.bin"])
def test_hugging_face_folder(tmp_path, reference, weights_file):
    from safetensors.torch import save_file

    _, sd, expected = reference
    hf = _to_hf(sd)
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "clip", "projection_dim": 64, "vision_config": {"hidden_act": "quick_gelu"}}))
    if weights_file.endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in hf.items()}, str(tmp_path / weights_file))
    else:
        torch.save(hf, tmp_path / weights_file)
    model, info = load_clip("tiny", tmp_path)
    assert info.format == "huggingface" and info.quick_gelu
    _same(model, expected)


def test_hf_config_gelu_selects_gelu(tmp_path, reference):
    from safetensors.torch import save_file

    _, sd, _ = reference
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip", "vision_config": {"hidden_act": "gelu"}}))
    save_file({k: v.contiguous() for k, v in _to_hf(sd).items()}, str(tmp_path / "model.safetensors"))
    model, info = load_clip("tiny", tmp_path)
    assert info.quick_gelu is False
    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, nn.GELU)


def test_wrong_files_raise_one_sentence(tmp_path, reference):
    _, sd, _ = reference
    cases = {}
    cases["missing"] = tmp_path / "nope.pt"
    (tmp_path / "notes.txt").write_text("not weights")
    cases["text"] = tmp_path / "notes.txt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, tmp_path / "r18.pth")
    cases["resnet"] = tmp_path / "r18.pth"
    other = {k: (torch.zeros(128, *v.shape[1:]) if k == "visual.conv1.weight" else v) for k, v in sd.items()}
    torch.save(other, tmp_path / "other.pt")
    cases["shape"] = tmp_path / "other.pt"
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    cases["hf_no_weights"] = tmp_path / "hf"
    for what, path in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_clip("tiny", path)
        msg = str(e.value)
        assert str(path.name) in msg and msg.count(". ") == 0 and msg.endswith("."), (what, msg)
    with pytest.raises(CheckpointError, match="width 128"):
        load_clip("tiny", tmp_path / "other.pt")


def test_reader_drops_module_prefix_and_extra_keys(tmp_path, reference):
    _, sd, _ = reference
    torch.save({"model": {**sd, "input_resolution": torch.tensor(64)}}, tmp_path / "wrapped.pt")
    w = read_clip_weights(tmp_path / "wrapped.pt")
    assert "visual.conv1.weight" in w.state_dict
    build = build_clip("tiny")
    from ferkit.models.clip import load_into

    load_into(build, w, "tiny")
    assert torch.equal(build.state_dict()["visual.proj"], sd["visual.proj"])


def test_tokenizer_is_clip_bpe():
    assert tokenize(["a photo of a cat"])[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0]
