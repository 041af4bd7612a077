"""What the seed-style API classes (DICEFER, UAFER) share: training through the engine, the preprocessing
of loader batches, and save / load in the one ferkit checkpoint format.

``train`` runs ``ferkit.engine.trainer.train`` on the class's method: the same loop, rules, checkpoints
and logs as ``ferkit train``. A loader over a ferkit dataset (``FERDataset``, or a ``PairDataset`` over
one) is read as its split, and the engine draws the order, pairs and augmentation from the seed exactly
as ``ferkit train`` does, so the API and the CLI with the same settings and seed train the same weights.
Any other loader (plain ``(images, labels)`` tuples or dict batches) is run as it comes
(``engine/external.py``); its images are preprocessed as ``ferkit train`` preprocesses files
(``fit_images``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ferkit.errors import ConfigError, DataError


def fit_images(x, pre, who: str) -> torch.Tensor:
    """An image batch as the model's input (B, C, S, S), preprocessed as ``ferkit train`` does.

    uint8 (B, C, H, W) images, and float ones with values in [0, 1] (``ToTensor`` images, quantised to
    uint8), go through the test-time transform of ``data/transforms.py`` (antialiased resize, Pillow's
    luma for RGB -> gray, normalisation, whitening); float batches already of the model's shape outside
    [0, 1] are taken as preprocessed (what a ferkit loader yields) and passed on unchanged.
    """
    from ferkit.data.transforms import preprocess_batch

    x = torch.as_tensor(x)
    if x.dim() != 4 or x.shape[1] not in (1, 3, 4):
        raise DataError(f"{who} expects image batches of shape (B, C, H, W) with 1 or 3 channels, got "
                        f"{tuple(x.shape)}.")
    if x.is_floating_point():
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            if tuple(x.shape[1:]) == (pre.channels, pre.size, pre.size):
                return x.float()
            raise DataError(f"{who} got float images of shape {tuple(x.shape)} with values outside [0, 1]; pass "
                            f"uint8 or [0, 1] images, or images already preprocessed to ({pre.channels}, "
                            f"{pre.size}, {pre.size}).")
        x = (x.float() * 255.0).round().to(torch.uint8)
    elif x.dtype != torch.uint8:
        raise DataError(f"{who} got images of dtype {x.dtype}; pass uint8 or float images.")
    arrays = list(x.permute(0, 2, 3, 1).cpu().numpy())                        # B x (H, W, C) uint8
    return preprocess_batch(arrays, pre)                                       # (B, C, S, S)


def _record_split(loader):
    """The ``DatasetSplit`` behind a loader over a ferkit dataset, else None."""
    from ferkit.data.torch_dataset import FERDataset

    dataset = getattr(loader, "dataset", None)
    base = getattr(dataset, "base", dataset)                  # PairDataset wraps a FERDataset
    return base.split if isinstance(base, FERDataset) else None


class CheckpointedModel:
    """Mixin for an API class holding ``cfg``, ``method``, ``label_space``, ``history`` (and device/amp)."""

    #: registry name of the method this class wraps, and its display name for error messages
    method_name: str = ""
    display_name: str = ""

    def _batch_dict(self, batch) -> dict:
        """A loader's batch as a dict: ferkit's dict batches as they are, plain (images, labels) tuples keyed."""
        from ferkit.errors import DataError

        if isinstance(batch, dict):
            return dict(batch)
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return {"image": batch[0], "expression": batch[1]}
        raise DataError(f"A {type(self).__name__} loader must yield (images, labels) or ferkit dict batches with "
                        f"'image' and 'expression'; got {type(batch).__name__}.")

    # --- training through the engine ---------------------------------------------------------------------
    def _convert(self, raw, phase, key) -> dict | None:
        """A loader batch as an engine batch (``LoaderSplit``); methods with pairs form them here."""
        return self._to_batch(raw)

    def _split_for(self, loader, name: str):
        from ferkit.engine.external import LoaderSplit

        split = _record_split(loader)
        if split is None:
            return LoaderSplit(loader, self._convert, self.label_space, name)
        if split.label_space.num_classes != self.label_space.num_classes:
            raise ConfigError(f"The {name} loader's dataset has {split.label_space.num_classes} classes but this "
                              f"{self.display_name} has {self.label_space.num_classes}.")
        return split

    def _set_schedule(self, epochs: int, learning_rate: float) -> None:
        """Epochs and learning rate into the config and into optimisers already built."""
        self.cfg.train.epochs, self.cfg.train.lr = int(epochs), float(learning_rate)
        stages = self.method.stage_epochs() if hasattr(self.method, "stage_epochs") else {}
        for phase in self.method.phases():
            phase.epochs = stages.get(phase.name, int(epochs))
            for opt in phase.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = float(learning_rate) * group.get("lr_scale", 1.0)

    def _engine_train(self, train_loader, val_loader, epochs: int, learning_rate: float, progress: bool,
                      out: str | Path | None, resume: str | None) -> list[dict]:
        """Train with ``ferkit.engine.trainer.train``; with a validation loader, keep the best weights."""
        import tempfile

        from ferkit.engine.checkpoint import load_network_weights, read_checkpoint
        from ferkit.engine.trainer import train

        cfg = self.cfg
        self._set_schedule(epochs, learning_rate)
        splits = {"train": self._split_for(train_loader, "train")}
        if val_loader is not None:
            splits["val"] = self._split_for(val_loader, "val")
        if getattr(train_loader, "batch_size", None):
            cfg.train.batch_size = int(train_loader.batch_size)
        cfg.data.num_workers = int(getattr(train_loader, "num_workers", 0) or 0)
        keep_out, keep_cache = cfg.train.out, cfg.data.cache
        with tempfile.TemporaryDirectory(prefix="ferkit-api-") as tmp:
            cfg.train.out, cfg.data.cache = (str(out), keep_cache) if out is not None else (tmp, False)
            try:
                result = train(cfg, resume=resume, splits=splits, progress=progress, method=self.method,
                               rng=getattr(self, "_init_rng", None), console=progress, checkpoints=out is not None)
                self._init_rng = None
                best = result.run_dir / "checkpoints" / "best.safetensors"
                if val_loader is not None and (result.best_weights or best.is_file()):
                    nets = self.method.networks()
                    if result.best_weights:
                        for name, state in result.best_weights.items():
                            nets[name].load_state_dict(state)
                    else:
                        load_network_weights(nets, read_checkpoint(best))
                    self.selected = dict(result.metrics.get("best", {}))
            finally:
                if out is None:
                    cfg.train.out, cfg.data.cache = keep_out, keep_cache
        self.run_dir = Path(out) if out is not None else None
        for row in result.history:
            rec = {"phase": row["phase"], "epoch": row["epoch"], "steps": row["steps"],
                   "skipped_batches": row["skipped_batches"], "refused_steps": row["refused_steps"],
                   **{k[len("train_"):]: v for k, v in row.items() if k.startswith("train_")}}
            if "eval_accuracy" in row:
                rec["val_accuracy"], rec["val_mean_class_accuracy"] = (row["eval_accuracy"],
                                                                       row["eval_mean_class_accuracy"])
            self.history.append(rec)
        self.method.eval_mode()
        return self.history

    def save(self, path: str | Path) -> Path:
        """Write a ferkit checkpoint (.safetensors + JSON metadata); ``ferkit predict`` can load it."""
        from ferkit.engine.checkpoint import save_checkpoint

        meth = self.method
        meta = {"method": self.method_name, "config": self.cfg.to_dict(),
                "label_space": self.label_space.to_dict(), "preprocessing": meth.preprocessing().to_dict(),
                "describe": meth.describe(), "history": self.history}
        return save_checkpoint(path, meth.networks(), meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "fp32"):
        """Rebuild a model saved with ``save`` (or trained by ``ferkit train --method <this method>``); it runs
        in ``precision`` (fp32 by default, whatever precision it was trained in; bf16 or auto are opt-in)."""
        from ferkit.engine.checkpoint import load_method
        from ferkit.engine.devices import amp_dtype

        meth = load_method(path, device)
        if meth.name != cls.method_name:
            raise ConfigError(f"Checkpoint {path} holds a '{meth.name}' model, not {cls.display_name}; load it "
                              "with ferkit.load_model instead.")
        obj = cls.__new__(cls)
        obj.cfg, obj.method, obj.label_space = meth.cfg, meth, meth.label_space
        obj.device, obj.amp_dtype = meth.device, amp_dtype(meth.device, precision)
        obj.history = list(meth.checkpoint_meta.get("history", []))
        return obj
