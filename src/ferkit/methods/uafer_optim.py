"""UA-FER's optimiser recipe: BEiT/MAE layer-wise lr decay over the CLIP image tower, AdamW, and the
per-iteration warmup + cosine learning rate (METHODS.md B.3; released utils/lr_decay.py, lr_sched.py,
optimizer.py).

Layer ids: stem (conv1, class/positional embedding, ln_pre) 0, block i -> i + 1, ln_post and the projection
depth + 1 (13 for ViT-B/16). Every group scales the lr by ``layer_decay ** (depth + 1 - layer_id)``; groups
with layer_id <= fix_layer are dropped and their parameters frozen. Weight decay applies to >= 2-D
parameters only (1-D: LayerNorm weights, biases, the class embedding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ferkit.models.uafer import layer_id


def param_groups(visual: nn.Module, fix_layer: int, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW parameter groups ``{"params", "weight_decay", "lr_scale", "layer_id", "name"}`` of the
    trainable layers, in the order parameters are first met (as the released ``param_groups_lrd``)."""
    depth = len(visual.transformer.resblocks)
    num_layers = depth + 1
    scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    groups: dict[str, dict] = {}
    for name, p in visual.named_parameters():
        lid = layer_id(name, depth)
        if lid <= fix_layer:
            continue
        decay = "no_decay" if p.ndim == 1 else "decay"
        key = f"layer_{lid}_{decay}"
        if key not in groups:
            groups[key] = {"name": key, "params": [], "layer_id": lid, "lr_scale": scales[lid],
                           "weight_decay": 0.0 if decay == "no_decay" else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def build_optimizer(visual: nn.Module, fix_layer: int, lr: float, weight_decay: float,
                    layer_decay: float, extra: list[nn.Parameter] | None = None) -> torch.optim.AdamW:
    """AdamW (PyTorch default betas/eps) over the trainable groups; the lr is set per step by ``set_lr``.
    ``extra`` parameters outside the tower (the paper variant's evidence scales) get their own group at the
    full lr (scale 1, as the head layers) without weight decay."""
    groups = param_groups(visual, fix_layer, weight_decay, layer_decay)
    if not groups:
        from ferkit.errors import ConfigError

        raise ConfigError(f"model.fix_layer={fix_layer} freezes every layer of the image tower; lower it.")
    if extra:
        groups.append({"name": "evidence_extractor", "params": list(extra), "weight_decay": 0.0, "lr_scale": 1.0,
                       "layer_id": len(visual.transformer.resblocks) + 1})
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, fused=fused)


def lr_at(epoch: float, base_lr: float, min_lr: float, warmup_epochs: float, total_epochs: float) -> float:
    """Linear warmup to ``base_lr`` over ``warmup_epochs``, then half-cosine to ``min_lr`` at
    ``total_epochs``; ``epoch`` is fractional (epoch + iteration / iterations per epoch)."""
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    span = max(total_epochs - warmup_epochs, 1e-12)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Each group's lr = lr x its lr_scale."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
