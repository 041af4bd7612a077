"""The contract between the engine (loop, checkpoints, logs, DDP) and a method (model + losses + steps).

A method supplies networks, optimisers, phases and a step; the engine supplies batches, the step context
(autocast, non-finite guard, gradient all-reduce), checkpoints, logging and evaluation.

Batches are dicts of tensors:
    "image"       float (B, C, H, W), preprocessed as ``method.preprocessing()`` says
    "expression"  long (B,) labels in the dataset's label space
    "subject"     long (B,) identity or -1
    "index"       long (B,) index of the record in its split
and, when the method asks for them (``Method.batch_kind`` / ``Method.extra_views``):
    "image_pair", "subject_pair"   a same-expression partner per sample (DICE-FER pairs)
    "<view name>"                  extra augmented views, e.g. "image_teacher" (UA-FER paper variant)
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ferkit.data.labels import LabelSpace
from ferkit.data.preprocessing import Preprocessing


@dataclass
class Phase:
    """One stage of training (a single-stage method has one phase, "train")."""

    name: str
    epochs: int
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, object] = field(default_factory=dict)  # objects with state_dict/load_state_dict
    batch_kind: str = "single"           # "single" | "pairs" (same-expression partner per sample)
    sampler: str = "shuffle"             # "shuffle" (seeded permutation per epoch) | "class_balanced"
    validate: bool | None = None         # evaluate on val after epochs of this phase (None = last phase only)
    # (schedulers are stepped by the method's own step/on_epoch_end; the engine saves and restores them)


@dataclass
class Prediction:
    """What a method predicts for a batch. Arrays are float32 tensors on CPU or device."""

    probs: torch.Tensor                      # (B, C) class probabilities, rows sum to 1
    uncertainty: torch.Tensor | None = None  # (B,) in [0, 1]; evidential u for UA-FER, else None
    embedding: torch.Tensor | None = None    # (B, D) the expression embedding (for leakage audits)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. DICE-FER identity code "identity"


class Method(abc.ABC):
    """Base class for a training recipe. Subclasses set ``name`` and implement the abstract parts."""

    name: str = "method"

    def __init__(self, cfg, label_space: LabelSpace, device: torch.device):
        self.cfg = cfg                      # ExperimentConfig
        self.label_space = label_space
        self.device = device

    # --- what the engine needs -------------------------------------------------------------------------
    @abc.abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every module whose weights are checkpointed, by a stable name."""

    @abc.abstractmethod
    def phases(self) -> list[Phase]:
        """The training phases in order, each with its optimisers (built over ``networks()``)."""

    @abc.abstractmethod
    def train_step(self, phase: Phase, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        """One optimisation step (or alternating steps) on a batch; returns scalars to log."""

    @abc.abstractmethod
    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Prediction:
        """Class probabilities (and uncertainty/embedding where the method has them) for a batch."""

    @abc.abstractmethod
    def preprocessing(self) -> Preprocessing:
        """The input the model expects; saved in the checkpoint."""

    # --- optional hooks --------------------------------------------------------------------------------
    def extra_views(self) -> dict[str, Callable]:
        """Extra augmented views of each training image, by batch key (transform builders)."""
        return {}

    def train_augment(self, phase: Phase) -> str:
        """The augmentation name for ``build_transform`` in a phase (default: ``cfg.model.augment`` or "none")."""
        return str(getattr(self.cfg.model, "augment", "none"))

    #: model fields whose default changed since a release, with the value configs saved before the change
    #: meant (they do not name the field): applied to a checkpoint's saved config before it is rebuilt
    SAVED_CONFIG_DEFAULTS: dict = {}

    @classmethod
    def complete_saved_config(cls, config: dict) -> dict:
        """A saved config (a checkpoint's) with :attr:`SAVED_CONFIG_DEFAULTS` filled in where it lacks them."""
        model = config.get("model")
        if not cls.SAVED_CONFIG_DEFAULTS or not isinstance(model, dict):
            return config
        return {**config, "model": {**cls.SAVED_CONFIG_DEFAULTS, **model}}

    @classmethod
    def inference_config(cls, cfg):
        """The config to rebuild this method from a checkpoint: references to external weight files are
        dropped (the checkpoint holds every weight). Methods with more such fields extend this."""
        import dataclasses

        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, backbone_weights=None))

    def train_state(self) -> dict:
        """Training state that is not weights or optimiser state (plain tensors/numbers), saved for resuming."""
        return {}

    def load_train_state(self, state: dict) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`train_state` returned."""

    def on_phase_start(self, phase: Phase) -> None:  # noqa: B027 (optional hook)
        """Called before a phase's first epoch (e.g. freeze stage-1 encoders)."""

    def on_epoch_end(self, phase: Phase, epoch: int) -> None:  # noqa: B027 (optional hook)
        """Called after each epoch of a phase."""

    def epoch_messages(self, phase: Phase) -> list[tuple[str, str]]:
        """(level "warning" | "info", text) pairs raised in the epoch just ended; the engine logs them
        and keeps them in the epoch's metrics row."""
        return []

    def phase_finished(self, phase: Phase) -> str | None:
        """A reason to end ``phase`` before its epoch budget (asked after each epoch), else None."""
        return None

    def run_notes(self) -> dict:
        """Facts about how training went that belong in metrics.json (e.g. why a stage stopped)."""
        return {}

    def train_mode(self, phase: Phase) -> None:
        """Put networks in train/eval mode for a phase (default: all train)."""
        for m in self.networks().values():
            m.train()

    def eval_mode(self) -> None:
        for m in self.networks().values():
            m.eval()

    def describe(self) -> dict:
        """Facts about this model for the log and the checkpoint (e.g. 'weights: random init')."""
        return {}


