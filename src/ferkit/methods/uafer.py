"""UA-FER (Zhou et al., Neurocomputing 2025): CLIP ViT-B/16 fine-tuning with evidential uncertainty.

Two variants (METHODS.md B, D): ``released`` reproduces the released code (bare class-name prompts, linear
score fusion before the evidence, teacher on the same image, L = mean_b sum_c (y_c - p_c)^2 +
lamda_kd * L1(v_cls, v_cls^T) with the unnormalised teacher, text unnormalised at test time); ``paper``
implements the figure (prompt template, teacher on a separately augmented view, per-branch opinions fused
by Dempster-Shafer, digamma EDL + annealed KL + lamda_ruc * AvU). Every paper-only choice is its own
option; ``None`` means "the variant's value". The optimiser recipe is in :mod:`ferkit.methods.uafer_optim`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.config import register_method_config
from ferkit.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError
from ferkit.losses.evidential import annealing_coef, evidential_loss
from ferkit.methods.frozen_cache import OutputCache, auto_cache, content_keys
from ferkit.methods.registry import register_method

log = logging.getLogger(__name__)

PAPER_TEMPLATE = "a photo of a {} facial expression."
#: what each variant means for the options left at None
VARIANTS: dict[str, dict] = {
    "released": {"prompt_template": "{}", "fusion": "score", "loss_type": "mse", "with_kl": False,
                 "with_avu": False, "teacher_view": "same", "normalize_text_at_test": False},
    "paper": {"prompt_template": PAPER_TEMPLATE, "fusion": "ds", "loss_type": "digamma", "with_kl": True,
              "with_avu": True, "teacher_view": "augmented", "normalize_text_at_test": True},
}
#: UA-FER's prompt word for a canonical class name (its get_labelname lists), where they differ
PROMPT_WORDS = {"disgust": "disgusted"}


@register_method_config("uafer")
@dataclass
class UAFerConfig:
    variant: str = "released"            # released (the released code) | paper (the paper figure)
    clip_path: str = ""                  # local CLIP weights: ViT-B-16.pt, state dict, open_clip ckpt, HF folder
    model_size: str = "auto"             # auto (the size clip_path holds; ViT-B-16 without weights) | ViT-B-16 |
    #                                      tiny (a small ViT/text tower at 64 px: tests, demos, `ferkit pretrain clip`)
    quick_gelu: bool | None = None       # None = from the weights (OpenAI: QuickGELU); random init: True
    alpha: float = 0.1                   # weight of the LOCAL branch (0.1 RAF-DB, 0.3 AffectNet)
    topk: int = 16                       # patches averaged per class in the local affinity
    fix_layer: int = 2                   # layers with id <= fix_layer frozen (stem 0, block i -> i+1); 2 / 8
    layer_decay: float = 0.65            # layer-wise lr decay: scale = layer_decay ** (depth + 1 - layer_id)
    weight_decay: float = 5e-4           # AdamW weight decay on >= 2-D parameters (1-D: none)
    warmup_epochs: float = 5.0           # linear warmup length (epochs); the lr is set every iteration
    min_lr: float = 1e-8                 # cosine floor
    lamda_kd: float = 1.0                # weight of the L1 distillation towards the frozen teacher's CLS projection
    lamda_ruc: float = 1.0               # weight of the AvU calibration term L_RUC (inert in the released code)
    evidence: str = "relu"               # evidence function: relu | exp | softplus
    class_names: list[str] | None = None  # prompt words per class, in label order (None = UA-FER's words)
    prompt_template: str | None = None   # "{}" (released) | "a photo of a {} facial expression." (paper)
    fusion: str | None = None            # score (linear, before the evidence; released) | ds (Dempster-Shafer)
    loss_type: str | None = None         # mse (released) | log | digamma (paper)
    with_kl: bool | None = None          # add the annealed KL(Dir(alpha~) || Dir(1)) regulariser
    with_avu: bool | None = None         # add lamda_ruc * AvU (needs loss_type log or digamma)
    avu_disentangle: bool = False        # AvU with -log(p(1-u)) / -log((1-p)u) terms
    annealing: str = "step"              # lambda_t: step = min(1, epoch / annealing_step) | exp
    annealing_step: float = 10.0         # epochs to reach lambda_t = 1 with step annealing
    teacher_view: str | None = None      # same (the student's tensor; released) | augmented (own view; paper)
    normalize_text_at_test: bool | None = None  # L2-normalise text embeddings at test time (released: no)
    kd_normalize_teacher: bool = False   # L2-normalise the teacher's CLS before L1 (released: raw)
    augment: str = "rafdb"               # training augmentation: rafdb (flip) | affectnet | none ...
    class_balanced: bool = False         # class-balanced sampler (UA-FER's AffectNet ImbalancedDatasetSampler)
    image_size: int | None = None        # None = the model's (224 for ViT-B-16, 64 for tiny)
    resize: str = "bicubic"              # resize interpolation: bicubic (RAF-DB's Resize(224, BICUBIC)) | bilinear
    #                                      (AffectNet's Resize((224, 224)); its presets set it)
    align: str = "none"                  # inference alignment: none (pre-aligned datasets) | mtcnn5
    share_frozen: bool = True            # compute the frozen lower blocks once for student and teacher when exact
    teacher_cache: str = "auto"          # remember teacher outputs by input content: auto (on the CPU, when the
    #                                      training augmentation repeats inputs: none, flip, rafdb, dicefer14) | on | off
    teacher_cache_size: int = 100_000    # most outputs remembered (100k x 512 floats = 200 MB for ViT-B/16)
    weights_from_checkpoint: bool = False  # set when rebuilt from a ferkit checkpoint (clip_path is not read)

    def resolved(self, key: str):
        """The effective value of a variant-dependent option."""
        value = getattr(self, key)
        return VARIANTS[self.variant][key] if value is None else value


def prompt_words(label_space, class_names: list[str] | None) -> list[str]:
    """The prompt word of each class: given names, canonical names for SynthFER, else UA-FER's words."""
    if class_names is not None:
        if len(class_names) != label_space.num_classes:
            raise ConfigError(f"model.class_names has {len(class_names)} names but the dataset has "
                              f"{label_space.num_classes} classes; give one name per class.")
        return [str(c) for c in class_names]
    if label_space.name == "synthfer":
        return list(label_space.classes)
    return [PROMPT_WORDS.get(c, c) for c in label_space.classes]


