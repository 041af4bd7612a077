"""A CLIP trained contrastively on captioned faces: the stand-in for UA-FER's OpenAI CLIP start (METHODS.md B.1).

UA-FER fine-tunes OpenAI's CLIP ViT-B/16, whose image and text towers were trained together, by symmetric
InfoNCE, on web images and their alt-text. That start is what lets the class prompts ("happy", "a photo of
a happy facial expression.") point at the right images before any fine-tuning. No OpenAI weights can be
downloaded here, and a CLIP from random weights fine-tuned on a few SynthFER people memorises them (0.18
on unseen identities, chance 0.14). This module trains a CLIP the way CLIP is trained, with open_clip's
``ClipLoss`` and the learnable logit scale, on face images paired with alt-text-like captions written from
each image's metadata (its expression in words, with several templates, intensity, eyewear, hair, head
pose, lighting, background), on people disjoint from the ones UA-FER is evaluated on (SynthFER identities
are drawn from the render seed, so a different ``--synth-seed`` gives different people). It writes an
open_clip training checkpoint ``{"epoch", "name", "state_dict"}`` that ``--clip-path`` loads.

Two caption styles (``--captions``): ``alt-text``, the varied captions above, and ``expression``, which
names the expression only: half the time "a photo of a {usual adjective} face.", else the bare class name
("happy", "surprise", "disgust": the words UA-FER's prompts use). OpenAI's CLIP learnt such words from 400 M
web pairs; a tiny text tower learning them from scratch on a thousand faces does not get there with
alt-text (40 epochs on 1428 faces of 51 people: loss 3.78 against ln 64 = 4.16, zero-shot on other people
0.18, chance 0.14), while the expression captions teach it (zero-shot 0.39 / 0.61 with the class names on
the held-out people of two renders), which is the start UA-FER needs to learn from.

Data: a SynthFER render made on the fly (``--synth-seed``), a SynthFER folder, or any dataset in its
shipped layout (``--dataset NAME --data-path PATH``); columns a dataset lacks are left out of its captions.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ferkit.data.records import DatasetSplit
from ferkit.errors import ConfigError, DataError
from ferkit.pretrain.captions import CAPTION_STYLES


@dataclass
class ClipPretrainConfig:
    """What ``pretrain_clip`` does; saved in the checkpoint next to the weights."""

    model_size: str = "tiny"       # a key of ferkit.models.clip.CLIP_SIZES
    epochs: int = 12
    batch_size: int = 96
    lr: float = 2e-3               # AdamW, linear warmup then cosine
    weight_decay: float = 0.1      # on >= 2-D weights (CLIP's recipe); none on gains, biases, logit scale
    warmup_fraction: float = 0.1   # of all steps
    flip: bool = True              # mirror half the images (captions swap left and right)
    seed: int = 0
    precision: str = "fp32"        # fp32 (exact) | bf16 | auto (bf16 where the CPU/GPU has it): the towers; loss fp32
    device: str = "auto"
    quick_gelu: bool = True        # OpenAI CLIP's activation (the name of the run says so to the loader)
    captions: str = "alt-text"     # a key of CAPTION_STYLES: alt-text (varied, with attributes) | expression


#: the small recipe ``ferkit demo`` and the tests use (a render seed set per use, so the people differ from the
#: evaluation render's): 1428 faces of 51 people, expression captions, 40 epochs (about 3.5 min on one CPU
#: thread in fp32); zero-shot on held-out people reaches 0.39-0.61 (chance 0.14) where alt-text captions stay at 0.18
CLIP_DEMO = {"synth": {"identities": 60, "images_per_identity": 28, "size": 64, "split_fractions": (0.85, 0.15, 0.0)},
             "config": functools.partial(ClipPretrainConfig, model_size="tiny", epochs=40, batch_size=64, lr=2e-3,
                                         captions="expression")}


def _check(split: DatasetSplit | None, cfg: ClipPretrainConfig) -> None:
    from ferkit.models.clip import CLIP_SIZES

    if cfg.model_size not in CLIP_SIZES:
        raise ConfigError(f"CLIP model size '{cfg.model_size}' is not known; use one of {', '.join(CLIP_SIZES)}.")
    if cfg.captions not in CAPTION_STYLES:
        raise ConfigError(f"Caption style '{cfg.captions}' is not known; use one of {', '.join(CAPTION_STYLES)}.")
    if cfg.epochs < 1 or cfg.batch_size < 2 or not cfg.lr > 0:
        raise ConfigError("CLIP pretraining needs epochs >= 1, batch size >= 2 (contrastive pairs) and lr > 0.")
    if split is not None and len(split) < 2:
        raise DataError(f"CLIP pretraining got {len(split)} images; it needs at least 2 captioned faces.")


def pretrain_clip(split: DatasetSplit, cfg: ClipPretrainConfig | None = None, monitor: DatasetSplit | None = None,
                  log=print, on_epoch=None, out: str | Path | None = None, resume: str | None = None,
                  progress: bool = False):
    """Train a CLIP (image and text towers, logit scale) with open_clip's ClipLoss on ``split``'s images
    paired with captions from their class and metadata; a fresh random caption per image and step. The loop
    is the engine's (``ClipPretrainMethod``, ``pretrain/clip_method.py``): the same seed on the same machine
    writes the same weights.

    ``monitor``: a split of other people whose zero-shot accuracy (prompts "{}" and UA-FER's paper template)
    is logged after each epoch. ``out``: keep the engine's run folder there (log, metrics.csv, checkpoints;
    ``resume`` continues one), else a temporary folder. Returns ``(model, history)``: the open_clip ``CLIP``
    (eval mode, CPU, fp32) and one dict per epoch (epoch, loss, logit_scale, lr, zero-shot accuracies,
    seconds).
    """
    from ferkit.pretrain.clip_method import ClipPretrainMethod
    from ferkit.pretrain.engine_run import run_on_engine

    cfg = cfg or ClipPretrainConfig()
    _check(split, cfg)
    method, result = run_on_engine(
        ClipPretrainMethod.name, split, cfg, min(cfg.batch_size, len(split)),
        lambda exp, device: ClipPretrainMethod(exp, split.label_space, device, split, monitor, log=log,
                                               on_epoch=on_epoch),
        out=out, resume=resume, progress=progress, console=log is not None)
    history, total = [], 0.0
    for row in result.history:
        total += row["seconds"]
        history.append({"epoch": row["epoch"], "loss": row["train_loss"], "logit_scale": row["train_logit_scale"],
                        "lr": row["lr_adamw"], **method.monitor_rows.get(row["epoch"], {}),
                        "seconds": round(total, 2)})
    model = method.model
    model.eval()
    return model.cpu().float(), history


def run_name(cfg: ClipPretrainConfig) -> str:
    """The open_clip run name written into the checkpoint; ``quickgelu`` in it tells loaders the activation."""
    return f"ferkit-pretrain-{cfg.model_size}" + ("-quickgelu" if cfg.quick_gelu else "")


def save_clip_checkpoint(model, path: str | Path, cfg: ClipPretrainConfig, meta: dict, epochs: int,
                         split: DatasetSplit | None = None) -> Path:
    """Write an open_clip training checkpoint: ``{"epoch", "name", "state_dict", "ferkit_pretrain"}``. With the
    pretraining ``split``, ``ferkit_pretrain`` also lists its captions' words (``caption_vocabulary``), so a
    method fine-tuning this CLIP can warn about prompts whose words its text tower never saw."""
    if split is not None:
        from ferkit.pretrain.captions import caption_vocabulary

        names = [split.label_space.classes[e] for e in split.expressions]
        meta = {**meta, "caption_style": cfg.captions,
                "caption_vocabulary": caption_vocabulary(cfg.captions, names, [dict(x.meta or {}) for x in split.samples])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"epoch": epochs, "name": run_name(cfg), "state_dict": state,
                "ferkit_pretrain": json.dumps(meta, sort_keys=True)}, str(tmp))
    tmp.replace(path)
    return path


def pretraining_splits(dataset: str = "synthetic", data_path: str | None = None, synth: dict | None = None,
                       monitor: bool = True) -> tuple[DatasetSplit, DatasetSplit | None]:
    """(images to pretrain on, held-out people to monitor zero-shot accuracy on, or None).

    With native splits, training pretrains on "train" and monitors on "val" (else "test"); without them,
    every image is used and nothing is monitored. ``monitor=False`` pretrains on every image.
    """
    from ferkit.data.datasets import load_all, select

    result = load_all(dataset, data_path, synth=synth)
    root = Path(data_path) if data_path else None
    everything = select(dataset, result, "all", root)
    if len(everything) == 0:
        raise DataError(f"Dataset '{dataset}' has no images to pretrain CLIP on; check --data-path.")
    native = {s.meta.get("split") for s in result.samples}
    if not monitor or not {"train"} < native:
        return everything, None
    held = "val" if "val" in native else "test"
    train = select(dataset, result, "train", root)
    mon = select(dataset, result, held, root)
    return (train, mon) if len(train) >= 2 else (everything, None)


# --- ferkit pretrain clip ----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="checkpoint to write (.pt), e.g. clip_tiny_faces.pt")
    p.add_argument("--dataset", default="synthetic", help="dataset in its shipped layout (default synthetic)")
    p.add_argument("--data-path", default=None,
                   help="its folder (a SynthFER folder for synthetic); omit it to render SynthFER on the fly")
    p.add_argument("--synth-identities", type=int, default=60,
                   help="identities of the on-the-fly SynthFER render (default 60)")
    p.add_argument("--synth-images", type=int, default=28, help="images per identity of that render (default 28)")
    p.add_argument("--synth-seed", type=int, default=1000,
                   help="seed of that render, which draws its people; use one other than your evaluation "
                        "render's (default 1000)")
    p.add_argument("--model", default="tiny", help="CLIP size: tiny (64 px) | ViT-B-16 (default tiny)")
    p.add_argument("--epochs", type=int, default=12, help="epochs (default 12)")
    p.add_argument("--batch-size", type=int, default=96, help="contrastive batch size (default 96)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, warmup + cosine (default 2e-3)")
    p.add_argument("--captions", default="alt-text", choices=tuple(CAPTION_STYLES),
                   help="alt-text: varied captions with the attributes the metadata holds; expression: "
                        "'a photo of a happy face.' or the bare class name (default alt-text)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp32"),
                   help="autocast of the towers; the loss is fp32 (default fp32: bf16 changes numbers)")


def run(args: argparse.Namespace) -> int:
    from ferkit.models.clip import CLIP_SIZES

    out = Path(args.out)
    if out.suffix not in (".pt", ".pth"):
        raise ConfigError(f"--out {out} should end in .pt or .pth (an open_clip checkpoint file).")
    if args.model not in CLIP_SIZES:
        raise ConfigError(f"--model {args.model} is not a known CLIP size; use one of {', '.join(CLIP_SIZES)}.")
    size = CLIP_SIZES[args.model]["vision_cfg"]["image_size"]
    synth = {"identities": args.synth_identities, "images_per_identity": args.synth_images, "size": size,
             "seed": args.synth_seed, "split_fractions": (0.85, 0.15, 0.0)}
    if args.data_path is None and args.dataset == "synthetic" and args.synth_identities < 2:
        raise ConfigError(f"--synth-identities {args.synth_identities} is too few; use 2 or more.")
    cfg = ClipPretrainConfig(model_size=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             captions=args.captions, seed=args.seed, precision=args.precision, device=args.device)
    _check(None, cfg)                                   # refuse bad numbers before rendering or reading data
    train, monitor = pretraining_splits(args.dataset, args.data_path, synth)
    source = args.data_path or f"SynthFER render {json.dumps({k: synth[k] for k in ('identities', 'images_per_identity', 'size', 'seed')}, sort_keys=True)}"
    print(f"pretrain clip: CLIP {args.model} contrastive (ClipLoss) on {len(train)} images with {args.captions} captions, of "
          f"{np.unique(train.subjects).size} people from {args.dataset} ({source})"
          + (f"; zero-shot monitored on {len(monitor)} images of {np.unique(monitor.subjects).size} other people"
             if monitor is not None else ""), flush=True)
    model, history = pretrain_clip(train, cfg, monitor, log=functools.partial(print, flush=True))
    meta = {"task": "contrastive image-caption pretraining (open_clip ClipLoss)", "dataset": args.dataset,
            "source": source, "model_size": args.model, "images": len(train),
            "people": int(np.unique(train.subjects).size), "config": asdict(cfg), "final": history[-1]}
    save_clip_checkpoint(model, out, cfg, meta, cfg.epochs, split=train)
    log_path = out.with_suffix(".csv")
    with open(log_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    print(f"wrote {out} (open_clip checkpoint, CLIP {args.model}; pass it as --clip-path) and {log_path}")
    return 0
