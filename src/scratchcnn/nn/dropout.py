"""Inverted dropout."""
import numpy as np

from ..errors import ConfigError
from ..random import get_rng
from .module import Module


class Dropout(Module):
    """``Dropout(p)``: in training, zero each element with probability ``p`` and scale the
    survivors by ``1 / (1 - p)`` so the expected activation is unchanged; identity in
    eval mode. Backward applies the same mask and scale to the gradient."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ConfigError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self._mask = None

    def config(self):
        return {"p": self.p}

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = get_rng().random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad_out):
        return grad_out if self._mask is None else grad_out * self._mask

    def _clear_cache(self):
        self._mask = None
