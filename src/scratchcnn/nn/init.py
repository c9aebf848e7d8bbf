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
    """A weight array of ``shape`` drawn by ``scheme`` (one of :data:`INITS`, see above) from the
    shared generator :func:`scratchcnn.get_rng`, as ``dtype``.

    Shape: Dense: (out_features, in_features), ``fan_in = in_features``, ``fan_out = out_features``;
        Conv2D: (C_out, C_in, kh, kw), ``fan_in = C_in*kh*kw``, ``fan_out = C_out*kh*kw``.
    Example:
        >>> import scratchcnn as sc; from scratchcnn.nn.init import init_weight
        >>> _ = sc.manual_seed(0)
        >>> w = init_weight((256, 512), 512, 256, "he")
        >>> w.dtype, round(float(w.std()), 3)          # sqrt(2 / 512) = 0.0625
        (dtype('float32'), 0.063)

    See also: :class:`scratchcnn.nn.Dense`, :class:`scratchcnn.nn.Conv2D` (their ``init`` argument).
    """
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
    """A bias array of ``shape`` (``(out_features,)`` or ``(C_out,)``): zeros, or for ``"torch"``
    PyTorch's ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; as ``dtype``. See :func:`init_weight`."""
    if scheme == "torch":
        a = 1.0 / np.sqrt(fan_in)
        return get_rng().uniform(-a, a, shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)
