"""`ferkit evaluate` as a library call: find the model(s) and the split(s), collect predictions, map labels
across datasets, compute the metrics, and write the report folder.

``evaluate(...)`` handles one checkpoint, a run folder, per-fold run folders (``fold_<k>``/``fold<k>``
with ``checkpoints/best.safetensors``) with ``folds="all"``, and UA-FER zero-shot (no checkpoint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

_FOLD_DIR = re.compile(r"^fold_?(\d+)$")


@dataclass
class EvaluationResult:
    out_dir: Path
    metrics: dict                          # the pooled metrics (with "folds" when several folds ran)
    paths: dict[str, Path] = field(default_factory=dict)
    predictions: dict | None = None        # what was scored (probs, labels, subjects, embeddings); pooled over folds


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a file or a run folder (best.safetensors, else last.safetensors); built-in
    model names and model spec files pass through (``ferkit.external``)."""
    from ferkit.engine.checkpoint import resolve_checkpoint_path
    from ferkit.errors import CheckpointError
    from ferkit.external.loader import is_external_ref

    if is_external_ref(path):
        return Path(path)

    try:
        return resolve_checkpoint_path(path, "best")
    except CheckpointError:
        if Path(path).is_dir():
            return resolve_checkpoint_path(path, "last")
        raise


def fold_checkpoints(run_dir: Path) -> dict[int, Path]:
    """{fold: checkpoint} for a run folder holding ``fold_<k>/`` (or ``fold<k>/``) run folders."""
    found = {}
    for sub in sorted(run_dir.iterdir()) if run_dir.is_dir() else []:
        m = _FOLD_DIR.match(sub.name)
        if m and sub.is_dir():
            found[int(m.group(1))] = resolve_checkpoint(sub)
    return dict(sorted(found.items()))


class DataSource:
    """Loads a dataset once and selects splits/folds from it (the checkpoint's own data config or a named one)."""

    def __init__(self, cfg_data, dataset: str | None, data_path: str | None, options: dict):
        from ferkit.data.datasets import load_all, synth_options

        self.own = dataset is None
        if self.own:
            if cfg_data is None:
                raise FerkitError("This model records no dataset of its own (zero-shot or external); pass --dataset "
                                  "NAME (and --data-path for files on disk).")
            self.name, self.root = cfg_data.dataset, cfg_data.data_path or None
            self.options = {**(cfg_data.options or {}), **options}
            self.num_folds, self.val_fraction = cfg_data.num_folds, cfg_data.val_fraction
            self.result = load_all(self.name, self.root, synth=synth_options(cfg_data), **self.options)
        else:
            self.name, self.root, self.options = dataset, data_path or None, dict(options)
            self.num_folds = cfg_data.num_folds if cfg_data is not None else 10
            self.val_fraction = 0.0
            self.result = load_all(self.name, self.root, **self.options)
        self.fold_seed = int(self.options.get("fold_seed", 0))

    def split(self, split: str, fold: int | None):
        from ferkit.data.datasets import select

        return select(self.name, self.result, split, self.root, fold, self.num_folds, self.fold_seed,
                      self.val_fraction)

    def describe(self, split: str, fold: int | None) -> str:
        where = str(self.root) if self.root else ("in-memory SynthFER" if self.name == "synthetic" else "")
        return f"{self.name} ({where}), split {split}" + (f", fold {fold} of {self.num_folds}" if fold is not None else "")


