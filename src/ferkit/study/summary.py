"""A study's summary: ``summary.json`` (the shape scripts rely on), ``summary.md``, ``runs.csv``, ``compare.png``.

``summary.json``::

    {"configs": [A, B, ...], "seeds": [...], "reference": A, "complete": bool,
     "missing": [{"config", "seed", ("fold",) ("failed": {"attempts", "log", "last_lines"})}],
     "selection": {name: "best epoch on the validation split" | "last epoch (no validation split)"},
     "matched_dim": d or null,
     "metrics": {metric: {name: {"mean", "std", "n"}}},
     "paired": {metric: {"B-A": {"mean", "lo", "hi", "boot_lo", "boot_hi", "n", "wins", "ties", ...}}}}

``identity_probe_matched`` is the subject probe on every configuration's expression embedding cut by PCA
to the smallest embedding width in the study (``matched_dim``), so embeddings of different widths are
compared at one dimension; ``identity_probe_accuracy`` is the probe at each embedding's own width.

With folds as an axis (``--folds``) the summary also has ``"folds": [k, ...]`` and ``"per_fold": {k:
{"metrics", "paired"}}`` (each fold over its seeds); the top-level ``metrics`` and ``paired`` are then over
folds: every (fold, seed) run is one unit, named ``"fold<k>/seed<s>"``, paired with the same unit of the
reference. The folds' test sets are disjoint but their training sets overlap, so the t interval over folds
is narrower than the sampling variability it stands for (Nadeau and Bengio, 2003): read it as a screen.
The summary depends on the runs' results only, never on which executor ran them (their times aside).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ferkit.study.files import read_json, write_json
from ferkit.study.stats import describe, higher_is_better, paired_difference, verdict

#: metrics in the order the summary lists them (those no run has are left out)
ORDER = ("accuracy", "mean_class_accuracy", "macro_f1", "macro_precision", "macro_recall", "ece", "mce", "nll",
         "brier", "aurc", "acc@80", "acc@90", "auroc_error", "identity_probe_matched", "identity_probe_accuracy",
         "retrieval_expression", "retrieval_subject", "mig", "modified_mig", "train_seconds")
#: the metrics drawn in compare.png
PLOTTED = ("accuracy", "macro_f1", "ece", "auroc_error", "identity_probe_matched")
_SELECTION = {"val": "best epoch on the validation split", "last epoch": "last epoch (no validation split)"}


def matched_probes(study, results: dict[str, dict[int, dict]]) -> int | None:
    """Add ``identity_probe_matched`` to every result with an embedding; returns the matched width.

    The probe at a given width is remembered in the run's result.json, so a summary is cheap to remake.
    """
    from ferkit.metrics.leakage import identity_probe

    dims = [r["embedding_dim"] for by_seed in results.values() for r in by_seed.values() if r.get("embedding_dim")]
    if not dims:
        return None
    dim = int(min(dims))
    for name, by_unit in results.items():
        for r in by_unit.values():
            if not r.get("embedding_dim"):
                continue
            cached = r.get("matched_probe") or {}
            if cached.get("dim") != dim:
                run_dir = study.run_dir(name, r["seed"], r.get("fold"))
                with np.load(run_dir / "eval" / "embeddings.npz") as z:
                    probe = identity_probe(z["embedding"], z["subjects"], seed=0, pca_dim=dim)
                r["matched_probe"] = {"dim": dim, "accuracy": probe["accuracy"]}
                write_json(run_dir / "result.json", r)
            r["metrics"]["identity_probe_matched"] = r["matched_probe"]["accuracy"]
    return dim


def pairs(study) -> list[tuple[str, str]]:
    """The paired differences a study reports, as (B, A) for B - A: every configuration after the first
    against the first, then the study's extra contrasts (``--contrast B-A``) that are not already there."""
    names = list(study.configs)
    out = [(n, names[0]) for n in names[1:]]
    out += [c for c in study.contrasts if c not in out]
    return out


def _missing(study, key) -> dict:
    entry = {"config": key.name, "seed": key.seed}
    if key.fold is not None:
        entry["fold"] = key.fold
    failed = read_json(study.run_dir(*key) / "failed.json")
    if failed is not None:
        entry["failed"] = failed
    return entry


def _statistics(study, values: dict, names: list[str], metrics: list[str]) -> dict:
    """{"metrics": per configuration, "paired": per pair} of ``values`` {metric: {name: {unit: value}}}."""
    paired = {m: {f"{b}-{a}": paired_difference(values[m][a], values[m][b], m) for b, a in pairs(study)}
              for m in metrics}
    for m, by_pair in paired.items():
        for d in by_pair.values():
            d["verdict"] = verdict(d, m)
    return {"metrics": {m: {n: describe(values[m][n].values()) for n in names} for m in metrics},
            "paired": paired}


