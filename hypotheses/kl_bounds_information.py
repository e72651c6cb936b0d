"""H3: the KL term bounds the information through the bottleneck; a plain autoencoder can cheat.

The noisy-channel reading of the VAE (Hoffman & Johnson 2016; Alemi et al. 2018): the rate
R = E KL(q(z|x) || p(z)) upper-bounds I(x; z), while an autoencoder's code carries as much
information as its precision allows. To compare like with like, the AE is evaluated through a
matched Gaussian channel z + sigma n (see harness/models/autoencoder.py for the bound used).
Treatments: the VAE and a beta-VAE (beta = 4), each against the plain AE (control).

Smallest effect of interest: 5 nats per image. The rates here are tens of nats; 5 nats (about
7 bits) is the information of roughly one extra digit class label and a stroke or two: smaller
differences would not change how one reads the bottleneck.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="A VAE's KL term holds the information through its bottleneck below what a plain "
    "autoencoder passes through a matched noisy channel.",
    source="Hoffman & Johnson 2016 (ELBO surgery); Alemi et al. 2018 (Fixing a Broken ELBO)",
    dataset="digits",
    model="ae",
    fixed={"latent_dim": 8, "hidden": 128, "likelihood": "categorical"},
    ablate={"model": ["ae", "vae", "beta_vae"]},
    prediction=Prediction(metric="rate", direction="lower", effect=5.0, alpha=0.05),
    seeds=12,
    training=Training(steps=3000, batch_size=128, lr=1e-3, eval_samples=50),
)
