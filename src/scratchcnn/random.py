"""One random generator for everything scratchcnn draws at random.

Weight initialisation, shuffling, dropout masks and data augmentation all take
their numbers from :func:`get_rng`, so ``scratchcnn.manual_seed(0)`` makes a whole
run repeatable. A thread may draw from a generator of its own instead
(:func:`thread_rng`): ``fit(..., workers=N)`` gives each worker thread one seeded from the
shared generator, so a run with workers is repeatable too.
"""
import threading
from contextlib import contextmanager

import numpy as np

_rng = np.random.default_rng()
_local = threading.local()         # a thread's own generator, while thread_rng is active


def manual_seed(seed):
    """Seed every random choice scratchcnn makes (init, shuffling, dropout, augmentation)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng():
    """The ``numpy.random.Generator`` to draw from: the shared one, or this thread's own
    inside :func:`thread_rng`."""
    own = getattr(_local, "rng", None)
    return _rng if own is None else own


@contextmanager
def thread_rng(generator):
    """Within this block, :func:`get_rng` in *this thread* returns ``generator``."""
    previous = getattr(_local, "rng", None)
    _local.rng = generator
    try:
        yield generator
    finally:
        _local.rng = previous


def get_state():
    """The generator's state (a dict), to restore later with :func:`set_state`."""
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state