def summarise(study) -> dict:
    """The summary mapping of a study's finished runs (see the module docstring)."""
    names, seeds = list(study.configs), list(study.seeds)
    keys = [k for k in study.keys()]
    results = {n: {} for n in names}
    for k in keys:
        if (r := study.result(*k)) is not None:
            results[k.name][k.unit] = r
    dim = matched_probes(study, results)
    for by_unit in results.values():
        for r in by_unit.values():
            r["metrics"]["train_seconds"] = r["train_seconds"]
    present = {k for by_unit in results.values() for r in by_unit.values() for k in r["metrics"]}
    metrics = [m for m in ORDER if m in present] + sorted(present - set(ORDER))
    values = {m: {n: {u: r["metrics"].get(m) for u, r in results[n].items()} for n in names} for m in metrics}
    summary = {
        "configs": names, "seeds": seeds, "reference": names[0],
        "complete": all(study.result(*k) is not None for k in keys),
        "missing": [_missing(study, k) for k in keys if k.unit not in results[k.name]],
        "selection": {n: "; ".join(sorted({_SELECTION[r["selected_on"]] for r in results[n].values()})) or None
                      for n in names},
        "matched_dim": dim,
        **_statistics(study, values, names, metrics),
    }
    if study.folds is not None:
        summary["folds"] = list(study.folds)
        summary["per_fold"] = {}
        for f in study.folds:
            by_seed = {m: {n: {results[n][u]["seed"]: v for u, v in values[m][n].items()
                               if results[n][u].get("fold") == f} for n in names} for m in metrics}
            summary["per_fold"][str(f)] = _statistics(study, by_seed, names, metrics)
    summary["_values"], summary["_results"] = values, results
    return summary


def write_summary(study) -> dict:
    """Write summary.json, summary.md, runs.csv and compare.png into the study folder; returns the summary."""
    from ferkit.report.compare import plot_compare

    s = summarise(study)
    values, results = s.pop("_values"), s.pop("_results")
    out = study.out
    write_json(out / "summary.json", s)
    _write_runs_csv(out / "runs.csv", results, values)
    (out / "summary.md").write_text(markdown(s, study), encoding="utf-8")
    shown = [m for m in PLOTTED if m in values]
    if any(v is not None for m in shown for by in values[m].values() for v in by.values()):
        plot_compare(values, s["paired"], shown, s["configs"], out / "compare.png",
                     title=f"ferkit compare: {out.name} ({len(s['seeds'])} seeds, pairs vs {s['reference']})",
                     pairs=pairs(study))
    return s


def _write_runs_csv(path: Path, results: dict[str, dict[int, dict]], values: dict) -> None:
    """One row per finished run (the results ``summarise`` read), every metric a column."""
    metrics = list(values)
    folds = any(r.get("fold") is not None for by_unit in results.values() for r in by_unit.values())
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["config", *(["fold"] if folds else []), "seed", "selected_on", *metrics])
        for n, by_unit in results.items():
            for u, r in by_unit.items():
                w.writerow([n, *([r["fold"]] if folds else []), r["seed"], r["selected_on"],
                            *("" if values[m][n].get(u) is None else f"{values[m][n][u]:.6g}" for m in metrics)])


