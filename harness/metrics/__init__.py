"""Metrics that need no downloads.

* :mod:`harness.metrics.sample_quality` -- FID, KID, precision / recall / density / coverage on
  feature arrays, and an MMD permutation test for 2-D data (pure numpy / scipy).
* :mod:`harness.metrics.features` -- the per-dataset feature classifier (trained once, cached
  under ``runs/cache/classifiers``, its test accuracy recorded) whose penultimate layer feeds
  the sample-quality metrics.
* :mod:`harness.metrics.information` -- active units, the minibatch mutual-information
  estimate (capped at log B), principal angles to the PCA subspace.

Nothing here imports mlflow or optuna. ``features`` imports torch; the other two do not, and
this package imports ``features`` only when one of its names is first used.
"""

from __future__ import annotations

from harness.metrics.information import (
    MIEstimate,
    active_units,
    gaussian_kl,
    mutual_information,
    pca_subspace,
    principal_angles,
    subspace_angles_deg,
    unit_activity,
)
from harness.metrics.sample_quality import (
    MMDTest,
    fid,
    kid,
    mmd2_polynomial,
    mmd_permutation_test,
    prdc,
)

_LAZY = {
    "FeatureExtractor",
    "ClassifierConfig",
    "get_feature_extractor",
    "default_config",
    "train_classifier",
}

__all__ = [
    "ClassifierConfig",
    "FeatureExtractor",
    "MIEstimate",
    "MMDTest",
    "active_units",
    "default_config",
    "fid",
    "gaussian_kl",
    "get_feature_extractor",
    "kid",
    "mmd2_polynomial",
    "mmd_permutation_test",
    "mutual_information",
    "pca_subspace",
    "prdc",
    "principal_angles",
    "subspace_angles_deg",
    "train_classifier",
    "unit_activity",
]


def __getattr__(name: str):
    if name in _LAZY:
        from harness.metrics import features

        return getattr(features, name)
    raise AttributeError(f"module 'harness.metrics' has no attribute {name!r}")
