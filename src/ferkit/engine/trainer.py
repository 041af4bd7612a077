"""The one training loop every method runs through.

``train(cfg)`` builds the splits and the method, then runs the method's phases in order. For each epoch
the data order is a seeded permutation of (seed, phase, epoch), padded and sharded per rank as
``DistributedSampler`` does; each sample's augmentation is seeded by (seed, phase, epoch, index). The
position (phase, epoch, batch, step) and every RNG, optimiser and scheduler state go into
``checkpoints/last.safetensors`` (+ ``.state.pt``) so ``resume=`` continues exactly, mid-epoch included.
Validation runs every ``eval_every`` epochs (on the test split, labelled so, when there is no val split);
the best checkpoint is kept by validation accuracy; the final test evaluation goes to ``metrics.json``.

Every training loop of ferkit is this one: ``ferkit train``, the Python API (``DICEFER``/``UAFER``
``.train``, which pass their method in with ``method=`` and plain loaders as ``LoaderSplit``s, see
``engine/external.py``) and the pretrainers (``ferkit pretrain``, methods of their own). A method passed
in is trained as it is (its weights were drawn when it was built); ``rng=`` then gives the RNG state that
follows its construction, so the steps draw what they would have drawn under ``ferkit train``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import yaml

from ferkit.engine import distributed as dist_utils
from ferkit.engine.checkpoint import (
    _plain,
    config_changes,
    load_network_weights,
    read_checkpoint,
    read_resume_pair,
    resolve_checkpoint_path,
    save_checkpoint,
)
from ferkit.engine.commit import NoRoomError, stopped_for_room
from ferkit.engine.devices import amp_dtype, describe_precision, resolve_device
from ferkit.engine.evaluate import evaluate_split
from ferkit.engine.logging import RunLogger
from ferkit.engine.loop import EpochStats, Position, TrainData, batch_plan, cache_root, move_batch
from ferkit.engine.method import StepContext
from ferkit.engine.seeding import (
    DeterministicRun,
    capture_rng,
    deterministic_run,
    restore_rng,
    seed_everything,
)
from ferkit.errors import CheckpointError, DataError, TrainingError


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path          # best.safetensors when selected on a real val split, else last.safetensors
    metrics: dict
    history: list[dict] = dataclasses.field(default_factory=list)   # the per-epoch rows of metrics.csv
    best_weights: dict | None = None   # without checkpoints: {network: state dict} of the best epoch on val


def train(cfg, resume: str | None = None, splits: dict | None = None, progress: bool = True, *,
          method=None, rng: dict | None = None, console: bool = True, checkpoints: bool = True,
          notes: list[str] | None = None) -> RunResult:
    """Train ``cfg.method`` on ``cfg.data`` into the run folder ``cfg.train.out`` (see module docstring).

    splits: {"train", "val", "test"} of ``DatasetSplit`` or ``LoaderSplit`` (default: built from ``cfg.data``);
    method: a built ``Method`` to train instead of building ``cfg.method`` from the registry;
    rng: with ``method``, the RNG state (``capture_rng``) to start from instead of seeding;
    console: print the run's log lines (they always go to ``log.txt``); checkpoints: False writes none (the
    best epoch's weights come back in memory), for callers that asked for no run folder;
    notes: lines for the head of the run log (e.g. which preset the CLI applied).
    """
    info = dist_utils.init_distributed(cfg.train.device)
    try:
        return _Run(cfg, info, splits, progress, method, rng, console, checkpoints, notes).run(resume)
    finally:
        dist_utils.shutdown(info)


class _Run:
    def __init__(self, cfg, info: dist_utils.DistInfo, splits: dict | None, progress: bool, method=None,
                 rng: dict | None = None, console: bool = True, checkpoints: bool = True,
                 notes: list[str] | None = None):
        self.cfg, self.info, self.progress = cfg, info, progress
        self._given_method, self._given_rng, self.console = method, rng, console
        self.checkpoints, self.best_weights = checkpoints, None
        self.history: list[dict] = []
        self.notes = list(notes or [])
        self.run_dir = Path(cfg.train.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = resolve_device(cfg.train.device, info.local_rank if info.enabled else None)
        self.amp = amp_dtype(self.device, cfg.train.precision)
        self._splits = splits
        self.pos = Position()
        self.best: dict = {}
        self.refused_total = 0
        self.in_row = 0
        self.last_term = ""
        self.stats = EpochStats()
        self.elapsed = 0.0
        self.warnings: list[str] = []     # the method's warnings (e.g. DICE-FER's collapse), for metrics.json
        self.determinism = DeterministicRun(bool(cfg.train.deterministic))   # filled by deterministic_run
        self.saved_step: int | None = None  # the step of the last complete checkpoints/last.safetensors

    # --- set-up --------------------------------------------------------------------------------------
    def _setup(self, resume: str | None) -> None:
        from ferkit.engine.registry import get_method

        cfg = self.cfg
        splits = self._splits
        if splits is None:
            from ferkit.data.datasets import splits_from_config

            splits = splits_from_config(cfg.data)
        self.splits = splits
        if len(splits.get("train", [])) == 0:
            raise DataError(f"Dataset '{cfg.data.dataset}' has an empty training split; check --data-path and --fold.")
        self.label_space = splits["train"].label_space
        val = splits.get("val")
        self.val_name = "val" if val is not None and len(val) else ("test" if len(splits.get("test", [])) else None)
        seed_everything(cfg.train.seed)
        if self._given_method is not None:
            self.method = self._given_method
            if self._given_rng is not None:
                restore_rng(self._given_rng)
        else:
            self.method = get_method(cfg.method)(cfg, self.label_space, self.device)
        self.networks = self.method.networks()
        for m in self.networks.values():
            m.to(self.device)
            if cfg.train.channels_last:        # 4-D weights only; a conv's output follows its weight's layout
                import torch

                m.to(memory_format=torch.channels_last)
        self.phases = self.method.phases()
        self.state = None
        if resume is not None:
            self._load_resume(resume)
        self.log = RunLogger(self.run_dir, active=self.info.is_main,
                             resume_step=self.pos.global_step if self.state else None, console=self.console)
        dist_utils.broadcast_modules(self.networks, self.info)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))
            self._write_folds()

    def _load_resume(self, resume: str) -> None:
        path = resolve_checkpoint_path(resume, "last")
        ckpt, state, self._discarded = read_resume_pair(path)
        if ckpt.meta.get("method") != self.cfg.method:
            raise CheckpointError(f"Cannot resume {path}: it was trained with method '{ckpt.meta.get('method')}', "
                                  f"not '{self.cfg.method}'.")
        load_network_weights(self.networks, ckpt)
        self.method.load_train_state(state.get("method", {}))
        by_phase = state.get("optimizers", {})
        for phase in self.phases:
            for name, opt in phase.optimizers.items():
                if name in by_phase.get(phase.name, {}):
                    opt.load_state_dict(by_phase[phase.name][name])
            for name, sch in phase.schedulers.items():
                saved = state.get("schedulers", {}).get(phase.name, {}).get(name)
                if saved is not None:
                    sch.load_state_dict(saved)
        self.pos = Position(**state["position"])
        self.best = dict(state.get("best", {}))
        self.refused_total = int(state.get("refused_total", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        self.state = state
        self.saved_step = self.pos.global_step
        self._resume_from = path
        self._changed = config_changes(ckpt.meta.get("config", {}), _plain(self.cfg.to_dict()))

    def _write_folds(self) -> None:
        if self.cfg.data.fold is None:
            return
        # the data layer's own record of how the folds were made (its seed is data.options.fold_seed, default 0)
        made = next((s.info["folds"] for s in self.splits.values() if "folds" in s.info), {})
        doc = {"fold": self.cfg.data.fold, "num_folds": self.cfg.data.num_folds,
               "seed": made.get("seed", self.cfg.data.options.get("fold_seed", 0)), "folds": made}
        for name, split in self.splits.items():
            doc[f"{name}_subjects"] = sorted({int(s) for s in split.subjects})
            doc[f"{name}_size"] = len(split)
        (self.run_dir / "folds.json").write_text(json.dumps(doc, indent=1))

    def _announce(self) -> None:
        cfg, log = self.cfg, self.log
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        log.info(f"ferkit train: method {cfg.method}, dataset {cfg.data.dataset} ({sizes}), "
                 f"{self.label_space.num_classes} classes")
        for note in self.notes:
            log.info(note)
        log.info(f"device {self.device}, {describe_precision(self.amp)}, processes {self.info.world_size}, "
                 f"batch {cfg.train.batch_size} per process, seed {cfg.train.seed}, deterministic kernels "
                 f"{'on' if cfg.train.deterministic else 'off'}{', channels-last' if cfg.train.channels_last else ''}")
        for k, v in self.method.describe().items():
            log.info(f"  {k}: {v}")
        if self.val_name == "test":
            log.warning("no validation split: validating on the TEST split each epoch, as the released UA-FER code "
                        "does; best.safetensors is then selected on test and its accuracy is optimistic")
        if self.state is not None:
            p = self.pos
            if self._discarded:
                log.warning(self._discarded)
            log.info(f"resumed from {self._resume_from}: phase {p.phase} epoch {p.epoch} batch {p.batch} "
                     f"(step {p.global_step})")
            for key, (old, new) in self._changed.items():
                log.info(f"  config changed on resume: {key} {old!r} -> {new!r}")

    # --- the loop ------------------------------------------------------------------------------------
    def run(self, resume: str | None) -> RunResult:
        try:
            with deterministic_run(self.determinism.enabled) as self.determinism:
                return self._run(resume)
        except (NoRoomError, OSError) as e:
            stop = stopped_for_room(e, self.run_dir, self.saved_step)
            if stop is None:
                raise
            raise stop from None
        finally:
            if hasattr(self, "log"):
                self.log.close()

    def _run(self, resume: str | None) -> RunResult:
        self._setup(resume)
        self._announce()
        cfg = self.cfg
        if self.state is not None:
            restore_rng(self.state["rng"])
        stopped = False
        t0 = time.time()
        try:
            for pi, phase in enumerate(self.phases):
                done = pi < self.pos.phase or (pi == self.pos.phase and self.pos.epoch >= phase.epochs)
                if done:
                    self.method.on_phase_start(phase)   # replay each phase's set-up (e.g. freezing) in order
                    continue
                stopped = self._run_phase(pi, phase)
                if stopped:
                    break
        except KeyboardInterrupt:
            self.elapsed += time.time() - t0
            self._save("last")
            self.log.info(f"interrupted; resume with --resume {self.run_dir}")
            raise
        self.elapsed += time.time() - t0
        if stopped:
            self.log.info(f"stopped at --max-steps {cfg.train.max_steps} (step {self.pos.global_step})")
        self._save("last")
        metrics = self._final_eval()
        best = self.ckpt_dir / "best.safetensors"
        chosen = best if self.val_name == "val" and best.is_file() else self.ckpt_dir / "last.safetensors"
        return RunResult(self.run_dir, chosen, metrics, self.history, self.best_weights)

    def _run_phase(self, pi: int, phase) -> bool:
        cfg = self.cfg
        self.method.on_phase_start(phase)
        source = self.splits["train"]
        external = getattr(source, "is_loader", False)
        data = None if external else TrainData(self.method, phase, pi, source, cfg, self.info)
        ctx = StepContext(phase.optimizers, self.device, self.amp, self.info.world_size, cfg.train.grad_clip,
                          on_nonfinite=self._on_nonfinite)
        validate = phase.validate if phase.validate is not None else pi == len(self.phases) - 1
        start_epoch = self.pos.epoch if pi == self.pos.phase else 0
        for epoch in range(start_epoch, phase.epochs):
            if self._finished_early(phase, epoch):
                break
            start_batch = self.pos.batch if (pi, epoch) == (self.pos.phase, self.pos.epoch) else 0
            self.pos = dataclasses.replace(self.pos, phase=pi, epoch=epoch, batch=start_batch)
            plan = (source.plan(epoch, cfg.train.limit_batches) if external else
                    batch_plan(data, epoch, cfg.train.batch_size, cfg.train.limit_batches, self.info))
            self.stats = EpochStats()
            self.method.train_mode(phase)
            ctx.iters_per_epoch, ctx.epoch = len(plan), epoch
            t_epoch = time.time()
            batches = (source.batches(phase, pi, epoch, start_batch, len(plan)) if external
                       else data.loader(plan[start_batch:], epoch))
            bar = self.log.progress(batches, len(plan) - start_batch, f"{phase.name} {epoch + 1}/{phase.epochs}",
                                    self.progress)
            for b, batch in enumerate(bar, start=start_batch):
                if cfg.train.max_steps is not None and self.pos.global_step >= cfg.train.max_steps:
                    return True
                if batch is None:                   # a loader batch the method cannot use (LoaderSplit)
                    self.stats.skipped += 1
                    self.pos = dataclasses.replace(self.pos, batch=b + 1)
                    continue
                self._step(phase, ctx, b, move_batch(batch, self.device))
                self.pos = dataclasses.replace(self.pos, batch=b + 1, global_step=self.pos.global_step + 1)
                if hasattr(bar, "set_postfix") and self.stats.last:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(self.stats.last.items())[:3]})
            self.method.on_epoch_end(phase, epoch)
            self._end_epoch(pi, phase, epoch, validate, time.time() - t_epoch)
            if epoch + 1 < phase.epochs and self._finished_early(phase, epoch + 1):
                break
        return False

    def _finished_early(self, phase, epoch: int) -> bool:
        """The method ends ``phase`` before epoch ``epoch`` (0-based) of its budget; logs why."""
        reason = self.method.phase_finished(phase)
        if reason:
            self.log.info(f"{phase.name} ends after {epoch} of {phase.epochs} epochs: {reason}")
        return bool(reason)

    def _step(self, phase, ctx: StepContext, b: int, batch: dict) -> None:
        ctx.iteration, ctx.global_step, ctx.refused_in_step = b, self.pos.global_step, False
        dist_utils.broadcast_modules(self.networks, self.info, buffers_only=True)
        scalars = self.method.train_step(phase, batch, ctx)
        scalars = {k: float(v) for k, v in (scalars or {}).items()}
        self.stats.add(scalars, refused=ctx.refused_in_step)
        if ctx.refused_in_step:
            self.in_row += 1
            if self.in_row >= self.cfg.train.max_nonfinite_in_row:
                self._stop_nonfinite()
        else:
            self.in_row = 0
        step = self.pos.global_step
        if self.info.is_main and self.cfg.train.log_every and step % self.cfg.train.log_every == 0:
            self.log.scalars("train", {k: v for k, v in scalars.items() if math.isfinite(v)}, step)
            for name, opt in phase.optimizers.items():
                self.log.scalars("lr", {name: opt.param_groups[0]["lr"]}, step)

    def _on_nonfinite(self, term: str) -> None:
        self.refused_total += 1
        self.last_term = term
        self.stats.refused_terms[term] = self.stats.refused_terms.get(term, 0) + 1
        if sum(self.stats.refused_terms.values()) <= 5:
            self.log.warning(f"step {self.pos.global_step}: '{term}' is not finite; step refused, weights unchanged")

    def _stop_nonfinite(self) -> None:
        last = self.ckpt_dir / "last.safetensors"
        if not last.is_file():
            # refused steps never touch the weights, so the current ones are the last good ones
            self._save("last")
        raise TrainingError(
            f"Training stopped: {self.in_row} steps in a row had a non-finite '{self.last_term}' (phase "
            f"{self.phases[self.pos.phase].name}, epoch {self.pos.epoch + 1}, step {self.pos.global_step}); the last "
            f"good checkpoint is {last}; lower the learning rate or check the data.")

    def _end_epoch(self, pi: int, phase, epoch: int, validate: bool, seconds: float) -> None:
        cfg = self.cfg
        # a finished phase stays (pi, epochs, 0): resuming with more epochs continues it
        self.pos = dataclasses.replace(self.pos, epoch=epoch + 1, batch=0)
        means = self.stats.means()
        row = {"phase": phase.name, "epoch": epoch + 1, "step": self.pos.global_step,
               **{f"train_{k}": v for k, v in means.items()}, "steps": self.stats.steps,
               "refused_steps": self.stats.refused, "skipped_batches": self.stats.skipped,
               "seconds": round(seconds, 2)}
        for name, opt in phase.optimizers.items():
            row[f"lr_{name}"] = opt.param_groups[0]["lr"]
        notes = self.method.epoch_messages(phase)
        if notes:
            row["notes"] = " | ".join(text for _, text in notes)
            self.warnings.extend(text for level, text in notes if level == "warning")
        every = cfg.train.eval_every
        due = validate and every > 0 and ((epoch + 1) % every == 0 or epoch + 1 == phase.epochs)
        val = None
        if due and self.val_name is not None:
            if self.info.is_main:
                val = self._evaluate(self.splits[self.val_name])
                row.update({"eval_split": self.val_name, "eval_accuracy": val["accuracy"],
                            "eval_mean_class_accuracy": val["mean_class_accuracy"]})
            dist_utils.barrier(self.info)
        if self.info.is_main:
            self.history.append(row)
            self.log.epoch_row(row)
            self.log.scalars("epoch", {k: v for k, v in row.items() if isinstance(v, (int, float))
                                       and k not in ("epoch", "step")}, self.pos.global_step)
            refused = f", {self.stats.refused} refused {self.stats.refused_terms}" if self.stats.refused else ""
            for level, text in notes:
                (self.log.warning if level == "warning" else self.log.info)(text)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in means.items())
            msg = f"{phase.name} epoch {epoch + 1}/{phase.epochs}: {shown}{refused} ({seconds:.1f}s)"
            if val is not None:
                msg += f"; {self.val_name} acc {val['accuracy']:.4f} mean-class {val['mean_class_accuracy']:.4f}"
            self.log.info(msg)
        if val is not None and self.info.is_main and val["accuracy"] > self.best.get("accuracy", -1.0):
            self.best = {"accuracy": val["accuracy"], "mean_class_accuracy": val["mean_class_accuracy"],
                         "phase": phase.name, "epoch": epoch + 1, "split": self.val_name}
            self._save("best", extra={"selected_on": self.val_name, "val": val})
        self._save("last")

    # --- checkpoints and the final evaluation --------------------------------------------------------
    def _save(self, kind: str, extra: dict | None = None) -> None:
        if not self.info.is_main:
            return
        if not self.checkpoints:
            if kind == "best":
                self.best_weights = {n: {k: v.detach().clone() for k, v in m.state_dict().items()}
                                     for n, m in self.networks.items()}
            return
        cfg = self.cfg
        meta = {"method": cfg.method, "kind": kind, "config": _plain(cfg.to_dict()),
                "label_space": self.label_space.to_dict(), "preprocessing": self.method.preprocessing().to_dict(),
                "describe": self.method.describe(), "position": dataclasses.asdict(self.pos),
                "best": self.best, "deterministic": {"enabled": self.determinism.enabled,
                                                     "nondeterministic_ops": sorted(self.determinism.ops)},
                **(extra or {})}
        state = None
        if kind == "last":
            state = {"position": dataclasses.asdict(self.pos), "rng": capture_rng(), "best": self.best,
                     "refused_total": self.refused_total, "elapsed": self.elapsed,
                     "optimizers": {p.name: {n: o.state_dict() for n, o in p.optimizers.items()}
                                    for p in self.phases},
                     "schedulers": {p.name: {n: s.state_dict() for n, s in p.schedulers.items()}
                                    for p in self.phases},
                     "method": self.method.train_state()}
        save_checkpoint(self.ckpt_dir / f"{kind}.safetensors", self.networks, meta, state)
        if kind == "last":
            self.saved_step = self.pos.global_step

    def _evaluate(self, split) -> dict:
        """Accuracy metrics of the live networks on a record split or a ``LoaderSplit``."""
        if getattr(split, "is_loader", False):
            return split.evaluate(self.method, self.amp)
        cfg = self.cfg
        return evaluate_split(self.method, split, cfg.train.batch_size, cfg.data.num_workers, self.amp,
                              cache_root(cfg))

    def _final_eval(self) -> dict:
        cfg = self.cfg
        metrics: dict = {"method": cfg.method, "dataset": cfg.data.dataset, "fold": cfg.data.fold,
                         "steps": self.pos.global_step, "refused_steps": self.refused_total,
                         "train_seconds": round(self.elapsed, 2), "validated_on": self.val_name, "best": self.best,
                         "warnings": self.warnings, **({"notes": n} if (n := self.method.run_notes()) else {})}
        test = self.splits.get("test")
        if test is not None and len(test) and self.info.is_main:
            last = self._evaluate(test)
            metrics["test_last"] = last
            best_path = self.ckpt_dir / "best.safetensors"
            if self.val_name == "val" and best_path.is_file():
                live = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in self.networks.items()}
                load_network_weights(self.networks, read_checkpoint(best_path))
                metrics["test"] = {**self._evaluate(test), "weights": "best (selected on val)"}
                for n, m in self.networks.items():     # the live model stays the last one
                    m.load_state_dict(live[n])
            else:
                metrics["test"] = {**last, "weights": "last"}
            t = metrics["test"]
            self.log.info(f"test ({t['weights']} weights, {t['n']} images): accuracy {t['accuracy']:.4f}, "
                          f"mean class accuracy {t['mean_class_accuracy']:.4f}")
        metrics.update(deterministic=self.determinism.enabled, nondeterministic_ops=sorted(self.determinism.ops))
        self.log.info(self.determinism.summary())
        if self.info.is_main:
            (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
        dist_utils.barrier(self.info)
        return metrics

