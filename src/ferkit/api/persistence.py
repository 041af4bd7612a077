"""save / load shared by the seed-style API classes (DICEFER, UAFER): one ferkit checkpoint format."""

from __future__ import annotations

from pathlib import Path

from ferkit.errors import ConfigError


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
