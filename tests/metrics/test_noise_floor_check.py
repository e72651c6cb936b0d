"""`harness check` warns when a prediction's smallest effect lies below the metric's noise floor."""

from __future__ import annotations

from conftest import tiny_hypothesis, write

from harness import sample_metrics as smx

NLL = 'Prediction(metric="nll", direction="lower", effect=0.1, test="t")'


def test_check_warns_below_the_floor_and_not_above(project, cli):
    # The tiny study on digits, predicting on KID with the shipped hypotheses' old effect 0.02.
    assert NLL in tiny_hypothesis()
    text = tiny_hypothesis().replace(NLL, 'Prediction(metric="kid", direction="lower", effect=0.02, test="t")')
    floor = smx.noise_floor("digits", "kid")
    write(project / "hypotheses" / "small.py", text)
    r = cli("check", "small")
    assert r.exit_code == 0, r.output
    assert "warning: prediction.effect = 0.02 lies below the noise floor of kid on digits" in r.output
    assert f"{floor:g}" in r.output
    big = text.replace("effect=0.02", f"effect={2 * floor}")
    write(project / "hypotheses" / "big.py", big)
    r = cli("check", "big")
    assert r.exit_code == 0 and "noise floor" not in r.output, r.output
    assert not (project / "runs").exists()  # check still writes nothing


def test_metrics_without_a_measured_floor_never_warn():
    class H:
        dataset = "digits"

        class prediction:
            metric, effect = "iwae_nll", 0.0

    assert smx.floor_warning(H) is None
    H.dataset, H.prediction.metric = "mnist", "fid"
    assert smx.floor_warning(H) is None
