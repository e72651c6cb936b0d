"""Model families: one self-contained file each, registered by name on import."""

from harness.models.base import GenerativeModel
from harness.models.vae import VAE

__all__ = ["GenerativeModel", "VAE"]
