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


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a whole test module: the machine is shared and the tensors of
    these tests are small, so more threads gain nothing."""
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
