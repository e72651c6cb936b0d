"""Fixtures for the model-family tests: single-threaded, datasets loaded once."""

from __future__ import annotations

import pytest
import torch

from harness import data


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # On a busy 2-core machine two intra-op threads contend with other processes and run
    # these tiny matmuls ~50x slower than one thread; restore the setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    return data.load("digits")


@pytest.fixture(scope="session")
def digits_binary():
    return data.load("digits_binary")
