"""Sample-quality metrics of a run: FID, KID, precision/recall/density/coverage, memorisation.

Features come from the dataset's local classifier (trained once with a fixed seed, cached under
``<store root>/cache/classifiers``; its test accuracy is logged with every run that uses it).
A dataset without labels (the 2-D toy densities) is scored on its raw coordinates.

Features are standardised by :func:`harness.metrics.sample_quality.fit_standardiser` fitted on
the *train* split's features (real data only, never the samples being scored, and not the test
split they are compared with): features that are dead on real data are dropped and the other
scales floored, so every score is finite for any input. Samples are clipped to the data's
range [0, 1] first; a sample set with a NaN or infinite value scores NaN. Real training images
against the test split score FID ~1.1 and KID ~0 on digits; the planted-degradation table, the
noise floor and why FID is the verdict metric are in docs/metrics.md (reproduced by
``benchmarks/sample_metric_degradations.py``).

Memorisation (``nn_train_ratio``, ``copy_fraction``): nearest-neighbour distances of the
samples to the train split in pixel space, against the test split's own distances to it; see
:func:`harness.metrics.sample_quality.memorisation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.hypothesis import SAMPLE_METRICS
from harness.seeds import stream_seed

_REF: dict[tuple, dict] = {}

# KID: 100 subsets of min(KID_SUBSET_SIZE, n_real, n_fake); with 300 test images every subset
# is the whole set, so KID has no subset-resampling noise at all (with 100-of-300 subsets it
# moved by ~0.01 from the subset draw alone).
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

# The noise floor of each metric per dataset: 2 * sqrt(2) * (std of the metric across
# independent sample draws of one fixed generator at the harness's sample count), the larger
# of the value for real images and for a trained VAE's samples. Two draws of the SAME model
# differ by more than this in about 5 % of cases, so a smallest effect below it cannot be read
# as a difference between models. Measured by ``benchmarks/sample_metric_degradations.py``
# (docs/metrics.md); `harness check` warns when a prediction's effect lies below it.
NOISE_FLOOR: dict[tuple[str, str], float] = {
    ("digits", "fid"): 1.44,  # VAE draws: std 0.51 (real draws 0.32)
    ("digits", "kid"): 0.057,  # VAE draws: std 0.020 (real draws 0.016)
    ("digits", "precision"): 0.035,
    ("digits", "recall"): 0.081,
    ("digits", "density"): 0.107,
    ("digits", "coverage"): 0.069,
}


def noise_floor(dataset: str, metric: str) -> float | None:
    """The measured noise floor of ``metric`` on ``dataset``, or None where none was measured."""
    return NOISE_FLOOR.get((dataset, metric))


def floor_warning(hypothesis) -> str | None:
    """A warning when the prediction's smallest effect lies below its metric's noise floor.

    ``harness check`` prints it. None when the effect clears the floor or no floor was
    measured for that dataset and metric. Imports no torch (``check`` stays fast).
    """
    p = hypothesis.prediction
    floor = noise_floor(hypothesis.dataset, p.metric)
    if floor is None or p.effect >= floor:
        return None
    return (
        f"prediction.effect = {p.effect:g} lies below the noise floor of {p.metric} on "
        f"{hypothesis.dataset} ({floor:g}: two sample draws of one model differ by more than that "
        f"in about 5 % of cases; docs/metrics.md), so an effect this small is inside the metric's "
        f"noise. Declare an effect of at least {floor:g}, or a metric whose floor lies below it."
    )


def wanted(hypothesis) -> bool:
    """Whether a study's runs are scored on samples."""
    return hypothesis.training.sample_metrics or hypothesis.prediction.metric in SAMPLE_METRICS


def n_samples_for(dataset) -> int:
    """Samples per run for the metrics: as many as the test split (capped at 2,000)."""
    return int(min(max(dataset.test.shape[0], 64), 2000))


def reference(dataset, cache_dir: Path | None) -> dict:
    """The real side of the metrics, computed once per dataset and cache: the extractor, the
    standardiser fitted on train features, the standardised test features, and the flat train
    split with the test split's nearest-train distances (for memorisation)."""
    from harness.metrics import sample_quality as sq
    from harness.metrics.features import get_feature_extractor

    try:
        extractor = get_feature_extractor(dataset.name, cache_dir=cache_dir)
    except HarnessError:
        extractor = None  # no labels: score raw coordinates
    # A tuning view holds the validation split in `test` and train-minus-validation in `train`.
    key = (dataset.name, getattr(dataset, "held_out", "test"), str(cache_dir), extractor is None)
    if key not in _REF:
        train = _flat(dataset.train)
        test = _flat(dataset.test)
        std = sq.fit_standardiser(_features(extractor, train))
        _REF[key] = {
            "extractor": extractor,
            "standardise": std,
            "real": std(_features(extractor, test)),
            "train": train,
            "test_to_train": sq.nn_distance(test, train),
        }
    return _REF[key]


def score(samples: np.ndarray, dataset, seed: int, cache_dir: Path | None) -> dict[str, float]:
    """The metrics of one seed's ``samples`` [n, *shape] against the dataset's test split."""
    from harness.metrics import sample_quality as sq

    ref = reference(dataset, cache_dir)
    x = _flat(samples)
    extractor = ref["extractor"]
    acc = {} if extractor is None else {"classifier_accuracy": float(extractor.accuracy)}
    if not np.all(np.isfinite(x)):
        names = ("fid", "fid_half", "fid_inf", "kid", "kid_std", "precision", "recall", "density", "coverage")
        return {**dict.fromkeys(names + ("nn_train_ratio", "copy_fraction"), float("nan")), **acc}
    x = np.clip(x, 0.0, 1.0)
    real = ref["real"]
    fake = ref["standardise"](_features(extractor, x))
    rng = np.random.default_rng(stream_seed(int(seed), "sample_metrics"))
    size = int(min(KID_SUBSET_SIZE, len(real), len(fake)))
    # Subsets as large as both sets are all the same set: one suffices (kid_std is then 0).
    subsets = 1 if size == len(real) == len(fake) else KID_SUBSETS
    kid_mean, kid_std = sq.kid(real, fake, subsets=subsets, subset_size=size, rng=rng)
    out = {"fid": sq.fid(real, fake), "kid": kid_mean, "kid_std": kid_std, **sq.prdc(real, fake, k=5)}
    # FID's finite-sample bias depends on the model (Chong & Forsyth 2020): FID at half the
    # samples and extrapolated to infinitely many, as extra metrics (docs/metrics.md).
    out.update(sq.fid_extrapolated(real, fake, np.random.default_rng(stream_seed(int(seed), "fid_inf"))))
    out.update(sq.memorisation(x, ref["train"], None, test_to_train=ref["test_to_train"]))
    return {k: float(v) for k, v in {**out, **acc}.items()}


def _flat(x) -> np.ndarray:
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)  # a torch tensor or an array
    return x.reshape(len(x), -1).astype(np.float64)


def _features(extractor, x: np.ndarray) -> np.ndarray:
    if extractor is None:
        return x
    import torch

    with torch.no_grad():
        return extractor.features(torch.from_numpy(x).float()).cpu().numpy().astype(np.float64)
