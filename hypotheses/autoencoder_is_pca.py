"""H5: an hourglass autoencoder is non-linear PCA, and the non-linearity buys reconstruction.

Baldi & Hornik (1989): a linear autoencoder's optimum spans the PCA subspace (tested directly in
tests/models/test_autoencoder.py: largest principal angle under 5 degrees). Kramer (1991) and
Hinton & Salakhutdinov (2006): a deep autoencoder with the same code size reconstructs better.
This file tests the second half: the deep AE (treatment) against the linear AE (control) at
latent_dim = 8, on test mean squared reconstruction error per pixel (values on [0, 1]).

Smallest effect of interest: 0.005 per pixel. PCA with 8 components leaves 0.0248 per pixel on
the digits test split (sklearn PCA, fixed split), so 0.005 is a 20% cut of PCA's error: smaller
gains would not justify a non-linear model in a pipeline.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="At equal code size a deep autoencoder reconstructs digits better than a linear "
    "autoencoder (PCA).",
    source="Kramer 1991; Baldi & Hornik 1989; Hinton & Salakhutdinov 2006 (Science)",
    dataset="digits",
    model="linear_ae",
    fixed={"latent_dim": 8, "likelihood": "mse", "hidden": 256},
    ablate={"model": ["linear_ae", "ae"]},
    prediction=Prediction(metric="mse", direction="lower", effect=0.005, alpha=0.05),
    seeds=10,
    training=Training(steps=3000, batch_size=128, lr=1e-3, eval_samples=1),
)
