"""H5: an hourglass autoencoder is non-linear PCA, and the non-linearity buys reconstruction.

Baldi & Hornik (1989): a linear autoencoder's optimum spans the PCA subspace (tested directly in
tests/models/test_autoencoder.py: largest principal angle under 5 degrees). Kramer (1991) and
Hinton & Salakhutdinov (2006): a deep autoencoder with the same code size reconstructs better.
This file tests the second half: the deep AE (treatment) against the linear AE (control) at
latent_dim = 8, on test mean squared reconstruction error per pixel (values on [0, 1]).

Smallest effect of interest: 0.005 per pixel. PCA with 8 components leaves 0.0248 per pixel on
the digits test split (sklearn PCA, fixed split), so 0.005 is a 20% cut of PCA's error: smaller
gains would not justify a non-linear model in a pipeline.

Fairness. Neither arm can win by construction: both have the same code size (8), the same
training steps, batch size and data, and each arm's learning rate is tuned with the same
pre-registered budget (12 random-search trials over lr in [1e-4, 3e-2], the same candidate
values for both, scored on a validation split carved from train; the test split is read only by
the confirmatory seeds, which the tuning never used). Version 1 of this file used one shared
lr = 1e-3 for both arms, which under-trains the linear AE (test MSE 0.0252-0.0258 against
0.0246 for closed-form PCA): a control the lr happened not to suit. With its own tuned lr the
linear AE reaches PCA's error, so the deep AE is compared with the best linear code, not a
handicapped one. Refuted if the deep AE's improvement is shown to be below 0.005 (its interval
lies below the smallest effect of interest); docs/tuning.md gives the worked comparison of the
fixed-lr and tuned versions.
"""

from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

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
    training=Training(steps=3000, batch_size=128, lr=1e-3, eval_samples=1),  # lr: tuned below
    tuning=Tuning(space={"lr": LogUniform(1e-4, 3e-2)}, trials=12, seeds_per_trial=1, sampler="random"),
)
