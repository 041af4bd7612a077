"""torch.distributed for ``torchrun --nproc_per_node=N ferkit train ...`` (gloo on CPU, NCCL on GPU).

``FERKIT_DIST_BACKEND=gloo`` runs gloo on GPUs too, where processes may share a GPU (rank r on GPU r mod n):
NCCL refuses two processes on one GPU, so that is how DDP is checked on a one-GPU machine.

Modules are not wrapped in DistributedDataParallel (methods call critics several times per step); instead
the engine broadcasts the initial weights from rank 0, :class:`ferkit.engine.method.StepContext` averages
gradients with one flat all-reduce per step, and buffers (BatchNorm running statistics) are broadcast from
rank 0 before each step, as DDP's ``broadcast_buffers=True`` does. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ferkit.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False   # True when this module called init_process_group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_spec: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    Without those variables (a plain ``ferkit train``) this is a single process and does nothing.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False)
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ConfigError(f"WORLD_SIZE={world} is set but {var} is not; launch with torchrun --nproc_per_node=N.")
    use_cuda = device_spec != "cpu" and torch.cuda.is_available()
    backend = os.environ.get("FERKIT_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"FERKIT_DIST_BACKEND={backend} is not known; use nccl or gloo (or leave it unset).")
    if use_cuda:
        gpus = torch.cuda.device_count()
        if local_rank >= gpus and backend == "nccl":
            raise ConfigError(f"Process {local_rank + 1} of this node has no GPU of its own ({gpus} here) and NCCL "
                              "puts one process on each GPU; start at most that many, or set "
                              "FERKIT_DIST_BACKEND=gloo to share GPUs (slower; for checks).")
        torch.cuda.set_device(local_rank % gpus)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, True)


def shutdown(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled:
        dist.barrier()


def broadcast_modules(modules: dict[str, nn.Module], info: DistInfo, buffers_only: bool = False) -> None:
    """Copy parameters (and buffers) of every module from rank 0 to all ranks, one flat tensor per dtype."""
    if not info.enabled:
        return
    tensors: list[torch.Tensor] = []
    for m in modules.values():
        if not buffers_only:
            tensors.extend(p.data for p in m.parameters())
        tensors.extend(b for b in m.buffers())
    _broadcast_flat(tensors)


def _broadcast_flat(tensors: list[torch.Tensor]) -> None:
    import torch.distributed as dist

    by_key: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        by_key.setdefault((t.dtype, t.device), []).append(t)
    for group in by_key.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.broadcast(flat, src=0)
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n


def all_reduce_mean(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average a dict of floats over ranks (every rank must pass the same keys in the same order)."""
    if not info.enabled or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank (so every rank takes the same branch)."""
    if not info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
