"""Write an evaluation to a folder: metrics.json, predictions.csv, PNG plots and report.html."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ferkit.metrics.calibration import reliability_bins
from ferkit.metrics.leakage import embedding_2d
from ferkit.metrics.uncertainty import risk_coverage
from ferkit.report import html as H
from ferkit.report import plots
from ferkit.report.evaluation import HEADLINE, uncertainty_of


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")
    return path


def write_predictions_csv(path: str | Path, preds: dict, classes: list[str],
                          abstain_above: float | None = None) -> Path:
    """One row per image: path, subject (blank if unknown), true and predicted label (index and name),
    confidence, uncertainty, abstained (when a threshold is set), fold (when pooled), p_<class>..."""
    probs = np.asarray(preds["probs"], dtype=np.float64)
    labels = np.asarray(preds["labels"])
    subjects = np.asarray(preds["subjects"])
    u, _ = uncertainty_of(preds)
    pred = probs.argmax(axis=1)
    folds = preds.get("fold")
    header = ["path", "subject", "true_label", "true_name", "pred_label", "pred_name", "confidence",
              "uncertainty"]
    header += ["abstained"] if abstain_above is not None else []
    header += ["fold"] if folds is not None else []
    header += [f"p_{c}" for c in classes]
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(probs.shape[0]):
            row = [preds["paths"][i], int(subjects[i]) if subjects[i] >= 0 else "", int(labels[i]),
                   classes[labels[i]], int(pred[i]), classes[pred[i]], f"{probs[i].max():.6f}", f"{u[i]:.6f}"]
            row += [int(u[i] > abstain_above)] if abstain_above is not None else []
            row += [int(folds[i])] if folds is not None else []
            row += [f"{p:.6f}" for p in probs[i]]
            w.writerow(row)
    return path


def write_plots(out: Path, preds: dict, metrics: dict, classes: list[str], embedding_preds: dict | None,
                abstain_above: float | None, seed: int = 0, embedding_maps: bool = True) -> dict[str, tuple[Path, str]]:
    """All PNGs of the report (t-SNE maps of the embeddings only with ``embedding_maps``);
    returns {key: (path, caption)}."""
    probs = np.asarray(preds["probs"], dtype=np.float64)
    labels = np.asarray(preds["labels"])
    u, source = uncertainty_of(preds)
    correct = probs.argmax(axis=1) == labels
    cls, unc = metrics["classification"], metrics["uncertainty"]
    rc = risk_coverage(u, correct)
    figs = {
        "confusion": (plots.plot_confusion(np.array(cls["confusion"]), classes, out / "confusion.png"),
                      "Confusion matrix, rows normalised to the true class."),
        "per_class_f1": (plots.plot_per_class_f1(cls["per_class"]["f1"], classes, out / "per_class_f1.png"),
                         "F1 per class; dashed line: macro F1."),
        "reliability": (plots.plot_reliability(reliability_bins(probs, labels), out / "reliability.png",
                                               metrics["calibration"]["ece"]),
                        "Reliability diagram: accuracy per confidence bin (15 equal-width bins)."),
        "risk_coverage": (plots.plot_risk_coverage(rc["coverage"], rc["risk"], out / "risk_coverage.png",
                                                   rc["aurc"], unc["aurc_oracle"]),
                          f"Risk-coverage: least uncertain first, uncertainty = {source}."),
        "uncertainty_hist": (plots.plot_uncertainty_histogram(u, correct, out / "uncertainty_hist.png",
                                                              source, abstain_above),
                             f"Uncertainty ({source}) of right and wrong predictions."),
    }
    src = embedding_preds if embedding_preds is not None else preds
    for key, name in (("embedding", "Expression embedding"), ("identity_embedding", "Identity embedding")):
        if not embedding_maps or src.get(key) is None or len(src[key]) < 3:
            continue
        m = embedding_2d(src[key], seed=seed, max_points=1500)
        idx = m["index"]
        path = plots.plot_embedding(m["xy"], np.asarray(src["labels"])[idx], np.asarray(src["subjects"])[idx],
                                    classes, out / f"{key}_2d.png", m["method"], name)
        figs[key] = (path, f"{name}: {m['method']} of {len(idx)} images (seed {seed}), coloured by "
                           "expression (left) and identity (right).")
    return figs


def _facts_table(facts: dict) -> str:
    return H.table(None, [(k, v) for k, v in facts.items()], css_class="facts")


def _leakage_blocks(lk: dict, modified: dict | None, figs: dict) -> list[str]:
    blocks = []
    probe_rows, purity_rows = [], []
    for key, name in (("expression_embedding", "expression"), ("identity_embedding", "identity")):
        if key not in lk:
            continue
        p, r = lk[key]["identity_probe"], lk[key]["retrieval"]
        probe_rows.append((f"{name} ({lk[key]['dim']}-D)", p["accuracy"], p["chance"], p["majority"],
                           p["num_subjects"], p["num_train"], p["num_test"]))
        m = lk[key].get("identity_probe_matched")
        if m is not None:
            probe_rows.append((f"{name}, PCA to {m['dim']}-D (compare across methods at this size)", m["accuracy"],
                               m["chance"], m["majority"], m["num_subjects"], m["num_train"], m["num_test"]))
        purity_rows.append((f"{name} ({lk[key]['dim']}-D)", r["k"], r["expression"], r["expression_chance"],
                            r["subject"], r["subject_chance"]))
    if probe_rows:
        blocks.append(H.table(["embedding", "probe accuracy", "chance (1/#subjects)", "majority rate",
                               "subjects", "train images", "held-out images"], probe_rows,
                              "Linear identity probe on held-out images of known subjects (split per subject)"))
        blocks.append(H.table(["embedding", "k", "same expression", "chance", "same subject", "chance"],
                              purity_rows, "Cosine k-nearest-neighbour purity (the DICE-FER Fig. 3 check)"))
    mig = lk.get("mig")
    if mig is not None or modified is not None:
        rows = []
        if mig is not None:
            pf = mig.get("per_factor", {})
            rows.append(("MIG (Chen et al. 2018, disentanglement_lib)", mig.get("mig"),
                         f"codes: {mig.get('codes', '-')}; per factor: "
                         + ", ".join(f"{k} {H.fmt(v)}" for k, v in pf.items()) + (
                             f"; {mig['reason']}" if mig.get("reason") else "")))
        if modified is not None:
            rows.append(("DICE-FER modified MIG, I(E_M; E_N) - I(E_M; I_M)", modified.get("value"),
                         modified.get("note", "")))
        blocks.append(H.table(["measure", "value", "details"], rows, "Disentanglement"))
    for key in ("embedding", "identity_embedding"):
        if key in figs:
            blocks.append(H.figure(*figs[key]))
    return blocks


def _identity_reference_blocks(ref: dict) -> list[str]:
    """The tables of ``metrics["identity_reference"]`` (``ferkit.report.identity_reference``)."""
    blocks = [H.note(f"{ref['reference']}: {ref['note']}; a face in {ref['num_with_face']} of {ref['num_images']} "
                     "images." + (f" {ref['reason']}." if ref.get("reason") else ""))]
    rows = []
    for key, name in (("expression_embedding", "expression"), ("identity_embedding", "identity")):
        a = ref.get(key)
        if not a:
            continue
        for stat, label in (("cka", "linear CKA"), ("cka_debiased", "linear CKA, debiased HSIC"),
                            ("similarity_rank_correlation", "rank correlation of pairwise cosine similarities")):
            v = a[stat]
            interval = v.get("interval")
            rows.append((f"{name} ({a['dim']}-D)", label, v["value"],
                         f"[{H.fmt(interval[0])}, {H.fmt(interval[1])}]" if interval else "-",
                         v["shuffled_mean"], v["p_shuffled"]))
        auc = a.get("verification_auc")
        if auc and auc.get("auc") is not None:
            rows.append((f"{name} ({a['dim']}-D)", "same-person verification AUC", auc["auc"], "-",
                         a["reference_verification_auc"]["auc"], "(the recognizer's own AUC)"))
    if rows:
        blocks.append(H.table(["embedding", "measure", "value", "95% bootstrap (BC)", "shuffled control",
                               "p (shuffled >= value)"], rows,
                              f"The model's embedding against {ref['reference']}'s descriptors of the same faces"))
    return blocks


def write_report_html(path: Path, metrics: dict, classes: list[str], facts: dict, figs: dict,
                      title: str, folds: dict | None = None) -> Path:
    """report.html: model facts, headline and per-class tables, every plot, leakage and MIG sections."""
    h = metrics["headline"]
    names = dict(HEADLINE)
    if folds:
        rows = [(names[k], h.get(k), folds["mean"].get(k), folds["std"].get(k)) for k, _ in HEADLINE
                if h.get(k) is not None or k in folds["mean"]]
        head = H.table(["metric", "pooled", f"mean over {folds['num_folds']} folds", "std"], rows)
    else:
        head = H.table(["metric", "value"], [(names[k], h[k]) for k, _ in HEADLINE if h.get(k) is not None])
    pc = metrics["classification"]["per_class"]
    per_class = H.table(["class", "support", "precision", "recall", "F1"],
                        [(c, pc["support"][i], pc["precision"][i], pc["recall"][i], pc["f1"][i])
                         for i, c in enumerate(classes)])
    unc = metrics["uncertainty"]
    sections = [
        H.section("Model", [_facts_table(facts)], "model"),
        H.section("Headline", [head, H.note(f"{metrics['num_samples']} images; metrics over the whole set, "
                                            "not averaged per batch.")], "headline"),
        H.section("Per class", [per_class, H.figure(*figs["per_class_f1"]), H.figure(*figs["confusion"])],
                  "per-class"),
        H.section("Calibration", [H.figure(*figs["reliability"]), H.note(
            "ECE: confidence = max probability, 15 equal-width bins, |accuracy - confidence| weighted by the "
            "fraction of images in the bin (torchmetrics MulticlassCalibrationError, norm l1).")],
            "calibration"),
    ]
    ublocks = [H.figure(*figs["risk_coverage"]), H.figure(*figs["uncertainty_hist"]),
               H.note(f"Uncertainty: {unc['uncertainty_source']}. Oracle AURC for this error rate: "
                      f"{H.fmt(unc['aurc_oracle'])}.")]
    ab = metrics.get("abstention")
    if ab:
        ublocks.insert(0, H.table(["abstain above", "abstained", "answered", "coverage", "accuracy on answered"],
                                  [(ab["threshold"], ab["abstained"], ab["answered"], ab["coverage"],
                                    ab["accuracy_answered"])], "Abstention"))
    sections.append(H.section("Uncertainty and abstention", ublocks, "uncertainty"))
    lk = metrics.get("leakage") or {}
    if lk or metrics.get("modified_mig"):
        sections.append(H.section("Identity leakage and disentanglement",
                                  _leakage_blocks(lk, metrics.get("modified_mig"), figs), "leakage"))
    if metrics.get("identity_reference"):
        sections.append(H.section("Identity against a face recognizer",
                                  _identity_reference_blocks(metrics["identity_reference"]), "identity-reference"))
    cross = metrics.get("crossdata")
    if cross:
        sections.append(H.section("Label mapping", [H.table(None, [
            ("model classes dropped (probabilities renormalised)", ", ".join(cross["dropped_model_classes"]) or "none"),
            ("dataset classes the model lacks (images excluded)",
             ", ".join(f"{k}: {v}" for k, v in cross["excluded_counts"].items()) or "none"),
            ("images excluded", cross["num_excluded"])])], "labels"))
    if folds:
        keys = [k for k, _ in HEADLINE if k in folds["mean"]][:8]
        ids = folds.get("fold_ids") or list(range(folds["num_folds"]))
        rows = [(i, *[r.get(k) for k in keys]) for i, r in zip(ids, folds["per_fold"], strict=True)]
        sections.append(H.section("Folds", [H.table(["fold", *[names[k] for k in keys]], rows)], "folds"))
    from ferkit import __version__

    subtitle = f"{facts.get('method', '')} evaluated on {facts.get('evaluated on', facts.get('dataset', ''))}"
    return H.write_page(path, title, subtitle,
                        sections, f"ferkit {__version__}")


def write_evaluation(out_dir: str | Path, preds: dict, metrics: dict, classes: list[str], facts: dict,
                     abstain_above: float | None = None, folds: dict | None = None,
                     embedding_preds: dict | None = None, title: str = "ferkit evaluation",
                     seed: int = 0, embedding_maps: bool = True) -> dict[str, Path]:
    """Write metrics.json, predictions.csv, the PNGs and report.html into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = dict(metrics)
    doc["facts"] = facts
    if folds:
        doc["folds"] = folds
    paths = {"metrics": write_json(out / "metrics.json", doc),
             "predictions": write_predictions_csv(out / "predictions.csv", preds, classes, abstain_above)}
    figs = write_plots(out, preds, metrics, classes, embedding_preds, abstain_above, seed, embedding_maps)
    paths.update({k: p for k, (p, _) in figs.items()})
    paths["report"] = write_report_html(out / "report.html", metrics, classes, facts, figs, title, folds)
    return paths
