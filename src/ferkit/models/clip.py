"""CLIP (open_clip) built locally, and loading of the CLIP weight files users actually have.

No weights are downloaded: ``load_clip(size, path)`` reads a local file in any of these formats and returns
an open_clip ``CLIP`` in fp32 with its weights:

* OpenAI's TorchScript archive ``ViT-B-16.pt`` (read with ``torch.jit.load``, never unpickled);
* a plain OpenAI-layout state dict (``.pt``/``.pth``/``.bin``/``.safetensors``);
* an open_clip checkpoint, also a training checkpoint ``{"state_dict": {"module.visual...": ...}}``;
* a Hugging Face ``openai/clip-vit-base-patch16`` folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), whose key names are converted to the OpenAI/open_clip layout.

OpenAI's weights were trained with QuickGELU, so QuickGELU is used unless the file says otherwise (a Hugging
Face config whose ``hidden_act`` is not quick_gelu, or an open_clip training run not named ``*quickgelu*``)
or the caller forces it. Pickle files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ferkit.errors import CheckpointError

log = logging.getLogger(__name__)

#: open_clip model configurations: the real ViT-B/16 and a tiny one for tests and demos.
CLIP_SIZES: dict[str, dict] = {
    "ViT-B-16": {"embed_dim": 512,
                 "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    "tiny": {"embed_dim": 64,
             "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "patch_size": 8},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}},
}

#: model size meaning "the size the weights file holds" (ViT-B-16 when there is no file)
AUTO_SIZE = "auto"

#: keys some OpenAI/JIT state dicts carry that are not parameters
_NON_PARAM_KEYS = ("input_resolution", "context_length", "vocab_size", "logit_bias")
_FORMATS_HINT = ("pass OpenAI's ViT-B-16.pt, an OpenAI/open_clip state dict or checkpoint, or a Hugging Face "
                 "openai/clip-vit-base-patch16 folder")


@dataclass
class ClipWeights:
    """A CLIP state dict in OpenAI/open_clip key layout, with where it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str              # the path read
    format: str              # openai-torchscript | state-dict | open_clip-checkpoint | huggingface
    quick_gelu: bool         # the activation the weights were trained with (best knowledge)
    model_size: str | None = None   # the CLIP_SIZES key they were loaded into (set by load_clip)
    #: the words of the captions a `ferkit pretrain clip` stand-in was trained on (None for any other CLIP)
    caption_vocabulary: tuple[str, ...] | None = None


def build_clip(model_size: str = "ViT-B-16", quick_gelu: bool = True, seed: int | None = None,
               empty: bool = False):
    """An open_clip ``CLIP`` of ``model_size`` with random weights (seeded without touching the global RNG);
    ``empty`` builds it on the meta device (no initialisation; fill it with ``load_into``)."""
    from open_clip.model import CLIP

    if model_size not in CLIP_SIZES:
        from ferkit.errors import ConfigError

        raise ConfigError(f"CLIP model size '{model_size}' is not known; use one of {', '.join(CLIP_SIZES)}.")
    spec = CLIP_SIZES[model_size]
    args = (spec["embed_dim"], dict(spec["vision_cfg"]), dict(spec["text_cfg"]))
    if empty:
        with torch.device("meta"):
            return CLIP(*args, quick_gelu=quick_gelu)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = CLIP(*args, quick_gelu=quick_gelu)
    return model.float()


def load_clip(model_size: str, path: str | Path, quick_gelu: bool | None = None):
    """(open_clip CLIP with the weights of ``path``, ClipWeights info). ``model_size`` "auto" takes the
    size in CLIP_SIZES whose tensors the file holds (``ClipWeights.model_size`` says which). Raises
    CheckpointError on a bad file or one that fits no known size."""
    weights = read_clip_weights(path)
    if model_size == AUTO_SIZE:
        found = infer_clip_size(weights.state_dict)
        if found is None:
            raise CheckpointError(f"CLIP weights {weights.source} fit none of the known CLIP sizes "
                                  f"({', '.join(CLIP_SIZES)}; {describe_state_dict(weights.state_dict)}); "
                                  f"{_FORMATS_HINT}.")
        model_size = found
    weights.model_size = model_size
    act = weights.quick_gelu if quick_gelu is None else quick_gelu
    model = build_clip(model_size, quick_gelu=act, empty=True)
    load_into(model, weights, model_size)
    weights.quick_gelu = act
    return model, weights


