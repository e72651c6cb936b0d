"""Sample-quality metrics of a run: FID, KID, precision/recall/density/coverage.

Features come from the dataset's local classifier (trained once with a fixed seed, cached under
``<store root>/cache/classifiers``; its test accuracy is logged with every run that uses it).
A dataset without labels (the 2-D toy densities) is scored on its raw coordinates.

Features are standardised with the test split's per-dimension mean and std before scoring, so
KID and FID are on a scale-free footing (the classifier's raw penultimate activations have an
arbitrary scale, and KID's cubic kernel magnifies it): real training images scored against the
real test split give KID within about +-0.01 of zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.errors import HarnessError
from harness.hypothesis import SAMPLE_METRICS

_REAL: dict[tuple, np.ndarray] = {}


def wanted(hypothesis) -> bool:
    """Whether a study's runs are scored on samples."""
    return hypothesis.training.sample_metrics or hypothesis.prediction.metric in SAMPLE_METRICS


def n_samples_for(dataset) -> int:
    """Samples per run for the metrics: as many as the test split (capped at 2,000)."""
    return int(min(max(dataset.test.shape[0], 64), 2000))


def score(samples: np.ndarray, dataset, seed: int, cache_dir: Path) -> dict[str, float]:
    """The metrics of one seed's ``samples`` [n, *shape] against the dataset's test split."""
    from harness.metrics import sample_quality as sq
    from harness.metrics.features import get_feature_extractor

    try:
        extractor = get_feature_extractor(dataset.name, cache_dir=cache_dir)
    except HarnessError:
        extractor = None  # no labels: score raw coordinates
    key = (dataset.name, getattr(dataset, "held_out", "test"), str(cache_dir), extractor is None)
    if key not in _REAL:
        raw = _features(extractor, dataset.test)
        _REAL[key] = (raw, raw.mean(0), raw.std(0) + 1e-8)
    raw, mu, sd = _REAL[key]
    real = (raw - mu) / sd
    fake = (_features(extractor, torch.from_numpy(np.asarray(samples)).reshape(len(samples), -1)) - mu) / sd
    rng = np.random.default_rng([seed, 7])
    size = int(min(100, len(real), len(fake)))
    kid_mean, kid_std = sq.kid(real, fake, subsets=50, subset_size=size, rng=rng)
    out = {"fid": sq.fid(real, fake), "kid": kid_mean, "kid_std": kid_std, **sq.prdc(real, fake, k=5)}
    if extractor is not None:
        out["classifier_accuracy"] = float(extractor.accuracy)
    return {k: float(v) for k, v in out.items()}


def _features(extractor, x: torch.Tensor) -> np.ndarray:
    x = x.float().reshape(len(x), -1)
    if extractor is None:
        return x.numpy().astype(np.float64)
    with torch.no_grad():
        return extractor.features(x).cpu().numpy().astype(np.float64)