def predictions_over(method, split, batch_size: int, progress: bool) -> tuple[dict, list[str], dict | None]:
    """Predictions of ``method`` on ``split`` expressed in the dataset's classes (shared with the model).

    Returns (preds, class names, crossdata info or None when the label spaces are the same).
    """
    from ferkit.engine.evaluate import collect_predictions
    from ferkit.metrics.crossdata import map_to_dataset, same_space

    if len(split) == 0:
        raise FerkitError(f"The {split.split} split of dataset '{split.name}' is empty; choose another --split or --fold.")
    preds = collect_predictions(method, split, batch_size=batch_size, progress=progress)
    preds["index"] = np.arange(len(split))                  # which sample each row is (kept through the mapping)
    model_space, data_space = method.label_space, split.label_space
    if same_space(model_space, data_space):
        return preds, list(data_space.classes), None
    try:
        mapped = map_to_dataset(preds["probs"], preds["labels"], model_space, data_space)
    except ValueError as e:
        raise FerkitError(f"The model's classes and dataset '{split.name}' cannot be compared: {e}.") from None
    if not mapped["keep"].any():
        raise FerkitError(f"No image of dataset '{split.name}' has a class the model knows; nothing to evaluate.")
    keep = mapped["keep"]
    out = {k: (v[keep] if isinstance(v, np.ndarray) and len(v) == len(keep) else v) for k, v in preds.items()}
    out["paths"] = [p for p, k in zip(preds["paths"], keep, strict=True) if k]
    out["probs"], out["labels"] = mapped["probs"], mapped["labels"]
    info = {k: mapped[k] for k in ("classes", "dropped_model_classes", "excluded_counts", "num_excluded",
                                   "zero_mass_rows")}
    info["model_label_space"], info["dataset_label_space"] = model_space.name, data_space.name
    return out, list(mapped["classes"]), info


def modified_mig_for(checkpoint: Path, split, batch_size: int, steps: int, device: str = "auto") -> dict:
    """DICE-FER's modified MIG over same-expression pairs of ``split`` (``ferkit.metrics.modified_mig``)."""
    from torch.utils.data import DataLoader

    from ferkit.api.dicefer import DICEFER
    from ferkit.data.pairs import PairDataset
    from ferkit.data.torch_dataset import FERDataset
    from ferkit.data.transforms import build_transform

    model = DICEFER.load(checkpoint, device=device)
    pairs = PairDataset(FERDataset(split, build_transform(model.method.preprocessing(), train=False)), seed=0)
    d = model.compute_mig_score(DataLoader(pairs, batch_size=batch_size), return_details=True, steps=steps)
    c = d["controls"]
    other = (f"; other-image control I(E_M; I_M') {c['i_exp_id_other_image']:.3f}, MIG with it "
             f"{c['mig_other_image']:.3f}" if "mig_other_image" in c else "")
    return {"value": d["mig"], "i_exp_exp": d["i_exp_exp"], "i_exp_id": d["i_exp_id"], "std": d["mig_std"],
            "interval": d["interval"], "controls": c,
            "note": f"{d['unit']}; {d['estimator']}; {d['num_pairs']} pairs; 95% over critic seeds "
                    f"[{d['interval'][0]:.3f}, {d['interval'][1]:.3f}]; shuffled control "
                    f"{c['shuffled_exp_exp']:.3f} / {c['shuffled_exp_id']:.3f}{other}"}


def facts_of(method, checkpoint: Path | None, source: str) -> dict:
    """Model facts for the report: method, checkpoint, data, label space, preprocessing, config highlights."""
    meta = getattr(method, "checkpoint_meta", None) or {}
    cfg = method.cfg
    pre = method.preprocessing()
    facts = {"method": method.name, "checkpoint": str(checkpoint) if checkpoint else "none (zero-shot)",
             "evaluated on": source,
             "label space": f"{method.label_space.name}: {', '.join(method.label_space.classes)}",
             "preprocessing": (f"{pre.size} px, {pre.channels} channel(s), mean {list(pre.mean)}, std {list(pre.std)}, "
                               f"whitening {pre.whitening}, align {pre.align}")}
    if cfg is not None and getattr(cfg, "train", None) is not None:
        facts["trained on"] = f"{cfg.data.dataset} ({cfg.data.data_path or 'in-memory'})" + (
            f", fold {cfg.data.fold}" if cfg.data.fold is not None else "")
        facts["training"] = (f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}, lr {cfg.train.lr}, "
                             f"seed {cfg.train.seed}, precision {cfg.train.precision}")
        if cfg.model is not None:
            import dataclasses

            items = dataclasses.asdict(cfg.model) if dataclasses.is_dataclass(cfg.model) else dict(cfg.model)
            facts["model config"] = ", ".join(f"{k}={v}" for k, v in items.items())
    for k, v in (meta.get("describe") or method.describe() or {}).items():
        facts[str(k)] = str(v)
    for k in ("ferkit_version", "created"):
        if k in meta:
            facts[k.replace("_", " ")] = str(meta[k])
    return facts


