"""``test_nll``: one name for every family's test negative log-likelihood, so a prediction can
compare families whose own metrics are named for what they are.

The families report their likelihood under honest, different names: ``nll`` (exact: MADE),
``iwae_nll`` (the importance-weighted estimate: VAE, IAF, hierarchical VAE; a stochastic upper
bound whose bias shrinks with ``eval_samples``) and ``nll_bound`` (a variational upper bound:
DDPM, multinomial diffusion, RealNVP under uniform dequantisation, VQ-VAE's p(x|z_q) p(z_q)).
``test_nll`` is the first of those the model reports, in nats per example of the discrete data,
logged beside the model's own metrics; which one it is, and so whether a comparison is
exact-vs-bound, is stated by :func:`source_of` (and by ``harness catalog metrics``). A model
without a likelihood (GAN, flow matching, SUNDAE, autoencoders) has no ``test_nll``, and a
prediction on it fails at ``check`` with the list of what the model reports.

A user's model may name its own source with a class attribute ``likelihood_metric = "..."``.
"""

from __future__ import annotations

NAME = "test_nll"
SOURCES = ("nll", "iwae_nll", "nll_bound")  # in order of preference: exact, estimate, bound
KIND = {"nll": "exact", "iwae_nll": "importance-weighted estimate (an upper bound in expectation)",
        "nll_bound": "variational upper bound"}


def source_of(model_cls: type) -> str | None:
    """The model metric ``test_nll`` copies, or None when the model has no likelihood."""
    declared = getattr(model_cls, "likelihood_metric", None)
    if declared:
        return declared if declared in model_cls.metrics else None
    return next((m for m in SOURCES if m in model_cls.metrics), None)


def add_test_nll(metrics: dict, model_cls: type) -> dict:
    """``metrics`` (name -> per-member values) with ``test_nll`` added when the model has a source."""
    src = source_of(model_cls)
    if src is not None and src in metrics and NAME not in metrics:
        metrics[NAME] = metrics[src]
    return metrics
