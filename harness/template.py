"""The commented template `harness new NAME` writes to hypotheses/NAME.py."""

TEMPLATE = '''"""{title}

Write the claim you test, where it comes from, and why the smallest effect of interest below
is the smallest difference that would matter. Registration freezes this declaration by content
hash: change it later and it becomes a new version whose results never mix with this one's.
"""

from harness import Hypothesis, Prediction, Training

# `harness catalog` lists every model (its Config fields, defaults and what each means), every
# dataset (shape, splits) and every metric (which way is better, its unit).
hypothesis = Hypothesis(
    # One sentence, shown at the top of the report.
    claim="A full-covariance (linear IAF) posterior tightens the VAE's bound over a diagonal one.",
    source="Kingma et al. 2016, Improved variational inference with inverse autoregressive flow",
    dataset="digits",  # sklearn's 8x8 digits, bundled: no download
    model="vae",
    # Settings every variant shares (model Config fields or Training fields).
    fixed={{"latent_dim": 8, "hidden": 128}},
    # The ablated factor: the first level is the control, each other level a treatment.
    ablate={{"posterior": ["diagonal", "linear_iaf"]}},
    # Optional: repeat the comparison in each stratum, e.g. {{"latent_dim": [4, 16]}}.
    strata={{}},
    prediction=Prediction(
        metric="iwae_nll",  # test-split IWAE negative log-likelihood, nats per image
        direction="lower",  # the treatment lowers it...
        effect=0.5,  # ...by at least 0.5 nats: smaller gains would not change practice
        alpha=0.05,  # one-sided, family-wise
    ),
    seeds=10,  # seeds per variant; the same seed across variants pairs the runs
    training=Training(steps=1000, batch_size=128, lr=1e-3, eval_samples=100),
)
'''
