"""UA-FER (Zhou et al., Neurocomputing 2025): CLIP ViT-B/16 fine-tuning with evidential uncertainty.

Two variants (METHODS.md B, D): ``released`` reproduces the released code (bare class-name prompts, linear
score fusion before the evidence, teacher on the same image, L = mean_b sum_c (y_c - p_c)^2 +
lamda_kd * L1(v_cls, v_cls^T) with the unnormalised teacher, text unnormalised at test time); ``paper``
implements the figure as reconstructed in METHODS.md B.9 (prompt template, teacher on a separately
augmented view, a learnable evidence extractor [INFERRED], per-branch opinions fused by Dempster-Shafer with
every opinion supervised [INFERRED, as TMC], digamma EDL + annealed KL, + lamda_ruc * AvUC [threshold and
stop-gradient INFERRED]). Every paper-only choice is its own option (:mod:`ferkit.methods.uafer_config`);
``None`` means "the variant's value". The optimiser recipe is in :mod:`ferkit.methods.uafer_optim`.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError
from ferkit.losses.evidential import annealing_coef, evidential_loss
from ferkit.methods.frozen_cache import OutputCache, auto_cache, content_keys
from ferkit.methods.registry import register_method
from ferkit.methods.uafer_config import (
    PAPER_TEMPLATE,
    VARIANTS,
    UAFerConfig,
    describe_settings,
    prompt_words,
    validate,
)

__all__ = ["PAPER_TEMPLATE", "VARIANTS", "UAFerConfig", "UAFERMethod", "prompt_words", "zero_shot_method"]

log = logging.getLogger(__name__)

def outside_vocabulary_warning(prompts: list[str], weights) -> str | None:
    """A warning when ``weights`` are a caption-pretrained stand-in CLIP (they list their captions' words) and
    some prompt words are not among them: a text tower trained from scratch on those captions has learnt
    nothing for such words, so the class prompts may not tell the classes apart (the paper template on the
    tiny CLIP: docs/results/uafer-uncertainty.md). None for OpenAI's or any CLIP that lists no vocabulary."""
    vocabulary = getattr(weights, "caption_vocabulary", None)
    if not vocabulary:
        return None
    known = set(vocabulary)
    outside = sorted({w for p in prompts for w in re.findall(r"[a-z0-9][a-z0-9'-]*", p.lower())} - known)
    if not outside:
        return None
    return (f"UA-FER: the prompts ({prompts[0]!r}, ...) use words the stand-in CLIP {weights.source} never saw in "
            f"its pretraining captions ({', '.join(outside)}); its text tower has learnt nothing for them, so the "
            "prompts may not separate the classes. Use a template inside its vocabulary, e.g. "
            "--set model.prompt_template='{}' (the bare class word).")


@register_method("uafer")
class UAFERMethod(Method):
    """UA-FER training recipe over :class:`ferkit.models.uafer.UAFERNet`."""

    def __init__(self, cfg, label_space, device: torch.device):
        super().__init__(cfg, label_space, device)
        from ferkit.models.clip import encode_prompts
        from ferkit.models.uafer import UAFERNet

        m: UAFerConfig = cfg.model
        validate(m)
        self.prompts = [m.resolved("prompt_template").format(w) for w in prompt_words(label_space, m.class_names)]
        clip, self.weights_info = self._initial_clip()
        self.prompt_warning = outside_vocabulary_warning(self.prompts, self.weights_info)
        if self.prompt_warning:
            log.warning(self.prompt_warning)
        if m.weights_from_checkpoint:       # the checkpoint holds the text embeddings
            text = torch.zeros(label_space.num_classes, clip.text_projection.shape[1])   # (C, D)
        else:
            text = encode_prompts(clip, self.prompts)                                   # (C, D)
        # the teacher's weights: the image tower before any training (None when restoring for inference)
        self._initial_visual = None if m.weights_from_checkpoint else copy.deepcopy(clip.visual)
        scale = m.evidence_scale_init if m.evidence_scale_init is not None else float(clip.logit_scale.detach().exp())
        self.net = UAFERNet(clip.visual, text, m.alpha, m.topk, m.fix_layer, fusion=m.resolved("fusion"),
                            evidence=m.resolved("evidence"), extractor=m.resolved("evidence_extractor"),
                            scale_init=scale)
        self.net.freeze()
        self.net.to(device)
        self.teacher = None
        self._phases: list[Phase] | None = None
        self._share = False
        self.teacher_cache = OutputCache(m.teacher_cache_size) if self._cache_on() else None

    # --- weights -------------------------------------------------------------------------------------
    def _initial_clip(self):
        """The CLIP model training starts from: clip_path, else a seeded random init (logged)."""
        from ferkit.models.clip import AUTO_SIZE, build_clip, load_clip

        m = self.cfg.model
        if m.clip_path and not m.weights_from_checkpoint:
            model, info = load_clip(m.model_size, m.clip_path, m.quick_gelu)
            m.model_size = info.model_size          # "auto" resolved; the run's config and checkpoint record it
            return model.eval(), info
        if m.model_size == AUTO_SIZE:
            m.model_size = "ViT-B-16"
        model = build_clip(m.model_size, quick_gelu=True if m.quick_gelu is None else m.quick_gelu,
                           seed=self.cfg.train.seed)
        if not m.weights_from_checkpoint:
            log.warning("UA-FER: no CLIP weights given (model.clip_path / --clip-path), so the model starts "
                        "from RANDOM initialisation; pass ViT-B-16.pt for meaningful results.")
        return model.eval(), None

    def _build_teacher(self, amp_dtype: torch.dtype | None) -> None:
        """The frozen teacher: the image tower as it was before any training (copied at construction, so
        also right after a resume); under bf16 autocast its matrices are stored in bf16 (autocast would cast
        them to the same values every step). It shares the student's frozen lower blocks when they are
        bitwise equal and both see the same image."""
        from ferkit.models.uafer import CLSTeacher, lower_blocks_equal

        visual = self._initial_visual
        if visual is None:
            log.warning("UA-FER: the teacher is a copy of the checkpoint's image tower (the initial CLIP weights "
                        "are not known here).")
            visual = copy.deepcopy(self.net.visual)
        self._initial_visual = None
        visual.to(self.device)             # copied on the host before the net moved: compared on one device
        k = self.net.num_frozen_blocks
        self._share = (self.cfg.model.share_frozen and self.cfg.model.resolved("teacher_view") == "same"
                       and self.net.fix_layer >= 0 and lower_blocks_equal(self.net.visual, visual, k))
        self.teacher = CLSTeacher(visual).to(self.device)
        if amp_dtype is not None:
            for p in self.teacher.parameters():
                if p.ndim >= 2:
                    p.data = p.data.to(amp_dtype)

    def _cache_on(self) -> bool:
        """Whether teacher outputs are remembered: "auto" when the teacher's inputs repeat across epochs."""
        m = self.cfg.model
        if m.teacher_cache == "auto":
            return auto_cache(m.augment, self.device) and m.teacher_cache_size > 0
        return m.teacher_cache == "on" and m.teacher_cache_size > 0

    def _teacher_cls(self, images: torch.Tensor, lower: torch.Tensor, batch: dict) -> torch.Tensor:
        """The teacher's CLS projection (B, D) for this batch: from the shared lower blocks, or from the
        student's tensor / the teacher's own view; remembered ones come from the cache."""
        m = self.cfg.model
        t_in = batch["image_teacher"] if m.resolved("teacher_view") == "augmented" else images

        def run(rows: torch.Tensor | None) -> torch.Tensor:
            if self._share:
                return self.teacher(h=lower if rows is None else lower[rows.to(lower.device)],
                                    start=self.net.num_frozen_blocks)
            return self.teacher(x=t_in if rows is None else t_in[rows.to(t_in.device)])

        if self.teacher_cache is None:
            return run(None)
        return self.teacher_cache.fetch(content_keys(t_in), run, t_in.device)

    def train_state(self) -> dict:
        return {"teacher_cache": self.teacher_cache.state()} if self.teacher_cache is not None else {}

    def load_train_state(self, state: dict) -> None:
        if self.teacher_cache is not None:
            self.teacher_cache.load_state(state.get("teacher_cache", {}))

    # --- engine contract -----------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"uafer": self.net}

    def phases(self) -> list[Phase]:
        if self._phases is None:
            from ferkit.methods.uafer_optim import build_optimizer

            m, t = self.cfg.model, self.cfg.train
            opt = build_optimizer(self.net.visual, m.fix_layer, t.lr, m.weight_decay, m.layer_decay,
                                  extra=self.net.extractor_parameters())
            sampler = "class_balanced" if m.class_balanced else "shuffle"
            self._phases = [Phase("train", t.epochs, {"adamw": opt}, sampler=sampler)]
        return self._phases

    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        from ferkit.methods.uafer_optim import lr_at, set_lr

        m, t = self.cfg.model, self.cfg.train
        if self.teacher is None:
            self._build_teacher(ctx.amp_dtype)
        lr = lr_at(ctx.fractional_epoch, t.lr, m.min_lr, m.warmup_epochs, phase.epochs)
        set_lr(phase.optimizers["adamw"], lr)
        images, labels = batch["image"], batch["expression"]                 # (B, 3, S, S), (B,)
        with ctx.autocast():
            lower = self.net.lower(images)                                   # (B, L, W), no grad
            t_cls = self._teacher_cls(images, lower, batch)                  # (B, D)
            v_cls, v_loc = self.net.features(lower)                          # (B, D), (B, N, D) fp32
        losses, out = self.loss_terms(v_cls, v_loc, t_cls, labels, ctx.epoch, phase.epochs)
        total = losses["cls"] + losses.get("kl", 0.0) + m.lamda_ruc * losses.get("ruc", 0.0) \
            + m.lamda_kd * losses["kd"]
        ctx.step(losses, ["adamw"], total=total)
        acc = (out["probs"].detach().argmax(1) == labels).float().mean()
        scalars = {k: v.item() for k, v in losses.items()}
        scalars.update(loss=total.item(), acc=acc.item(), lr=lr,
                       uncertainty=out["uncertainty"].detach().mean().item())
        tau = self.net.evidence_scales()
        if tau is not None:
            scalars.update(tau_global=tau[0].item(), tau_local=tau[1].item())
        return scalars

    def loss_terms(self, v_cls: torch.Tensor, v_loc: torch.Tensor, t_cls: torch.Tensor, labels: torch.Tensor,
                   epoch: int, total_epochs: int) -> tuple[dict[str, torch.Tensor], dict]:
        """Training losses (unweighted terms) and the opinion; text embeddings normalised as in training.

        "cls" and "kl" sum over the supervised opinions: the fused one, plus each branch's with
        ``supervise_branches`` (TMC: loss = sum_v L(alpha_v) + L(alpha_fused)); "ruc" is on the fused opinion.
        """
        m = self.cfg.model
        a_g, a_l = self.net.affinities(v_cls, v_loc, normalize_text=True)              # (B, C) x 2
        out = self.net.opinion(a_g, a_l)
        coef = annealing_coef(epoch, total_epochs, m.annealing, m.annealing_step)
        ruc = m.resolved("ruc_form") if m.resolved("with_avu") else None
        losses = evidential_loss(out["alpha"], labels, m.resolved("loss_type"), m.resolved("with_kl"), coef, ruc,
                                 m.ruc_threshold, m.ruc_detach_confidence, m.avu_disentangle)
        if m.resolved("supervise_branches"):
            for branch in out["branches"].values():
                terms = evidential_loss(branch["alpha"], labels, m.resolved("loss_type"), m.resolved("with_kl"), coef)
                for key, value in terms.items():
                    losses[key] = losses[key] + value
        teacher = t_cls.float()
        if m.kd_normalize_teacher:
            teacher = teacher / teacher.norm(dim=-1, keepdim=True)
        losses["kd"] = F.l1_loss(v_cls, teacher)                                       # mean over (B, D)
        return losses, out

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        v_cls, v_loc = self.net(images)                                                # (B, D), (B, N, D)
        a_g, a_l = self.net.affinities(v_cls, v_loc, self.cfg.model.resolved("normalize_text_at_test"))
        out = self.net.opinion(a_g, a_l)
        return Prediction(probs=out["probs"], uncertainty=out["uncertainty"], embedding=v_cls,
                          extra={"belief": out["belief"]})

    def preprocessing(self) -> Preprocessing:
        m = self.cfg.model
        size = m.image_size or self.net.visual.image_size[0]
        return Preprocessing(size=size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD, align=m.align,
                             resize=m.resize)

    def extra_views(self) -> dict:
        if self.cfg.model.resolved("teacher_view") != "augmented":
            return {}
        from ferkit.data.transforms import build_transform

        return {"image_teacher": build_transform(self.preprocessing(), train=True, augment=self.cfg.model.augment)}

    def train_mode(self, phase: Phase) -> None:
        self.net.train()

    @classmethod
    def inference_config(cls, cfg):
        cfg = super().inference_config(cfg)
        return replace(cfg, model=replace(cfg.model, clip_path="", weights_from_checkpoint=True))

    def describe(self) -> dict:
        m = self.cfg.model
        info = self.weights_info
        if info is not None:
            weights = f"CLIP {m.model_size} from {info.source} ({info.format}, QuickGELU {info.quick_gelu})"
        elif m.weights_from_checkpoint:
            weights = "from the ferkit checkpoint"
        else:
            weights = f"RANDOM init (no clip_path), CLIP {m.model_size}"
        if getattr(self, "checkpoint_meta", None):
            weights = self.checkpoint_meta.get("describe", {}).get("weights", weights)
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        tau = self.net.evidence_scales()
        settings = describe_settings(m, None if tau is None else tuple(tau.tolist()))
        return {"model": f"UA-FER ({m.variant}) on CLIP {m.model_size}, {self.label_space.num_classes} classes",
                "weights": weights, "prompts": "; ".join(self.prompts), **settings,
                "trainable": f"{trainable / 1e6:.2f} M parameters (fix_layer {m.fix_layer})",
                "optimizer": f"AdamW lr {self.cfg.train.lr}, layer decay {m.layer_decay}, wd {m.weight_decay}",
                "teacher": "frozen initial image tower, outputs " + (
                    f"remembered by input content (up to {m.teacher_cache_size})" if self.teacher_cache is not None
                    else "computed every step")}


def zero_shot_method(cfg, label_space, device: torch.device) -> UAFERMethod:
    """UA-FER at its CLIP initialisation, ready to predict from the prompts alone (no training)."""
    if not cfg.model.clip_path:
        raise ConfigError("Zero-shot UA-FER needs CLIP weights; pass --clip-path ViT-B-16.pt.")
    method = UAFERMethod(cfg, label_space, device)
    method._initial_visual = None                    # no training, so no teacher
    method.eval_mode()
    return method
