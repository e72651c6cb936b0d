"""Shared fixtures: a tmp project directory, the CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from services import (  # noqa: F401  (fixtures)
    mlflow_server,
    pg_db,
    pg_password_server,
    pg_server,
    ray_cluster,
    slurm_cluster,
)
from typer.testing import CliRunner

from harness.cli import app

ROOT = Path(__file__).resolve().parent.parent

# A hypothesis file defining its own tiny model with the registration decorator: nothing under
# harness/ knows about it. Small enough that a study trains in seconds. test="t": with 2-4 seeds
# the sign-flip test can never reach alpha, and register/run refuse such a design (issue 22).
TINY_HYPOTHESIS = '''
"""A tiny study for tests: a user-defined model, registered from this file."""
from dataclasses import dataclass
import math
import torch
from torch import nn
from harness import GenerativeModel, Hypothesis, Prediction, Training, register_model


@dataclass(frozen=True)
class TinyConfig:
    latent_dim: int = 2
    hidden: int = 16


@register_model("tiny_vae")
class TinyVAE(GenerativeModel):
    Config = TinyConfig
    metrics = ("nll", "recon")

    def __init__(self, config, shape, levels):
        super().__init__(config, shape, levels)
        d, h = config.latent_dim, config.hidden
        self.enc = nn.Sequential(nn.Linear(self.dim, h), nn.Tanh(), nn.Linear(h, 2 * d))
        self.dec = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, self.dim))

    def noise(self, method, n, k, generator, device):
        if method == "sample":
            return {{"z": torch.randn(n, self.config.latent_dim, generator=generator, device=device)}}
        return {{"eps": torch.randn(n, self.config.latent_dim, generator=generator, device=device)}}

    def _terms(self, x, eps):
        mu, log_s = self.enc(x).chunk(2, -1)
        z = mu + log_s.exp() * eps
        recon = nn.functional.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu**2 + (2 * log_s).exp() - 2 * log_s - 1).sum(-1)
        return recon, kl

    def loss(self, x, noise):
        recon, kl = self._terms(x, noise["eps"])
        return (recon + kl).mean(), {{"neg_elbo": (recon + kl).mean()}}

    def evaluate(self, x, noise):
        recon, kl = self._terms(x, noise["eps"])
        return {{"nll": recon + kl, "recon": recon}}

    def sample(self, noise):
        return torch.sigmoid(self.dec(noise["z"]))


hypothesis = Hypothesis(
    claim={claim!r},
    source="tests",
    dataset="digits",
    model="tiny_vae",
    fixed={{"latent_dim": 2}},
    ablate={{"hidden": [8, 16]}},
    prediction=Prediction(metric="nll", direction="lower", effect=0.1, test="t"),
    seeds={seeds},
    training=Training(steps={steps}, batch_size=64, eval_samples=2, log_every=5, n_samples=16),
)
'''


def tiny_hypothesis(claim: str = "Wider hidden layers lower the tiny VAE's NLL.", seeds: int = 3, steps: int = 20) -> str:
    return TINY_HYPOTHESIS.format(claim=claim, seeds=seeds, steps=steps)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project directory as cwd, with no store configured."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    (tmp_path / "hypotheses").mkdir()
    return tmp_path


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """A data directory holding the fetched MNIST, fetched at most once per session:
    ``$HARNESS_DATA_DIR`` when set (CI fetches there once, before the tests), else the
    checkout's default ``runs/data`` (scripts/setup.sh fills it). ``harness fetch mnist`` does
    nothing when the file is already there."""
    from harness.fetch import fetch_mnist

    root = Path(os.environ.get("HARNESS_DATA_DIR") or ROOT / "runs" / "data")
    fetch_mnist(root)
    return root


def harness_subprocess(*args: str, cwd: Path, threads: int | None = None, extra_env: dict | None = None,
                       **kw) -> subprocess.Popen:
    """``threads``: torch's intra-op threads for the child (OMP_NUM_THREADS). Several concurrent
    children on 2 cores with 2 spinning OpenMP threads each run ~15x slower than alone."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("HARNESS_STORE", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *map(str, args)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path
