"""A study's summary: ``summary.json`` (the shape scripts rely on), ``summary.md``, ``runs.csv``, ``compare.png``.

``summary.json``::

    {"configs": [A, B, ...], "seeds": [...], "reference": A, "complete": bool, "missing": [...],
     "selection": {name: "best epoch on the validation split" | "last epoch (no validation split)"},
     "matched_dim": d or null,
     "metrics": {metric: {name: {"mean", "std", "n"}}},
     "paired": {metric: {"B-A": {"mean", "lo", "hi", "boot_lo", "boot_hi", "n", "wins", "ties", ...}}}}

``identity_probe_matched`` is the subject probe on every configuration's expression embedding cut by PCA
to the smallest embedding width in the study (``matched_dim``), so embeddings of different widths are
compared at one dimension; ``identity_probe_accuracy`` is the probe at each embedding's own width.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ferkit.study.files import write_json_atomic
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
    for name, by_seed in results.items():
        for seed, r in by_seed.items():
            if not r.get("embedding_dim"):
                continue
            cached = r.get("matched_probe") or {}
            if cached.get("dim") != dim:
                path = study.run_dir(name, seed) / "eval" / "embeddings.npz"
                with np.load(path) as z:
                    probe = identity_probe(z["embedding"], z["subjects"], seed=0, pca_dim=dim)
                r["matched_probe"] = {"dim": dim, "accuracy": probe["accuracy"]}
                write_json_atomic(study.run_dir(name, seed) / "result.json", r)
            r["metrics"]["identity_probe_matched"] = r["matched_probe"]["accuracy"]
    return dim


def pairs(study) -> list[tuple[str, str]]:
    """The paired differences a study reports, as (B, A) for B - A: every configuration after the first
    against the first, then the study's extra contrasts (``--contrast B-A``) that are not already there."""
    names = list(study.configs)
    out = [(n, names[0]) for n in names[1:]]
    out += [c for c in study.contrasts if c not in out]
    return out


def summarise(study) -> dict:
    """The summary mapping of a study's finished runs (see the module docstring)."""
    names, seeds = list(study.configs), list(study.seeds)
    results = {n: {s: r for s in seeds if (r := study.result(n, s)) is not None} for n in names}
    dim = matched_probes(study, results)
    for by_seed in results.values():
        for r in by_seed.values():
            r["metrics"]["train_seconds"] = r["train_seconds"]
    present = {k for by_seed in results.values() for r in by_seed.values() for k in r["metrics"]}
    metrics = [m for m in ORDER if m in present] + sorted(present - set(ORDER))
    values = {m: {n: {s: r["metrics"].get(m) for s, r in results[n].items()} for n in names} for m in metrics}
    ref = names[0]
    summary = {
        "configs": names, "seeds": seeds, "reference": ref,
        "complete": all(len(results[n]) == len(seeds) for n in names),
        "missing": [{"config": n, "seed": s} for s in seeds for n in names if s not in results[n]],
        "selection": {n: "; ".join(sorted({_SELECTION[r["selected_on"]] for r in results[n].values()})) or None
                      for n in names},
        "matched_dim": dim,
        "metrics": {m: {n: describe(values[m][n].values()) for n in names} for m in metrics},
        "paired": {m: {f"{b}-{a}": paired_difference(values[m][a], values[m][b], m) for b, a in pairs(study)}
                   for m in metrics},
    }
    for m, by_pair in summary["paired"].items():
        for d in by_pair.values():
            d["verdict"] = verdict(d, m)
    summary["_values"], summary["_results"] = values, results
    return summary


def write_summary(study) -> dict:
    """Write summary.json, summary.md, runs.csv and compare.png into the study folder; returns the summary."""
    from ferkit.report.compare import plot_compare

    s = summarise(study)
    values, results = s.pop("_values"), s.pop("_results")
    out = study.out
    write_json_atomic(out / "summary.json", s)
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
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["config", "seed", "selected_on", *metrics])
        for n, by_seed in results.items():
            for seed, r in by_seed.items():
                w.writerow([n, seed, r["selected_on"], *("" if values[m][n].get(seed) is None else
                                                         f"{values[m][n][seed]:.6g}" for m in metrics)])


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
             + ", taken per seed (paired).",
             f"- Seeds: {', '.join(map(str, s['seeds']))}"
             + ("" if s["complete"] else f" ({len(s['missing'])} runs not finished yet: this summary is partial)"),
             f"- Data: {data.dataset} {where}".rstrip() + "; tested on the test split"
             + (f" of fold {data.fold}" if data.fold is not None else "") + ".",
             "- Model selection never touches the test split: "
             + "; ".join(f"{n}: {s['selection'][n] or 'no finished run'}" for n in names) + ".",
             "- Intervals: 95% Student-t over the per-seed differences (bootstrap percentile interval beside it, "
             "10 000 resamples); wins = seeds where the config is better than the reference in that metric's "
             "direction (lower is better for ECE, MCE, NLL, Brier, AURC, identity probes, subject retrieval, time).",
             ]
    if s["matched_dim"] is not None:
        lines.append(f"- Identity probe at matched dimension: each expression embedding cut by PCA to "
                     f"{s['matched_dim']} dimensions (the smallest in the study) before the subject probe; "
                     "compare those numbers across configurations, not the probe at each embedding's own width.")
    lines += ["", "## Per configuration (mean ± std over seeds, n)", "",
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
