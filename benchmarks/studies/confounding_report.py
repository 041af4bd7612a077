"""The confounding sweep's figure and its stage-1 record, from the stored studies (issue 29).

    .venv/bin/python benchmarks/studies/confounding_report.py [--out benchmarks/results/study_confounding]

Reads each level's ``summary.json`` (written by ``ferkit compare`` through ``study_confounding.py``) and writes:

* ``sweep.png``: left, each arm's accuracy minus the baseline's against the confounding level, the mean over
  paired seeds with its 95 % Student-t interval; right, the subject probe on the expression embedding cut to
  64 dimensions (lower: less identity), each arm's mean with the 95 % interval of that mean;
* ``stage1.json``: per DICE-FER run (level, arm, seed; ``longer_stage1/``'s runs at level 0), what its stage 1 did, read from the run's local
  ``metrics.csv``: the epochs it ran, its MI estimate (global + local, nats) at its end and how much that rose
  over its last 5 epochs and per epoch, beside the run's test accuracy. Runs whose logs are gone (a fresh
  clone keeps only each run's ``result.json``) keep the record stored before;
* ``stage1.png``: each run's stage-1 MI estimate by epoch (``mi_by_epoch`` in ``stage1.json``), per DICE-FER arm.

The docs' results page (``docs/gen_pages.py``) builds its tables from the same summaries and ``stage1.json`` and
copies the figure; nothing here is typed.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ferkit.report.plots import _figure, _save  # ferkit's Agg figures (no pyplot state), its DPI
from ferkit.study.stats import t_interval

ROOT = Path(__file__).resolve().parents[2]
LONGER = "longer_stage1"         # the study of a longer stage 1 at confounding 0 (its runs join level 0's record)
ARMS = ("baseline", "baseline_budget", "dicefer", "dicefer_pretrained")
LABELS = {"baseline": "baseline (15 epochs)", "baseline_budget": "baseline at DICE-FER's steps (24 epochs)",
          "dicefer": "DICE-FER, random init", "dicefer_pretrained": "DICE-FER, identity-pretrained start"}


def levels(out: Path) -> list[tuple[float, Path]]:
    """The stored levels (``c<level>/summary.json``), in increasing confounding."""
    found = [(float(p.parent.name[1:]), p.parent) for p in out.glob("c*/summary.json")]
    return sorted(found)


def arm_values(folder: Path, metric: str) -> dict[str, list[float]]:
    """Each arm's per-seed values of ``metric`` at one level (its ``runs.csv``)."""
    values: dict[str, list[float]] = {}
    with (folder / "runs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get(metric) not in (None, ""):
                values.setdefault(row["config"], []).append(float(row[metric]))
    return values


def stage1_of_run(run: Path) -> dict | None:
    """Stage 1 of one DICE-FER run from its ``metrics.csv``; None when the log is not here."""
    path, result = run / "metrics.csv", run / "result.json"
    if not path.is_file() or not result.is_file():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "stage1"]
    if not rows:
        return None
    mi = [float(r["train_mi_global"]) + float(r["train_mi_local"]) for r in rows]
    return {"epochs": len(rows), "mi_end": round(mi[-1], 4),
            "mi_rise_last5": round(mi[-1] - mi[max(0, len(mi) - 6)], 4),
            "accuracy": round(json.loads(result.read_text())["metrics"]["accuracy"], 4),
            "mi_by_epoch": [round(v, 4) for v in mi]}


def stage1_record(out: Path) -> list[dict]:
    """Every DICE-FER run's stage-1 record: read from the logs where they are, kept from ``stage1.json``
    where they are not."""
    path = out / "stage1.json"
    stored = {(r["level"], r["arm"], r["seed"]): r for r in json.loads(path.read_text())["runs"]} \
        if path.is_file() else {}
    studies = [*levels(out), *([(0.0, out / LONGER)] if (out / LONGER).is_dir() else [])]
    for level, folder in studies:
        for arm in sorted(p.name for p in folder.glob("dicefer*") if p.is_dir()):   # every DICE-FER arm
            for run in sorted((folder / arm).glob("seed*")):
                seed = int(run.name[4:])
                got = stage1_of_run(run)
                if got is not None:
                    stored[(level, arm, seed)] = {"level": level, "arm": arm, "seed": seed, **got}
    return [stored[k] for k in sorted(stored)]


