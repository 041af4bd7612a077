"""UA-FER's configuration: the two variants, every option, and their validation.

``released`` is the released code (HaoliangZhou/UAFER @ 4dc7852, METHODS.md B.1-B.3); ``paper`` is the paper
figure as reconstructed in METHODS.md B.9. Options left at ``None`` take the variant's value (``VARIANTS``);
each [INFERRED] choice of the paper variant is its own option, so it can be switched off one at a time:

* [INFERRED] ``evidence_extractor: learnable``: e_b = g(tau_b (A_b - mean_c A_b)) on the raw affinities with a
  learnable scale tau_b per branch, started at the CLIP's logit scale (the figure's "Evidence Extractor
  (tuned)"); the released code's fixed e = ReLU(A / ||A||) caps evidence at 1 per class.
* [INFERRED] ``evidence: softplus`` (TMC's evidence function; the released code uses ReLU).
* ``fusion: ds``: one Dirichlet opinion per branch, fused by Dempster-Shafer (TMC ``DS_Combin_two``).
* [INFERRED] ``supervise_branches``: the EDL loss (and its KL) on each branch's opinion as well as on the
  fused one, as TMC trains (``loss += ce(y, alpha_v)`` per view, then on the fused alpha).
* ``loss_type: digamma`` + ``with_kl`` (annealed KL(Dir(alpha~) || Dir(1))), as TMC's ``ce_loss``.
* ``ruc_form: avuc``: L_RUC as Krishnan & Tickoo's AvUC; [INFERRED] u_th = the batch's mean u
  (``ruc_threshold``) and stop-gradient confidence weights (``ruc_detach_confidence``). ``euc`` is the
  released code's per-sample ``loss_avu`` (DEAR's EUC), kept as an option.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferkit.config import Rule, above, at_least, between, field_rules, one_of, register_method_config
from ferkit.data.transforms import AUGMENTS
from ferkit.errors import ConfigError
from ferkit.losses.evidential import RUC_FORMS

PAPER_TEMPLATE = "a photo of a {} facial expression."
#: what each variant means for the options left at None
VARIANTS: dict[str, dict] = {
    "released": {"prompt_template": "{}", "fusion": "score", "loss_type": "mse", "with_kl": False,
                 "with_avu": False, "teacher_view": "same", "normalize_text_at_test": False,
                 "evidence": "relu", "evidence_extractor": "fixed", "supervise_branches": False, "ruc_form": "euc"},
    "paper": {"prompt_template": PAPER_TEMPLATE, "fusion": "ds", "loss_type": "digamma", "with_kl": True,
              "with_avu": True, "teacher_view": "augmented", "normalize_text_at_test": True,
              "evidence": "softplus", "evidence_extractor": "learnable", "supervise_branches": True,
              "ruc_form": "avuc"},
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
    alpha: float = 0.1                   # weight of the LOCAL branch under score fusion (0.1 RAF-DB, 0.3 AffectNet)
    topk: int = 16                       # patches averaged per class in the local affinity
    fix_layer: int = 2                   # layers with id <= fix_layer frozen (stem 0, block i -> i+1); 2 / 8
    layer_decay: float = 0.65            # layer-wise lr decay: scale = layer_decay ** (depth + 1 - layer_id)
    weight_decay: float = 5e-4           # AdamW weight decay on >= 2-D parameters (1-D: none)
    warmup_epochs: float = 5.0           # linear warmup length (epochs); the lr is set every iteration
    min_lr: float = 1e-8                 # cosine floor
    lamda_kd: float = 1.0                # weight of the L1 distillation towards the frozen teacher's CLS projection
    lamda_ruc: float = 1.0               # weight of L_RUC (inert in the released code)
    evidence: str | None = None          # evidence function g: relu (released) | softplus (paper [INFERRED]) | exp
    evidence_extractor: str | None = None  # fixed: g(A / ||A||) (released) | learnable: g(tau_b (A_b - mean A_b))
    #                                      with a learnable tau per branch (paper [INFERRED])
    evidence_scale_init: float | None = None  # tau at the start (learnable extractor); None = the CLIP's logit scale
    class_names: list[str] | None = None  # prompt words per class, in label order (None = UA-FER's words)
    prompt_template: str | None = None   # "{}" (released) | "a photo of a {} facial expression." (paper)
    fusion: str | None = None            # score (linear, before the evidence; released) | ds (Dempster-Shafer)
    supervise_branches: bool | None = None  # EDL (+ KL) on each branch's opinion too, as TMC (paper [INFERRED]); ds only
    loss_type: str | None = None         # mse (released) | log | digamma (paper)
    with_kl: bool | None = None          # add the annealed KL(Dir(alpha~) || Dir(1)) regulariser
    with_avu: bool | None = None         # add lamda_ruc * L_RUC (the released code's flag is inert)
    ruc_form: str | None = None          # avuc (Krishnan & Tickoo's batch AvUC; paper) | euc (the released loss_avu)
    ruc_threshold: float | None = None   # AvUC uncertainty threshold u_th; None = the batch's mean u [INFERRED]
    ruc_detach_confidence: bool = True   # AvUC's p_hat weights without gradient, so it moves u only [INFERRED]
    avu_disentangle: bool = False        # EUC with -log(p(1-u)) / -log((1-p)u) terms
    annealing: str = "step"              # lambda_t (KL weight; EUC mix): step = min(1, epoch / annealing_step) | exp
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



field_rules(UAFerConfig, variant=one_of(*VARIANTS), alpha=between(0, 1), topk=at_least(1), fix_layer=at_least(-1),
            layer_decay=Rule(lo=0, hi=1, lo_open=True), weight_decay=at_least(0), warmup_epochs=at_least(0),
            min_lr=at_least(0), lamda_kd=at_least(0), lamda_ruc=at_least(0),
            evidence=one_of("relu", "exp", "softplus"), evidence_extractor=one_of("fixed", "learnable"),
            evidence_scale_init=above(0), fusion=one_of("score", "ds"), loss_type=one_of("mse", "log", "digamma"),
            ruc_form=one_of(*RUC_FORMS), ruc_threshold=Rule(lo=0, hi=1, lo_open=True),
            annealing=one_of("step", "exp"), annealing_step=above(0), teacher_view=one_of("same", "augmented"),
            augment=one_of(*AUGMENTS), image_size=at_least(16), resize=one_of("bicubic", "bilinear"),
            align=one_of("none", "mtcnn5"), teacher_cache=one_of("auto", "on", "off"),
            teacher_cache_size=at_least(0))

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


def validate(m: UAFerConfig) -> None:
    """Refuse option values and combinations that cannot run, in one sentence naming the key."""
    if m.variant not in VARIANTS:
        raise ConfigError(f"model.variant is '{m.variant}'; use one of {', '.join(VARIANTS)}.")
    checks = [("fusion", m.resolved("fusion"), ("score", "ds")),
              ("loss_type", m.resolved("loss_type"), ("mse", "log", "digamma")),
              ("teacher_view", m.resolved("teacher_view"), ("same", "augmented")),
              ("evidence", m.resolved("evidence"), ("relu", "exp", "softplus")),
              ("evidence_extractor", m.resolved("evidence_extractor"), ("fixed", "learnable")),
              ("ruc_form", m.resolved("ruc_form"), RUC_FORMS),
              ("annealing", m.annealing, ("step", "exp")), ("resize", m.resize, ("bicubic", "bilinear"))]
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"model.{key} is '{value}'; use one of {', '.join(allowed)}.")
    if m.resolved("with_avu") and m.resolved("ruc_form") == "euc" and m.resolved("loss_type") == "mse":
        raise ConfigError("model.ruc_form euc needs model.loss_type log or digamma (the EUC term is defined there).")
    if m.resolved("supervise_branches") and m.resolved("fusion") != "ds":
        raise ConfigError("model.supervise_branches needs model.fusion ds (score fusion has no branch opinions).")
    if m.evidence_scale_init is not None and m.evidence_scale_init <= 0:
        raise ConfigError(f"model.evidence_scale_init must be > 0, got {m.evidence_scale_init}.")
    if m.ruc_threshold is not None and not 0.0 < m.ruc_threshold <= 1.0:
        raise ConfigError(f"model.ruc_threshold must be in (0, 1] (u = C / S is), got {m.ruc_threshold}.")
    if "{}" not in m.resolved("prompt_template"):
        raise ConfigError("model.prompt_template must contain '{}' where the class name goes.")
    if m.teacher_cache not in ("auto", "on", "off") or m.teacher_cache_size < 0:
        raise ConfigError(f"model.teacher_cache is '{m.teacher_cache}' (use auto, on or off) and "
                          f"model.teacher_cache_size {m.teacher_cache_size} (use >= 0).")
    if m.topk < 1 or not 0.0 <= m.alpha <= 1.0:
        raise ConfigError(f"model.topk must be >= 1 and model.alpha in [0, 1], got {m.topk} and {m.alpha}.")


def describe_settings(m: UAFerConfig, scales: tuple[float, float] | None) -> dict[str, str]:
    """The fusion, evidence and loss lines of the run log, naming only the settings that act (``alpha`` only
    under score fusion, the annealing only when a KL or EUC term uses it, ...); ``scales`` = current tau."""
    topk = f"top-{m.topk} patches per class"
    if m.resolved("fusion") == "score":
        fusion = f"score: alpha s_local + (1 - alpha) s_global with alpha {m.alpha}, {topk}"
    else:
        fusion = f"Dempster-Shafer of the global and local opinions (TMC DS_Combin_two), {topk}"
    g = m.resolved("evidence")
    if m.resolved("evidence_extractor") == "fixed":
        evidence = f"fixed: e = {g}(A / ||A||), the class-normalised affinity"
    else:
        tau = "" if scales is None else f", now {scales[0]:.3g} / {scales[1]:.3g} (global / local)"
        evidence = f"learnable: e_b = {g}(tau_b (A_b - mean_c A_b)), tau_b learnable per branch{tau}"
    anneal = (f"step over {m.annealing_step:g} epochs" if m.annealing == "step" else "exp") + " annealing"
    loss = f"{m.resolved('loss_type')} EDL"
    if m.resolved("supervise_branches"):
        loss += " on the fused and on each branch's opinion"
    if m.resolved("with_kl"):
        loss += f" + KL to Dir(1) ({anneal})"
    if m.resolved("with_avu"):
        if m.resolved("ruc_form") == "avuc":
            th = "the batch's mean u" if m.ruc_threshold is None else f"{m.ruc_threshold:g}"
            conf = "without gradient" if m.ruc_detach_confidence else "with gradient"
            loss += f" + {m.lamda_ruc:g} AvUC (Krishnan & Tickoo; u_th {th}, confidence weights {conf})"
        else:
            form = "disentangled " if m.avu_disentangle else ""
            loss += f" + {m.lamda_ruc:g} {form}EUC (the released loss_avu, {anneal})"
    loss += f" + {m.lamda_kd:g} KD" + (" (teacher CLS normalised)" if m.kd_normalize_teacher else "")
    return {"fusion": fusion, "evidence": evidence, "loss": loss}
