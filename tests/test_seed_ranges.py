"""A declared confirmatory seed range (Hypothesis.first_seed): validated, part of the version
only when set, used by the job list and the sequential looks, and `harness check` warns when a
declaration's seeds overlap an earlier registered version's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_hypothesis, write

from analysis import load
from analysis.sequential import analyse_look
from harness import Hypothesis, Prediction, Sequential
from harness.collect import collect
from harness.errors import DeclarationError, HarnessError
from harness.hypothesis import TUNING_SEED_BASE
from harness.seeds import declared_seeds
from harness.tracking import Store


def _hyp(**kw) -> Hypothesis:
    return Hypothesis(claim="c", model="vae", ablate={"latent_dim": [2, 4]},
                      prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.1), **kw)


def test_first_seed_declares_the_confirmatory_range_and_prefixes():
    h = _hyp(seeds=20, first_seed=10)
    assert h.confirmatory_seeds() == list(range(10, 30))
    assert h.confirmatory_seeds(5) == [10, 11, 12, 13, 14]
    assert _hyp(seeds=4).confirmatory_seeds() == [0, 1, 2, 3]
    seq = _hyp(seeds=Sequential(looks=(3, 6)), first_seed=100)
    assert seq.confirmatory_seeds() == list(range(100, 106)) and seq.confirmatory_seeds(3) == [100, 101, 102]
    assert declared_seeds(h.canonical()) == range(10, 30)
    assert declared_seeds(seq.canonical()) == range(100, 106)


def test_first_seed_zero_keeps_the_version_hash_and_a_set_one_changes_it():
    base = _hyp(seeds=4)
    assert "first_seed" not in base.canonical()  # registrations made before the field keep their hash
    assert _hyp(seeds=4, first_seed=0).version == base.version
    moved = _hyp(seeds=4, first_seed=4)
    assert moved.canonical()["first_seed"] == 4 and moved.version != base.version
    assert declared_seeds(base.canonical()) == range(4)  # an old record without the key starts at 0


@pytest.mark.parametrize("value", [-1, True, 2.0, "10", None])
def test_first_seed_must_be_a_non_negative_integer(value):
    with pytest.raises(DeclarationError, match="first_seed") as e:
        _hyp(seeds=4, first_seed=value)
    assert "an integer >= 0" in str(e.value)


def test_confirmatory_range_must_stay_below_the_tuning_seeds():
    _hyp(seeds=4, first_seed=TUNING_SEED_BASE - 4)  # last seed TUNING_SEED_BASE - 1: allowed
    with pytest.raises(DeclarationError, match="overlaps the tuning seeds") as e:
        _hyp(seeds=4, first_seed=TUNING_SEED_BASE - 3)
    assert f"at most {TUNING_SEED_BASE - 4:,}" in str(e.value)


def test_a_bad_first_seed_in_a_file_is_located(project):
    path = write(project / "hypotheses" / "tiny.py", tiny_hypothesis().replace("seeds=3,", "seeds=3, first_seed=-2,"))
    with pytest.raises(HarnessError) as e:
        collect("tiny")
    assert f"{path}:" in str(e.value) and "first_seed = -2" in str(e.value)


def _look_frame(seeds) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    diffs = rng.normal(1.0, 0.3, len(seeds))
    rows = [{"variant": v, "stratum": "", "seed": s, "value": 10.0 - (d if v == "b" else 0.0)}
            for s, d in zip(seeds, diffs) for v in ("a", "b")]
    return pd.DataFrame(rows)


def test_a_sequential_look_takes_the_first_n_declared_seeds():
    design = Sequential(looks=(3, 6))
    pred = Prediction(metric="m", direction="lower", effect=0.1, test="t")
    at_zero = analyse_look(_look_frame(range(6)), pred, design, 0, control="a")
    shifted = _look_frame(range(10, 16))
    shifted.attrs["first_seed"] = 10  # what analysis.load sets from the registration
    at_ten = analyse_look(shifted, pred, design, 0, control="a")
    assert at_ten["comparisons"][0]["n_pairs"] == 3
    assert at_ten["comparisons"][0]["estimate"] == pytest.approx(at_zero["comparisons"][0]["estimate"])
    explicit = analyse_look(_look_frame(range(10, 16)), pred, design, 1, control="a", first_seed=10)
    assert explicit["comparisons"][0]["n_pairs"] == 6


def test_run_trains_the_declared_seeds_and_the_looks_use_them(project, cli):
    text = tiny_hypothesis(steps=10).replace(
        "seeds=3,", "seeds=Sequential(looks=(3, 6), spending='pocock', futility=True), first_seed=7,")
    write(project / "hypotheses" / "tiny.py",
          text.replace("from harness import GenerativeModel,", "from harness import Sequential, GenerativeModel,"))
    r = cli("run", "tiny", "--block-size", "3")
    assert r.exit_code == 0, r.output
    frame = load("tiny")
    reg = Store().registrations("tiny")[0]
    look = json.loads(reg.tags["harness.look.0"])
    assert reg.declaration["first_seed"] == 7 and frame.attrs["first_seed"] == 7
    assert look["comparisons"][0]["n_pairs"] == 3
    n = look["n"] if look["stop"] else 6
    assert sorted(set(frame["seed"])) == list(range(7, 7 + n))
    r = cli("run", "tiny", "--seeds", "3")  # a prefix of the declared range: all done already
    assert r.exit_code == 0 and "trained 0 runs" in r.output, r.output


def test_check_warns_when_seeds_overlap_an_earlier_version(project, cli):
    path = project / "hypotheses" / "tiny.py"
    write(path, tiny_hypothesis(seeds=3))
    r = cli("check", "tiny")
    assert r.exit_code == 0 and "overlap" not in r.output and not (project / "runs").exists()
    assert cli("register", "tiny").exit_code == 0  # version 1: the pilot, seeds 0..2
    pilot = Store().registrations("tiny")[0].version
    r = cli("check", "tiny")  # the registered version itself: no warning
    assert r.exit_code == 0 and "overlap" not in r.output, r.output

    write(path, tiny_hypothesis(seeds=5))  # the confirmatory version, re-using seeds 0..2
    r = cli("check", "tiny")
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "warning: seeds 0..4 of this declaration overlap" in flat
    assert f"version 1 ({pilot}, seeds 0..2) shares seeds 0..2" in flat
    assert "Fix: set first_seed=3" in flat

    write(path, tiny_hypothesis(seeds=5).replace("seeds=5,", "seeds=5, first_seed=3,"))
    r = cli("check", "tiny")
    assert r.exit_code == 0 and "overlap" not in r.output, r.output
    assert "seeds: 5 per variant (seeds 3..7)" in r.output
    assert len(Store().registrations("tiny")) == 1  # check wrote nothing


def test_check_with_another_store_that_does_not_exist_creates_none(project, cli, tmp_path):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis())
    missing = tmp_path / "elsewhere" / "mlflow.db"
    r = cli("check", "tiny", "--store", str(missing))
    assert r.exit_code == 0, r.output
    assert not missing.parent.exists()
