"""From a predictions dict (``ferkit.engine.evaluate.collect_predictions``) to the metrics of a report.

Everything here takes arrays; the model is never seen. ``compute_metrics`` returns the JSON-ready
content of ``metrics.json``; ``aggregate_folds`` reduces per-fold metrics to mean and std.
"""

from __future__ import annotations

import numpy as np

from ferkit.metrics.calibration import calibration_metrics
from ferkit.metrics.classification import classification_metrics
from ferkit.metrics.leakage import MATCHED_DIM, identity_probe, identity_probe_at_dim, retrieval_purity
from ferkit.metrics.mig import mig_details
from ferkit.metrics.uncertainty import abstention, default_uncertainty, uncertainty_metrics

#: the numbers shown in the headline table, printed to the terminal and aggregated over folds
HEADLINE = (
    ("accuracy", "Accuracy"), ("mean_class_accuracy", "Mean class accuracy (UAR)"),
    ("macro_f1", "Macro F1"), ("macro_precision", "Macro precision"), ("macro_recall", "Macro recall"),
    ("ece", "ECE (15 bins)"), ("mce", "MCE"), ("nll", "NLL"), ("brier", "Brier score"),
    ("aurc", "AURC"), ("acc@80", "Accuracy at 80% coverage"), ("acc@90", "Accuracy at 90% coverage"),
    ("auroc_error", "AUROC wrong vs right by uncertainty"),
    ("abstain_coverage", "Coverage after abstention"), ("abstain_accuracy", "Accuracy on answered"),
    ("identity_probe_accuracy", "Identity probe accuracy (expression embedding)"),
    ("retrieval_expression", "k-NN expression purity"), ("retrieval_subject", "k-NN subject purity"),
    ("mig", "MIG (factors: expression, subject)"), ("modified_mig", "DICE-FER modified MIG"),
    ("identity_reference_cka", "Linear CKA with the recognizer (expression)"),
    ("identity_reference_rsa", "Similarity rank corr. with the recognizer"),
)


def uncertainty_of(preds: dict) -> tuple[np.ndarray, str]:
    """The per-sample uncertainty a report uses: the method's own (evidential u) or 1 - max p."""
    if preds.get("uncertainty") is not None:
        return np.asarray(preds["uncertainty"], dtype=np.float64), "evidential u = C/S"
    return default_uncertainty(preds["probs"]), "1 - max p"


def leakage_metrics(preds: dict, seed: int = 0, k: int = 5) -> dict:
    """Identity probe, retrieval purity and MIG for the embeddings a method returns (empty if none).

    MIG codes are the expression embedding (with the identity embedding appended when the method has
    one), factors are (expression, subject) over the samples whose subject is known.
    """
    emb = preds.get("embedding")
    if emb is None:
        return {}
    labels = np.asarray(preds["labels"])
    subjects = np.asarray(preds["subjects"])
    out: dict = {"expression_embedding": {
        "dim": int(emb.shape[1]),
        "identity_probe": identity_probe(emb, subjects, seed=seed),
        "retrieval": retrieval_purity(emb, labels, subjects, k=k),
    }}
    if emb.shape[1] > MATCHED_DIM:     # comparable with a DICE-FER code's probe only at its size
        out["expression_embedding"]["identity_probe_matched"] = identity_probe_at_dim(emb, subjects, MATCHED_DIM,
                                                                                      seed)
    ident = preds.get("identity_embedding")
    if ident is not None:
        out["identity_embedding"] = {
            "dim": int(ident.shape[1]),
            "identity_probe": identity_probe(ident, subjects, seed=seed),
            "retrieval": retrieval_purity(ident, labels, subjects, k=k),
        }
    known = subjects >= 0
    if known.sum() >= 2 and len(np.unique(subjects[known])) >= 2:
        codes = emb if ident is None else np.concatenate([emb, ident], axis=1)   # (N, D [+ D'])
        factors = np.stack([labels[known], subjects[known]], axis=1)            # (N', 2)
        try:
            details = mig_details(codes[known], factors, factor_names=["expression", "subject"])
        except ValueError as e:
            out["mig"] = {"mig": None, "reason": str(e)}
        else:
            details.pop("mutual_info")
            details["codes"] = "expression embedding" + (" + identity embedding" if ident is not None else "")
            out["mig"] = details
    else:
        out["mig"] = {"mig": None, "reason": "MIG needs at least two known subjects"}
    return out


