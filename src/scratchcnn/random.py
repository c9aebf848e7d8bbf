"""One random generator for everything scratchcnn draws at random.

Weight initialisation, shuffling, dropout masks and data augmentation all take
their numbers from :func:`get_rng`, so ``scratchcnn.manual_seed(0)`` makes a whole
run repeatable.
"""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random choice scratchcnn makes (init, shuffling, dropout, augmentation)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng():
    """The shared ``numpy.random.Generator``."""
    return _rng


def get_state():
    """The generator's state (a dict), to restore later with :func:`set_state`."""
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state
