"""Element-wise activations and Softmax. Each keeps what its derivative needs."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .module import Module, is_grad_enabled


class ReLU(Module):
    """``y = max(x, 0)``; backward ``dx = dy * (x > 0)``, and ``x > 0`` exactly where ``y > 0``.

    ``x * (x > 0)`` into a fresh array with the input's memory order (an NCHW view of
    NHWC memory stays NHWC, see :mod:`scratchcnn.kernels.conv_nhwc`); this branch-free
    form is faster than ``np.maximum`` or ``np.where``. The output itself is kept for
    backward instead of a separate mask.
    """

    def __init__(self):
        super().__init__()
        self._mask = None     # the forward output y (y > 0 is the mask)

    def forward(self, x):
        y = np.multiply(x, x > 0, dtype=x.dtype)
        if is_grad_enabled():
            self._mask = y
        return y

    def backward(self, grad_out):
        return np.multiply(grad_out, self._mask > 0, dtype=grad_out.dtype)

    def _clear_cache(self):
        self._mask = None


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x``; backward multiplies by 1 or the slope."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self._mask = None

    def config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, x):
        mask = x > 0
        if is_grad_enabled():
            self._mask = mask
        return np.where(mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad_out):
        return np.where(self._mask, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))

    def _clear_cache(self):
        self._mask = None


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` (computed stably for both signs); ``dx = dy * y * (1 - y)``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        if is_grad_enabled():
            self._y = y
        return y

    def backward(self, grad_out):
        return grad_out * self._y * (1 - self._y)

    def _clear_cache(self):
        self._y = None


class Tanh(Module):
    """``y = tanh(x)``; ``dx = dy * (1 - y^2)``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        y = np.tanh(x)
        if is_grad_enabled():
            self._y = y
        return y

    def backward(self, grad_out):
        return grad_out * (1 - self._y * self._y)

    def _clear_cache(self):
        self._y = None


def softmax(z, axis=-1):
    """Numerically stable softmax (subtracts the maximum first)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    """``z - logsumexp(z)``, stable for large logits."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Module):
    """Probabilities over ``dim`` (default 1: classes of x: (N, K)). For inference; train on
    logits with CrossEntropyLoss instead. Backward: ``dx = y * (dy - sum(dy * y))``."""

    def __init__(self, dim=1):
        super().__init__()
        if not isinstance(dim, int):
            raise ConfigError(f"Softmax: dim must be an int, got {dim!r}")
        self.dim = dim
        self._y = None

    def config(self):
        return {"dim": self.dim}

    def _check_input(self, x):
        if not -x.ndim <= self.dim < x.ndim:
            raise ShapeError(f"{self!r}: input of shape {x.shape} has no axis {self.dim}")

    def forward(self, x):
        y = softmax(x, axis=self.dim)
        if is_grad_enabled():
            self._y = y
        return y

    def backward(self, grad_out):
        y = self._y
        return y * (grad_out - (grad_out * y).sum(axis=self.dim, keepdims=True))

    def _clear_cache(self):
        self._y = None
