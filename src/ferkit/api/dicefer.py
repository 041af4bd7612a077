"""The seed README's Python API for DICE-FER, on top of ``ferkit.methods.dicefer``.

    model = DICEFER(num_classes=7, feature_dim=64, lambda_exp=1.0, lambda_id=1.0, lambda_adv=0.1)
    model.train(train_loader=train_loader, val_loader=val_loader, epochs=100, learning_rate=1e-4)
    accuracy = model.evaluate(test_loader)          # float in [0, 1]
    mig_score = model.compute_mig_score(test_loader) # modified MIG in nats (METHODS.md A.4)

Training is ``ferkit train``'s engine (``api/persistence.py``): ``train(..., out="runs/x")`` keeps a run
folder (log, metrics.csv, checkpoints), ``resume="runs/x"`` continues it, and with a ``val_loader`` the
weights of the best stage-3 epoch on it are kept. A loader over a ferkit dataset trains exactly what
``ferkit train`` trains with the same settings and seed. Other loaders may yield plain ``(images, labels)``
tuples (uint8 or [0, 1] float images (B, C, H, W), preprocessed as ``ferkit train`` does) or dict batches
("image", "expression", "subject", optionally "image_pair"). Without "image_pair", same-expression pairs are
formed inside each batch (``pair_within_batch``), drawn from the seed and the batch's position.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ferkit.api.persistence import CheckpointedModel, fit_images
from ferkit.errors import ConfigError, DataError

log = logging.getLogger("ferkit.dicefer")
_PAPER_KEYS = ("mu_exp", "nu_exp", "mu_id", "nu_id", "zeta_adv", "delta")


def pair_within_batch(labels: torch.Tensor, subjects: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample a random partner j != i with the same label (a different subject preferred where both
    subjects are known, i.e. >= 0). Returns (kept indices (P,), partner indices (P,)); samples whose label
    occurs once in the batch have no partner and are left out of this step."""
    b = labels.shape[0]
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(b, dtype=torch.bool)        # (B, B)
    pref = same
    if subjects is not None:
        known = subjects >= 0
        other = (subjects[:, None] != subjects[None, :]) & known[:, None] & known[None, :]
        pref = same & other
    use = torch.where(pref.any(1, keepdim=True), pref, same)                            # (B, B)
    score = torch.rand(b, b, generator=generator).masked_fill(~use, -1.0)              # (B, B)
    keep = torch.nonzero(use.any(1)).squeeze(1)                                         # (P,)
    return keep, score.argmax(1)[keep]