class NonFiniteLoss(Exception):
    """Raised internally when a step is refused; the engine counts it."""


class StepContext:
    """What a method's step may use: autocast, and a guarded backward + optimiser step.

    ``ctx.step(losses, optimizers, total)`` refuses the step when any loss term is non-finite (the
    weights are untouched, the refusal is counted and logged with the term's name); otherwise it runs
    backward on ``total`` (default: the sum of ``losses``), averages gradients over processes when
    distributed, optionally clips, and steps the named optimisers.
    """

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device,
                 amp_dtype: torch.dtype | None, world_size: int = 1, grad_clip: float | None = None,
                 on_nonfinite: Callable[[str], None] | None = None):
        self.optimizers = optimizers
        self.device = device
        self.amp_dtype = amp_dtype
        self.world_size = world_size
        self.grad_clip = grad_clip
        self.on_nonfinite = on_nonfinite
        self.refused_in_step = False
        # position in training, set by the engine before each step
        self.epoch = 0
        self.iteration = 0            # batch index within the epoch
        self.iters_per_epoch = 1
        self.global_step = 0

    @property
    def fractional_epoch(self) -> float:
        return self.epoch + self.iteration / max(1, self.iters_per_epoch)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the device when enabled; MI estimators and evidential maths must leave it
        (``with torch.autocast(device_type, enabled=False)``) and cast their inputs to float32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def step(self, losses: dict[str, torch.Tensor], optimizers: Sequence[str],
             total: torch.Tensor | None = None) -> bool:
        """Backward + step if every term is finite; returns False (and touches nothing) otherwise."""
        bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
        if self.world_size > 1 and _any_rank(bool(bad), self.device) and not bad:
            bad = ["loss on another process"]   # every rank must refuse together, or all-reduce would hang
        opts = [self.optimizers[name] for name in optimizers]
        for o in opts:
            o.zero_grad(set_to_none=True)
        if bad:
            self._refuse(bad[0])
            return False
        loss = total if total is not None else sum(losses.values())
        loss.backward()
        params = [p for o in opts for g in o.param_groups for p in g["params"] if p.grad is not None]
        if self.world_size > 1:
            _allreduce_mean([p.grad for p in params], self.world_size)
        if params and not all(torch.isfinite(p.grad).all() for p in params):
            for o in opts:
                o.zero_grad(set_to_none=True)
            self._refuse("gradient")
            return False
        if self.grad_clip is not None and params:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        for o in opts:
            o.step()
        return True

    def _refuse(self, term: str) -> None:
        self.refused_in_step = True
        if self.on_nonfinite is not None:
            self.on_nonfinite(term)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on at least one process (a MAX all-reduce of one number)."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _allreduce_mean(grads: list[torch.Tensor], world_size: int) -> None:
    """Average gradients over processes in one flat buffer (what DDP's reducer does, unbucketed).

    A single flat all-reduce is used instead of wrapping modules in DistributedDataParallel because the
    methods call some networks several times per step (joint and marginal critic passes, alternating
    GAN steps), which DDP's one-forward-one-backward hooks do not allow without find_unused_parameters.
    """
    import torch.distributed as dist

    if not grads:
        return
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g).to(g.dtype))
        offset += n


def iter_params(modules: dict[str, nn.Module]) -> Iterator[nn.Parameter]:
    for m in modules.values():
        yield from m.parameters()
