"""UA-FER networks: the fine-tuned CLIP image tower with multi-granularity feature decoupling, and the teacher.

Student (METHODS.md B.1): CLIP ViT (conv1 -> CLS + positional embedding -> ln_pre -> blocks -> ln_post on
all tokens), then the CLIP projection on every token, L2-normalised: v_cls (B, D) the global feature, v_i
(B, N, D) the N patch (local) features. With class text embeddings t_c (C, D):

    global affinity  A_g[c] = v_cls . t_c
    local affinity   A_l[c] = mean of the top-k over patches i of v_i . t_c   (top-k per class)
    s_g = A_g / ||A_g||_2,  s_l = A_l / ||A_l||_2   (each normalised across the C classes)

and either linear score fusion s = alpha s_l + (1 - alpha) s_g before the evidence (released code) or an
opinion per branch fused by Dempster-Shafer (paper figure); see :meth:`UAFERNet.opinion`.

The evidence extractor is "fixed" in the released code: e = g(s) of the class-normalised score, so evidence
per class is at most 1 (ReLU) and u = C / S measures only how peaked s is. The paper figure's "Evidence
Extractor (tuned)" is reconstructed [INFERRED] as "learnable": z_b = tau_b (A_b - mean_c A_b) on the raw
affinities of branch b, e_b = g(z_b), with a learnable scale tau_b > 0 per branch (log-parametrised, started
at the CLIP's own logit scale), so evidence can grow with the margin between classes and with training.

The frozen part (the stem and the blocks below ``fix_layer``) runs under ``no_grad``; its output can be
shared with the teacher when the teacher sees the same image and its lower blocks are bitwise the
student's frozen ones (then both compute exactly the same thing, so it is computed once).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.losses.evidential import dirichlet, ds_combine, evidence_from_scores, fp32


def _stem(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch embedding + CLS + positional embedding + ln_pre: (B, 3, H, W) -> (B, 1 + N, W)."""
    x = visual.conv1(x)                                                    # (B, W, g, g)
    x = x.flatten(2).transpose(1, 2)                                       # (B, N, W)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)     # (B, 1, W)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)   # (B, 1 + N, W)
    return visual.ln_pre(x)


def _block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An open_clip residual attention block on batch-first (B, L, W) tokens, with the packed q/k/v
    projection applied to the contiguous batch-first tensor and fused attention (SDPA).

    The same maths as ``block(x)``; nn.MultiheadAttention's batch-first training path transposes to
    sequence-first first, and on CPU its projection then multiplies a non-contiguous 3-D tensor, which
    expands the weight per token (a copy of L x W x 3W values per block and step).
    """
    attn = block.attn
    b, n, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)              # (B, L, 3W)
    q, k, v = qkv.view(b, n, 3, heads, width // heads).permute(2, 0, 3, 1, 4)        # 3 x (B, h, L, d)
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, width)  # (B, L, W)
    x = x + block.ls_1(attn.out_proj(o))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _cls_only_block(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A residual attention block evaluated for the CLS query only: (B, L, W) -> (B, 1, W).

    Keys and values come from all L tokens, exactly as in the full block; only the CLS row is produced,
    which is all a CLS readout after the last block needs.
    """
    attn = block.attn
    width, heads = h.shape[-1], attn.num_heads
    y = block.ln_1(h)                                                      # (B, L, W)
    q = F.linear(y[:, :1], attn.in_proj_weight[:width], attn.in_proj_bias[:width])          # (B, 1, W)
    kv = F.linear(y, attn.in_proj_weight[width:], attn.in_proj_bias[width:])                # (B, L, 2W)
    k, v = kv.chunk(2, dim=-1)
    b, n = h.shape[0], h.shape[1]
    q = q.view(b, 1, heads, -1).transpose(1, 2)                            # (B, h, 1, d)
    k = k.reshape(b, n, heads, -1).transpose(1, 2)                         # (B, h, L, d)
    v = v.reshape(b, n, heads, -1).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, width)       # (B, 1, W)
    x = h[:, :1] + block.ls_1(attn.out_proj(o))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


