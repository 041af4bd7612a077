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

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.engine.method import Method, Phase, Prediction, StepContext
from ferkit.errors import ConfigError
from ferkit.losses.mi import DVEma, critic_mi
from ferkit.methods.dicefer_config import DiceFerConfig
from ferkit.methods.dicefer_stages import Stage1Monitor, code_pull, code_stats, converge_classifier, grad_norm
from ferkit.methods.frozen_cache import OutputCache, auto_cache, content_keys
from ferkit.methods.registry import register_method

STAGES = ("stage1", "stage2", "stage3")


def _num(t: torch.Tensor | float) -> float:
    return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)


@register_method("dicefer")
class DiceFerMethod(Method):
    """The engine-facing DICE-FER recipe (networks, three phases, steps, prediction)."""

    #: checkpoints written before ``critic_form`` existed used the concatenation critics
    SAVED_CONFIG_DEFAULTS = {"critic_form": "concat", "stage1_augment": "same"}

    def __init__(self, cfg, label_space, device: torch.device):
        super().__init__(cfg, label_space, device)
        from ferkit.models.dicefer import build_networks

        self.m: DiceFerConfig = cfg.model if cfg.model is not None else DiceFerConfig()
        self._check()
        self.nets = {k: v.to(device) for k, v in build_networks(self.m, label_space.num_classes).items()}
        self.frozen_identity = self.m.identity_encoder == "dlib-resnet"
        if self.frozen_identity:
            self._load_face_recognizer()
        self.weights_report = self._load_weights(cfg.train.backbone_weights)
        self._emas: dict[str, DVEma] = {}
        self.s1_steps = 0                    # stage-1 steps taken (drives the delta warm-up; resumed)
        m = self.m
        self.monitor = Stage1Monitor(m.collapse_var, m.collapse_mi, m.stage1_patience, m.stage1_plateau_tol)
        self.stage3_codes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.stage3_report: dict | None = None
        self.messages: list[tuple[str, str]] = []   # (level, text) not yet taken by the engine (epoch_messages)
        self._phases: list[Phase] | None = None
        self.frozen_cache = self._make_cache()

    def _check(self) -> None:
        """The model config's values against its rules (one place: ``field_rules`` in dicefer_config), for
        configs built in Python rather than read from YAML or ``--set``."""
        from ferkit.config import check_rules

        check_rules(self.m, "model.")

    def _load_face_recognizer(self) -> None:
        """dlib's weights into both frozen identity encoders (a checkpoint's own copy replaces them on load)."""
        from ferkit.external.identity import identity_weights
        from ferkit.models.dlib_resnet import load_dlib_resnet

        path = identity_weights("dlib-resnet")
        for enc in self.nets["id_encoders"].values():
            enc.net.load_state_dict(load_dlib_resnet(path).state_dict())
            enc.requires_grad_(False)

    def _load_weights(self, path: str | None) -> dict | None:
        if not path:
            return None
        from ferkit.models.resnet import load_backbone_weights

        report = None
        for group in ("exp_encoders",) if self.frozen_identity else ("exp_encoders", "id_encoders"):
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

            def adam(*modules: nn.Module, scale: float = 1.0) -> torch.optim.Adam:
                return torch.optim.Adam([p for mod in modules for p in mod.parameters()], lr=lr * scale)

            ep = self.stage_epochs()
            self._phases = [
                Phase("stage1", ep["stage1"],
                      {"s1_encoders": adam(n["exp_encoders"], scale=self.m.encoder_lr_scale),
                       "s1_critics": adam(n["s1_critics"], scale=self.m.critic_lr_scale)}, batch_kind="pairs"),
                Phase("stage2", ep["stage2"], {"s2_encoders": adam(n["id_encoders"]),
                                               "s2_critics": adam(n["s2_critics"]),
                                               "s2_disc": adam(n["discriminators"])}, batch_kind="pairs"),
                Phase("stage3", ep["stage3"], {"classifier": adam(n["classifier"])}, batch_kind="single"),
            ]
        return self._phases

    def trainable(self, phase_name: str) -> tuple[str, ...]:
        """Networks whose weights a phase may change."""
        return {"stage1": ("exp_encoders", "s1_critics"),
                "stage2": (("s2_critics", "discriminators") if self.frozen_identity
                           else ("id_encoders", "s2_critics", "discriminators")),
                "stage3": ("classifier",)}[phase_name]

    def on_phase_start(self, phase: Phase) -> None:
        """Freeze (requires_grad=False) every network the phase must not change, e.g. psi in stages 2-3."""
        keep = self.trainable(phase.name)
        for name, net in self.nets.items():
            net.requires_grad_(name in keep)
        if "exp_encoders" in keep:          # psi will change: what was remembered of it no longer holds
            self.frozen_cache = self._make_cache()
        if phase.name == "stage3":
            self.stage3_codes = []

    def train_mode(self, phase: Phase) -> None:
        """Trainable networks in train mode; frozen ones in eval mode (BatchNorm statistics stay untouched)."""
        keep = self.trainable(phase.name)
        for name, net in self.nets.items():
            net.train(name in keep)

    # --- between epochs: stage 1's watch, stage 3's convergent fit --------------------------------------
    def on_epoch_end(self, phase: Phase, epoch: int) -> None:
        """Stage 1: collapse warnings and the plateau stop. Stage 3, after its last epoch: the classifier
        is fit to convergence on the codes the epochs saw (``stage3_fit="converge"``)."""
        if phase.name == "stage1":
            self.messages.extend(self.monitor.end_epoch(epoch, phase.epochs))
        elif phase.name == "stage3" and epoch + 1 >= phase.epochs and self.stage3_codes:
            e, y, subj = (torch.cat(parts) for parts in zip(*self.stage3_codes, strict=True))
            self.stage3_codes = []
            m = self.m
            self.stage3_report = converge_classifier(
                self.nets["classifier"], e, y, subj.numpy(), max_steps=m.stage3_max_steps,
                patience=m.stage3_patience, holdout=m.stage3_holdout, lr=m.stage3_lr, seed=self.cfg.train.seed)
            r = self.stage3_report
            self.messages.append(("info", f"stage 3: classifier fit to convergence on {r['rows']} frozen codes "
                                 f"({r['held_out_rows']} held out): {r['stopped']} after {r['search_steps']} "
                                 f"steps, held-out loss {r['held_out_loss']:.4f}; refit on all for "
                                 f"{r['refit_steps']} steps"))

    def epoch_messages(self, phase: Phase) -> list[tuple[str, str]]:
        """(level, text) warnings and notes raised since the last call (the engine logs them)."""
        out, self.messages = self.messages, []
        return out

    def phase_finished(self, phase: Phase) -> str | None:
        """Why a phase may stop before its epoch budget: stage 1 once its MI has plateaued."""
        return self.monitor.done if phase.name == "stage1" else None

    def train_augment(self, phase: Phase) -> str:
        """Stage 1 trains on ``model.stage1_augment`` (``same``: ``model.augment``); stages 2-3 on ``model.augment``."""
        if phase.name == "stage1" and self.m.stage1_augment != "same":
            return self.m.stage1_augment
        return self.m.augment

    def run_notes(self) -> dict:
        """Stage 1's per-epoch MI and variance, its warnings and why it stopped; stage 3's fit."""
        return {"stage1": {**self.monitor.state(), "stopped": self.monitor.done or "epoch budget"},
                "stage3_fit": self.stage3_report or self.m.stage3_fit}

    def train_state(self) -> dict:
        return {"s1_steps": self.s1_steps, "monitor": self.monitor.state(), "stage3_report": self.stage3_report}

    def load_train_state(self, state: dict) -> None:
        self.s1_steps = int(state.get("s1_steps", 0))
        self.monitor.load(state.get("monitor", {}))
        self.stage3_report = state.get("stage3_report")

    def describe(self) -> dict:
        m = self.m
        w = self.cfg.train.backbone_weights
        weights = ("random init (no train.backbone_weights given)" if not w else
                   f"{w} ({len(self.weights_report['loaded'])} tensors loaded, "
                   f"{len(self.weights_report['missing'])} missing, {len(self.weights_report['ignored'])} ignored)")
        if getattr(self, "checkpoint_meta", None):   # rebuilt from a checkpoint: say where the weights came from
            weights = self.checkpoint_meta.get("describe", {}).get("weights", weights)
        enc = (f"2 x ResNet-18 (expression), tap {m.tap}, code from {m.code_from}, d={m.feature_dim}; identity: "
               "dlib-resnet, frozen (128-D descriptor, 256-channel map)" if self.frozen_identity else
               f"4 x ResNet-18, tap {m.tap}, code from {m.code_from}, d={m.feature_dim}")
        return {"weights": weights, "encoders": enc,
                "input": f"{m.image_size}x{m.image_size}x{m.channels}, whitening {m.whitening}, augment {m.augment} "
                         f"(stage 1: {m.augment if m.stage1_augment == 'same' else m.stage1_augment})",
                "mi": f"{m.estimator}, stage-1 critic {m.critic_form} marginal {m.marginal}, stage-2 critic concat "
                      f"marginal {m.stage2_marginal}, local {m.local_reduction}, mine_ema {m.mine_ema}",
                "weights_in_force": f"mu_exp={m.mu_exp} nu_exp={m.nu_exp} delta={m.delta} swap={m.swap} "
                                    f"mu_id={m.mu_id} nu_id={m.nu_id} zeta_adv={m.zeta_adv}",
                "epochs": f"{self.stage_epochs()} (stage 1 stops early when its MI plateaus for "
                          f"{m.stage1_patience} epochs; stage 3 then fit: {m.stage3_fit})",
                "open_choices": f"critic_form={m.critic_form} marginal={m.marginal} stage1_augment={m.stage1_augment} "
                                f"delta_warmup_steps={m.delta_warmup_steps} critic_lr_scale={m.critic_lr_scale} "
                                f"encoder_lr_scale={m.encoder_lr_scale} local_reduction={m.local_reduction}",
                "test_encoder": m.test_encoder,
                "frozen_cache": ("off" if self.frozen_cache is None else
                                 f"psi's outputs in stages 2-3 remembered by input content (up to "
                                 f"{self.frozen_cache['m'].capacity} per encoder, {m.frozen_cache_mb} MB)")}

    # --- steps ---------------------------------------------------------------------------------------------
    def _mi(self, term: str, critic: nn.Module, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        ema = None
        if self.m.mine_ema and self.m.estimator == "dv":
            ema = self._emas.setdefault(term, DVEma(self.m.ema_rate))
        reduction = self.m.local_reduction if "local" in term else "sum"
        marginal = self.m.stage2_marginal if term.startswith("s2") else self.m.marginal
        return critic_mi(critic, fmap, code, self.m.estimator, reduction, marginal, ema)

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
        terms = {f"mi_{kind}_{s}": self._mi(f"s1_{kind}_{s}", crit[f"{kind}_{s}"], f, code)
                 for kind in ("global", "local") for s, f, code in (("m", f_m, code_for_m), ("n", f_n, code_for_n))}
        g = terms["mi_global_m"] + terms["mi_global_n"]
        loc = terms["mi_local_m"] + terms["mi_local_n"]
        l1 = (e_m.float() - e_n.float()).abs().mean()
        mi = m.mu_exp * g + m.nu_exp * loc
        pull = code_pull(mi, self.delta_now() * l1, e_m, e_n)
        delta = self.delta_now()
        self.s1_steps += 1
        total = -mi + delta * l1
        ctx.step({"mi_global": g, "mi_local": loc, "l1": l1}, ["s1_encoders", "s1_critics"], total=total)
        stats = code_stats(e_m, e_n)
        e_var = 0.5 * (stats["e_var_m"] + stats["e_var_n"])
        self.monitor.add(_num(g) + _num(loc), e_var)
        return {"mi_global": _num(g), "mi_local": _num(loc), "l1": _num(l1), "loss": _num(total), "delta": delta,
                **{k: _num(v) for k, v in terms.items()}, **stats, "e_collapsed": float(e_var < m.collapse_var),
                **pull, "grad_encoders": grad_norm(enc), "grad_critics": grad_norm(crit)}

    def delta_now(self) -> float:
        """delta in force at this stage-1 step: the paper's constant, or ramped over ``delta_warmup_steps``."""
        w = self.m.delta_warmup_steps
        return self.m.delta if w <= 0 else self.m.delta * min(1.0, self.s1_steps / w)

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
        if self.m.stage3_fit == "converge":
            subj = batch.get("subject")
            subj = torch.full_like(y, -1) if subj is None else torch.as_tensor(subj).long()
            self.stage3_codes.append((e.float().detach().cpu(), y.cpu(), subj.cpu()))
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