def figure(out: Path, path: Path) -> None:
    found = levels(out)
    data = [(c, json.loads((f / "summary.json").read_text())) for c, f in found]
    probes = {c: arm_values(f, "identity_probe_matched") for c, f in found}
    xs = [c for c, _ in data]
    pos = {c: i for i, c in enumerate(xs)}            # levels evenly spaced (0.95 and 1.0 would overlap)
    fig = _figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    colors = {"baseline": "0.35", "baseline_budget": "tab:blue", "dicefer": "tab:red", "dicefer_pretrained": "tab:orange"}
    step = 0.07
    for k, arm in enumerate(ARMS[1:]):
        pts = [(c, s["paired"]["accuracy"].get(f"{arm}-baseline")) for c, s in data]
        pts = [(c, d) for c, d in pts if d]
        dx = (k - 1) * step
        left.errorbar([pos[c] + dx for c, _ in pts], [d["mean"] for _, d in pts],
                      yerr=[[d["mean"] - d["lo"] for _, d in pts], [d["hi"] - d["mean"] for _, d in pts]],
                      marker="o", capsize=3, color=colors[arm], label=LABELS[arm])
    left.axhline(0, color="0.35", lw=1, ls="--", label="baseline (15 epochs)")
    left.set(xlabel="identity-expression confounding in the training people", ylabel="accuracy - baseline (unseen people)",
             title="Accuracy gap to the baseline, 95% t interval over paired seeds")
    left.legend(fontsize=8, loc="lower right")
    for k, arm in enumerate(ARMS):
        pts = [(c, probes[c].get(arm)) for c in xs]
        pts = [(c, np.asarray(v)) for c, v in pts if v]
        iv = [t_interval(v) if len(v) > 1 else (v.mean(), v.mean()) for _, v in pts]
        dx = (k - 1.5) * step
        right.errorbar([pos[c] + dx for c, _ in pts], [v.mean() for _, v in pts],
                       yerr=[[v.mean() - lo for (_, v), (lo, _) in zip(pts, iv, strict=True)],
                             [hi - v.mean() for (_, v), (_, hi) in zip(pts, iv, strict=True)]],
                       marker="o", capsize=3, color=colors[arm], label=LABELS[arm])
    right.set(xlabel="identity-expression confounding in the training people",
              ylabel="subject probe at 64-D (chance 1/36)", title="Identity left in the expression code",
              ylim=(0, 1.05))
    right.legend(fontsize=7, loc="lower right")
    for ax in (left, right):
        ax.set_xticks(range(len(xs)), [f"{c:g}" for c in xs])
        ax.grid(alpha=0.3)
    seeds = sorted({len(s["seeds"]) for _, s in data})
    fig.suptitle(f"SynthFER confounding sweep ({'-'.join(map(str, seeds))} paired seeds a level)", fontsize=10)
    _save(fig, path)


def stage1_figure(runs: list[dict], path: Path) -> None:
    """Stage 1's MI estimate by epoch, one panel per DICE-FER arm, a line per run coloured by its level."""
    from matplotlib import colormaps

    arms = sorted({r["arm"] for r in runs if r.get("mi_by_epoch")})
    found = sorted({r["level"] for r in runs})
    cmap = colormaps["viridis"]
    fig = _figure(5.5 * len(arms), 4)
    axes = fig.subplots(1, len(arms), sharey=True, squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        for r in runs:
            if r["arm"] == arm and r.get("mi_by_epoch"):
                k = found.index(r["level"])
                ax.plot(range(1, len(r["mi_by_epoch"]) + 1), r["mi_by_epoch"], color=cmap(k / max(1, len(found) - 1)),
                        lw=1.2, alpha=0.8, label=f"confounding {r['level']:g}")
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles, strict=True))
        ax.legend(keep.values(), keep.keys(), fontsize=7, loc="upper left")
        ax.set(title=LABELS.get(arm, arm), xlabel="stage-1 epoch", ylabel="MI estimate, global + local (nats)")
        ax.grid(alpha=0.3)
    fig.suptitle("DICE-FER stage 1: the MI estimate per epoch, one line per run", fontsize=10)
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/study_confounding")
    args = p.parse_args(argv)
    out = (ROOT / args.out).resolve()
    if not levels(out):
        raise SystemExit(f"No level of the sweep is stored under {out} (no c<level>/summary.json); run "
                         "benchmarks/studies/study_confounding.py first.")
    runs = stage1_record(out)
    (out / "stage1.json").write_text(json.dumps({
        "about": "Stage 1 of each DICE-FER run of the sweep, from its metrics.csv: epochs run, MI estimate "
                 "(global + local, nats) at the end, its rise over the last 5 epochs and per epoch (mi_by_epoch), and "
                 "the run's test accuracy.",
        "runs": runs}, indent=1) + "\n")
    figure(out, out / "sweep.png")
    if any(r.get("mi_by_epoch") for r in runs):
        stage1_figure(runs, out / "stage1.png")
    print(f"wrote {out / 'sweep.png'}, {out / 'stage1.png'} and {out / 'stage1.json'} ({len(runs)} DICE-FER runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
