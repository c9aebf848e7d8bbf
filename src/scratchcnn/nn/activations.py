"""Element-wise activations and Softmax. Each keeps what its derivative needs, as one named attribute;
each ``forward`` / ``backward`` is the textbook path (loops in scratchcnn.nn.loops; Sequential's fast plan
may fuse a ReLU into the convolution before it or run it after a max-pool: scratchcnn.nn.fast_plan)."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .checks import number
from .module import Module, is_grad_enabled


class ReLU(Module):
    """``ReLU()``: ``y = max(x, 0)``, element by element.

    Shape: x: (N, ...) float32 -> y: x's shape, float32 (a float64 x stays float64), in x's memory order
        (an NCHW view of NHWC memory stays NHWC, see :mod:`scratchcnn.kernels.conv_nhwc`).
    Forward: ``y = x * (x > 0)`` into a fresh array: branch-free, faster than ``np.maximum`` or ``np.where``.
    Backward: ``dx = dy * (x > 0)``, and ``x > 0`` exactly where ``y > 0``: y is kept instead of a mask.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> relu = sc.ReLU()
        >>> relu(np.array([[-1.0, 0.5, 2.0]])).tolist() == [[0.0, 0.5, 2.0]]
        True
        >>> relu.backward(np.ones((1, 3))).tolist()
        [[0.0, 1.0, 1.0]]

    See also: the loop :func:`scratchcnn.nn.loops.elementwise_forward_backward` (``"relu"``); :class:`LeakyReLU`.
    """

    def __init__(self):
        super().__init__()
        self._y = None        # the forward output (y > 0 is the mask)

    def forward(self, x):
        y = np.multiply(x, x > 0, dtype=x.dtype)
        if is_grad_enabled():
            self._y = y
        return y

    def backward(self, grad_out):
        return np.multiply(grad_out, self._y > 0, dtype=grad_out.dtype)

    def keep_output(self, y):
        """Fast path: a fused kernel computed ``y = max(x, 0)`` (see ``Sequential.run_plan``); keep it as forward would."""
        if is_grad_enabled():
            self._y = y
        return y

    @property
    def output(self):
        """The output kept by the last forward pass with gradients on (backward's mask is ``output > 0``)."""
        return self._y

    def _clear_cache(self):
        self._y = None


class LeakyReLU(Module):
    """``LeakyReLU(negative_slope=0.01)``: ``y = x`` where ``x > 0``, ``negative_slope * x`` elsewhere.

    Shape: x: (N, ...) float32 -> y: x's shape, float32 (a float64 x stays float64).
    Forward: ``y = np.where(x > 0, x, negative_slope * x)``; the mask ``x > 0`` is kept.
    Backward: the derivative is 1 or the slope: ``dx = dy`` where ``x > 0``, ``negative_slope * dy`` elsewhere.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.LeakyReLU(0.1)(np.array([[-1.0, 2.0]])).tolist()
        [[-0.1, 2.0]]

    See also: the loop :func:`scratchcnn.nn.loops.elementwise_forward_backward` (``"leaky_relu"``); :class:`ReLU`.
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = number("LeakyReLU", "negative_slope", negative_slope)
        self._mask = None     # x > 0, boolean, x's shape

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
    """``Sigmoid()``: ``y = 1 / (1 + exp(-x))``, element by element.

    Shape: x: (N, ...) float32 -> y: x's shape, float32 (a float64 x stays float64).
    Forward: stably for both signs: with ``e = exp(-|x|)`` (never overflows), ``y = 1 / (1 + e)`` for
        ``x >= 0`` and ``e / (1 + e)`` otherwise.
    Backward: ``dy/dx = y * (1 - y)``, so ``dx = dy * y * (1 - y)`` from the kept output y.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.Sigmoid()(np.array([[-1000.0, 0.0, 1000.0]])).tolist()
        [[0.0, 0.5, 1.0]]

    See also: the loop :func:`scratchcnn.nn.loops.elementwise_forward_backward` (``"sigmoid"``); :class:`Tanh`.
    """

    def __init__(self):
        super().__init__()
        self._y = None        # the forward output

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
    """``Tanh()``: ``y = tanh(x)``, element by element.

    Shape: x: (N, ...) float32 -> y: x's shape, float32 (a float64 x stays float64).
    Forward: ``y = np.tanh(x)``.
    Backward: ``dy/dx = 1 - tanh(x)^2``, so ``dx = dy * (1 - y * y)`` from the kept output y.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.Tanh()(np.zeros((1, 2))).tolist()
        [[0.0, 0.0]]

    See also: the loop :func:`scratchcnn.nn.loops.elementwise_forward_backward` (``"tanh"``); :class:`Sigmoid`.
    """

    def __init__(self):
        super().__init__()
        self._y = None        # the forward output

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
    """``Softmax(dim=1)``: probabilities over axis ``dim``. For inference; train on logits with
    :class:`scratchcnn.CrossEntropyLoss` instead (it folds softmax and log together, stably).

    Shape: x: (N, K) float32 -> y: (N, K) float32 (a float64 x stays float64); any shape with an axis ``dim``.
    Forward: ``y_i = exp(x_i - max(x)) / sum_k exp(x_k - max(x))`` along ``dim`` (the maximum subtracted
        first, so exp never overflows; the ratio is unchanged).
    Backward: the Jacobian is ``dy_i / dx_j = y_i * ((i == j) - y_j)``, so ``dx_j = sum_i dy_i * y_i *
        ((i == j) - y_j)``, i.e. ``dx = y * (dy - sum(dy * y))`` along ``dim``, from the kept output y.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.Softmax()(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(6).tolist()
        [[0.5, 0.5], [0.25, 0.75]]

    See also: the loop :func:`scratchcnn.nn.loops.softmax_forward_backward`; :func:`softmax`, :func:`log_softmax`.
    """

    def __init__(self, dim=1):
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ConfigError(f"Softmax: dim must be an int, got {dim!r}")
        self.dim = dim
        self._y = None        # the forward output

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