@functools.cache
def _shapes(model_size: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the CLIP of ``model_size`` (built on the meta device: no memory, no init)."""
    return {k: tuple(v.shape) for k, v in build_clip(model_size, empty=True).state_dict().items()}


def infer_clip_size(sd: dict[str, torch.Tensor]) -> str | None:
    """The key of CLIP_SIZES whose every tensor name and shape the state dict holds, or None."""
    own = {k: tuple(v.shape) for k, v in sd.items() if k not in _NON_PARAM_KEYS}
    for name in CLIP_SIZES:
        if _shapes(name) == own:
            return name
    return None


def load_into(model, weights: ClipWeights, model_size: str) -> None:
    """Copy ``weights`` into ``model`` strictly (every tensor present, every shape equal)."""
    own = model.state_dict()
    sd = {k: v for k, v in weights.state_dict.items() if k not in _NON_PARAM_KEYS}
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    where = f"CLIP weights {weights.source}"
    if missing or extra:
        detail = f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}"
        raise CheckpointError(f"{where} do not fit the {model_size} CLIP ({detail}){_size_hint(sd)}; "
                              f"{_FORMATS_HINT}.")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{where} do not fit the {model_size} CLIP ({k} has shape {tuple(v.shape)}, "
                                  f"the model {tuple(own[k].shape)}; {describe_state_dict(sd)}){_size_hint(sd)}.")
    on_meta = model.token_embedding.weight.is_meta
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True, assign=on_meta)
    if on_meta:                                  # the causal text mask is a non-persistent buffer
        n = model.positional_embedding.shape[0]
        model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)


def _size_hint(sd: dict[str, torch.Tensor]) -> str:
    found = infer_clip_size(sd)
    return f"; they are the {found} CLIP: set model.model_size {found} or auto" if found else ""


def describe_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """A short description of the vision tower in an OpenAI-layout state dict (for error messages)."""
    conv = sd.get("visual.conv1.weight")
    if conv is None:
        return "no ViT vision tower"
    layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    return f"the file holds a ViT of width {conv.shape[0]}, patch {conv.shape[-1]}, {layers} blocks"


# --- reading files --------------------------------------------------------------------------------------

def read_clip_weights(path: str | Path) -> ClipWeights:
    """Read any supported CLIP weight file or folder into an OpenAI-layout state dict."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"CLIP weights {p} do not exist; {_FORMATS_HINT}.")
    if p.is_dir():
        return _read_hf_folder(p)
    if p.stat().st_size == 0:
        raise CheckpointError(f"CLIP weights {p} are an empty file; {_FORMATS_HINT}.")
    if p.suffix == ".safetensors":
        sd = _read_safetensors(p)
        return _from_state_dict(sd, p, "state-dict", hf_config=_sibling_hf_config(p))
    if _is_torchscript(p):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")             # torch.jit.load's deprecation notice
                sd = torch.jit.load(str(p), map_location="cpu").state_dict()
        except Exception as e:  # noqa: BLE001 - any failure means the archive is damaged
            raise CheckpointError(f"CLIP weights {p} look like a TorchScript archive but cannot be loaded "
                                  f"({type(e).__name__}); download ViT-B-16.pt again.") from None
        return _from_state_dict(dict(sd), p, "openai-torchscript")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling refused or a damaged file
        raise CheckpointError(f"CLIP weights {p} cannot be read as a state dict ({type(e).__name__}); "
                              f"{_FORMATS_HINT}.") from None
    fmt, run_name, vocabulary = "state-dict", None, None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        fmt, run_name = "open_clip-checkpoint", obj.get("name")
        vocabulary = _pretrain_vocabulary(obj.get("ferkit_pretrain"))
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"CLIP weights {p} hold no tensor state dict; {_FORMATS_HINT}.")
    if any(k.startswith("module.") for k in obj):
        fmt = "open_clip-checkpoint"
    hint = None
    if fmt == "open_clip-checkpoint":
        hint = "quickgelu" in str(run_name or "").lower()
    weights = _from_state_dict(obj, p, fmt, hf_config=_sibling_hf_config(p), quick_gelu=hint)
    weights.caption_vocabulary = vocabulary
    return weights


def _pretrain_vocabulary(meta) -> tuple[str, ...] | None:
    """``caption_vocabulary`` of a `ferkit pretrain clip` checkpoint's ``ferkit_pretrain`` JSON, if it has one."""
    import json

    try:
        words = json.loads(meta).get("caption_vocabulary") if isinstance(meta, str) else None
    except (ValueError, AttributeError):
        return None
    return tuple(words) if isinstance(words, list) else None


def _is_torchscript(p: Path) -> bool:
    """TorchScript archives are zip files with ``code/`` and ``constants.pkl`` entries."""
    if not zipfile.is_zipfile(p):
        return False
    with zipfile.ZipFile(p) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"CLIP weights {p} are not a readable safetensors file ({e}); "
                              f"{_FORMATS_HINT}.") from None


