"""Weight initialisation.

- ``"he"`` (Kaiming normal, the default): ``N(0, 2 / fan_in)``, keeps the variance of
  activations constant through ReLU layers.
- ``"he_uniform"``: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)``.
- ``"glorot"`` (Xavier uniform): ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``,
  for sigmoid / tanh layers.
- ``"glorot_normal"``: ``N(0, 2 / (fan_in + fan_out))``.
- ``"torch"``: PyTorch's default, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

Biases start at zero (``"torch"``: the same uniform law as the weights).
"""
import numpy as np

from ..errors import ConfigError
from ..random import get_rng

INITS = ("he", "he_uniform", "glorot", "glorot_normal", "torch")


def init_weight(shape, fan_in, fan_out, scheme="he", dtype=np.float32):
    rng = get_rng()
    if scheme == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif scheme == "he_uniform":
        a = np.sqrt(6.0 / fan_in)
        w = rng.uniform(-a, a, shape)
    elif scheme == "glorot":
        a = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-a, a, shape)
    elif scheme == "glorot_normal":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "torch":
        a = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-a, a, shape)
    else:
        raise ConfigError(f"unknown init {scheme!r}; choose one of {INITS}")
    return w.astype(dtype)


def init_bias(shape, fan_in, scheme="he", dtype=np.float32):
    if scheme == "torch":
        a = 1.0 / np.sqrt(fan_in)
        return get_rng().uniform(-a, a, shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)
