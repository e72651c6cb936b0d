"""VQ-VAE: a vector of discrete codes, an EMA codebook, and an autoregressive prior trained after.

van den Oord et al. 2017 ("Neural Discrete Representation Learning"): the encoder's outputs
z_e (``n_codes`` vectors of ``code_dim``) are replaced by their nearest codebook entries e_k;
gradients pass the quantisation straight through; the loss is the reconstruction NLL plus the
commitment term beta * ||z_e - sg(e)||^2 (beta = 0.25); the codebook is updated by exponential
moving averages (their appendix A.1: decay 0.99, cluster counts Laplace-smoothed). The EMA is
a buffer update of the groups contract (harness/models/groups.py): ``ae_loss`` returns the new
codebook with its loss and the engine stores it per member; no gradient touches the codebook.

Training has two stages in one run: the first ``ae_steps`` steps train the encoder/decoder
(group "autoencoder"), the rest of ``Training.steps`` trains the prior (group "prior") on the
codes of training minibatches under the frozen encoder. The prior is a MADE-style masked MLP
(Germain et al. 2015) over the ``n_codes`` categorical codes in their natural order. Samples
draw codes from the prior and decode them to the likelihood's mean.

Metrics (test split): ``recon_nll`` = -log p(x | z_q(x)) in nats; ``recon_mse`` (squared
error of the decoder's mean, per pixel); ``perplexity`` = exp(entropy of the code usage over
the evaluation chunk) (higher is better, at most ``codebook_size``); ``prior_nll`` =
-log p_prior(z_q(x)) in nats; ``nll_bound`` = recon_nll + prior_nll, an upper bound on the
data NLL for discrete data (p(x) = sum_z p(x, z) >= p(x | z_q(x)) p(z_q(x))), i.e. the ELBO
of the one-hot posterior; ``nll_bound_bpd`` the same in bits per dimension.

Deviations from the paper: MLP encoder/decoder over flattened data and a vector of
``n_codes`` codes instead of convolutional feature maps; a MADE prior instead of
PixelCNN / WaveNet; a categorical / Bernoulli pixel likelihood (the paper's images used a
Gaussian-like MSE); dead-code restarts (not in the paper; Dhariwal et al. 2020 / common
practice): a code unused for ``restart_after`` consecutive steps is re-initialised to an
encoder output of the current minibatch chosen by the member's own noise (0 = off); the
codebook is initialised N(0, 1) (``init`` stream). The codebook is a buffer, so
``train_block(..., keep_state=True)`` does not return it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.models._util import (
    LIKELIHOOD_CHOICES,
    bits_per_dim,
    categorical_from_uniform,
    check_likelihood,
    likelihood_logp,
    likelihood_mean,
    likelihood_width,
    mlp,
)
from harness.models.base import GenerativeModel
from harness.models.groups import Group, Stage, Update
from harness.registry import register_model


@dataclass(frozen=True)
class VQVAEConfig:
    n_codes: int = 8  # discrete codes per example (the latent is n_codes x code_dim)
    code_dim: int = 16  # size of one codebook vector
    codebook_size: int = 64  # K: entries in the shared codebook
    hidden: int = 256  # width of each hidden layer, encoder, decoder and prior
    depth: int = 2  # hidden layers in the encoder, the decoder and the prior
    beta: float = 0.25  # commitment weight (the paper's 0.25)
    decay: float = 0.99  # EMA decay of the codebook (paper appendix: 0.99)
    epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster counts
    restart_after: int = 100  # re-initialise a code unused this many steps in a row; 0 = never
    ae_steps: int = 1000  # stage 1 length (autoencoder); the prior trains the rest of Training.steps
    likelihood: str = "categorical"  # pixel likelihood: "categorical" (data levels) or "bernoulli"

    def __post_init__(self) -> None:
        for name in ("n_codes", "code_dim", "codebook_size", "hidden", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("restart_after", "ae_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if not 0 <= self.decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {self.decay!r}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon!r}")
        if self.likelihood not in ("categorical", "bernoulli"):
            raise ValueError(f"likelihood must be 'categorical' or 'bernoulli' (of {list(LIKELIHOOD_CHOICES)}), got {self.likelihood!r}")


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE)."""

    def __init__(self, d_in: int, d_out: int, mask: torch.Tensor):
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made(n: int, k: int, hidden: int, depth: int) -> nn.Sequential:
    """Logits [.., n * k] of p(c_i | c_<i) from one-hot codes [.., n * k] (natural order)."""
    deg_in = torch.arange(n).repeat_interleave(k) + 1  # code i's inputs have degree i + 1
    degs = [deg_in] + [torch.arange(hidden) % max(n - 1, 1) + 1 for _ in range(depth)]
    layers: list[nn.Module] = []
    for a, b in zip(degs[:-1], degs[1:]):
        layers += [MaskedLinear(len(a), len(b), b[:, None] >= a[None, :]), nn.SiLU()]
    layers.append(MaskedLinear(len(degs[-1]), n * k, deg_in[:, None] > degs[-1][None, :]))
    return nn.Sequential(*layers)


