"""Metrics on arrays (no models, no datasets): classification, calibration, uncertainty, disentanglement,
identity leakage and cross-dataset label mapping. Each follows its reference definition and names it.

The public names are the functions, e.g. ``ferkit.metrics.mig(codes, factors)`` and
``ferkit.metrics.expected_calibration_error(probs, labels)``. The submodules stay importable as before
(``from ferkit.metrics.mig import mig_details``); only ``ferkit.metrics.mig`` and
``ferkit.metrics.modified_mig`` as *attributes* are now the functions that share the modules' names.
"""

from ferkit.metrics.calibration import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    max_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from ferkit.metrics.classification import classification_metrics, confusion_counts
from ferkit.metrics.crossdata import map_to_dataset
from ferkit.metrics.leakage import embedding_2d, identity_probe, retrieval_purity
from ferkit.metrics.mig import mig, mig_details
from ferkit.metrics.modified_mig import modified_mig
from ferkit.metrics.uncertainty import (
    abstention,
    accuracy_at_coverage,
    error_detection_auroc,
    risk_coverage,
    uncertainty_metrics,
)

__all__ = [
    "abstention", "accuracy_at_coverage", "brier_score", "calibration_metrics", "classification_metrics",
    "confusion_counts", "embedding_2d", "error_detection_auroc", "expected_calibration_error", "identity_probe",
    "map_to_dataset", "max_calibration_error", "mig", "mig_details", "modified_mig", "negative_log_likelihood",
    "reliability_bins", "retrieval_purity", "risk_coverage", "uncertainty_metrics",
]