def _validate(m: UAFerConfig) -> None:
    if m.variant not in VARIANTS:
        raise ConfigError(f"model.variant is '{m.variant}'; use one of {', '.join(VARIANTS)}.")
    checks = [("fusion", m.resolved("fusion"), ("score", "ds")),
              ("loss_type", m.resolved("loss_type"), ("mse", "log", "digamma")),
              ("teacher_view", m.resolved("teacher_view"), ("same", "augmented")),
              ("evidence", m.evidence, ("relu", "exp", "softplus")), ("annealing", m.annealing, ("step", "exp")),
              ("resize", m.resize, ("bicubic", "bilinear"))]
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"model.{key} is '{value}'; use one of {', '.join(allowed)}.")
    if m.resolved("with_avu") and m.resolved("loss_type") == "mse":
        raise ConfigError("model.with_avu needs model.loss_type log or digamma (the AvU term is defined there).")
    if "{}" not in m.resolved("prompt_template"):
        raise ConfigError("model.prompt_template must contain '{}' where the class name goes.")
    if m.teacher_cache not in ("auto", "on", "off") or m.teacher_cache_size < 0:
        raise ConfigError(f"model.teacher_cache is '{m.teacher_cache}' (use auto, on or off) and "
                          f"model.teacher_cache_size {m.teacher_cache_size} (use >= 0).")
    if m.topk < 1 or not 0.0 <= m.alpha <= 1.0:
        raise ConfigError(f"model.topk must be >= 1 and model.alpha in [0, 1], got {m.topk} and {m.alpha}.")


