"""H1: predictive coding is why diffusion beats VAEs; coding only the prior's prediction error
makes a hierarchical VAE a better sampler.

R. Shu, "Building on Top of Black Magic" (2022); related: Shu & Ermon (ICML 2022) on
progressive coding. Reading 1 (the ablated factor): NVAE's residual-normal posterior,
q(z_l | .) = N(mu_p + dmu, (sigma_p * dsigma)^2), against a free posterior. Reading 2 (a
stratum): residual pixel coding, where each level encodes what the levels above failed to
predict (x_hat_l = x_hat_(l-1) + g_l(z_<=l)), against ordinary latent coding. The claim is
about samples, so the primary metric is KID on the local classifier's features; the claim also
says NLL stays about equal, which the report's secondary metrics show but this file does not test.

Smallest effect of interest: 0.02 in KID (polynomial-kernel MMD^2 on the digits classifier's
features, standardised by the test split's mean and std; see harness/sample_metrics.py). Real
training images scored against the real test split give KID between -0.012 and 0.003 (three
draws of 300 images, 50 subsets of 100): a difference below about twice that floor is not one
a sample grid could show.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="Coding only the prior's prediction error (residual-normal posterior) makes a hierarchical "
    "VAE a better sampler than a free posterior.",
    source="R. Shu, Building on Top of Black Magic (2022); Vahdat & Kautz, NVAE (2020)",
    dataset="digits",
    model="hvae",
    fixed={"levels_z": 2, "latent_dim": 8, "hidden": 128},
    ablate={"posterior": ["free", "residual"]},
    strata={"coding": ["latent", "pixel"]},
    prediction=Prediction(metric="kid", direction="lower", effect=0.02, alpha=0.05),
    seeds=16,
    training=Training(steps=4000, batch_size=128, lr=1e-3, eval_samples=100, sample_metrics=True),
)
