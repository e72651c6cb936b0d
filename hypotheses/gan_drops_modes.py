"""H7c: a GAN drops modes: its samples cover less of the data (lower recall) than a VAE's.

Folklore: GANs give sharp samples but drop modes; VAEs cover the data but blur it. Recall
(Kynkaenniemi et al. 2019) is the share of real test images that fall inside the samples'
k-NN manifold: a generator that drops modes leaves real images uncovered. This file tests the
second half of the folklore; ``gan_sharp_samples.py`` tests the first on the same grid (two
hypotheses, two families: neither borrows the other's significance). Mode dropping is also
read off coverage (Naeem et al. 2020), reported as a secondary metric.

Fairness. Neither arm can win by construction: the same widths, data, steps, sample count and
features as gan_sharp_samples.py, and the same tuning budget (6 random-search trials; the VAE
tunes ``lr``, the GAN ``lr_g`` and ``lr_d``). The VAE samples by drawing from its likelihood
(``sample="draw"``): draws are the VAE's own distribution, the honest sample for a coverage
comparison (decoder means would be a different, smoothed distribution).

Direction: the treatment (GAN) LOWERS recall by at least 0.1, above recall's measured noise
floor on digits (0.081, docs/metrics.md). Refuted if the GAN's recall deficit is shown to be
below 0.1 (including the GAN covering as much or more). Seeds 10..17, past the probe's 0..1.
"""

from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

hypothesis = Hypothesis(
    claim="A GAN's samples have lower recall (cover fewer of the data's modes) than a VAE's of the same width "
    "and budget.",
    source="Goodfellow et al. 2014 (GAN); Kingma & Welling 2014 (VAE); Kynkaenniemi et al. 2019 (precision/recall)",
    dataset="digits",
    model="vae",
    fixed={"hidden": 256, "depth": 2, "latent_dim": 8, "sample": "draw"},
    ablate={"model": ["vae", "gan"]},
    prediction=Prediction(metric="recall", direction="lower", effect=0.1, alpha=0.05),
    seeds=8,
    first_seed=10,  # past the probe's seeds 0..1
    training=Training(steps=2000, batch_size=128, lr=1e-3, sample_metrics=True, log_every=100),
    tuning=Tuning(space={"lr": LogUniform(3e-4, 3e-3), "lr_g": LogUniform(5e-5, 1e-3), "lr_d": LogUniform(5e-5, 1e-3)},
                  trials=6, seeds_per_trial=1, sampler="random"),
)
