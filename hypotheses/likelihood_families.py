"""H7a: autoregressive models and flows reach better test likelihoods than a VAE.

Folklore ("the big four"): autoregressive models (MADE, PixelCNN) have the best likelihoods,
flows are close, VAEs trail because their bound is loose and their posterior crude. On
binarized MNIST the published numbers agree (MADE 86.64 nats, a one-layer VAE 86.76 by IWAE,
RealNVP-style flows are reported in bits/dim on natural images); here the question is asked
with every family tuned alike, on the same data and budget, with the same estimand.

The metric is ``test_nll`` (harness/likelihood.py): each family's test negative log-likelihood
in nats per image of the discrete data, under one name: MADE's is EXACT, the VAE's is the
IWAE estimate with K = 200 (an upper bound in expectation), RealNVP's a variational bound under
uniform dequantisation (importance-weighted over K draws). The bounds lean AGAINST the VAE and
RealNVP, never for them: a bound can only overstate the NLL, so a treatment that wins through a
looser control bound is the VAE's loss, and RealNVP must win despite its own bound. Stated in
the report, not hidden.

Fairness. Neither arm can win by construction: the same data (8x8 digits, 17 levels), the same
steps (2000 of batch 128), the same width (hidden 256, two hidden layers per network), the same
pre-registered tuning budget for each family (6 random-search trials over the learning rate,
the same candidates for all, scored on a validation split; the test split is read only by the
confirmatory runs), and the same metric. Parameter counts differ (VAE ~0.4M, MADE ~0.5M,
RealNVP ~1.7M at these widths); a parameter-matched version is a follow-up, named here so a
reader does not over-read a RealNVP win. Seeds 10..17, past the probe's seeds 0..1.

Smallest effect of interest: 2 nats per image (0.045 bits/dim on 64 pixels): about what a
change of posterior family buys on digits (docs/findings.md, iaf_tightens_bound), so smaller
differences would not change which family a modeller picks. Refuted for a family if its
improvement over the VAE is shown to be below 2 nats (its interval lies below E, which
includes the VAE being better).
"""

from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

hypothesis = Hypothesis(
    claim="Autoregressive models (MADE) and flows (RealNVP) reach lower test NLL than a VAE of the same width "
    "at the same training budget, each family tuned alike.",
    source="Germain et al. 2015 (MADE); Dinh et al. 2017 (RealNVP); Kingma & Welling 2014 (VAE); "
    "Burda et al. 2016 (IWAE estimate)",
    dataset="digits",
    model="vae",
    fixed={"hidden": 256, "depth": 2, "latent_dim": 8, "likelihood": "categorical"},
    ablate={"model": ["vae", "made", "realnvp"]},
    prediction=Prediction(metric="test_nll", direction="lower", effect=2.0, alpha=0.05),
    seeds=8,
    first_seed=10,  # past the probe's seeds 0..1
    training=Training(steps=2000, batch_size=128, lr=1e-3, eval_samples=200, log_every=100),  # lr: tuned
    tuning=Tuning(space={"lr": LogUniform(3e-4, 3e-3)}, trials=6, seeds_per_trial=1, sampler="random"),
)
