"""H1: predictive coding is why diffusion beats VAEs; coding only the prior's prediction error
makes a hierarchical VAE a better sampler.

R. Shu, "Building on Top of Black Magic" (2022); related: Shu & Ermon (ICML 2022) on
progressive coding. Reading 1 (the ablated factor): NVAE's residual-normal posterior,
q(z_l | .) = N(mu_p + dmu, (sigma_p * dsigma)^2), against a free posterior. Reading 2 (a
stratum): residual pixel coding, where each level encodes what the levels above failed to
predict (x_hat_l = x_hat_(l-1) + g_l(z_<=l)), against ordinary latent coding. The claim is
about samples, so the primary metric is FID on the local classifier's features (the verdict
metric of docs/metrics.md; the previous version predicted KID by 0.02, inside KID's noise).

What this version fixes, and what it measured. Smallest effect of interest: 1.5 FID, above
FID's noise floor on digits (1.44: 2 sqrt(2) x the std across sample draws), so ``harness
check`` does not warn. Posterior collapse: the review found 3-4 nats over 16 latent dimensions
after 2000 steps; at this file's 4000 steps a probe (seeds 0..1, latent coding) gave 5.6-6.4
nats, 2.3-3.3 per level, so no level is collapsed; the per-level rates (``rate_l1``,
``rate_l2``) are logged for every run and the report shows them beside FID. Free bits
(``free_bits=4``, Kingma et al. 2016) raised the rate to 8-10 nats but worsened the test
IWAE NLL by ~25 nats and did not lower FID, so it is not used. Samples: decoder means (the
model's default), for both arms. Draws from the likelihood (``sample="draw"``) are the fairer
picture of a sampler, but in that probe both posteriors' draws scored FID 1.5-2.6 against ~1.1
for real digits, so at most ~1 FID separates either arm from the data: an improvement above the
noise floor could not exist, and the study would be refuted by the metric's ceiling, not by the
claim. Means leave the headroom (a mean is blurred, which costs both arms alike).

Four levels (this version). The previous version (209be96d4eba, refuted in both strata) had two
levels, and level 1's prior is N(0, I), so there "residual" and "free" are the same posterior:
only one of two levels was treated. With ``levels_z=4`` the residual parametrisation reaches
three of four levels (every level below the top), so the ablation now acts on most of the
hierarchy; the per-level rates ``rate_l1`` .. ``rate_l4`` are logged and the report flags a
collapsed level. Together with the DDPM's ``parametrisation="eps" | "x0"`` (predicting the
error vs the signal) this is the harness's test of "predictive coding is why diffusion beats
VAEs".

Fairness. Neither arm can win by construction: the same top-down network, widths, latent
sizes, data, steps, lr and decoding for both posteriors; the residual posterior changes only
how q is parametrised relative to the prior. The claim's second half, "NLL stays about
equal", is NOT tested here (one prediction per file): read ``iwae_nll`` in the report's
secondary table, and register a second file predicting it (an equivalence margin) to test it.
Refuted if the residual posterior's FID improvement is shown to be below 1.5 in a stratum.
Seeds 32..47 (``first_seed=32``): past the previous versions' 0..31 and the probe's 0..1. Cost:
64 runs x 4000 steps of a 4-level model, ~40 min on the 2-core CPU.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="Coding only the prior's prediction error (residual-normal posterior) makes a hierarchical "
    "VAE a better sampler than a free posterior.",
    source="R. Shu, Building on Top of Black Magic (2022); Vahdat & Kautz, NVAE (2020)",
    dataset="digits",
    model="hvae",
    fixed={"levels_z": 4, "latent_dim": 8, "hidden": 128},
    ablate={"posterior": ["free", "residual"]},
    strata={"coding": ["latent", "pixel"]},
    prediction=Prediction(metric="fid", direction="lower", effect=1.5, alpha=0.05),
    seeds=16,
    first_seed=32,  # past the previous versions' seeds 0..31 and the probe's 0..1
    training=Training(steps=4000, batch_size=128, lr=1e-3, eval_samples=100, sample_metrics=True),
)
