import os

import numpy as np
import pytest

import scratchcnn as sc


@pytest.fixture(autouse=True)
def _seed():
    sc.manual_seed(1234)
    yield


def require_torch():
    """Import torch for the parity tests. In CI a missing torch is a failure, not a skip."""
    if os.environ.get("CI"):
        import torch  # noqa: F401  (ImportError fails the run)
        return torch
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
