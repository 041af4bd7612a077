"""DICE-FER (Aquib et al., CVPR-W 2025): identity-invariant expression codes by mutual information.

Three phases (METHODS.md A.2-A.3), each a ``Phase`` the engine runs in order:
  stage1  max  L^exp = mu_exp (I_g(M, E_N) + I_g(N, E_M)) + nu_exp (I_l(M, E_N) + I_l(N, E_M)) - delta |E_M - E_N|_1
          over psi_M, psi_N and the stage-1 statistics nets (Eq. 6-8; SER = the swapped codes).
  stage2  psi frozen; max over eta and stage-2 statistics nets
          L^id = mu_id (I_g(M, T_M) + I_g(N, T_N)) + nu_id (I_l(M, T_M) + I_l(N, T_N)) - zeta_adv (L^adv_M + L^adv_N)
          with T = [E; I], the image entering as the concatenated map [F^exp; F^id] (Eq. 9-11); the
          discriminators see joint (E, I) as fake and identity-shuffled (E, I_perm) as real (alternating steps).
  stage3  cross-entropy classifier on the frozen (detached) expression code E.
I_g / I_l are the global / local MI lower bounds of ``ferkit.losses.mi`` (DV by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.config import Rule, at_least, field_rules, one_of, register_method_config
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.transforms import AUGMENTS
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError
from ferkit.losses.mi import DVEma, critic_mi
from ferkit.methods.frozen_cache import OutputCache, auto_cache, content_keys
from ferkit.methods.registry import register_method

STAGES = ("stage1", "stage2", "stage3")


def _num(t: torch.Tensor | float) -> float:
    return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)


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
    # MI estimation
    estimator: str = "dv"                   # dv (paper, Donsker-Varadhan) | jsd (Sanchez/DIM) | infonce
    local_reduction: str = "sum"            # [INFERRED] local bound over locations: sum (paper Eq. 5) | mean (DIM)
    marginal: str = "permute"               # [INFERRED] marginal samples: permute (random within batch) | roll (shift by one)
    mine_ema: bool = False                  # [INFERRED] MINE's EMA bias-corrected DV gradient (paper: unstated)
    ema_rate: float = 0.01                  # EMA rate for mine_ema
    critic_hidden: int = 512                # statistics-network width (Sanchez: 512)
    # stage 1 (Eq. 6-8)
    mu_exp: float = 0.5                     # weight of the global expression MI terms
    nu_exp: float = 1.0                     # weight of the local expression MI terms
    delta: float = 0.1                      # weight of the L1 distance between E_M and E_N
    swap: bool = True                       # SER: score M's map against E_N (False = non-swapped ablation)
    # stage 2 (Eq. 9-11)
    mu_id: float = 0.5                      # weight of the global identity MI terms
    nu_id: float = 1.0                      # weight of the local identity MI terms
    zeta_adv: float = 0.025                 # [INFERRED from Fig. 4] adversarial weight (best of the paper's sweep)
    disc_hidden: tuple[int, int] = (1000, 200)  # discriminator hidden sizes (Sanchez gan.py)
    # stage 3
    classifier_hidden: tuple[int, int] = (128, 64)  # [INFERRED] two hidden FC layers on E
    test_encoder: str = "m"                 # [INFERRED] E at test time: "m" (psi_M) | "mean" (average of psi_M, psi_N)
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
            estimator=one_of("dv", "jsd", "infonce"), local_reduction=one_of("sum", "mean"),
            marginal=one_of("permute", "roll"), ema_rate=Rule(lo=0, hi=1, lo_open=True),
            critic_hidden=at_least(1), mu_exp=at_least(0), nu_exp=at_least(0), delta=at_least(0), mu_id=at_least(0),
            nu_id=at_least(0), zeta_adv=at_least(0), disc_hidden=at_least(1), classifier_hidden=at_least(1),
            test_encoder=one_of("m", "mean"), frozen_cache=one_of("auto", "on", "off"), frozen_cache_mb=at_least(0),
            stage1_epochs=at_least(0), stage2_epochs=at_least(0), stage3_epochs=at_least(1))


@register_method("dicefer")
class DiceFerMethod(Method):
    """The engine-facing DICE-FER recipe (networks, three phases, steps, prediction)."""

    def __init__(self, cfg, label_space, device: torch.device):
        super().__init__(cfg, label_space, device)
        from ferkit.models.dicefer import build_networks

        self.m: DiceFerConfig = cfg.model if cfg.model is not None else DiceFerConfig()
        self._check()
        self.nets = {k: v.to(device) for k, v in build_networks(self.m, label_space.num_classes).items()}
        self.weights_report = self._load_weights(cfg.train.backbone_weights)
        self._emas: dict[str, DVEma] = {}
        self._phases: list[Phase] | None = None
        self.frozen_cache = self._make_cache()

    def _check(self) -> None:
        m = self.m
        if m.frozen_cache not in ("auto", "on", "off") or m.frozen_cache_mb < 0:
            raise ConfigError(f"model.frozen_cache is '{m.frozen_cache}' (use auto, on or off) and "
                              f"model.frozen_cache_mb {m.frozen_cache_mb} (use >= 0).")
        choices = {"estimator": ("dv", "jsd", "infonce"), "local_reduction": ("sum", "mean"),
                   "marginal": ("permute", "roll"), "test_encoder": ("m", "mean"),
                   "whitening": ("none", "per_image"), "channels": (1, 3),
                   "align": ("auto", "mtcnn5", "none")}
        for key, allowed in choices.items():
            if getattr(m, key) not in allowed:
                raise ConfigError(f"model.{key} must be one of {', '.join(map(str, allowed))}, "
                                  f"got {getattr(m, key)!r}.")

    def _load_weights(self, path: str | None) -> dict | None:
        if not path:
            return None
        from ferkit.models.resnet import load_backbone_weights

        report = None
        for group in ("exp_encoders", "id_encoders"):
            for enc in self.nets[group].values():
                report = load_backbone_weights(enc.trunk, path)
        return report

    def _make_cache(self) -> dict[str, OutputCache] | None:
        """One :class:`OutputCache` per expression encoder (psi_M, psi_N), rows [flatten(F); E], sized so
        both fit in ``frozen_cache_mb``; None when off (see :func:`auto_cache` for "auto")."""
        m = self.m
        on = auto_cache(m.augment, self.device) if m.frozen_cache == "auto" else m.frozen_cache == "on"
        c, h, w = self.nets["exp_encoders"]["m"].map_shape
        row_bytes = 4 * (c * h * w + m.feature_dim)
        capacity = m.frozen_cache_mb * 2**20 // (2 * row_bytes)
        if not on or capacity == 0:
            return None
        return {s: OutputCache(capacity) for s in ("m", "n")}

    def _frozen_psi(self, slot: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """psi_slot(x) = (F (B, C, h, w), E (B, d)) of the frozen expression encoder, without autograd;
        rows seen before come from the cache, the others are computed (and remembered)."""
        enc = self.nets["exp_encoders"][slot]
        if self.frozen_cache is None:
            with torch.no_grad():
                return enc(x)

        k = self.cfg.train.batch_size

        def run(rows: torch.Tensor | None) -> torch.Tensor:
            """psi on the missing rows, in zero-padded chunks of exactly train.batch_size rows: kernels give
            a row the same bits whatever shares its batch but not whatever the batch's size, so every row
            is computed as a full training batch computes it (equal to the uncached path; resume-exact)."""
            todo = x if rows is None else x[rows.to(x.device)]                            # (M, C, H, W)
            out = []
            with torch.no_grad():
                for chunk in todo.split(k):
                    pad = chunk.new_zeros((k - chunk.shape[0], *chunk.shape[1:]))
                    f, e = enc(torch.cat([chunk, pad]) if pad.shape[0] else chunk)
                    out.append(torch.cat([f.flatten(1).float(), e.float()], 1)[: chunk.shape[0]])
            return torch.cat(out)                                                         # (M, C*h*w + d)

        out = self.frozen_cache[slot].fetch(content_keys(x), run, x.device)               # (B, C*h*w + d)
        n_map = out.shape[1] - self.m.feature_dim
        return out[:, :n_map].view(x.shape[0], *enc.map_shape), out[:, n_map:]

    # --- engine contract ---------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return self.nets

    def preprocessing(self) -> Preprocessing:
        c = self.m.channels
        return Preprocessing(size=self.m.image_size, channels=c, mean=(0.5,) * c, std=(0.5,) * c,
                             whitening=self.m.whitening, align=self._align(), template=self.m.template)

    def _align(self) -> str:
        if self.m.align != "auto":
            return self.m.align
        return "none" if self.cfg.data.dataset == "synthetic" else "mtcnn5"

    def stage_epochs(self) -> dict[str, int]:
        e = self.cfg.train.epochs
        m = self.m
        return {"stage1": e if m.stage1_epochs is None else m.stage1_epochs,
                "stage2": e if m.stage2_epochs is None else m.stage2_epochs,
                "stage3": e if m.stage3_epochs is None else m.stage3_epochs}

    def phases(self) -> list[Phase]:
        if self._phases is None:
            lr, n = self.cfg.train.lr, self.nets

            def adam(*modules: nn.Module) -> torch.optim.Adam:
                return torch.optim.Adam([p for mod in modules for p in mod.parameters()], lr=lr)

            ep = self.stage_epochs()
            self._phases = [
                Phase("stage1", ep["stage1"], {"s1_encoders": adam(n["exp_encoders"]),
                                               "s1_critics": adam(n["s1_critics"])}, batch_kind="pairs"),
                Phase("stage2", ep["stage2"], {"s2_encoders": adam(n["id_encoders"]),
                                               "s2_critics": adam(n["s2_critics"]),
                                               "s2_disc": adam(n["discriminators"])}, batch_kind="pairs"),
                Phase("stage3", ep["stage3"], {"classifier": adam(n["classifier"])}, batch_kind="single"),
            ]
        return self._phases

    def trainable(self, phase_name: str) -> tuple[str, ...]:
        """Networks whose weights a phase may change."""
        return {"stage1": ("exp_encoders", "s1_critics"),
                "stage2": ("id_encoders", "s2_critics", "discriminators"),
                "stage3": ("classifier",)}[phase_name]

    def on_phase_start(self, phase: Phase) -> None:
        """Freeze (requires_grad=False) every network the phase must not change, e.g. psi in stages 2-3."""
        keep = self.trainable(phase.name)
        for name, net in self.nets.items():
            net.requires_grad_(name in keep)
        if "exp_encoders" in keep:          # psi will change: what was remembered of it no longer holds
            self.frozen_cache = self._make_cache()

    def train_mode(self, phase: Phase) -> None:
        """Trainable networks in train mode; frozen ones in eval mode (BatchNorm statistics stay untouched)."""
        keep = self.trainable(phase.name)
        for name, net in self.nets.items():
            net.train(name in keep)

    def describe(self) -> dict:
        m = self.m
        w = self.cfg.train.backbone_weights
        weights = ("random init (no train.backbone_weights given)" if not w else
                   f"{w} ({len(self.weights_report['loaded'])} tensors loaded, "
                   f"{len(self.weights_report['missing'])} missing, {len(self.weights_report['ignored'])} ignored)")
        if getattr(self, "checkpoint_meta", None):   # rebuilt from a checkpoint: say where the weights came from
            weights = self.checkpoint_meta.get("describe", {}).get("weights", weights)
        return {"weights": weights, "encoders": f"4 x ResNet-18, tap {m.tap}, code from {m.code_from}, d={m.feature_dim}",
                "input": f"{m.image_size}x{m.image_size}x{m.channels}, whitening {m.whitening}, augment {m.augment}",
                "mi": f"{m.estimator}, local {m.local_reduction}, marginal {m.marginal}, mine_ema {m.mine_ema}",
                "weights_in_force": f"mu_exp={m.mu_exp} nu_exp={m.nu_exp} delta={m.delta} swap={m.swap} "
                                    f"mu_id={m.mu_id} nu_id={m.nu_id} zeta_adv={m.zeta_adv}",
                "epochs": str(self.stage_epochs()), "test_encoder": m.test_encoder,
                "frozen_cache": ("off" if self.frozen_cache is None else
                                 f"psi's outputs in stages 2-3 remembered by input content (up to "
                                 f"{self.frozen_cache['m'].capacity} per encoder, {m.frozen_cache_mb} MB)")}

    # --- steps ---------------------------------------------------------------------------------------------
    def _mi(self, term: str, critic: nn.Module, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        ema = None
        if self.m.mine_ema and self.m.estimator == "dv":
            ema = self._emas.setdefault(term, DVEma(self.m.ema_rate))
        reduction = self.m.local_reduction if "local" in term else "sum"
        return critic_mi(critic, fmap, code, self.m.estimator, reduction, self.m.marginal, ema)

    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        if phase.name == "stage1":
            return self.stage1_step(batch, ctx)
        if phase.name == "stage2":
            return self.stage2_step(batch, ctx)
        if phase.name == "stage3":
            return self.stage3_step(batch, ctx)
        raise ConfigError(f"DICE-FER has no phase named {phase.name!r}; its phases are {', '.join(STAGES)}.")

    def stage1_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """Eq. 8: maximise the swapped expression MI minus delta * L1(E_M, E_N)."""
        m, enc, crit = self.m, self.nets["exp_encoders"], self.nets["s1_critics"]
        x_m, x_n = batch["image"].to(self.device), batch["image_pair"].to(self.device)   # (B, C, H, W) each
        with ctx.autocast():
            f_m, e_m = enc["m"](x_m)                                                      # (B, C', h, w), (B, d)
            f_n, e_n = enc["n"](x_n)
        code_for_m, code_for_n = (e_n, e_m) if m.swap else (e_m, e_n)
        g = self._mi("s1_global_m", crit["global_m"], f_m, code_for_m) + \
            self._mi("s1_global_n", crit["global_n"], f_n, code_for_n)
        loc = self._mi("s1_local_m", crit["local_m"], f_m, code_for_m) + \
            self._mi("s1_local_n", crit["local_n"], f_n, code_for_n)
        l1 = (e_m.float() - e_n.float()).abs().mean()
        total = -(m.mu_exp * g + m.nu_exp * loc) + m.delta * l1
        ctx.step({"mi_global": g, "mi_local": loc, "l1": l1}, ["s1_encoders", "s1_critics"], total=total)
        return {"mi_global": _num(g), "mi_local": _num(loc), "l1": _num(l1), "loss": _num(total)}

    def stage2_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """Eq. 11: discriminator step, then identity encoders + statistics nets (psi frozen)."""
        m, n = self.m, self.nets
        x = {"m": batch["image"].to(self.device), "n": batch["image_pair"].to(self.device)}
        feats = {}
        with ctx.autocast():
            for s in ("m", "n"):
                f_e, e = self._frozen_psi(s, x[s])                                        # frozen psi
                f_i, i = n["id_encoders"][s](x[s])                                        # (B, C', h, w), (B, d)
                feats[s] = (torch.cat([f_e, f_i], 1), e.float(), i.float())               # (B, 2C', h, w), ...
        # discriminator: shuffled (E, I_perm) real = 1, joint (E, I) fake = 0, on detached codes
        d_loss = 0.0
        for s in ("m", "n"):
            _, e, i = feats[s]
            perm = torch.randperm(e.shape[0], device=e.device)
            real = n["discriminators"][s](e, i[perm].detach())                           # (B,)
            fake = n["discriminators"][s](e, i.detach())
            d_loss = d_loss + F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        ctx.step({"disc": d_loss}, ["s2_disc"])
        # encoders + statistics nets: MI between each image and its own T = [E; I], plus non-saturating adversary
        g = loc = adv = 0.0
        for s in ("m", "n"):
            fcat, e, i = feats[s]
            t = torch.cat([e, i], 1)                                                      # (B, 2d)
            g = g + self._mi(f"s2_global_{s}", n["s2_critics"][f"global_{s}"], fcat, t)
            loc = loc + self._mi(f"s2_local_{s}", n["s2_critics"][f"local_{s}"], fcat, t)
            joint = n["discriminators"][s](e, i)                                          # (B,)
            adv = adv + F.binary_cross_entropy_with_logits(joint, torch.ones_like(joint))
        total = -(m.mu_id * g + m.nu_id * loc) + m.zeta_adv * adv
        ctx.step({"mi_global": g, "mi_local": loc, "adv": adv}, ["s2_encoders", "s2_critics"], total=total)
        return {"mi_global": _num(g), "mi_local": _num(loc), "adv": _num(adv), "disc": _num(d_loss),
                "loss": _num(total)}

    def stage3_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """Cross-entropy on the frozen expression code (E detached)."""
        x = batch["image"].to(self.device)
        y = batch["expression"].to(self.device)
        with torch.no_grad(), ctx.autocast():
            e = self.expression_code(x, frozen=True)                                     # (B, d)
        logits = self.nets["classifier"](e.float().detach())                             # (B, K)
        ce = F.cross_entropy(logits, y)
        ctx.step({"ce": ce}, ["classifier"])
        acc = (logits.argmax(1) == y).float().mean()
        return {"ce": _num(ce), "acc": _num(acc)}

    # --- inference -----------------------------------------------------------------------------------------
    def expression_code(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """E at test time: psi_M's code, or the mean of psi_M's and psi_N's (``test_encoder``); ``frozen``
        (stage 3, psi fixed) reads remembered codes from the cache."""
        enc = self.nets["exp_encoders"]
        code = (lambda s: self._frozen_psi(s, x)[1]) if frozen else (lambda s: enc[s](x)[1])
        e = code("m")
        if self.m.test_encoder == "mean":
            e = 0.5 * (e + code("n"))
        return e                                                                          # (B, d)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, identity: bool = True) -> Prediction:
        """probs (B, K), embedding = E (B, d), extra["identity"] = I (B, d); eval mode, previous modes restored.

        ``identity=False`` leaves the identity encoder out (a prediction needs only the expression path;
        the identity code is for audits), which halves the work per face."""
        modes = {name: net.training for name, net in self.nets.items()}
        self.eval_mode()
        try:
            x = images.to(self.device)
            e = self.expression_code(x).float()                                           # (B, d)
            ident = self.nets["id_encoders"]["m"](x)[1].float() if identity else None     # (B, d)
            probs = torch.softmax(self.nets["classifier"](e), dim=1)                      # (B, K)
        finally:
            for name, net in self.nets.items():
                net.train(modes[name])
        return Prediction(probs=probs, embedding=e, extra={"identity": ident} if identity else {})
