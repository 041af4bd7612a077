"""Outputs of frozen networks, remembered by input content.

A frozen network run in eval mode (no dropout, fixed BatchNorm statistics) is a fixed function of its input
tensor. Under a discrete augmentation (none, a horizontal flip, DICE-FER's 14 rotation x flip variants) a
training image reaches it as one of a few tensors, so after the first epochs every forward repeats one
already made. :class:`OutputCache` keeps each output row under a 128-bit BLAKE2b digest of the exact input
bytes (and shape), so a hit returns what the network would compute from the same tensor; a miss runs the
network on the missing rows only. With continuous augmentations (AffectNet's random affine and erasing)
inputs never repeat, and the methods' ``"auto"`` setting leaves the cache off.

Users: UA-FER's frozen teacher (its CLS projection, the distillation target; the stored outputs are part of
the resume state) and DICE-FER's frozen expression encoders psi in stages 2 and 3 (feature map and code;
refilled after a resume, since the rows are large).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from ferkit.data.transforms import REPEATING_AUGMENTS

#: bytes of a key (BLAKE2b digest size)
KEY_BYTES = 16


def auto_cache(augment: str, device: torch.device) -> bool:
    """What ``"auto"`` means: remember on the CPU when the augmentation repeats inputs. Not on a GPU: the
    keys are hashed on the host at about 0.5 GB/s (measured on this 2-core CPU: a UA-FER batch of 128 images
    at 224 px, 77 MB, in 160 ms; 32 DICE-FER images at 112 px in 3 ms), after a device-to-host copy, which
    is more than a GPU's frozen forward of the same batch is expected to take (not measured: no GPU here)."""
    return augment in REPEATING_AUGMENTS and device.type == "cpu"


def content_keys(x: torch.Tensor) -> list[bytes]:
    """One digest per row of ``x`` (B, ...): equal exactly when the rows' bytes, dtype and shape are equal."""
    t = x.detach().to("cpu").contiguous()
    tag = f"{t.dtype}{tuple(t.shape[1:])}".encode()
    keys = []
    for row in t:
        h = hashlib.blake2b(tag, digest_size=KEY_BYTES)
        h.update(row.numpy() if row.dtype != torch.bfloat16 else row.view(torch.int16).numpy())
        keys.append(h.digest())
    return keys


class OutputCache:
    """Output rows (D,) by content key, on the CPU in float32; at most ``capacity`` of them (later
    inputs are computed and not stored once it is full)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._index: dict[bytes, int] = {}
        self._rows: list[torch.Tensor] = []
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def fetch(self, keys: list[bytes], compute: Callable[[torch.Tensor | None], torch.Tensor],
              device: torch.device) -> torch.Tensor:
        """The outputs for ``keys`` (B, D) float32 on ``device``: stored rows where known, ``compute(rows)``
        on the index tensor of the others (``None``: all rows), which are then stored while there is room."""
        found = [self._index.get(k) for k in keys]
        miss = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        fresh = None
        if miss:
            fresh = compute(None if len(miss) == len(keys) else torch.tensor(miss)).float()   # (M, D)
            self._store([keys[i] for i in miss], fresh.detach().to("cpu"))
            if len(miss) == len(keys):
                return fresh
        hit = [i for i, f in enumerate(found) if f is not None]
        known = torch.stack([self._rows[found[i]] for i in hit]).to(device)               # (B - M, D)
        out = torch.empty(len(keys), known.shape[1], dtype=torch.float32, device=device)
        out[torch.tensor(hit, device=device)] = known
        if fresh is not None:
            out[torch.tensor(miss, device=device)] = fresh
        return out

    def _store(self, keys: list[bytes], values: torch.Tensor) -> None:
        for k, v in zip(keys, values, strict=True):
            if len(self._rows) >= self.capacity:
                return
            if k not in self._index:                                       # a duplicate within the batch
                self._index[k] = len(self._rows)
                self._rows.append(v.clone())

    def state(self) -> dict[str, torch.Tensor]:
        """The stored outputs as plain tensors: keys (N, 16) uint8, values (N, D) float32."""
        if not self._rows:
            return {}
        keys = torch.frombuffer(bytearray(b"".join(self._index)), dtype=torch.uint8).view(-1, KEY_BYTES)
        return {"keys": keys, "values": torch.stack(self._rows)}          # index order = insertion order

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self._index, self._rows = {}, []
        if not state:
            return
        keys, values = state["keys"], state["values"]
        for k, v in zip(keys, values.float(), strict=True):
            self._index[bytes(k.tolist())] = len(self._rows)
            self._rows.append(v.clone())