def compute_metrics(preds: dict, classes: list[str], abstain_above: float | None = None,
                    seed: int = 0, leakage: bool = True) -> dict:
    """metrics.json content: classification, calibration, uncertainty, abstention, leakage, headline."""
    probs = np.asarray(preds["probs"], dtype=np.float64)
    labels = np.asarray(preds["labels"], dtype=np.int64)
    if probs.shape[0] == 0:
        raise ValueError("there are no predictions to evaluate")
    u, source = uncertainty_of(preds)
    cls = classification_metrics(labels, probs.argmax(axis=1), len(classes))
    cal = calibration_metrics(probs, labels)
    unc = uncertainty_metrics(probs, labels, u)
    unc["uncertainty_source"] = source
    out = {"num_samples": int(labels.size), "classes": list(classes), "classification": cls,
           "calibration": cal, "uncertainty": unc}
    if abstain_above is not None:
        out["abstention"] = abstention(probs, labels, u, abstain_above)
    if leakage:
        out["leakage"] = leakage_metrics(preds, seed=seed)
    out["headline"] = headline(out)
    return out


def headline(m: dict) -> dict:
    """The flat {key: number or None} of :data:`HEADLINE` from a metrics dict."""
    cls, cal, unc = m["classification"], m["calibration"], m["uncertainty"]
    h = {k: cls[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1", "macro_precision", "macro_recall")}
    h.update({k: cal[k] for k in ("ece", "mce", "nll", "brier")})
    h.update({k: unc[k] for k in ("aurc", "acc@80", "acc@90", "auroc_error")})
    ab = m.get("abstention")
    if ab:
        h["abstain_coverage"], h["abstain_accuracy"] = ab["coverage"], ab["accuracy_answered"]
    lk = m.get("leakage") or {}
    expr = lk.get("expression_embedding")
    if expr:
        h["identity_probe_accuracy"] = expr["identity_probe"]["accuracy"]
        h["retrieval_expression"] = expr["retrieval"]["expression"]
        h["retrieval_subject"] = expr["retrieval"]["subject"]
    if "mig" in lk:
        h["mig"] = lk["mig"]["mig"]
    if m.get("modified_mig") is not None:
        h["modified_mig"] = m["modified_mig"].get("value")
    expr_ref = (m.get("identity_reference") or {}).get("expression_embedding")
    if expr_ref:
        h["identity_reference_cka"] = expr_ref["cka"]["value"]
        h["identity_reference_rsa"] = expr_ref["similarity_rank_correlation"]["value"]
    return h


def mean_and_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value) of per-fold numbers: the one
    spread ferkit reports over folds, in ``train --folds all`` and in ``evaluate --folds all`` alike."""
    vals = np.asarray(values, dtype=np.float64)
    return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0


def aggregate_folds(per_fold: list[dict]) -> dict:
    """Mean and standard deviation (ddof = 1 when there are >= 2 folds) of each headline number.

    Args: per_fold, one metrics dict (from :func:`compute_metrics`) per fold.
    Returns {"num_folds", "mean": {key: float}, "std": {key: float}, "per_fold": [headline, ...]}; a key
    missing or None in some fold is aggregated over the folds that have it.
    """
    rows = [m["headline"] for m in per_fold]
    mean, std = {}, {}
    for key, _ in HEADLINE:
        vals = np.array([r[key] for r in rows if r.get(key) is not None], dtype=np.float64)
        if vals.size:
            mean[key], std[key] = mean_and_std(vals)
    return {"num_folds": len(rows), "mean": mean, "std": std, "per_fold": rows}
