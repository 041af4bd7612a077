"""A paired-seed study's folder, its manifest, and one run of it: what every executor's process executes.

A study trains configuration NAME with ``train.seed = s`` into ``out/NAME/seed<s>/`` (an ordinary ``ferkit
train`` run folder), or, with folds as an axis, with ``data.fold = k`` too into ``out/NAME/fold<k>/seed<s>/``;
evaluates the checkpoint the engine selected (the best epoch on the validation split, or the last epoch where
there is none: never the test split) on the test split as ``ferkit evaluate`` does, into ``<run>/eval/``, and
records the headline metrics in ``<run>/result.json``. ``out/study.json`` is the study's manifest: each
configuration with its fingerprint (the config without ``train.seed`` and ``train.out``), the seeds, the folds
and the evaluation settings; a run's process (``python -m ferkit.study.worker``, locally or in a Slurm job)
reads everything it needs from it. Finished runs are kept, an interrupted run resumes from its last
checkpoint, and a changed configuration is refused. ``ferkit.study.coordinator`` plans, submits and waits.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ferkit.errors import ConfigError, FerkitError
from ferkit.study.files import read_json, write_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: data fields that define the images and split every configuration must share
_DATA_IDENTITY = ("dataset", "data_path", "fold", "num_folds", "val_fraction", "options", "synth_identities",
                  "synth_images_per_identity", "synth_confounding", "synth_seed", "synth_size")


def fingerprint(config: dict) -> str:
    """A digest of a configuration without the per-run fields (``train.seed``, ``train.out``)."""
    return hashlib.sha256(json.dumps(_stripped(config), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stripped(config: dict) -> dict:
    c = copy.deepcopy(config)
    for key in ("seed", "out"):
        c.get("train", {}).pop(key, None)
    return c


def _first_difference(old: dict, new: dict) -> str | None:
    """The first key (dotted) whose value differs between two nested mappings, with both values."""
    from ferkit.engine.checkpoint import config_changes

    changes = config_changes(old or {}, new or {})
    if not changes:
        return None
    key, (a, b) = next(iter(changes.items()))
    return f"{key} {a!r} -> {b!r}"


class RunKey(NamedTuple):
    """One run of a study: a configuration, a seed and (when folds are an axis) the held-out fold."""
    name: str
    seed: int
    fold: int | None = None

    @property
    def unit(self) -> int | str:
        """The pairing unit of the run: its seed, or ``"fold<k>/seed<s>"`` when folds are an axis."""
        return self.seed if self.fold is None else f"fold{self.fold}/seed{self.seed}"

    def label(self) -> str:
        return f"{self.name} seed {self.seed}" + ("" if self.fold is None else f" fold {self.fold}")


def run_config(config: dict, seed: int, run_dir: Path, fold: int | None = None) -> dict:
    """The configuration of one run: ``config`` with ``train.seed``, ``train.out`` (and ``data.fold``) set."""
    c = copy.deepcopy(config)
    c.setdefault("train", {})
    c["train"]["seed"], c["train"]["out"] = int(seed), str(run_dir)
    if fold is not None:
        c.setdefault("data", {})["fold"] = int(fold)
    return c


def check_configs(configs: dict[str, dict], folds: list[int] | None = None) -> dict:
    """Validate names and configurations before anything runs; every one must use the same data (and,
    with ``folds``, leave ``data.fold`` to the study and have each of those folds).

    Returns {name: ExperimentConfig}. Raises ConfigError naming the configuration that is wrong.
    """
    from ferkit.config import experiment_from_dict

    if len(configs) < 2:
        raise ConfigError("A comparison needs at least two configurations, e.g. A=base.yaml B=dicefer.yaml.")
    built = {}
    for name, d in configs.items():
        if not _NAME.match(name):
            raise ConfigError(f"Configuration name '{name}' must be letters, digits, '_', '-' or '.', "
                              f"starting with a letter or digit (it names the folder of its runs).")
        if folds is not None and (d.get("data") or {}).get("fold") is not None:
            raise ConfigError(f"Configuration '{name}' sets data.fold = {d['data']['fold']}, but --folds makes the "
                              "fold an axis of the study; remove data.fold from it.")
        try:
            built[name] = experiment_from_dict(run_config(d, 0, Path("unused")))
        except ConfigError as e:
            raise ConfigError(f"Configuration '{name}': {e}") from None
        k = built[name].data.num_folds
        bad = [f for f in folds or [] if not 0 <= f < k]
        if bad:
            raise ConfigError(f"Fold {bad[0]} does not exist: configuration '{name}' has data.num_folds = {k}, "
                              f"so --folds takes 0..{k - 1} or all.")
    first = next(iter(configs))
    ref = built[first].data
    for name, cfg in built.items():
        for key in _DATA_IDENTITY:
            if getattr(cfg.data, key) != getattr(ref, key):
                raise ConfigError(
                    f"Configuration '{name}' uses data.{key} = {getattr(cfg.data, key)!r} but '{first}' uses "
                    f"{getattr(ref, key)!r}; a paired study trains and tests every configuration on the same data.")
    return built


class Study:
    """A study folder: its manifest, its runs, and their results (see the module docstring)."""

    def __init__(self, out: str | Path, configs: dict[str, dict], seeds: list[int], evaluation: dict,
                 contrasts: list[tuple[str, str]] | None = None, folds: list[int] | None = None,
                 check: bool = True):
        self.out = Path(out)
        self.configs, self.seeds, self.evaluation = configs, list(seeds), dict(evaluation)
        #: the held-out folds, an axis of the study (None: each configuration's own split, no fold axis)
        self.folds = None if folds is None else sorted(set(int(f) for f in folds))
        #: extra paired differences (B, A) = B - A besides every configuration against the first
        self.contrasts = list(contrasts or [])
        self.built = check_configs(configs, self.folds) if check else {}
        self.fingerprints = {n: fingerprint(c) for n, c in configs.items()}

    @classmethod
    def from_manifest(cls, out: str | Path) -> Study:
        """The study a run's process works on, read from ``out/study.json`` (written by the coordinator)."""
        m = read_json(Path(out) / "study.json")
        if m is None:
            raise FerkitError(f"{Path(out) / 'study.json'} is missing or not valid JSON; start the study with "
                              "ferkit compare.")
        configs = {n: e["config"] for n, e in m["configs"].items()}
        return cls(out, configs, m["seeds"], m["evaluation"], folds=m.get("folds"), check=False)

    def keys(self) -> list[RunKey]:
        """Every run, seed by seed (then fold by fold), so a stopped study has whole pairs."""
        folds = [None] if self.folds is None else self.folds
        return [RunKey(n, s, f) for s in self.seeds for f in folds for n in self.configs]

    # --- the manifest ------------------------------------------------------------------------------
    def open(self) -> None:
        """Write or check ``study.json``: a configuration whose content changed is refused."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "study.json"
        old = {}
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise FerkitError(f"{path} is not valid JSON; it is not a ferkit study manifest.") from None
            if old.get("evaluation", self.evaluation) != self.evaluation:
                diff = _first_difference(old.get("evaluation"), self.evaluation)
                raise FerkitError(f"Study {self.out} was evaluated with other settings ({diff}); use the same "
                                  "settings or a new --out.")
            if old.get("configs") and (old.get("folds") is None) != (self.folds is None):
                raise FerkitError(f"Study {self.out} was run " + ("without" if old.get("folds") is None else "with")
                                  + " --folds; folds cannot be added to or dropped from a study: use a new --out.")
            for name, entry in (old.get("configs") or {}).items():
                if name in self.configs and entry.get("fingerprint") != self.fingerprints[name]:
                    diff = _first_difference(_stripped(entry.get("config", {})), _stripped(self.configs[name]))
                    raise FerkitError(
                        f"Study {self.out} already has runs of '{name}' with another configuration ({diff}); "
                        f"its results cannot be mixed: use a new --out, another name, or delete {self.out / name}.")
        configs = dict(old.get("configs") or {})
        configs.update({n: {"fingerprint": self.fingerprints[n], "config": _stripped(c)}
                        for n, c in self.configs.items()})
        seeds = sorted(set(old.get("seeds", [])) | set(self.seeds))
        manifest = {"configs": configs, "seeds": seeds, "evaluation": self.evaluation}
        if self.folds is not None:
            manifest["folds"] = sorted(set(old.get("folds") or []) | set(self.folds))
        from ferkit import __version__

        write_json(path, {**manifest, "ferkit_version": __version__})

    def run_dir(self, name: str, seed: int, fold: int | None = None) -> Path:
        return self.out / name / (f"seed{seed}" if fold is None else f"fold{fold}/seed{seed}")

    def result(self, name: str, seed: int, fold: int | None = None) -> dict | None:
        """The recorded result of a finished run with this configuration, else None (also for a result
        that never finished writing: that run is redone)."""
        r = read_json(self.run_dir(name, seed, fold) / "result.json")
        return r if r is not None and r.get("fingerprint") == self.fingerprints.get(name) else None

    def prune(self, name: str, seed: int, fold: int | None = None) -> int:
        """For a finished run (its ``result.json`` recorded): delete what only resuming or another selection
        would read, the resume state (``checkpoints/*.state.pt``, ``*.commit``, staged files) and the checkpoint
        that was not selected (``last.safetensors`` beside a selected ``best.safetensors``). The selected
        weights, logs, metrics and evaluation stay. Returns the bytes freed; nothing for an unfinished run."""
        r = self.result(name, seed, fold)
        if r is None:
            return 0
        ckpt = self.run_dir(name, seed, fold) / "checkpoints"
        keep = ckpt / Path(r["checkpoint"]).name
        freed = 0
        for f in sorted(ckpt.glob("*")) if ckpt.is_dir() else []:
            if f.is_file() and f != keep:
                try:
                    size = f.stat().st_size
                    f.unlink()
                except FileNotFoundError:                           # gone meanwhile: nothing to free
                    continue
                freed += size
        return freed

    # --- one run -----------------------------------------------------------------------------------
    def run_one(self, name: str, seed: int, fold: int | None = None, progress: bool = False) -> dict:
        """Train (or resume) and evaluate one run; returns and records its result."""
        import torch

        from ferkit.config import experiment_from_dict
        from ferkit.engine.trainer import train

        run_dir = self.run_dir(name, seed, fold)
        cfg = experiment_from_dict(run_config(self.configs[name], seed, run_dir, fold))
        last = run_dir / "checkpoints" / "last.safetensors"
        state = last.with_name(last.name + ".state.pt")             # pruned runs have weights but no resume state
        resume = str(run_dir) if last.is_file() and state.is_file() and (run_dir / "config.yaml").is_file() else None
        t0 = time.time()
        trained = train(cfg, resume=resume, progress=progress)
        t_train = time.time() - t0
        selected_on = "val" if trained.checkpoint.name == "best.safetensors" else "last epoch"
        t1 = time.time()
        metrics, embedding_dim = self._evaluate(trained.checkpoint, run_dir / "eval")
        result = {"name": name, "seed": int(seed), "fold": fold, "fingerprint": self.fingerprints[name],
                  "checkpoint": str(trained.checkpoint.relative_to(run_dir)), "selected_on": selected_on,
                  "resumed": resume is not None, "metrics": metrics, "embedding_dim": embedding_dim,
                  "train_seconds": float(trained.metrics.get("train_seconds", t_train)),
                  "seconds": round(t_train + time.time() - t1, 2), "threads": torch.get_num_threads()}
        write_json(run_dir / "result.json", result)
        return result

    def _evaluate(self, checkpoint: Path, out: Path) -> tuple[dict, int | None]:
        """``ferkit evaluate`` on the run's own test split; the embeddings are kept for matched probes."""
        from ferkit.report.pipeline import evaluate

        ev = self.evaluation
        res = evaluate(checkpoint, out=out, batch_size=ev["batch_size"], device=ev["device"],
                       leakage=ev["leakage"], modified_mig_steps=ev["modified_mig_steps"], seed=0, progress=False)
        headline = {k: v for k, v in res.metrics["headline"].items() if isinstance(v, (int, float))}
        preds = res.predictions or {}
        emb = preds.get("embedding")
        if emb is None:
            return headline, None
        np.savez_compressed(out / "embeddings.npz", embedding=np.asarray(emb, dtype=np.float32),
                            subjects=np.asarray(preds["subjects"]), labels=np.asarray(preds["labels"]))
        return headline, int(np.asarray(emb).shape[1])
