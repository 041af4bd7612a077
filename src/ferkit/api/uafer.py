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
transform (and the teacher view the paper variant needs).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.api.persistence import CheckpointedModel
from ferkit.errors import ConfigError, DataError, TrainingError

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
        from ferkit.methods.uafer import UAFERMethod

        self.label_space = label_space or _label_space(num_classes, class_names)
        if self.label_space.num_classes != num_classes:
            raise ConfigError(f"label_space has {self.label_space.num_classes} classes but num_classes={num_classes}.")
        model = {"variant": variant, "clip_path": str(clip_path or ""), "alpha": alpha, "topk": topk,
                 "fix_layer": fix_layer, "class_names": class_names, "model_size": model_size, **options}
        self.cfg = build_experiment("uafer", train={"seed": seed, "device": device, "precision": precision},
                                    model=model)
        self.device = resolve_device(device)
        self.amp_dtype = amp_dtype(self.device, precision)
        self.method = UAFERMethod(self.cfg, self.label_space, self.device)
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
        """Float (B, 3, S, S) on the device (gray replicated to RGB; bicubic resize to the model's size)."""
        size = self.preprocessing.size
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise DataError(f"UAFER expects image batches of shape (B, 3, H, W), got {tuple(x.shape)}.")
        x = x.float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        return x.to(self.device)

    # --- training -----------------------------------------------------------------------------------------
    def train(self, train_loader, val_loader=None, epochs: int = 50, learning_rate: float = 1e-4,
              progress: bool = True) -> list[dict]:
        """Fine-tune for ``epochs`` (warmup + cosine lr set every iteration); returns per-epoch records."""
        from ferkit.engine.logging import progress_enabled
        from ferkit.engine.method import StepContext

        self.cfg.train.epochs, self.cfg.train.lr = epochs, learning_rate
        meth = self.method
        phase = meth.phases()[0]
        phase.epochs = epochs
        if self.cfg.model.resolved("teacher_view") == "augmented":
            log.info("UA-FER paper variant: batches need 'image_teacher' views (use model.dataloader(split, "
                     "train=True)).")
        refused = {"row": 0}

        def on_nonfinite(term: str) -> None:
            refused["row"] += 1
            log.warning("UA-FER: step refused (non-finite %s)", term)
            if refused["row"] > self.cfg.train.max_nonfinite_in_row:
                raise TrainingError(f"UA-FER refused {refused['row']} steps in a row for non-finite values; lower "
                                    "learning_rate or check the inputs.")

        ctx = StepContext(phase.optimizers, self.device, self.amp_dtype, on_nonfinite=on_nonfinite)
        ctx.iters_per_epoch = max(1, len(train_loader))
        for epoch in range(epochs):
            meth.train_mode(phase)
            ctx.epoch = epoch
            sums: dict[str, float] = {}
            steps = 0
            batches = train_loader
            if progress_enabled(progress):
                from tqdm import tqdm
                batches = tqdm(train_loader, desc=f"UA-FER {epoch + 1}/{epochs}", leave=False)
            for i, raw in enumerate(batches):
                ctx.iteration, ctx.refused_in_step = i, False
                out = meth.train_step(phase, self._to_batch(raw), ctx)
                if not ctx.refused_in_step:
                    refused["row"] = 0
                ctx.global_step += 1
                steps += 1
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
            record = {"epoch": epoch + 1, "steps": steps, **{k: v / max(1, steps) for k, v in sums.items()}}
            if val_loader is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            log.info("UA-FER %s", record)
            self.history.append(record)
        meth.eval_mode()
        return self.history

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