def _sibling_hf_config(p: Path) -> dict | None:
    cfg = p.parent / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_hf_folder(folder: Path) -> ClipWeights:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"Folder {folder} has no config.json, so it is not a Hugging Face CLIP folder; "
                              f"{_FORMATS_HINT}.")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{cfg_path} is not valid JSON; download the Hugging Face folder again.") from None
    if config.get("model_type") not in (None, "clip"):
        raise CheckpointError(f"Folder {folder} holds a '{config.get('model_type')}' model, not CLIP; "
                              f"{_FORMATS_HINT}.")
    if (folder / "model.safetensors").is_file():
        sd = _read_safetensors(folder / "model.safetensors")
    elif (folder / "pytorch_model.bin").is_file():
        try:
            sd = torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{folder / 'pytorch_model.bin'} cannot be read ({type(e).__name__}); "
                                  "download the Hugging Face folder again.") from None
    else:
        raise CheckpointError(f"Folder {folder} has config.json but neither model.safetensors nor "
                              "pytorch_model.bin; download the Hugging Face weights too.")
    return _from_state_dict(sd, folder, "huggingface", hf_config=config)


def _from_state_dict(sd: dict, source: Path, fmt: str, hf_config: dict | None = None,
                     quick_gelu: bool | None = None) -> ClipWeights:
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    if any(k.startswith(("vision_model.", "text_model.")) for k in sd):
        sd = convert_hf_state_dict(sd, source)
        fmt = "huggingface"
        act = ((hf_config or {}).get("vision_config") or {}).get("hidden_act", "quick_gelu")
        quick_gelu = act == "quick_gelu"
    if "visual.conv1.weight" not in sd or "token_embedding.weight" not in sd:
        raise CheckpointError(f"CLIP weights {source} hold no CLIP ViT (no visual.conv1.weight or "
                              f"token_embedding.weight); {_FORMATS_HINT}.")
    return ClipWeights(state_dict=sd, source=str(source), format=fmt,
                       quick_gelu=True if quick_gelu is None else quick_gelu)


# --- Hugging Face key names -> OpenAI layout ------------------------------------------------------------

_HF_SIMPLE = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
_HF_LAYER = re.compile(r"^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_IN_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                "self_attn.out_proj": "attn.out_proj"}


def convert_hf_state_dict(sd: dict[str, torch.Tensor], source: Path | str = "") -> dict[str, torch.Tensor]:
    """Hugging Face ``CLIPModel`` keys -> OpenAI/open_clip keys (q/k/v projections concatenated into
    ``in_proj``; the Linear projection heads transposed into matrices)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k in _HF_SIMPLE:
            out[_HF_SIMPLE[k]] = v
        elif k == "visual_projection.weight":
            out["visual.proj"] = v.t().contiguous()                      # (width, embed)
        elif k == "text_projection.weight":
            out["text_projection"] = v.t().contiguous()                  # (width, embed)
        elif (m := _HF_LAYER.match(k)) is not None:
            tower, idx, rest = m.groups()
            prefix = ("visual.transformer" if tower == "vision" else "transformer") + f".resblocks.{idx}."
            q = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if q is not None:
                qkv.setdefault((prefix, q.group(2)), {})[q.group(1)] = v
                continue
            head, _, leaf = rest.rpartition(".")
            if head not in _HF_IN_LAYER:
                raise CheckpointError(f"CLIP weights {source} have a Hugging Face key '{k}' ferkit does not know; "
                                      "pass an openai/clip-vit-base-patch16 folder.")
            out[prefix + _HF_IN_LAYER[head] + "." + leaf] = v
        else:
            raise CheckpointError(f"CLIP weights {source} have a Hugging Face key '{k}' ferkit does not know; "
                                  "pass an openai/clip-vit-base-patch16 folder.")
    for (prefix, leaf), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"CLIP weights {source} lack a q/k/v projection in {prefix}; the file is damaged.")
        out[prefix + f"attn.in_proj_{leaf}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# --- text ------------------------------------------------------------------------------------------------

def tokenize(texts: list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP BPE token ids (N, context_length): SOT + BPE + EOT, zero-padded (open_clip's shipped vocabulary)."""
    return _tokenizer(context_length)(list(texts))


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    """open_clip's SimpleTokenizer, built once per context length (reading its BPE merges takes ~0.1 s)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


@torch.no_grad()
def encode_prompts(model, prompts: list[str]) -> torch.Tensor:
    """Unnormalised CLIP text embeddings (N, D) of ``prompts`` (EOT token -> text projection), in fp32."""
    tokens = tokenize(prompts, model.context_length).to(model.token_embedding.weight.device)   # (N, 77)
    return model.encode_text(tokens).float()                                                   # (N, D)