def _pool(per_fold: list[dict], fold_ids: list[int]) -> dict:
    """Concatenate per-fold predictions; embeddings are dropped (each fold's model has its own space)."""
    pooled = {k: np.concatenate([p[k] for p in per_fold]) for k in ("probs", "labels", "subjects")}
    unc = [p["uncertainty"] for p in per_fold]
    pooled["uncertainty"] = np.concatenate(unc) if all(u is not None for u in unc) else None
    pooled["paths"] = [x for p in per_fold for x in p["paths"]]
    pooled["fold"] = np.concatenate([np.full(len(p["labels"]), k) for p, k in zip(per_fold, fold_ids, strict=True)])
    pooled["embedding"] = pooled["identity_embedding"] = None
    return pooled


def evaluate(checkpoint: str | Path | None = None, *, dataset: str | None = None, data_path: str | None = None,
             split: str = "test", fold: int | None = None, folds: str | None = None, num_folds: int | None = None,
             out: str | Path | None = None, batch_size: int = 64, abstain_above: float | None = None,
             device: str = "auto", options: dict | None = None, zero_shot: bool = False,
             clip_path: str | None = None, model_options: dict | None = None, leakage: bool = True,
             modified_mig_steps: int = 500, seed: int = 0, progress: bool = True,
             identity_reference: str | None = None) -> EvaluationResult:
    """Evaluate a checkpoint (or UA-FER zero-shot) and write metrics.json, predictions.csv, PNGs, report.html.

    ``folds="all"``: a run folder of per-fold runs is evaluated fold by fold on each fold's test split;
    a single checkpoint is evaluated on every fold's test split. Metrics are pooled over folds and each
    headline number is also given as mean and std over folds. ``modified_mig_steps=0`` skips DICE-FER's
    modified MIG (it trains small critics). ``model_options`` are UA-FER config fields for ``zero_shot``
    (e.g. {"model_size": "tiny"}). ``identity_reference`` (e.g. "dlib-resnet") adds the model's embeddings
    against that face recognizer's (``ferkit.report.identity_reference``).
    """
    from ferkit.external.loader import load_method
    from ferkit.report.evaluation import aggregate_folds, compute_metrics
    from ferkit.report.writer import write_evaluation, write_json

    options = dict(options or {})
    jobs: list[tuple[int | None, Path | None]]
    if zero_shot:
        if checkpoint is not None:
            raise FerkitError("--zero-shot builds the model from --clip-path; do not pass a checkpoint as well.")
        if not clip_path:
            raise FerkitError("--zero-shot needs --clip-path, the local CLIP ViT-B/16 weights file.")
        if dataset is None:
            raise FerkitError("Zero-shot evaluation needs --dataset NAME (and --data-path for files on disk).")
        jobs = [(fold, None)]
    elif checkpoint is None:
        raise FerkitError("Pass a checkpoint (a .safetensors file or a run folder), or --method uafer --zero-shot.")
    else:
        per_fold = fold_checkpoints(Path(checkpoint)) if folds == "all" else {}
        if per_fold:
            jobs = list(per_fold.items())
        else:
            jobs = [(fold, resolve_checkpoint(checkpoint))]
    loaded = {}

    def model_for(ckpt: Path | None, split_obj=None):
        if ckpt is None:
            from ferkit.config import build_experiment
            from ferkit.engine.devices import resolve_device
            from ferkit.methods.uafer import zero_shot_method

            cfg = build_experiment("uafer", data={"dataset": source.name, "data_path": str(source.root or "")},
                                   train={"device": device}, model={**(model_options or {}), "clip_path": clip_path})
            return zero_shot_method(cfg, split_obj.label_space, resolve_device(device))
        if ckpt not in loaded:
            loaded.clear()
            loaded[ckpt] = load_method(ckpt, device)
        return loaded[ckpt]

    first = model_for(jobs[0][1]) if jobs[0][1] is not None else None
    source = DataSource(getattr(getattr(first, "cfg", None), "data", None), dataset, data_path, options)
    if num_folds is not None:
        source.num_folds = num_folds
    if folds == "all" and len(jobs) == 1:
        jobs = [(k, jobs[0][1]) for k in range(source.num_folds)]
    if folds != "all" and fold is None and source.own and first is not None:
        jobs = [(first.cfg.data.fold, jobs[0][1])]            # a fold-trained model: its own held-out fold
    per_fold_preds, per_fold_metrics, fold_ids, cross, method = [], [], [], None, None
    for k, ckpt in jobs:
        the_split = source.split(split, k)
        method = model_for(ckpt, the_split)
        preds, classes, cross = predictions_over(method, the_split, batch_size, progress)
        m = compute_metrics(preds, classes, abstain_above, seed=seed, leakage=leakage)
        if cross:
            m["crossdata"] = cross
        if identity_reference:
            from ferkit.report.evaluation import headline
            from ferkit.report.identity_reference import identity_reference_metrics

            m["identity_reference"] = identity_reference_metrics(preds, the_split, identity_reference, device,
                                                                 seed=seed, progress=progress)
            m["headline"] = headline(m)
        if method.name == "dicefer" and ckpt is not None and modified_mig_steps > 0 and leakage:
            m["modified_mig"] = modified_mig_for(ckpt, the_split, batch_size, modified_mig_steps, device)
            m["headline"]["modified_mig"] = m["modified_mig"]["value"]
        per_fold_preds.append(preds)
        per_fold_metrics.append(m)
        fold_ids.append(k)
    ckpt0 = jobs[0][1]
    name = getattr(method, "model_name", None) or (method.name if method is not None else "uafer")
    out_dir = Path(out) if out else Path("runs") / "evaluate" / f"{name}_{source.name}_{split}"
    facts = facts_of(method, ckpt0 if len(jobs) == 1 else Path(checkpoint), source.describe(split, jobs[0][0]))
    if len(jobs) == 1:
        metrics = per_fold_metrics[0]
        paths = write_evaluation(out_dir, per_fold_preds[0], metrics, classes, facts, abstain_above, seed=seed,
                                 title=f"ferkit evaluation: {name} on {source.name}", embedding_maps=leakage)
        return EvaluationResult(out_dir, metrics, paths, per_fold_preds[0])
    agg = aggregate_folds(per_fold_metrics)
    agg["fold_ids"] = fold_ids
    same_model = len({c for _, c in jobs}) == 1
    pooled_preds = _pool(per_fold_preds, fold_ids)
    metrics = compute_metrics(pooled_preds, classes, abstain_above, seed=seed, leakage=False)
    metrics["leakage"] = per_fold_metrics[0].get("leakage", {})
    if per_fold_metrics[0].get("modified_mig"):
        metrics["modified_mig"] = per_fold_metrics[0]["modified_mig"]
    if per_fold_metrics[0].get("identity_reference"):
        metrics["identity_reference"] = per_fold_metrics[0]["identity_reference"]
    if cross:                                   # same model label space and dataset in every fold: add counts
        excluded: dict[str, int] = {}
        for m in per_fold_metrics:
            for c, n in m["crossdata"]["excluded_counts"].items():
                excluded[c] = excluded.get(c, 0) + n
        metrics["crossdata"] = {**cross, "excluded_counts": excluded, "num_excluded": sum(excluded.values()),
                                "zero_mass_rows": sum(m["crossdata"]["zero_mass_rows"] for m in per_fold_metrics)}
    from ferkit.report.evaluation import headline

    metrics["headline"] = headline(metrics)
    facts["evaluated on"] = f"{source.name}, split {split}, {len(jobs)} folds ({'one model' if same_model else 'one model per fold'})"
    if leakage:
        facts["leakage and MIG shown"] = f"fold {fold_ids[0]}'s model (embeddings of different models do not share a space)"
    for k, m in zip(fold_ids, per_fold_metrics, strict=True):
        (out_dir / f"fold_{k}").mkdir(parents=True, exist_ok=True)
        write_json(out_dir / f"fold_{k}" / "metrics.json", m)
    paths = write_evaluation(out_dir, pooled_preds, metrics, classes, facts, abstain_above, folds=agg,
                             embedding_preds=per_fold_preds[0], seed=seed, embedding_maps=leakage,
                             title=f"ferkit evaluation: {name} on {source.name}, {len(jobs)} folds")
    metrics["folds"] = agg
    return EvaluationResult(out_dir, metrics, paths, pooled_preds)