def _num(x, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def markdown(s: dict, study) -> str:
    """summary.md: the study, per-configuration means, paired differences, and which exclude zero."""
    names, ref = s["configs"], s["reference"]
    others = names[1:]
    data = study.built[ref].data
    where = data.data_path or (f"SynthFER rendered in memory ({data.synth_identities} identities x "
                               f"{data.synth_images_per_identity} images, {data.synth_size} px, confounding "
                               f"{data.synth_confounding}, render seed {data.synth_seed})" if data.dataset == "synthetic"
                               else "")
    lines = [f"# ferkit compare: {study.out}", "",
             f"- Configurations: {', '.join(names)}; reference **{ref}**; every difference is *config - {ref}*"
             + "".join(f", and *{b} - {a}*" for b, a in pairs(study)[len(others):])
             + (", taken per fold and seed (paired)." if "folds" in s else ", taken per seed (paired)."),
             f"- Seeds: {', '.join(map(str, s['seeds']))}"
             + ("" if s["complete"] else f" ({len(s['missing'])} runs not finished yet: this summary is partial)"),
             f"- Data: {data.dataset} {where}".rstrip() + "; tested on the test split"
             + (f" of fold {data.fold}" if data.fold is not None else "")
             + (f" of each fold: folds {', '.join(map(str, s['folds']))} of {data.num_folds} subject-independent "
                "folds are an axis (every fold x seed run one unit; per fold below)" if "folds" in s else "") + ".",
             "- Model selection never touches the test split: "
             + "; ".join(f"{n}: {s['selection'][n] or 'no finished run'}" for n in names) + ".",
             f"- Intervals: 95% Student-t over the per-{'run' if 'folds' in s else 'seed'} differences (bootstrap percentile interval beside it, "
             "10 000 resamples); wins = seeds where the config is better than the reference in that metric's "
             "direction (lower is better for ECE, MCE, NLL, Brier, AURC, identity probes, subject retrieval, time).",
             ]
    if s["matched_dim"] is not None:
        lines.append(f"- Identity probe at matched dimension: each expression embedding cut by PCA to "
                     f"{s['matched_dim']} dimensions (the smallest in the study) before the subject probe; "
                     "compare those numbers across configurations, not the probe at each embedding's own width.")
    failed = [m for m in s["missing"] if "failed" in m]
    for m in failed:
        lines.append(f"- Failed after {m['failed']['attempts']} tries: {m['config']} seed {m['seed']}"
                     + (f" fold {m['fold']}" if "fold" in m else "") + f" (log {m['failed']['log']}: "
                     + (m["failed"]["last_lines"][-1] if m["failed"]["last_lines"] else "no output") + ")")
    unit = "over folds x seeds" if "folds" in s else "over seeds"
    lines += ["", f"## Per configuration (mean ± std {unit}, n)", "",
              "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m, by in s["metrics"].items():
        cells = [f"{_num(by[n]['mean'])} ± {_num(by[n]['std'])} ({by[n]['n']})" if by[n]["n"] else "-"
                 for n in names]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    shown_pairs = pairs(study)
    if shown_pairs:
        extra = [f"{b} - {a}" for b, a in shown_pairs[len(others):]]
        title = f"## Paired differences to {ref}" + (f" and {', '.join(extra)}" if extra else "")
        lines += ["", title + " (mean [95% t interval] (bootstrap interval), wins/n)", "",
                  "| metric | " + " | ".join(f"{b} - {a}" for b, a in shown_pairs) + " |",
                  "|---|" + "---|" * len(shown_pairs)]
        for m, by in s["paired"].items():
            cells = []
            for b, a in shown_pairs:
                d = by[f"{b}-{a}"]
                if not d["n"]:
                    cells.append("-")
                    continue
                star = " **≠0**" if d["excludes_zero"] else ""
                cells.append(f"{_num(d['mean'], True)} [{_num(d['lo'], True)}, {_num(d['hi'], True)}] "
                             f"({_num(d['boot_lo'], True)}, {_num(d['boot_hi'], True)}), {d['wins']}/{d['n']}{star}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if "per_fold" in s and "accuracy" in s["metrics"]:
            lines += ["", "## Accuracy per fold (mean over seeds; paired difference to the reference, wins/n)", "",
                      "| fold | " + " | ".join(names) + " | " + " | ".join(f"{b} - {a}" for b, a in shown_pairs)
                      + " |", "|---|" + "---|" * (len(names) + len(shown_pairs))]
            for f, st in s["per_fold"].items():
                means = [_num(st["metrics"]["accuracy"][n]["mean"]) for n in names]
                diffs = [f"{_num(d['mean'], True)}, {d['wins']}/{d['n']}" if d["n"] else "-"
                         for d in (st["paired"]["accuracy"][f"{b}-{a}"] for b, a in shown_pairs)]
                lines.append(f"| {f} | " + " | ".join(means + diffs) + " |")
        lines += ["", "## In words", ""]
        for b, a in shown_pairs:
            shown, level = [], []
            for m, by in s["paired"].items():
                d = by[f"{b}-{a}"]
                if m == "train_seconds" or not d["n"]:
                    continue
                if d["excludes_zero"]:
                    word = "better" if (d["mean"] > 0) == higher_is_better(m) else "worse"
                    shown.append(f"{word} in {m} by {_num(d['mean'], True)} [{_num(d['lo'], True)}, "
                                 f"{_num(d['hi'], True)}] (wins {d['wins']} of {d['n']})")
                else:
                    level.append(m)
            text = f"- **{b}** against {a}: "
            text += ("; ".join(shown) + ". " if shown else "no difference excludes zero. ")
            if level:
                text += "Intervals include zero (no difference shown) for " + ", ".join(level) + "."
            lines.append(text)
    return "\n".join(lines) + "\n"


def load_summary(out: str | Path) -> dict:
    """The summary.json of a study folder."""
    return json.loads((Path(out) / "summary.json").read_text())
