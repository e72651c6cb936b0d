"""H3: the KL term bounds the information through the bottleneck; a plain autoencoder can cheat.

The noisy-channel reading of the VAE (Hoffman & Johnson 2016; Alemi et al. 2018): the rate
R = E KL(q(z|x) || p(z)) upper-bounds I(x; z), while an autoencoder's code carries as much
information as its precision allows. A deterministic code has no rate of its own, so the AE is
read through a Gaussian channel z + sigma n.

What changed, and why. The previous version fixed sigma = 0.1. That constant, not the AE, set
the AE's rate: rescaling the codes by 0.1x or 10x (with the decoder) left every reconstruction
identical but moved the rate 39.7 -> 21.3 / 58.1 nats, and sigma 0.01 -> 3 moved it 58 -> 13
nats. Its beta-VAE arm (beta = 4) collapsed by design (rate 0.001-0.002 nats in a probe), which
made that comparison trivial, and the arms sat at different distortions (AE 151 nats, VAE 92).
This version:

* reads the AE through ``matched_ae`` (harness/models/matched_ae.py): its channel is SOLVED to a
  declared distortion, so the rate is the information the code needs to reconstruct that well,
  invariant under rescaling the code (tests/models/test_matched_ae.py: the fixed channel moves
  16.2 -> 8.2 / 1059.5 nats under 0.1x / 10x, the matched one stays at 1.705 to the digit);
* drops the collapsed beta-VAE arm: the VAE (beta = 1) is the treatment, the AE the control;
* reports distortion beside rate (both models log ``distortion``; the AE also its solved
  ``channel_sigma`` and ``clean_distortion``).

The operating point. The AE's clean test distortion is ~151 nats (its categorical decoder is
over-confident on test digits; the VAE's, through its own noisy code, is ~92), so the VAE's
distortion is out of the AE's reach and an exactly matched comparison does not exist. The AE is
read at 160 nats instead: the smallest round number above every probe AE's clean distortion.
That gives the AE a LOOSER distortion than the VAE's, and an AE's rate only falls as its
distortion target loosens, so the comparison leans against the claim: if the VAE still needs
less rate at a tighter distortion, it dominates the AE on the rate-distortion plane.

Version history. The first version of this design (eval_samples = 50, seeds 12..23, run here
at its registered budget, docs/findings.md) came out "supported, possibly negligible" (VAE rate
lower by 9.06 nats, 90% CI [3.61, 14.91]) but with a flaw: the engine evaluates in chunks of
the test split (``harness.engine.eval_chunk``) and matched_ae solves sigma per chunk, so where
a chunk's clean distortion was above 160 nats its target was out of reach; for 2 of 12 seeds
the AE's distortion ended at 162.4 / 164.0 instead of 160 with rates 39.7 / 41.7 nats against
11-19 for the others, inflating the control's rate in the claim's favour. This version sets
eval_samples = 12, so that the whole 300-image test split is one chunk (12 x 300 x 1088
decoder outputs <= 2^22) and sigma is solved on the split, and starts at new seeds.

Fairness. Neither arm can win by construction: the same encoder/decoder widths (hidden 128,
8 latent dimensions, categorical likelihood), data, steps and lr; the AE's channel is fitted to
its own codes, not chosen. The probe that set the operating point (seeds 0..1, this budget):
AE rate at 160 nats 16.7-17.7 nats, VAE rate 7.3-8.9 nats at 92-93 nats. Smallest effect of
interest: 5 nats per image (about 7 bits: the information of one extra digit class label and a
stroke or two). Refuted if the VAE's rate is shown to be less than 5 nats below the AE's at the
AE's looser distortion. Seeds 24..35 (``first_seed=24``): past the earlier versions' 0..23 and
the probes' 0..1.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="A VAE's KL term holds the information through its bottleneck below what a plain "
    "autoencoder's code needs through a noisy channel solved to a looser distortion.",
    source="Hoffman & Johnson 2016 (ELBO surgery); Alemi et al. 2018 (Fixing a Broken ELBO)",
    dataset="digits",
    model="matched_ae",
    fixed={"latent_dim": 8, "hidden": 128, "likelihood": "categorical", "target_distortion": 160.0},
    ablate={"model": ["matched_ae", "vae"]},
    prediction=Prediction(metric="rate", direction="lower", effect=5.0, alpha=0.05),
    seeds=12,
    first_seed=24,  # past the earlier versions' seeds 0..23 and the probes' 0..1
    # eval_samples 12: the whole test split is one evaluation chunk, so the AE's channel is
    # solved on the split (see "Version history")
    training=Training(steps=3000, batch_size=128, lr=1e-3, eval_samples=12),
)
