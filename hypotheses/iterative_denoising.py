"""H4: iterative denoising beats one-shot decoding.

The VDM view (Kingma et al. 2021): a diffusion model is a hierarchical VAE with a fixed
encoder, and T = 1 is one-shot decoding from noise. The folklore says the many small steps,
not the architecture, are why diffusion samples well. The T ladder holds the denoiser, the data
and the training steps fixed and varies only the number of denoising steps; each longer chain
is compared with T = 1 (Holm over the three comparisons). Training compute is matched; sampling
compute grows with T, which is the point of the claim.

Smallest effect of interest: 0.02 in KID on the digits classifier's standardised features, as
in H1 (twice the real-vs-real noise floor).
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="More denoising steps give better samples than one-shot decoding at matched training compute.",
    source="Ho et al. 2020 (DDPM); Kingma et al. 2021 (Variational Diffusion Models)",
    dataset="digits",
    model="ddpm",
    fixed={"hidden": 256, "schedule": "cosine"},
    ablate={"T": [1, 8, 64, 256]},
    prediction=Prediction(metric="kid", direction="lower", effect=0.02, alpha=0.05),
    seeds=12,
    training=Training(steps=5000, batch_size=128, lr=1e-3, sample_metrics=True),
)