class DICEFER(CheckpointedModel):
    """DICE-FER with the seed README's constructor, plus the paper's keyword names.

    Weight mapping (the seed's lambdas scale the paper's coefficients, which stay the paper's defaults):
      lambda_exp -> mu_exp = 0.5 * lambda_exp, nu_exp = 1.0 * lambda_exp   (stage-1 MI terms, Eq. 6)
      lambda_id  -> mu_id  = 0.5 * lambda_id,  nu_id  = 1.0 * lambda_id    (stage-2 MI terms, Eq. 9)
      lambda_adv -> zeta_adv = lambda_adv                                  (adversarial weight, Eq. 11)
    The seed's default lambda_adv=0.1 is kept, so zeta_adv = 0.1 is in force unless you pass
    ``zeta_adv=0.025`` (the paper's best, Fig. 4) or ``lambda_adv=0.025``; the value in force is logged.
    Passing a paper keyword (mu_exp, nu_exp, mu_id, nu_id, zeta_adv, delta) overrides the mapping. Any other
    ``DiceFerConfig`` field (image_size, channels, augment, estimator, ...) may be passed as a keyword.
    """

    method_name = "dicefer"
    display_name = "DICE-FER"

    def __init__(self, num_classes: int = 7, feature_dim: int = 64, lambda_exp: float = 1.0,
                 lambda_id: float = 1.0, lambda_adv: float = 0.1, *, label_space=None, device: str = "auto",
                 precision: str = "fp32", seed: int = 42, backbone_weights: str | None = None, **options):
        from ferkit.config import build_experiment
        from ferkit.engine.devices import amp_dtype, resolve_device
        from ferkit.engine.registry import get_method
        from ferkit.engine.seeding import capture_rng, seed_everything

        model = {"feature_dim": feature_dim, "mu_exp": 0.5 * lambda_exp, "nu_exp": 1.0 * lambda_exp,
                 "mu_id": 0.5 * lambda_id, "nu_id": 1.0 * lambda_id, "zeta_adv": lambda_adv}
        model.update(options)
        self.label_space = label_space or _default_label_space(num_classes)
        if self.label_space.num_classes != num_classes:
            raise ConfigError(f"label_space has {self.label_space.num_classes} classes but num_classes={num_classes}.")
        self.cfg = build_experiment("dicefer", train={"seed": seed, "device": device, "precision": precision,
                                                      "backbone_weights": backbone_weights}, model=model)
        seed_everything(seed)                  # as ferkit train does before building the method
        self.device = resolve_device(device)
        self.amp_dtype = amp_dtype(self.device, precision)
        self.method = get_method("dicefer")(self.cfg, self.label_space, self.device)
        self._init_rng = capture_rng()         # where ferkit train's steps start drawing from
        self.history: list[dict] = []
        src = "paper keyword" if "zeta_adv" in options else "lambda_adv"
        log.info("DICE-FER weights in force: %s (zeta_adv from %s; the paper's best zeta_adv is 0.025)",
                 self.method.describe()["weights_in_force"], src)

    @property
    def preprocessing(self):
        """The ``Preprocessing`` the model expects (use it with ``ferkit.data.transforms.build_transform``)."""
        return self.method.preprocessing()

    def describe(self) -> dict:
        return self.method.describe()

    # --- batches ------------------------------------------------------------------------------------------
    def _to_batch(self, batch) -> dict[str, torch.Tensor]:
        out = self._batch_dict(batch)
        for key in ("image", "image_pair"):
            if key in out:
                out[key] = self._fit_images(torch.as_tensor(out[key]))
        out["expression"] = torch.as_tensor(out["expression"]).long()
        return out

    def _fit_images(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, C, S, S) as the model takes it (``fit_images``: ferkit train's preprocessing)."""
        return fit_images(x, self.preprocessing, "DICEFER")

    def _convert(self, raw, phase, key) -> dict | None:
        """An engine batch; in pair phases, partners drawn inside the batch from (seed, phase, epoch, batch)."""
        from ferkit.engine.seeding import derive_seed

        b = self._to_batch(raw)
        if phase is None or phase.batch_kind != "pairs":
            return b
        return self._pairs(b, torch.Generator().manual_seed(derive_seed(self.cfg.train.seed, *key)))

    def _pairs(self, b: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor] | None:
        """The batch itself when it carries "image_pair"; otherwise pairs formed inside it (None if < 2)."""
        if "image_pair" in b:
            return b
        subj = b.get("subject")
        subj = None if subj is None else torch.as_tensor(subj).long()
        keep, partner = pair_within_batch(b["expression"], subj, gen)
        if keep.numel() < 2:
            return None
        out = {"image": b["image"][keep], "image_pair": b["image"][partner], "expression": b["expression"][keep]}
        if subj is not None:
            out["subject"], out["subject_pair"] = subj[keep], subj[partner]
        return out

    # --- training -----------------------------------------------------------------------------------------
    def train(self, train_loader, val_loader=None, epochs: int = 100, learning_rate: float = 1e-4,
              progress: bool = True, *, out: str | None = None, resume: str | None = None) -> list[dict]:
        """Run stages 1-3, ``epochs`` each (unless stageN_epochs were given), through ferkit's engine; returns
        one record per epoch (phase, epoch, steps, the step's mean scalars, val_accuracy in stage 3).

        out: keep the run folder there (as ``ferkit train --out``); resume: continue a run folder; with
        ``val_loader``, the weights of the best stage-3 epoch on it are kept (``self.selected`` says which).
        Batches with fewer than two same-expression samples cannot form pairs and are skipped (counted in
        ``skipped_batches``).
        """
        return self._engine_train(train_loader, val_loader, epochs, learning_rate, progress, out, resume)

    # --- evaluation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: torch.Tensor):
        """``Prediction`` (probs, embedding = E, extra["identity"] = I) for a batch of images."""
        return self.method.predict(self._fit_images(torch.as_tensor(images)))

    def evaluate(self, loader) -> float:
        """Accuracy (fraction in [0, 1]) of the stage-3 classifier over ``loader``."""
        correct = total = 0
        for raw in loader:
            b = self._to_batch(raw)
            probs = self.predict(b["image"]).probs
            correct += int((probs.argmax(1).cpu() == b["expression"]).sum())
            total += int(b["expression"].numel())
        if total == 0:
            raise DataError("The loader given to DICEFER.evaluate yielded no samples.")
        return correct / total

    @torch.no_grad()
    def embed_pairs(self, loader, seed: int = 0) -> dict[str, np.ndarray]:
        """E_M = psi_M(M), E_N = psi_N(N), I_M = eta_M(M) over same-expression pairs, plus labels/subjects."""
        meth, gen = self.method, torch.Generator().manual_seed(seed)
        meth.eval_mode()
        enc, idn = meth.nets["exp_encoders"], meth.nets["id_encoders"]
        parts: dict[str, list] = {k: [] for k in ("e_m", "e_n", "i_m", "i_n", "expression", "subject")}
        for raw in loader:
            b = self._to_batch(raw)
            p = self._pairs(b, gen)
            if p is None:
                continue
            x_m, x_n = p["image"].to(self.device), p["image_pair"].to(self.device)
            parts["e_m"].append(enc["m"](x_m)[1].float().cpu())
            parts["e_n"].append(enc["n"](x_n)[1].float().cpu())
            parts["i_m"].append(idn["m"](x_m)[1].float().cpu())
            parts["i_n"].append(idn["n"](x_n)[1].float().cpu())
            parts["expression"].append(p["expression"].cpu())
            parts["subject"].append(torch.as_tensor(p.get("subject", torch.full_like(p["expression"], -1))).cpu())
        if not parts["e_m"]:
            raise DataError("The loader yielded no same-expression pairs; use batches with repeated labels.")
        return {k: torch.cat(v).numpy() for k, v in parts.items()}

    def compute_mig_score(self, loader, return_details: bool = False, seeds: tuple[int, ...] = (0, 1, 2),
                          steps: int = 500):
        """The paper's modified MIG, I(E_M; E_N) - I(E_M; I_M) in nats (``ferkit.metrics.modified_mig``),
        over same-expression pairs from ``loader``. With ``return_details`` a dict that also holds both MI
        terms, per-seed values and, where subjects are known, the standard MIG (Chen et al. 2018) of
        [E; I] against the factors (expression, subject)."""
        from ferkit.metrics.modified_mig import modified_mig

        emb = self.embed_pairs(loader)
        details = modified_mig(emb["e_m"], emb["e_n"], emb["i_m"], subjects=emb["subject"], seeds=seeds, steps=steps)
        if not return_details:
            return float(details["mig"])
        if (emb["subject"] >= 0).all():
            from ferkit.metrics.mig import mig

            codes = np.concatenate([emb["e_m"], emb["i_m"]], axis=1)
            factors = np.stack([emb["expression"], emb["subject"]], axis=1)
            details["standard_mig"] = float(mig(codes, factors))
        else:
            details["standard_mig"] = None
            details["standard_mig_reason"] = "subject labels unknown"
        return details


def _default_label_space(num_classes: int):
    from ferkit.data import labels

    spaces = {6: labels.OULU, 7: labels.SYNTHFER, 8: labels.AFFECTNET8}
    if num_classes not in spaces:
        raise ConfigError(f"DICEFER(num_classes={num_classes}) needs label_space=LabelSpace(...) naming the "
                          "classes; defaults exist for 6 (Oulu), 7 (basic) and 8 (with contempt).")
    return spaces[num_classes]


__all__ = ["DICEFER", "pair_within_batch"]
