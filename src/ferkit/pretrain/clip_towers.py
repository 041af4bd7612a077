"""The tiny CLIP's towers as its pretraining reads them: the input pipeline, image and text encoders on ferkit's
batch-first blocks, and zero-shot accuracy. Shared by the pretraining recipe (``pretrain/clip.py``) and the engine
method that runs it (``pretrain/clip_method.py``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.data.records import DatasetSplit


def preprocessing(model_size: str = "tiny"):
    """UA-FER's input pipeline at the CLIP's image size (ImageNet mean/std as the released code, bicubic)."""
    from ferkit.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
    from ferkit.models.clip import CLIP_SIZES

    size = CLIP_SIZES[model_size]["vision_cfg"]["image_size"]
    return Preprocessing(size=size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD, align="none",
                         resize="bicubic")


def _images(split: DatasetSplit, model_size: str) -> torch.Tensor:
    """Every image of ``split`` through the test-time transform: (N, 3, S, S) float32."""
    from ferkit.data.io import read_image
    from ferkit.data.transforms import preprocess_batch

    images = [s.image if isinstance(s.image, np.ndarray) else read_image(s.image) for s in split.samples]
    return preprocess_batch(images, preprocessing(model_size))


@torch.no_grad()
def zero_shot_accuracy(model, split: DatasetSplit, template: str = "{}", images: torch.Tensor | None = None,
                       batch_size: int = 256) -> float:
    """Accuracy of CLIP zero-shot classification of ``split`` with one prompt per class (``template``
    around the class name, UA-FER's prompts for SynthFER)."""
    from ferkit.models.clip import encode_prompts

    model.eval()
    device = model.token_embedding.weight.device
    x = images if images is not None else _images(split, _size_of(model))
    text = F.normalize(encode_prompts(model, [template.format(c) for c in split.label_space.classes]), dim=-1)
    preds = []
    for a in range(0, len(x), batch_size):
        f = F.normalize(encode_image(model, x[a:a + batch_size].to(device)).float(), dim=-1)
        preds.append((f @ text.t()).argmax(1).cpu())
    return float((torch.cat(preds).numpy() == split.expressions).mean())


def encode_image(model, x: torch.Tensor) -> torch.Tensor:
    """``model.encode_image(x)`` (CLS token -> ln_post -> projection), on ferkit's batch-first SDPA blocks
    (the same maths, without nn.MultiheadAttention's per-token weight expansion on CPU): (B, 3, S, S) -> (B, D)."""
    from ferkit.models.uafer import _block, _stem

    h = _stem(model.visual, x)                                                   # (B, 1 + N, W)
    for blk in model.visual.transformer.resblocks:
        h = _block(blk, h)
    return model.visual.ln_post(h[:, 0]) @ model.visual.proj                     # (B, D)


def encode_text(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` on the tokens up to the last end-of-text token only: (B, 77) -> (B, D).

    The text transformer is causal and the feature is read at the end-of-text token, so the padding after it
    never changes the result; leaving it out makes a short caption's step several times cheaper.
    """
    length = int(tokens.argmax(dim=-1).max()) + 1
    t = tokens[:, :length]                                                       # (B, L)
    x = model.token_embedding(t) + model.positional_embedding[:length]          # (B, L, W)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    return x[torch.arange(len(t), device=t.device), t.argmax(dim=-1)] @ model.text_projection   # (B, D)


def _size_of(model) -> str:
    from ferkit.models.clip import CLIP_SIZES

    side = model.visual.image_size[0]
    return next(k for k, v in CLIP_SIZES.items() if v["vision_cfg"]["image_size"] == side)
