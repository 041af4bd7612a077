"""compare.png for a paired-seed study (``ferkit compare``): per-seed values joined across configurations,
and each configuration's paired difference to the reference with its 95% interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.report.plots import _figure, _save


def plot_compare(values: dict, paired: dict, metrics: list[str], names: list[str], path: str | Path,
                 title: str = "", pairs: list[tuple[str, str]] | None = None) -> Path:
    """Two rows of panels, one column per metric.

    Top: every run's value per configuration; a grey line joins the runs of one seed (the pairs), the black
    bar is the mean. Bottom: per-seed differences to the reference (dots), their mean and 95% Student-t
    interval (bar), and zero (dashed line): an interval off the line is a difference the seeds show.
    Args: values {metric: {name: {seed: value or None}}}; paired {metric: {"B-A": difference dict}};
    pairs: the (B, A) differences to draw (default every configuration after the first against the first).
    """
    ref = names[0]
    pairs = pairs if pairs is not None else [(n, ref) for n in names[1:]]
    cols = max(1, len(metrics))
    fig = _figure(2.0 + 2.6 * cols, 6.2)
    x = np.arange(len(names))
    for j, m in enumerate(metrics):
        top = fig.add_subplot(2, cols, j + 1)
        seeds = sorted({s for n in names for s in values[m][n]})
        for s in seeds:
            ys = [values[m][n].get(s) for n in names]
            ys = [np.nan if y is None else y for y in ys]
            top.plot(x, ys, color="0.75", lw=0.8, marker="o", ms=3, zorder=1)
        for i, n in enumerate(names):
            v = [y for y in values[m][n].values() if y is not None]
            if v:
                top.hlines(np.mean(v), i - 0.25, i + 0.25, color="black", lw=2, zorder=2)
        top.set_xticks(x, names, rotation=20)
        top.set_title(m, fontsize=9)
        bottom = fig.add_subplot(2, cols, cols + j + 1)
        bottom.axhline(0.0, color="0.4", ls="--", lw=0.8)
        for i, (b, a) in enumerate(pairs):
            d = paired[m][f"{b}-{a}"]
            diffs = [values[m][b][s] - values[m][a][s] for s in d["seeds"]]
            bottom.scatter(np.full(len(diffs), i), diffs, s=10, color="tab:blue", alpha=0.6, zorder=2)
            if d["mean"] is not None:
                lo = d["lo"] if d["lo"] is not None else d["mean"]
                hi = d["hi"] if d["hi"] is not None else d["mean"]
                color = "tab:red" if d["excludes_zero"] else "black"
                bottom.errorbar([i + 0.15], [d["mean"]], yerr=[[d["mean"] - lo], [hi - d["mean"]]], fmt="s",
                                color=color, capsize=4, ms=5, zorder=3)
        bottom.set_xticks(np.arange(len(pairs)), [f"{b}-{a}" for b, a in pairs], rotation=20)
        bottom.set_xlim(-0.6, max(len(pairs), 1) - 0.4)
        bottom.set_title(f"paired difference, {m}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
