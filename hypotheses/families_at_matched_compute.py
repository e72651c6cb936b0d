"""H8 (the flagship): which families of generative model sample better than a VAE at matched
training compute, and does the answer hold at every budget?

The question this product was made for: GANs, VAEs, autoregressive models and flows were "the
big four", diffusion came after, and nobody can say from the mathematics which will win in
practice. Here every family that samples is the ablated factor, the VAE the control, on the
same data (8x8 digits), the same sample metric (FID on the local classifier's features, the
verdict metric of docs/metrics.md), the same width (hidden 256, two hidden layers or blocks per
network), equal tuning and MATCHED TRAINING FLOPs, with a verdict at every budget.

The prediction, written before any confirmatory run: at matched compute, the iterative
samplers (ddpm with EMA, flow_matching) beat the VAE by at least 1.5 FID at the largest budget;
the others (hvae, gan, realnvp, made, vqvae, sundae) do not. The registered test is one-sided
per family (the treatment lowers FID by >= 1.5): a family "supported" here beats the VAE by a
margin that matters; "refuted" means its advantage is shown to be below 1.5 (including the VAE
being better). The written prediction is therefore refuted if ddpm or flow_matching is refuted
at the largest budget, or if any of the other six is supported there. Probe (seeds 0..1, 1000
steps, untuned, not in the sample): VAE draws FID 2.3-3.3, DDPM 7.9-9.0 (no EMA), flow
matching 4.1-4.9, RealNVP 2.0-2.1, MADE 2.6-3.0, GAN 59-85 (untrained at its default rates):
the prediction is not what the probe shows, which is why it is worth testing.

Compute. ``match="flops"``: each family's steps (and each evaluated budget) are set so that its
training FLOPs equal the VAE's at that budget (counted once per configuration with
torch.utils.flop_counter; `harness check` prints the steps per family); batch 128 for all, so
a cheaper network sees more examples. Sampling compute is NOT matched and is not the claim
(a DDPM sample is 256 network passes, flow matching 50, SUNDAE 10, the others one).

Fairness. Neither arm can win by construction: equal Optuna budgets (4 random-search trials per
family over one space: each family reads the learning rates it uses, lr for most, lr_g / lr_d
for the GAN; a dimension a model does not read is a no-op for it), the same EMA of the weights
for every family (0.999; Ho et al. evaluate DDPM with an EMA, and giving it to one family only
would hand it the comparison), the VAE's samples drawn from its likelihood (``sample="draw"``,
not the blurred mean), every family scored on 300 samples on the same features, the same
seeds. Budgets: evaluated at 500, 1000 and 2000 VAE-equivalent steps, all three confirmatory
(``budgets="all"``: 8 comparisons x 3 budgets in one Holm family), so a ranking that flips with
training is seen, not hidden. The t test (mean paired difference) with 6 seeds per family:
the permutation test's smallest p with 6 pairs (1/64) could not survive Holm over 24 members.

Cost (measured per run-step on the loaded 2-core CPU in the probe: VAE 10 ms, MADE 10, GAN 20,
flow matching 32, RealNVP 35, DDPM 40, SUNDAE ~120): ~2 hours on an idle 2-core machine with
tuning; a GPU run is minutes and could afford 16+ seeds and a 16k-step budget (the DDPM/VAE
ranking flips between 4k and 8k steps in the issue's single-seed measurement). Seeds 10..15,
past the probe's 0..1.
"""

from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

hypothesis = Hypothesis(
    claim="At matched training compute, diffusion (DDPM with EMA) and flow matching sample better than a VAE "
    "(FID lower by at least 1.5), and the other families (hierarchical VAE, GAN, RealNVP, MADE, VQ-VAE, SUNDAE) "
    "do not, at every evaluated budget.",
    source="R. Shu, Building on Top of Black Magic (2022); Ho et al. 2020; Lipman et al. 2023; Goodfellow et al. 2014; "
    "Dinh et al. 2017; Germain et al. 2015; van den Oord et al. 2017; Savinov et al. 2022; Kingma & Welling 2014",
    dataset="digits",
    model="vae",
    fixed={"hidden": 256, "depth": 2, "latent_dim": 8, "sample": "draw", "T": 256, "schedule": "cosine",
           "ae_steps": 1000},
    ablate={"model": ["vae", "hvae", "ddpm", "flow_matching", "gan", "realnvp", "made", "vqvae", "sundae"]},
    prediction=Prediction(metric="fid", direction="lower", effect=1.5, alpha=0.05, test="t", budgets="all"),
    seeds=6,
    first_seed=10,  # past the probe's seeds 0..1
    training=Training(steps=2000, batch_size=128, lr=1e-3, sample_metrics=True, log_every=100, ema=0.999,
                      evaluate_at=(500, 1000), match="flops"),
    tuning=Tuning(space={"lr": LogUniform(3e-4, 3e-3), "lr_g": LogUniform(5e-5, 1e-3), "lr_d": LogUniform(5e-5, 1e-3)},
                  trials=4, seeds_per_trial=1, sampler="random"),
)