class UAFERNet(nn.Module):
    """Student CLIP image tower + the (frozen, precomputed) class text embeddings."""

    def __init__(self, visual: nn.Module, text_embeds: torch.Tensor, alpha: float, topk: int, fix_layer: int,
                 fusion: str = "score", evidence: str = "relu", extractor: str = "fixed", scale_init: float = 1.0):
        super().__init__()
        self.visual = visual
        self.register_buffer("text_embeds", text_embeds.detach().float().clone())   # (C, D) unnormalised
        self.alpha, self.topk, self.fix_layer = alpha, topk, fix_layer
        self.fusion, self.evidence, self.extractor = fusion, evidence, extractor
        self.depth = len(visual.transformer.resblocks)
        if extractor == "learnable":          # log tau for the (global, local) branches
            self.evidence_log_scale = nn.Parameter(torch.full((2,), math.log(scale_init)))

    def extractor_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the image tower (the learnable evidence scales; none when fixed)."""
        return [self.evidence_log_scale] if self.extractor == "learnable" else []

    def evidence_scales(self) -> torch.Tensor | None:
        """(tau_global, tau_local) of the learnable extractor, or None when it is fixed."""
        return self.evidence_log_scale.exp() if self.extractor == "learnable" else None

    @property
    def num_frozen_blocks(self) -> int:
        """Blocks whose layer id (block index + 1) is <= fix_layer; the stem has layer id 0."""
        return min(max(self.fix_layer, 0), self.depth)

    def freeze(self) -> None:
        """requires_grad False on everything with layer id <= fix_layer (stem = 0, block i = i + 1,
        ln_post/proj = depth + 1), as the released optimiser builder does."""
        for name, p in self.visual.named_parameters():
            p.requires_grad_(layer_id(name, self.depth) > self.fix_layer)

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen part: stem and blocks [0, num_frozen_blocks); (B, 3, H, W) -> (B, L, W)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.fix_layer < 0):
            h = _stem(self.visual, x)
            for blk in self.visual.transformer.resblocks[:self.num_frozen_blocks]:
                h = _block(blk, h)
        return h

    def features(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trainable part from the lower output: (B, L, W) -> v_cls (B, D), v_loc (B, N, D), L2-normalised,
        in float32 (the projection itself runs under the caller's autocast)."""
        for blk in self.visual.transformer.resblocks[self.num_frozen_blocks:]:
            h = _block(blk, h)
        tokens = self.visual.ln_post(h) @ self.visual.proj                 # (B, L, D)
        tokens = tokens.float()
        tokens = tokens / tokens.norm(dim=-1, keepdim=True)
        return tokens[:, 0], tokens[:, 1:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features(self.lower(x))

    @fp32
    def affinities(self, v_cls: torch.Tensor, v_loc: torch.Tensor,
                   normalize_text: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_g, A_l), each (B, C): the global affinity and the per-class top-k mean of the patch affinities;
        ``normalize_text`` L2-normalises t_c first (the released code does so in training, not at test)."""
        text = self.text_embeds                                            # (C, D)
        if normalize_text:
            text = text / text.norm(dim=-1, keepdim=True)
        a_g = v_cls @ text.t()                                             # (B, C)
        k = min(self.topk, v_loc.shape[1])
        a_l = torch.topk(v_loc @ text.t(), k=k, dim=1).values.mean(dim=1)  # (B, N, C) -> (B, C)
        return a_g, a_l

    def branch_scores(self, a_g: torch.Tensor, a_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the evidence function reads per branch, (B, C) each: the class-normalised s_b = A_b / ||A_b||
        (fixed extractor, released) or z_b = tau_b (A_b - mean_c A_b) (learnable extractor, [INFERRED])."""
        if self.extractor == "fixed":
            return a_g / a_g.norm(dim=-1, keepdim=True), a_l / a_l.norm(dim=-1, keepdim=True)
        tau = self.evidence_scales().float()                               # (2,)
        return (tau[0] * (a_g - a_g.mean(dim=1, keepdim=True)),
                tau[1] * (a_l - a_l.mean(dim=1, keepdim=True)))

    @fp32
    def opinion(self, a_g: torch.Tensor, a_l: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Dirichlet opinion (alpha, probs, belief, uncertainty...) from the two branches' affinities.

        fusion "score": s = alpha s_l + (1 - alpha) s_g, e = g(s) (released code);
        fusion "ds": e_g = g(s_g), e_l = g(s_l), one opinion each, Dempster-Shafer combined (paper figure);
        the branch opinions are kept under "branches" (the paper variant supervises them too).
        """
        s_g, s_l = self.branch_scores(a_g.float(), a_l.float())
        if self.fusion == "score":
            logits = self.alpha * s_l + (1 - self.alpha) * s_g             # (B, C)
            out = dirichlet(evidence_from_scores(logits, self.evidence))
            out["logits"] = logits
            return out
        og = dirichlet(evidence_from_scores(s_g, self.evidence))
        ol = dirichlet(evidence_from_scores(s_l, self.evidence))
        out = ds_combine(og["belief"], og["uncertainty"], ol["belief"], ol["uncertainty"])
        out["branches"] = {"global": og, "local": ol}
        return out


class CLSTeacher(nn.Module):
    """Frozen copy of the initial CLIP image tower that returns the raw CLS projection (B, D).

    ``forward(h, start)`` continues from the output of the stem and the first ``start`` blocks (shared
    with the student); the last block is evaluated for the CLS query only.
    """

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> CLSTeacher:
        return super().train(False)             # no dropout in CLIP; keep eval whatever the caller says

    @torch.no_grad()
    def forward(self, x: torch.Tensor | None = None, h: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        if h is None:
            h, start = _stem(self.visual, x), 0
        blocks = self.visual.transformer.resblocks
        for blk in blocks[start:len(blocks) - 1]:
            h = _block(blk, h)
        cls = _cls_only_block(blocks[-1], h) if start < len(blocks) else h[:, :1]       # (B, 1, W)
        return (self.visual.ln_post(cls[:, 0]) @ self.visual.proj).float()              # (B, D)


def layer_id(name: str, depth: int) -> int:
    """BEiT/MAE layer id of a visual-tower parameter: stem 0, block i -> i + 1, the rest (ln_post, proj) depth + 1."""
    if name.startswith(("conv1", "class_embedding", "positional_embedding", "ln_pre")):
        return 0
    if name.startswith("transformer.resblocks."):
        return int(name.split(".")[2]) + 1
    return depth + 1


def lower_blocks_equal(a: nn.Module, b: nn.Module, blocks: int) -> bool:
    """True when the stems and the first ``blocks`` blocks of two visual towers hold identical tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sa.items():
        if layer_id(k, len(a.transformer.resblocks)) <= blocks and not torch.equal(v, sb[k]):
            return False
    return True
