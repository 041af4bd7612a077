"""Run a paired-seed study: every configuration trained once per seed on the same data, then evaluated.

``run_study(out, configs, seeds)`` trains configuration NAME with ``train.seed = s`` into
``out/NAME/seed<s>/`` (an ordinary ``ferkit train`` run folder), evaluates the checkpoint the engine
selected (the best epoch on the validation split, or the last epoch where there is none: never the test
split) on the test split as ``ferkit evaluate`` does, into ``out/NAME/seed<s>/eval/``, and records the
headline metrics in ``out/NAME/seed<s>/result.json``. Runs go seed by seed, so a stopped study has whole
pairs. ``out/study.json`` is the study's manifest: each configuration with its fingerprint (the config
without ``train.seed`` and ``train.out``) and the evaluation settings. Rerunning continues: finished runs
are kept, an interrupted run resumes from its last checkpoint, and a changed configuration is refused.
After every run the summary (``summary.json``, ``summary.md``, ``runs.csv``, ``compare.png``) is rewritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ferkit.errors import ConfigError, FerkitError
from ferkit.study.files import write_json_atomic

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


def run_config(config: dict, seed: int, run_dir: Path) -> dict:
    """The configuration of one run: ``config`` with ``train.seed`` and ``train.out`` set."""
    c = copy.deepcopy(config)
    c.setdefault("train", {})
    c["train"]["seed"], c["train"]["out"] = int(seed), str(run_dir)
    return c


def check_configs(configs: dict[str, dict]) -> dict:
    """Validate names and configurations before anything runs; every one must use the same data.

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
        try:
            built[name] = experiment_from_dict(run_config(d, 0, Path("unused")))
        except ConfigError as e:
            raise ConfigError(f"Configuration '{name}': {e}") from None
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
                 contrasts: list[tuple[str, str]] | None = None):
        self.out = Path(out)
        self.configs, self.seeds, self.evaluation = configs, list(seeds), dict(evaluation)
        #: extra paired differences (B, A) = B - A besides every configuration against the first
        self.contrasts = list(contrasts or [])
        self.built = check_configs(configs)
        self.fingerprints = {n: fingerprint(c) for n, c in configs.items()}

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
        from ferkit import __version__

        write_json_atomic(path, {"configs": configs, "seeds": seeds, "evaluation": self.evaluation,
                           "ferkit_version": __version__})

    def run_dir(self, name: str, seed: int) -> Path:
        return self.out / name / f"seed{seed}"

    def result(self, name: str, seed: int) -> dict | None:
        """The recorded result of a finished run with this configuration, else None."""
        path = self.run_dir(name, seed) / "result.json"
        if not path.is_file():
            return None
        try:
            r = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None                     # a result that never finished writing: the run is redone
        return r if r.get("fingerprint") == self.fingerprints.get(name) else None

    # --- one run -----------------------------------------------------------------------------------
    def run_one(self, name: str, seed: int, progress: bool = False) -> dict:
        """Train (or resume) and evaluate one run; returns and records its result."""
        from ferkit.config import experiment_from_dict
        from ferkit.engine.trainer import train

        run_dir = self.run_dir(name, seed)
        cfg = experiment_from_dict(run_config(self.configs[name], seed, run_dir))
        last = run_dir / "checkpoints" / "last.safetensors"
        resume = str(run_dir) if last.is_file() and (run_dir / "config.yaml").is_file() else None
        t0 = time.time()
        trained = train(cfg, resume=resume, progress=progress)
        t_train = time.time() - t0
        selected_on = "val" if trained.checkpoint.name == "best.safetensors" else "last epoch"
        t1 = time.time()
        metrics, embedding_dim = self._evaluate(trained.checkpoint, run_dir / "eval")
        result = {"name": name, "seed": int(seed), "fingerprint": self.fingerprints[name],
                  "checkpoint": str(trained.checkpoint.relative_to(run_dir)), "selected_on": selected_on,
                  "resumed": resume is not None, "metrics": metrics, "embedding_dim": embedding_dim,
                  "train_seconds": float(trained.metrics.get("train_seconds", t_train)),
                  "seconds": round(t_train + time.time() - t1, 2)}
        write_json_atomic(run_dir / "result.json", result)
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

    # --- the whole study ---------------------------------------------------------------------------
    def run(self, log: Callable[[str], None] = print, progress: bool = False) -> dict:
        """Every (seed, configuration) not yet finished, seed by seed; the summary after each run."""
        from ferkit.study.summary import write_summary

        self.open()
        todo = [(s, n) for s in self.seeds for n in self.configs]
        total, done_now = len(todo), {}
        t_study = time.time()
        for i, (seed, name) in enumerate(todo, start=1):
            tag = f"[{i}/{total}] {name} seed {seed}"
            if self.result(name, seed) is not None:
                log(f"{tag}: finished earlier, kept")
                continue
            state = "resuming" if (self.run_dir(name, seed) / "checkpoints" / "last.safetensors").is_file() \
                else "training"
            log(f"{tag}: {state} into {self.run_dir(name, seed)}")
            r = self.run_one(name, seed, progress=progress)
            done_now.setdefault(name, []).append(r["seconds"])
            eta = _eta(todo[i:], done_now, self)
            acc = r["metrics"].get("accuracy")
            log(f"{tag}: accuracy {acc:.4f} ({r['selected_on']} weights) in {_clock(r['seconds'])}; "
                f"study {_clock(time.time() - t_study)} so far, ETA {_clock(eta) if eta is not None else '?'}")
            write_summary(self)
        return write_summary(self)


def _eta(remaining: list[tuple[int, str]], done_now: dict[str, list[float]], study: Study) -> float | None:
    """Seconds left: each remaining unfinished run at its configuration's mean time in this invocation."""
    if not done_now:
        return None
    overall = float(np.mean([t for ts in done_now.values() for t in ts]))
    left = [(s, n) for s, n in remaining if study.result(n, s) is None]
    return sum(float(np.mean(done_now[n])) if n in done_now else overall for _, n in left)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
