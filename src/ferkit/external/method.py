"""ExternalMethod: a model ferkit did not train, behind the same interface as ferkit's own methods.

Everything that runs a checkpoint (``FERModel``, ``collect_predictions``, the evaluation report,
cross-dataset matrices, ONNX export, the web server) calls ``method.predict`` on preprocessed batches
and reads ``method.label_space`` and ``method.preprocessing()``; an ExternalMethod provides exactly
those, so no command needs a special case. Scores the spec calls logits go through a softmax; scores
it calls probabilities are checked to be probabilities. Torch-backed models (ResNet state dicts, the
built-in mini-Xception) also return their pooled features as the embedding, so identity leakage is
audited on them; ONNX models expose no embedding.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ferkit.engine.method import Method, Prediction
from ferkit.errors import CheckpointError, FerkitError
from ferkit.external.spec import ModelSpec


class ExternalMethod(Method):
    """An external classifier: ``net`` is an nn.Module returning (scores, features), or an OnnxNet."""

    name = "external"

    def __init__(self, spec: ModelSpec, net, device: torch.device, provenance: dict | None = None):
        super().__init__(None, spec.label_space(), device)
        self.spec = spec
        self.model_name = spec.name
        self.provenance = dict(provenance or {})
        self.net = net
        if isinstance(net, nn.Module):
            net.to(device).eval()

    @property
    def onnx_net(self):
        """The OnnxNet when this model runs in onnxruntime, else None."""
        return None if isinstance(self.net, nn.Module) else self.net

    # --- what inference needs ------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net} if isinstance(self.net, nn.Module) else {}

    def preprocessing(self):
        return self.spec.preprocessing()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        """(B, C, S, S) preprocessed -> probabilities over the spec's classes (and features for torch nets)."""
        feats = None
        if isinstance(self.net, nn.Module):
            scores, feats = self.net(images.to(self.device))                           # (B, K), (B, D)
            scores = scores.float()
        else:
            scores = torch.from_numpy(self.net.run(images.detach().float().cpu().numpy()))  # (B, K)
        k = len(self.spec.classes)
        if scores.shape[-1] != k:
            raise CheckpointError(f"Model {self.model_name} outputs {scores.shape[-1]} scores per image but its "
                                  f"spec lists {k} classes ({', '.join(self.spec.original_classes)}); fix the "
                                  "spec's classes.")
        if self.spec.output == "logits":
            probs = torch.softmax(scores, dim=-1)                                       # (B, K)
        else:
            sums = scores.sum(dim=-1)
            if len(scores) and (bool((scores < -1e-4).any()) or bool(((sums - 1).abs() > 1e-3).any())):
                raise CheckpointError(f"Model {self.model_name}'s spec says output: probabilities but its "
                                      f"scores sum to {float(sums[0]):.4g} per image (min {float(scores.min()):.3g}); "
                                      "set output: logits in the spec.")
            probs = scores.clamp_min(0) / scores.clamp_min(0).sum(dim=-1, keepdim=True)
        return Prediction(probs=probs.to(images.device),
                          embedding=feats.float() if feats is not None else None)

    def describe(self) -> dict:
        out = {"model": self.model_name, "format": self.spec.format}
        if self.spec.format == "torchvision_resnet":
            out["architecture"] = self.spec.architecture
        out["class order (model)"] = ", ".join(self.spec.original_classes)
        out["output"] = self.spec.output
        for k in ("source", "licence", "training_data", "notes"):
            if self.spec.about.get(k):
                out[k] = self.spec.about[k]
        out.update({k: str(v) for k, v in self.provenance.items()})
        return out

    # --- training is not what external models are for ----------------------------------------------
    def phases(self):
        raise FerkitError(f"{self.model_name} is an external model: ferkit runs and audits it but does not "
                          "train it; train a ferkit method instead.")

    def train_step(self, phase, batch, ctx):
        return self.phases()

    def eval_mode(self) -> None:
        if isinstance(self.net, nn.Module):
            self.net.eval()


def run_once(method: ExternalMethod, seed: int = 0) -> np.ndarray:
    """One forward pass on a random batch of 2 (the import check): returns probs (2, K), all finite."""
    pre = method.preprocessing()
    x = torch.rand(2, pre.channels, pre.size, pre.size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    probs = method.predict(x).probs.float().cpu().numpy()                               # (2, K)
    if not np.isfinite(probs).all():
        raise CheckpointError(f"Model {method.model_name} gives non-finite outputs on a test batch; it cannot be "
                              "used as it is.")
    if method.spec.output == "logits" and method.onnx_net is not None:
        raw = method.onnx_net.run(x.numpy())                                            # (2, K)
        if (raw >= 0).all() and np.allclose(raw.sum(axis=1), 1.0, atol=1e-4):
            warnings.warn(f"Model {method.model_name}'s scores already sum to 1 like probabilities, but its spec "
                          "says output: logits (a second softmax flattens them); set output: probabilities.",
                          stacklevel=2)
    return probs
