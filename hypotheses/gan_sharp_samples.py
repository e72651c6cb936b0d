"""H7b: a GAN's samples are sharper (higher precision) than a VAE's.

Folklore: GANs give sharp samples but drop modes; VAEs cover the data but blur it. Precision
and recall (Kynkaenniemi et al. 2019) separate the two readings: precision is the share of
samples that fall inside the real data's manifold (fidelity), recall the share of real data
inside the samples' manifold (coverage). This file tests the first half; its companion
``gan_drops_modes.py`` tests the second on the same grid (two hypotheses, two families:
neither borrows the other's significance).

Fairness. Neither arm can win by construction. Both are MLPs of the same width (hidden 256, two
hidden layers per network), trained for the same 2000 steps of batch 128 on the same data, and
each tunes the learning rates it uses with the same budget (6 random-search trials over one
space: the VAE reads ``lr``, the GAN its ``lr_g`` and ``lr_d``; a dimension a model does not
read is a no-op for it, so both spend 6 trials on their own rates). The VAE's samples are draws
from its categorical likelihood (``sample="draw"``), as in diffusion_beats_vae: decoder means
are blurred by construction and would hand the GAN the sharpness claim. Both are scored on as
many samples as the test split (300), on the same local-classifier features (docs/metrics.md).

Smallest effect of interest: 0.05 precision, above its measured noise floor on digits (0.035,
docs/metrics.md). Supported if the GAN's precision exceeds the VAE's by at least that;
refuted if the improvement is shown to be below 0.05 (including the VAE being sharper). Seeds
10..17, past the probe's seeds 0..1. A GAN seed that diverges (NaN) is a failed run under the
declared failure policy (worst value), never dropped silently.
"""

from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

hypothesis = Hypothesis(
    claim="A GAN's samples have higher precision (fidelity) than a VAE's of the same width and budget.",
    source="Goodfellow et al. 2014 (GAN); Kingma & Welling 2014 (VAE); Kynkaenniemi et al. 2019 (precision/recall)",
    dataset="digits",
    model="vae",
    fixed={"hidden": 256, "depth": 2, "latent_dim": 8, "sample": "draw"},
    ablate={"model": ["vae", "gan"]},
    prediction=Prediction(metric="precision", direction="higher", effect=0.05, alpha=0.05),
    seeds=8,
    first_seed=10,  # past the probe's seeds 0..1
    training=Training(steps=2000, batch_size=128, lr=1e-3, sample_metrics=True, log_every=100),
    tuning=Tuning(space={"lr": LogUniform(3e-4, 3e-3), "lr_g": LogUniform(5e-5, 1e-3), "lr_d": LogUniform(5e-5, 1e-3)},
                  trials=6, seeds_per_trial=1, sampler="random"),
)
