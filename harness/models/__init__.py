"""Model families: one self-contained file each, registered by name on import."""

from harness.models.autoencoder import Autoencoder, LinearAE, SparseAutoencoder
from harness.models.base import GenerativeModel
from harness.models.diffusion import DDPM
from harness.models.discrete_diffusion import MultinomialDiffusion
from harness.models.flow_matching import FlowMatching
from harness.models.gan import GAN
from harness.models.hierarchical import HierarchicalVAE, ResidualPixelVAE
from harness.models.iaf import IAFVAE, BetaVAE
from harness.models.made import MADE
from harness.models.matched_ae import MatchedChannelAE
from harness.models.realnvp import RealNVP
from harness.models.sundae import SUNDAE
from harness.models.vae import VAE
from harness.models.vqvae import VQVAE

__all__ = [
    "DDPM",
    "GAN",
    "IAFVAE",
    "MADE",
    "SUNDAE",
    "VAE",
    "VQVAE",
    "Autoencoder",
    "BetaVAE",
    "FlowMatching",
    "GenerativeModel",
    "HierarchicalVAE",
    "LinearAE",
    "MatchedChannelAE",
    "MultinomialDiffusion",
    "RealNVP",
    "ResidualPixelVAE",
    "SparseAutoencoder",
]