@register_model("vqvae")
class VQVAE(GenerativeModel):
    Config = VQVAEConfig
    metrics = ("recon_nll", "recon_mse", "perplexity", "prior_nll", "nll_bound", "nll_bound_bpd")
    higher_is_better = ("perplexity",)
    groups = {"autoencoder": Group(("encoder.", "decoder.")), "prior": Group(("prior.",))}
    stages = (
        Stage("autoencoder", (Update("autoencoder", "ae_loss", buffers=True),), steps="ae_steps"),
        Stage("prior", (Update("prior", "prior_loss"),)),
    )

    def __init__(self, config: VQVAEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        check_likelihood(c.likelihood, levels)
        n, d, k = c.n_codes, c.code_dim, c.codebook_size
        self.encoder = mlp([self.dim] + [c.hidden] * c.depth + [n * d])
        self.decoder = mlp([n * d] + [c.hidden] * c.depth + [self.dim * likelihood_width(c.likelihood, levels)])
        self.prior = made(n, k, c.hidden, c.depth)
        self.register_buffer("codebook", torch.randn(k, d))
        self.register_buffer("ema_count", torch.ones(k))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("unused", torch.zeros(k))

    # -- pieces -----------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor):
        """z_e [B, n, d], the nearest codes [B, n] and their one-hots [B, n, K]."""
        c = self.config
        z_e = self.encoder(x).view(*x.shape[:-1], c.n_codes, c.code_dim)
        dist = (z_e.pow(2).sum(-1, keepdim=True) - 2 * z_e @ self.codebook.T + self.codebook.pow(2).sum(-1))
        codes = dist.argmin(-1)
        onehot = (codes.unsqueeze(-1) == torch.arange(c.codebook_size, device=x.device)).to(z_e.dtype)
        return z_e, codes, onehot

    def _decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q.flatten(-2))

    def _prior_logp(self, onehot: torch.Tensor) -> torch.Tensor:
        """log p_prior(codes) [B] from one-hots [B, n, K]."""
        logits = self.prior(onehot.flatten(-2)).view(*onehot.shape)
        return (torch.log_softmax(logits, -1) * onehot).sum((-1, -2))

    @staticmethod
    def _perplexity(onehot: torch.Tensor) -> torch.Tensor:
        p = onehot.flatten(0, -2).mean(0)
        return torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        c = self.config
        if method == "sample":
            return {"u": torch.rand(n, c.n_codes, generator=generator, device=device)}
        if method == "loss":  # which encoder output each code would restart from
            return {"restart": torch.randint(0, n * c.n_codes, (c.codebook_size,), generator=generator, device=device)}
        return {}

    def ae_loss(self, x, noise):
        c = self.config
        z_e, codes, onehot = self._encode(x)
        e = onehot @ self.codebook
        z_q = z_e + (e - z_e).detach()  # straight-through
        recon = -likelihood_logp(c.likelihood, self._decode(z_q), x, self.levels).mean()
        commit = (z_e - e.detach()).pow(2).sum((-1, -2)).mean()
        # EMA codebook (appendix A.1), from this batch's assignments; no gradient.
        with torch.no_grad():
            flat_z, flat_1h = z_e.detach().flatten(0, -2), onehot.flatten(0, -2)
            n_k = flat_1h.sum(0)
            count = c.decay * self.ema_count + (1 - c.decay) * n_k
            total = count.sum()
            count_s = (count + c.epsilon) / (total + c.codebook_size * c.epsilon) * total
            ema_sum = c.decay * self.ema_sum + (1 - c.decay) * flat_1h.T @ flat_z
            codebook = ema_sum / count_s.unsqueeze(-1)
            unused = torch.where(n_k > 0, torch.zeros_like(self.unused), self.unused + 1)
            if c.restart_after:
                dead = (unused >= c.restart_after).unsqueeze(-1)
                fresh = flat_z[noise["restart"]]
                codebook = torch.where(dead, fresh, codebook)
                ema_sum = torch.where(dead, fresh, ema_sum)
                count = torch.where(dead.squeeze(-1), torch.ones_like(count), count)
                unused = torch.where(dead.squeeze(-1), torch.zeros_like(unused), unused)
        logs = {"recon_nll": recon, "commitment": commit, "perplexity": self._perplexity(onehot)}
        buffers = {"codebook": codebook, "ema_count": count, "ema_sum": ema_sum, "unused": unused}
        return recon + c.beta * commit, logs, buffers

    def prior_loss(self, x, noise):
        with torch.no_grad():
            _, _, onehot = self._encode(x)
        nll = -self._prior_logp(onehot).mean()
        return nll, {"prior_nll": nll}

    def evaluate(self, x, noise):
        z_e, codes, onehot = self._encode(x)
        out = self._decode(onehot @ self.codebook)
        recon = -likelihood_logp(self.config.likelihood, out, x, self.levels)
        mse = (likelihood_mean(self.config.likelihood, out, self.dim, self.levels) - x).pow(2).mean(-1)
        prior = -self._prior_logp(onehot)
        return {
            "recon_nll": recon,
            "recon_mse": mse,
            "perplexity": self._perplexity(onehot).expand(x.shape[0]),
            "prior_nll": prior,
            "nll_bound": recon + prior,
            "nll_bound_bpd": bits_per_dim(recon + prior, self.dim),
        }

    def sample(self, noise):
        c = self.config
        u = noise["u"]
        onehot = u.new_zeros(u.shape[0], c.n_codes, c.codebook_size)
        arange = torch.arange(c.codebook_size, device=u.device)
        positions = torch.arange(c.n_codes, device=u.device).unsqueeze(-1)  # [n, 1]
        for i in range(c.n_codes):  # code i depends on codes < i only (MADE's masks)
            logits = self.prior(onehot.flatten(-2)).view(*onehot.shape)[:, i]
            k = categorical_from_uniform(torch.log_softmax(logits, -1), u[:, i])
            new = (k.unsqueeze(-1) == arange).to(u.dtype).unsqueeze(1)  # [B, 1, K]
            onehot = torch.where(positions == i, new, onehot)
        out = self._decode(onehot @ self.codebook)
        return likelihood_mean(c.likelihood, out, self.dim, self.levels)
