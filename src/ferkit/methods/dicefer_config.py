"""DICE-FER's configuration: every field commented; defaults are the paper's values where it states them,
and for the choices it leaves open ([INFERRED], METHODS.md A.1.2-A.3, A.9) the values measured to work, each
with the paper's literal reading one option away (docs/dicefer-stage1.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ferkit.config import Rule, above, at_least, between, field_rules, one_of, register_method_config
from ferkit.data.transforms import AUGMENTS


@register_method_config("dicefer")
@dataclass
class DiceFerConfig:
    # representation
    feature_dim: int = 64                   # size of E and of I (paper: 64)
    tap: str = "layer4"                     # [INFERRED] feature map F for the statistics nets: layer4 (512x4x4) | layer3
    code_from: str = "pooled"               # [INFERRED] E/I = Linear on the pooled map ("pooled") or the flattened map ("flatten")
    gray_mode: str = "replicate"            # [INFERRED] 3-channel pretrained conv1 into gray input: replicate (sum) | mean
    # input (saved in the checkpoint as the Preprocessing)
    image_size: int = 112                   # aligned face side in pixels (paper: 112)
    channels: int = 1                       # 1 = grayscale (paper), 3 = RGB
    whitening: str = "per_image"            # [INFERRED] paper says "whitening": per_image standardisation | none
    align: str = "auto"                     # face alignment: auto (none for SynthFER, else mtcnn5) | mtcnn5 | none
    template: str = "default"               # alignment template
    augment: str = "dicefer14"              # training augmentation: dicefer14 (7 rotations x flip, paper) | flip | none
    stage1_augment: str = "none"            # [INFERRED] stage 1's augmentation: none | flip | dicefer14 | same (= augment,
    #                                         the literal reading); from random init the MI game does not take off on
    #                                         independently rotated pairs (docs/dicefer-stage1.md)
    # MI estimation
    estimator: str = "dv"                   # dv (paper, Donsker-Varadhan) | jsd (Sanchez/DIM) | infonce
    local_reduction: str = "sum"            # [INFERRED] local bound over locations: sum (paper Eq. 5) | mean (DIM)
    marginal: str = "all_pairs"             # [INFERRED] marginal samples of the DV/JSD log term: all_pairs (every
    #                                         off-diagonal pair of the batch, B(B-1) samples) | permute (one random
    #                                         permutation, B samples: the paper's batch estimate) | roll (shift by one)
    stage2_marginal: str = "permute"        # marginal samples of stage 2's (concat) critics: permute (paper) | roll | all_pairs
    mine_ema: bool = False                  # [INFERRED] MINE's EMA bias-corrected DV gradient (paper: unstated)
    ema_rate: float = 0.01                  # EMA rate for mine_ema
    critic_hidden: int = 512                # statistics-network width (Sanchez: 512)
    critic_form: str = "separable"          # [INFERRED] stage-1 statistics nets: separable (<g(F), h(z)>, scores the
    #                                         agreement of F and z directly; learns from random init) | concat
    #                                         (MINE/Sanchez MLP on [F; z], the literal reading; stage 2 always concat)
    critic_lr_scale: float = 1.0            # [INFERRED] statistics nets' lr = train.lr x this (paper: one lr)
    encoder_lr_scale: float = 1.0           # [INFERRED] encoders' lr = train.lr x this (paper: one lr)
    # stage 1 (Eq. 6-8)
    mu_exp: float = 0.5                     # weight of the global expression MI terms
    nu_exp: float = 1.0                     # weight of the local expression MI terms
    delta: float = 0.1                      # weight of the L1 distance between E_M and E_N
    swap: bool = True                       # SER: score M's map against E_N (False = non-swapped ablation)
    delta_warmup_steps: int = 500           # [INFERRED] delta ramps linearly from 0 over this many stage-1
    #                                         steps, so L1's scale-free pull cannot shrink E to a constant while the
    #                                         MI estimate is still noise (0 = the paper's constant delta)
    # stage 2 (Eq. 9-11)
    identity_encoder: str = "resnet18"      # the identity encoders eta: resnet18 (trained in stage 2, the paper) |
    #                                         dlib-resnet (a real face recognizer, frozen: I is its 128-D descriptor
    #                                         and F^id its 256-channel map; needs channels 3, whitening none and
    #                                         pip install 'ferkit[identity]'; stage 2 then trains critics and
    #                                         discriminators only)
    mu_id: float = 0.5                      # weight of the global identity MI terms
    nu_id: float = 1.0                      # weight of the local identity MI terms
    zeta_adv: float = 0.025                 # [INFERRED from Fig. 4] adversarial weight (best of the paper's sweep)
    disc_hidden: tuple[int, int] = (1000, 200)  # discriminator hidden sizes (Sanchez gan.py)
    # stage 3
    classifier_hidden: tuple[int, int] = (128, 64)  # [INFERRED] two hidden FC layers on E
    test_encoder: str = "m"                 # [INFERRED] E at test time: "m" (psi_M) | "mean" (average of psi_M, psi_N)
    stage3_fit: str = "converge"            # [INFERRED] after stage 3's epochs, fit the classifier on the codes
    #                                         they saw until a held-out part's loss stops improving ("converge"),
    #                                         or keep the epochs' SGD steps only ("epochs", the literal reading)
    stage3_max_steps: int = 4000            # cap on the convergent fit's Adam steps
    stage3_patience: int = 10               # evaluations (every 25 steps) without held-out improvement
    stage3_holdout: float = 0.2             # held-out share of the codes (whole subjects where known)
    stage3_lr: float = 1e-3                 # Adam lr of the convergent fit
    # stage-1 watch: collapse warnings and the plateau stop (ferkit.methods.dicefer_stages.Stage1Monitor)
    collapse_var: float = 1e-3              # warn when E's mean per-dimension variance falls below this
    collapse_mi: float = 0.05               # warn when an epoch's MI estimate (global + local) stays within this of 0
    stage1_patience: int = 5                # stop stage 1 when its MI has not risen for this many epochs (0 = never)
    stage1_plateau_tol: float = 0.02        # a rise counts when above this fraction of the best MI so far
    # speed only (same numbers): psi is frozen in stages 2-3, so its outputs are a function of the input tensor
    frozen_cache: str = "auto"              # remember psi's (F, E) by input content: auto (on the CPU, when the
    #                                         training augmentation repeats inputs: none, flip, dicefer14) | on | off
    frozen_cache_mb: int = 2048             # memory for the remembered rows, both encoders together
    # schedule (None = train.epochs); paper: "100 epochs" (per stage or total: unclear)
    stage1_epochs: int | None = None        # epochs of stage 1
    stage2_epochs: int | None = None        # epochs of stage 2
    stage3_epochs: int | None = None        # epochs of stage 3


field_rules(DiceFerConfig, feature_dim=at_least(1), tap=one_of("layer4", "layer3"),
            code_from=one_of("pooled", "flatten"), gray_mode=one_of("replicate", "mean"), image_size=at_least(16),
            channels=one_of(1, 3),
            whitening=one_of("per_image", "none"), align=one_of("auto", "mtcnn5", "none"), augment=one_of(*AUGMENTS),
            stage1_augment=one_of("same", *AUGMENTS),
            estimator=one_of("dv", "jsd", "infonce"), local_reduction=one_of("sum", "mean"),
            marginal=one_of("permute", "roll", "all_pairs"), stage2_marginal=one_of("permute", "roll", "all_pairs"), ema_rate=Rule(lo=0, hi=1, lo_open=True),
            critic_hidden=at_least(1), critic_form=one_of("concat", "separable"), critic_lr_scale=above(0), encoder_lr_scale=above(0),
            mu_exp=at_least(0), nu_exp=at_least(0), delta=at_least(0), delta_warmup_steps=at_least(0),
            identity_encoder=one_of("resnet18", "dlib-resnet"), mu_id=at_least(0), nu_id=at_least(0), zeta_adv=at_least(0), disc_hidden=at_least(1),
            classifier_hidden=at_least(1), test_encoder=one_of("m", "mean"),
            stage3_fit=one_of("converge", "epochs"), stage3_max_steps=at_least(0), stage3_patience=at_least(1), stage3_holdout=between(0, 1, hi_open=True),
            stage3_lr=above(0), collapse_var=at_least(0), collapse_mi=at_least(0), stage1_patience=at_least(1),
            stage1_plateau_tol=at_least(0), frozen_cache=one_of("auto", "on", "off"), frozen_cache_mb=at_least(0),
            stage1_epochs=at_least(0), stage2_epochs=at_least(0), stage3_epochs=at_least(1))