@register_method("uafer")
class UAFERMethod(Method):
    """UA-FER training recipe over :class:`ferkit.models.uafer.UAFERNet`."""

    def __init__(self, cfg, label_space, device: torch.device):
        super().__init__(cfg, label_space, device)
        from ferkit.models.clip import encode_prompts
        from ferkit.models.uafer import UAFERNet

        m: UAFerConfig = cfg.model
        _validate(m)
        self.prompts = [m.resolved("prompt_template").format(w) for w in prompt_words(label_space, m.class_names)]
        clip, self.weights_info = self._initial_clip()
        if m.weights_from_checkpoint:       # the checkpoint holds the text embeddings
            text = torch.zeros(label_space.num_classes, clip.text_projection.shape[1])   # (C, D)
        else:
            text = encode_prompts(clip, self.prompts)                                   # (C, D)
        # the teacher's weights: the image tower before any training (None when restoring for inference)
        self._initial_visual = None if m.weights_from_checkpoint else copy.deepcopy(clip.visual)
        self.net = UAFERNet(clip.visual, text, m.alpha, m.topk, m.fix_layer,
                            fusion=m.resolved("fusion"), evidence=m.evidence)
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
            opt = build_optimizer(self.net.visual, m.fix_layer, t.lr, m.weight_decay, m.layer_decay)
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
        total = losses["cls"] + losses.get("kl", 0.0) + m.lamda_ruc * losses.get("avu", 0.0) \
            + m.lamda_kd * losses["kd"]
        ctx.step(losses, ["adamw"], total=total)
        acc = (out["probs"].detach().argmax(1) == labels).float().mean()
        scalars = {k: v.item() for k, v in losses.items()}
        scalars.update(loss=total.item(), acc=acc.item(), lr=lr,
                       uncertainty=out["uncertainty"].detach().mean().item())
        return scalars

    def loss_terms(self, v_cls: torch.Tensor, v_loc: torch.Tensor, t_cls: torch.Tensor, labels: torch.Tensor,
                   epoch: int, total_epochs: int) -> tuple[dict[str, torch.Tensor], dict]:
        """Training losses (unweighted terms) and the opinion; text embeddings normalised as in training."""
        m = self.cfg.model
        s_g, s_l = self.net.branch_scores(v_cls, v_loc, normalize_text=True)          # (B, C) x 2
        out = self.net.opinion(s_g, s_l)
        coef = annealing_coef(epoch, total_epochs, m.annealing, m.annealing_step)
        losses = evidential_loss(out["alpha"], labels, m.resolved("loss_type"), m.resolved("with_kl"),
                                 m.resolved("with_avu"), coef, m.avu_disentangle)
        teacher = t_cls.float()
        if m.kd_normalize_teacher:
            teacher = teacher / teacher.norm(dim=-1, keepdim=True)
        losses["kd"] = F.l1_loss(v_cls, teacher)                                       # mean over (B, D)
        return losses, out

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        v_cls, v_loc = self.net(images)                                                # (B, D), (B, N, D)
        s_g, s_l = self.net.branch_scores(v_cls, v_loc, self.cfg.model.resolved("normalize_text_at_test"))
        out = self.net.opinion(s_g, s_l)
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
        return {"model": f"UA-FER ({m.variant}) on CLIP {m.model_size}, {self.label_space.num_classes} classes",
                "weights": weights, "prompts": "; ".join(self.prompts),
                "fusion": f"{m.resolved('fusion')} (alpha {m.alpha}, top-k {m.topk})",
                "loss": (f"{m.resolved('loss_type')} EDL" + (" + KL" if m.resolved("with_kl") else "")
                         + (f" + {m.lamda_ruc} AvU" if m.resolved("with_avu") else "") + f" + {m.lamda_kd} KD"),
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
