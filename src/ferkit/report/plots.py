"""PNG plots for evaluation reports (matplotlib, Agg canvas; no pyplot global state).

Each function takes arrays, writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_confusion(confusion: np.ndarray, classes: list[str], path: str | Path,
                   title: str = "Confusion matrix (row-normalised)") -> Path:
    """Row-normalised confusion matrix (C, C), each cell annotated with its value."""
    cm = np.asarray(confusion, dtype=float)
    n = len(classes)
    fig = _figure(1.2 + 0.62 * n, 1.0 + 0.55 * n)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > 0.5 else "black")
    return _save(fig, path)


def reliability_bars(bins: dict) -> dict:
    """The bars of a reliability diagram: every bin ECE sums over, none dropped.

    ``bins`` from :func:`ferkit.metrics.calibration.reliability_bins`: M equal-width bins over [0, 1) and, in
    the torchmetrics convention ECE follows, one more bin for confidences of exactly 1.0; that bin is drawn
    just right of 1 (x in [1, 1 + 1/M]). Returns arrays "x" (bar centres), "width", "accuracy",
    "confidence", "fraction", so that sum(fraction) = 1 and sum(|accuracy - confidence| * fraction) = ECE.
    """
    edges = np.asarray(bins["edges"])
    m = len(edges) - 1
    width = 1.0 / m
    acc, conf, frac = (np.asarray(bins[k], dtype=float) for k in ("accuracy", "confidence", "fraction"))
    x = edges[:-1] + width / 2
    if len(frac) == m + 1:                                       # the confidence == 1.0 bin
        x = np.r_[x, 1.0 + width / 2]
    return {"x": x, "width": width, "accuracy": acc, "confidence": conf, "fraction": frac}


def plot_reliability(bins: dict, path: str | Path, ece: float | None = None) -> Path:
    """Reliability diagram: per-bin accuracy bars against the diagonal, plus the bin-fraction histogram;
    the bars are exactly the bins the ECE in the title sums over (:func:`reliability_bars`)."""
    bars = reliability_bars(bins)
    x, width, acc, conf, frac = (bars[k] for k in ("x", "width", "accuracy", "confidence", "fraction"))
    right = 1.0 + width if len(x) * width > 1.0 + 1e-9 else 1.0
    fig = _figure(5.0, 5.4)
    ax = fig.add_axes((0.13, 0.36, 0.82, 0.56))
    nz = frac > 0
    ax.bar(x[nz], acc[nz], width=width, edgecolor="#1f4e79", color="#5b9bd5", label="accuracy")
    ax.bar(x[nz], conf[nz] - acc[nz], bottom=acc[nz], width=width, color="#f4b183", alpha=0.6,
           edgecolor="#c55a11", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    if right > 1.0:
        ax.axvline(1.0, color="#7f7f7f", lw=0.8)
        ax.text(1.0 + width / 2, 0.02, "= 1", ha="center", fontsize=7)
    ax.set_xlim(0, right)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram" + (f" (ECE = {ece:.3f})" if ece is not None else ""))
    ax.legend(loc="upper left", fontsize=8)
    ax2 = fig.add_axes((0.13, 0.09, 0.82, 0.18))
    ax2.bar(x, frac, width=width, color="#7f7f7f")
    ax2.set_xlim(0, right)
    ax2.set_xlabel("confidence (max probability)")
    ax2.set_ylabel("fraction")
    fig.savefig(Path(path), format="png")
    return Path(path)


def plot_risk_coverage(coverage: np.ndarray, risk: np.ndarray, path: str | Path, aurc: float,
                       oracle: float | None = None) -> Path:
    """Risk (error rate among accepted) against coverage, as a step curve."""
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(np.r_[0.0, coverage], np.r_[risk[0], risk], where="post", color="#c00000", lw=1.6,
            label=f"model (AURC = {aurc:.4f})")
    if oracle is not None:
        ax.axhline(risk[-1], color="#7f7f7f", ls=":", lw=1, label=f"full-coverage risk; oracle AURC = {oracle:.4f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, float(np.max(risk)) * 1.1))
    ax.set_xlabel("coverage")
    ax.set_ylabel("risk (error rate)")
    ax.set_title("Risk-coverage curve")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_uncertainty_histogram(uncertainty: np.ndarray, correct: np.ndarray, path: str | Path,
                               label: str = "uncertainty", threshold: float | None = None) -> Path:
    """Histograms of uncertainty for right and wrong predictions (shared bins, fractions per group)."""
    u = np.asarray(uncertainty, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    lo, hi = float(u.min()), float(u.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for sel, colour, name in ((ok, "#2e75b6", "right"), (~ok, "#c00000", "wrong")):
        if sel.any():   # each group's bars sum to 1, so groups of different sizes compare
            ax.hist(u[sel], bins=edges, alpha=0.6, color=colour, weights=np.full(sel.sum(), 1.0 / sel.sum()),
                    label=f"{name} ({sel.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"abstain above {threshold:g}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel(label)
    ax.set_ylabel("fraction of the group")
    ax.set_title("Uncertainty of right vs wrong predictions")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_per_class_f1(f1: list[float], classes: list[str], path: str | Path) -> Path:
    """Horizontal bars of per-class F1 with the macro mean marked."""
    f1 = np.asarray(f1, dtype=float)
    fig = _figure(5.0, 1.0 + 0.35 * len(classes))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(classes))
    ax.barh(y, f1, color="#70ad47")
    for i, v in enumerate(f1):
        ax.text(min(v + 0.01, 0.93), i, f"{v:.2f}", va="center", fontsize=8)
    ax.axvline(f1.mean(), color="k", ls="--", lw=1, label=f"macro F1 = {f1.mean():.3f}")
    ax.set_yticks(y, classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title("Per-class F1")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_embedding(xy: np.ndarray, expressions: np.ndarray, subjects: np.ndarray, classes: list[str],
                   path: str | Path, method: str = "t-SNE", title: str = "Expression embedding") -> Path:
    """Two panels of the same 2-D map: coloured by expression (legend) and by identity."""
    xy = np.asarray(xy, dtype=float)
    e = np.asarray(expressions)
    s = np.asarray(subjects)
    fig = _figure(10.0, 4.6)
    ax1 = fig.add_subplot(1, 2, 1)
    cmap = _categorical(len(classes))
    for c, name in enumerate(classes):
        sel = e == c
        if sel.any():
            ax1.scatter(xy[sel, 0], xy[sel, 1], s=9, color=cmap[c], label=name)
    ax1.legend(fontsize=7, markerscale=1.5, loc="best")
    ax1.set_title(f"{title}: {method}, coloured by expression")
    ax2 = fig.add_subplot(1, 2, 2)
    known = s >= 0
    if known.any():
        ids = np.unique(s[known], return_inverse=True)[1]
        n_ids = int(ids.max()) + 1
        colours = _categorical(n_ids) if n_ids <= 20 else _spread(n_ids)
        ax2.scatter(xy[known, 0], xy[known, 1], s=9, color=[colours[i] for i in ids])
        ax2.set_title(f"coloured by identity ({n_ids} subjects)")
    if (~known).any():
        ax2.scatter(xy[~known, 0], xy[~known, 1], s=9, color="#bfbfbf", label="unknown subject")
        ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def plot_heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], path: str | Path,
                 title: str = "Train on row, test on column: accuracy") -> Path:
    """Annotated heat map (NaN cells shown blank), e.g. the cross-dataset accuracy matrix."""
    m = np.asarray(matrix, dtype=float)
    fig = _figure(2.0 + 1.1 * len(cols), 1.4 + 0.6 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("test dataset")
    ax.set_ylabel("trained on")
    ax.set_title(title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.3f}", ha="center", va="center", fontsize=9,
                        color="white" if m[i, j] < 0.6 else "black")
    return _save(fig, path)


def _spread(n: int) -> list:
    """n distinguishable colours for many identities (turbo, shuffled so neighbours in id differ)."""
    from matplotlib import colormaps

    order = np.random.default_rng(0).permutation(n)
    return [colormaps["turbo"](0.05 + 0.9 * k / max(1, n - 1)) for k in order]


def _categorical(n: int) -> list:
    from matplotlib import colormaps

    base = colormaps["tab10" if n <= 10 else "tab20"]
    return [base(i % base.N) for i in range(n)]
