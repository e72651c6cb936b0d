"""`harness check` trains one step, evaluates and samples each model configuration on a few
examples: a broken user model fails there (exit 2, at the user's file:line), not in `run`."""

from __future__ import annotations

import pytest
from conftest import tiny_hypothesis, write

BUGS = {
    # evaluate returns a scalar per metric (passed check and registered, then IndexError in run)
    "scalar_eval": ('return {"nll": recon + kl, "recon": recon}',
                    'return {"nll": (recon + kl).mean(), "recon": recon.mean()}', "def evaluate", "evaluate()"),
    # loss returns one value per example instead of the scalar to minimise
    "vector_loss": ('return (recon + kl).mean(), {"neg_elbo"', 'return (recon + kl), {"neg_elbo"', "def loss",
                    "loss()"),
    # sample returns the wrong data shape
    "bad_sample": ('return torch.sigmoid(self.dec(noise["z"]))', 'return torch.sigmoid(self.dec(noise["z"]))[:, :10]',
                   "def sample", "sample()"),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_broken_model_fails_check_at_its_file_and_line(project, cli, bug):
    good, bad, method_line, method = BUGS[bug]
    text = tiny_hypothesis()
    assert good in text
    path = write(project / "hypotheses" / f"{bug}.py", text.replace(good, bad))
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if s.strip().startswith(method_line))
    r = cli("check", bug)
    assert r.exit_code == 2, r.output
    assert f"{path.resolve()}:{line}: TinyVAE.{method}" in r.output, r.output
    assert "Traceback" not in r.output
    assert not (project / "runs").exists()  # check writes nothing to the store


def test_a_good_model_passes_the_model_check(project, cli):
    write(project / "hypotheses" / "good.py", tiny_hypothesis())
    r = cli("check", "good")
    assert r.exit_code == 0, r.output
    assert "models: one training step, evaluation and sample of 2 configuration(s) on 8 examples: ok" in r.output
    assert not (project / "runs").exists()
