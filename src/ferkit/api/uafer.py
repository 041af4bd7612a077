"""Python API for UA-FER, on top of ``ferkit.methods.uafer``.

    model = UAFER(num_classes=7, variant="released", clip_path="ViT-B-16.pt", alpha=0.1, topk=16, fix_layer=2)
    model.train(train_loader=train_loader, val_loader=val_loader, epochs=50, learning_rate=1e-4)
    metrics = model.evaluate(test_loader)             # accuracy, mean class accuracy, ECE, AURC, ...
    probs, uncertainty = model.predict(images)        # (B, C), (B,)
    model.save("uafer.safetensors"); model = UAFER.load("uafer.safetensors")

Without ``class_names`` the 7 classes are RAF-DB's order (surprise, fear, disgust, happy, sad, anger,
neutral) and 8 are AffectNet's (neutral, happy, sad, surprise, fear, disgust, anger, contempt); with
``class_names`` the classes are those names in that order (also the prompt words). Loaders may yield
``(images, labels)`` tuples or ferkit dict batches; ``model.dataloader(split)`` builds one with the model's
transform (and the teacher view the paper variant needs). Training is ``ferkit train``'s engine
(``api/persistence.py``): ``out=`` keeps a run folder, ``resume=`` continues one, a ``val_loader`` selects
the best epoch's weights, and plain loaders' images are preprocessed as ``ferkit train`` does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ferkit.api.persistence import CheckpointedModel, fit_images
from ferkit.errors import ConfigError, DataError

log = logging.getLogger("ferkit.uafer")


class UAFER(CheckpointedModel):
    """UA-FER with the keyword names of the released code; any other ``UAFerConfig`` field is accepted."""

    method_name = "uafer"
    display_name = "UA-FER"

    def __init__(self, num_classes: int = 7, variant: str = "released", clip_path: str = "", alpha: float = 0.1,
                 topk: int = 16, fix_layer: int = 2, class_names: list[str] | None = None,
                 model_size: str = "auto", *, label_space=None, device: str = "auto", precision: str = "fp32",
                 seed: int = 42, **options):
        from ferkit.config import build_experiment
        from ferkit.engine.devices import amp_dtype, resolve_device
        from ferkit.engine.seeding import capture_rng, seed_everything
        from ferkit.methods.uafer import UAFERMethod

        self.label_space = label_space or _label_space(num_classes, class_names)
        if self.label_space.num_classes != num_classes:
            raise ConfigError(f"label_space has {self.label_space.num_classes} classes but num_classes={num_classes}.")
        model = {"variant": variant, "clip_path": str(clip_path or ""), "alpha": alpha, "topk": topk,
                 "fix_layer": fix_layer, "class_names": class_names, "model_size": model_size, **options}
        self.cfg = build_experiment("uafer", train={"seed": seed, "device": device, "precision": precision},
                                    model=model)
        seed_everything(seed)                  # as ferkit train does before building the method
        self.device = resolve_device(device)
        self.amp_dtype = amp_dtype(self.device, precision)
        self.method = UAFERMethod(self.cfg, self.label_space, self.device)
        self._init_rng = capture_rng()         # where ferkit train's steps start drawing from
        self.history: list[dict] = []

    @property
    def preprocessing(self):
        return self.method.preprocessing()

    def describe(self) -> dict:
        return self.method.describe()

    def dataloader(self, split, train: bool = False, batch_size: int = 32, num_workers: int = 0):
        """A DataLoader over a ``DatasetSplit`` with the model's transform (training: augmentation, shuffling
        and the extra views the variant needs)."""
        from torch.utils.data import DataLoader

        from ferkit.data.torch_dataset import FERDataset
        from ferkit.data.transforms import build_transform

        m = self.method
        transform = build_transform(m.preprocessing(), train=train, augment=self.cfg.model.augment)
        ds = FERDataset(split, transform, extra_views=(m.extra_views() or None) if train else None)
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return DataLoader(ds, batch_size=batch_size, shuffle=train, generator=gen, num_workers=num_workers)

    def _to_batch(self, batch) -> dict[str, torch.Tensor]:
        out = self._batch_dict(batch)
        for key in ("image", "image_teacher"):
            if key in out:
                out[key] = self._fit_images(torch.as_tensor(out[key]))
        out["expression"] = torch.as_tensor(out["expression"]).long().to(self.device)
        return out

    def _fit_images(self, x: torch.Tensor) -> torch.Tensor:
        """Float (B, 3, S, S) on the device, preprocessed as ferkit train does (``fit_images``)."""
        return fit_images(x, self.preprocessing, "UAFER").to(self.device)

    # --- training -----------------------------------------------------------------------------------------
    def train(self, train_loader, val_loader=None, epochs: int = 50, learning_rate: float = 1e-4,
              progress: bool = True, *, out: str | None = None, resume: str | None = None) -> list[dict]:
        """Fine-tune for ``epochs`` (warmup + cosine lr set every iteration) through ferkit's engine; returns
        one record per epoch. out: keep the run folder there; resume: continue one; with ``val_loader``,
        the best epoch's weights on it are kept (``self.selected`` says which)."""
        if self.cfg.model.resolved("teacher_view") == "augmented":
            log.info("UA-FER paper variant: batches need 'image_teacher' views (use model.dataloader(split, "
                     "train=True)).")
        return self._engine_train(train_loader, val_loader, epochs, learning_rate, progress, out, resume)

    # --- inference ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs (B, C), uncertainty (B,)) for a float batch (B, 3, S, S) preprocessed as ``preprocessing``
        says, or a list of PIL images / uint8 arrays / paths of aligned face crops."""
        x = self._images_to_tensor(images)
        self.method.eval_mode()
        if self.amp_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
                pred = self.method.predict(x)
        else:
            pred = self.method.predict(x)
        return pred.probs.float().cpu(), pred.uncertainty.float().cpu()

    def _images_to_tensor(self, images) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            return self._fit_images(images if images.dim() == 4 else images.unsqueeze(0))
        from ferkit.data.io import read_image
        from ferkit.data.transforms import preprocess_batch

        items = images if isinstance(images, (list, tuple)) else [images]
        arrays = []
        for item in items:
            if isinstance(item, (str, Path)):
                arrays.append(read_image(item))
            elif isinstance(item, np.ndarray):
                arrays.append(item)
            elif hasattr(item, "convert"):                       # PIL image
                arrays.append(np.asarray(item.convert("RGB")))
            else:
                raise DataError(f"UAFER.predict takes tensors, PIL images, uint8 arrays or paths, got "
                                f"{type(item).__name__}.")
        return preprocess_batch(arrays, self.preprocessing).to(self.device)

    def evaluate(self, loader) -> dict[str, float]:
        """Accuracy, mean class accuracy, ECE/NLL/Brier and uncertainty metrics (AURC, error AUROC of u)."""
        from ferkit.engine.evaluate import accuracy_metrics
        from ferkit.metrics.calibration import calibration_metrics
        from ferkit.metrics.uncertainty import uncertainty_metrics

        probs, unc, labels = [], [], []
        for raw in loader:
            b = self._to_batch(raw)
            p, u = self.predict(b["image"])
            probs.append(p)
            unc.append(u)
            labels.append(b["expression"].cpu())
        if not labels:
            raise DataError("The loader given to UAFER.evaluate yielded no samples.")
        p, u, y = torch.cat(probs).numpy(), torch.cat(unc).numpy(), torch.cat(labels).numpy()
        out = accuracy_metrics(p, y)
        out.update(calibration_metrics(p, y))
        out.update(uncertainty_metrics(p, y, u))
        correct = p.argmax(1) == y
        out["uncertainty_mean"] = float(u.mean())
        out["uncertainty_right"] = float(u[correct].mean()) if correct.any() else float("nan")
        out["uncertainty_wrong"] = float(u[~correct].mean()) if (~correct).any() else float("nan")
        return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in out.items()}


def _label_space(num_classes: int, class_names: list[str] | None):
    from ferkit.data import labels

    if class_names is not None:
        if len(class_names) != num_classes:
            raise ConfigError(f"class_names has {len(class_names)} names but num_classes={num_classes}.")
        return labels.LabelSpace("custom", tuple(labels.canonical_name(c) for c in class_names))
    spaces = {7: labels.RAFDB, 8: labels.AFFECTNET8}
    if num_classes not in spaces:
        raise ConfigError(f"UAFER(num_classes={num_classes}) needs class_names=[...] naming the classes; defaults "
                          "exist for 7 (RAF-DB order) and 8 (AffectNet order).")
    return spaces[num_classes]


__all__ = ["UAFER"]
