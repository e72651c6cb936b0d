"""Model families: one self-contained file each, registered by name on import."""

from harness.models.autoencoder import Autoencoder, LinearAE, SparseAutoencoder
from harness.models.base import GenerativeModel
from harness.models.diffusion import DDPM
from harness.models.discrete_diffusion import MultinomialDiffusion
from harness.models.gan import GAN
from harness.models.hierarchical import HierarchicalVAE, ResidualPixelVAE
from harness.models.iaf import IAFVAE, BetaVAE
from harness.models.matched_ae import MatchedChannelAE
from harness.models.vae import VAE
from harness.models.vqvae import VQVAE

__all__ = [
    "DDPM",
    "GAN",
    "IAFVAE",
    "VAE",
    "VQVAE",
    "Autoencoder",
    "BetaVAE",
    "GenerativeModel",
    "HierarchicalVAE",
    "LinearAE",
    "MatchedChannelAE",
    "MultinomialDiffusion",
    "ResidualPixelVAE",
    "SparseAutoencoder",
]
