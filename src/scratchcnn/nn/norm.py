"""Per-example normalisation, PyTorch's LayerNorm and GroupNorm: no batch statistics, no running
estimates, so training and eval compute the same. Both standardise groups of values and share the
closed-form backward below (:func:`_standardize`, :func:`_standardize_backward`)."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .checks import flag, float_dtype, number, positive_int, weights_fit
from .module import Module, Parameter, is_grad_enabled


def _standardize(v, axes, eps):
    """``(xhat, invstd)``: ``v`` standardised over ``axes`` by its mean and biased variance (/ m)."""
    xc = v - v.mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    return (xc * invstd).astype(v.dtype, copy=False), invstd.astype(v.dtype, copy=False)


def _standardize_backward(dxhat, xhat, invstd, axes):
    """d loss / d v from d loss / d xhat: ``invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``."""
    mean_d = dxhat.mean(axis=axes, keepdims=True)
    mean_dx = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return invstd * (dxhat - mean_d - xhat * mean_dx)


class LayerNorm(Module):
    """``LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True)``, PyTorch's LayerNorm: each example
    standardised over its trailing dimensions ``normalized_shape`` (an int: the last axis only).

    Shape: x: (N, *, *normalized_shape) float32 -> y: x's shape (float64 after ``.to(np.float64)``; without
        weights the input's float dtype); weight (gamma), bias (beta): normalized_shape (PyTorch's names).
    Forward: over the m = prod(normalized_shape) values of each (n, *): ``xhat = (x - mean) * invstd``,
        ``invstd = 1 / sqrt(var + eps)`` (biased var, / m), ``y = gamma * xhat + beta`` (element by element
        over the normalised axes). The same in training and eval.
    Backward: ``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)`` over the leading axes, ``dxhat = gamma * dy``.
        mean and var depend on every x of the group; differentiating them takes out of dxhat its mean and
        its part along xhat: ``dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``, the means
        over the normalised axes (BatchNorm's training form, the group an example's features, not a channel).
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> ln = sc.LayerNorm(3, dtype=np.float64); ln(np.array([[1.0, 2.0, 3.0]])).round(4).tolist()
        [[-1.2247, 0.0, 1.2247]]
        >>> ln.backward(np.ones((1, 3))).round(6).tolist(), ln.bias.grad.tolist()   # a constant dy: dx = 0
        ([[0.0, 0.0, 0.0]], [1.0, 1.0, 1.0])

    See also: the loop :func:`scratchcnn.nn.loops.layernorm_forward_backward`; :class:`GroupNorm`;
        :class:`scratchcnn.nn.BatchNorm1D` (the same closed form over the batch axis).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        dims = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        if not isinstance(dims, (tuple, list)) or not dims:
            raise ConfigError(f"LayerNorm: normalized_shape must be a positive int or a non-empty tuple of "
                              f"them, got {normalized_shape!r}")
        self.normalized_shape = tuple(positive_int("LayerNorm", "normalized_shape", d) for d in dims)
        self.eps = number("LayerNorm", "eps", eps, low=0, low_open=True)
        self.elementwise_affine = flag("LayerNorm", "elementwise_affine", elementwise_affine)
        dtype = float_dtype("LayerNorm", dtype)
        if self.elementwise_affine:
            weights_fit(f"LayerNorm({self.normalized_shape})", 2 * int(np.prod(self.normalized_shape)), dtype)
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
        self._saved = None      # (xhat, invstd) for backward: invstd with kept dims, one per group

    def config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

    def output_shape(self, input_shape):
        k = len(self.normalized_shape)
        if len(input_shape) < k or tuple(input_shape[len(input_shape) - k:]) != self.normalized_shape:
            raise ShapeError(f"{self!r} expects input (N, ..., {', '.join(map(str, self.normalized_shape))}) "
                             f"ending in normalized_shape, got (N, {', '.join(map(str, input_shape))})")
        return tuple(input_shape)

    def macs(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def _check_input(self, x):
        self.output_shape(x.shape[1:])      # (a scalar x: shape () has no trailing normalized_shape)

    def _axes(self, x):
        return tuple(range(x.ndim - len(self.normalized_shape), x.ndim))

    def forward(self, x):
        keep = is_grad_enabled()
        if keep:
            self._saved = None
        xhat, invstd = _standardize(x, self._axes(x), self.eps)
        if keep:
            self._saved = (xhat, invstd)
        if self.elementwise_affine:
            return xhat * self.weight.data + self.bias.data
        return xhat

    def backward(self, grad_out):
        xhat, invstd = self._saved
        lead = tuple(range(grad_out.ndim - len(self.normalized_shape)))
        if self.elementwise_affine:
            if self.weight.requires_grad:
                self.weight.grad += (grad_out * xhat).sum(axis=lead)
            if self.bias.requires_grad:
                self.bias.grad += grad_out.sum(axis=lead)
            dxhat = grad_out * self.weight.data
        else:
            dxhat = grad_out
        if not self.needs_input_grad:
            return None
        return _standardize_backward(dxhat, xhat, invstd, self._axes(grad_out))

    def _clear_cache(self):
        self._saved = None


class GroupNorm(Module):
    """``GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)``, PyTorch's GroupNorm: the channels cut
    into num_groups groups of C / G consecutive channels, each example's group standardised on its own.

    Shape: x: (N, C, *) float32 (e.g. (N, C, H, W)) -> y: x's shape (float64 after ``.to(np.float64)``),
        C = num_channels, a multiple of G = num_groups; weight (gamma), bias (beta): (C,), one per channel.
    Forward: viewing x as (N, G, m), m = C / G * prod(*): ``xhat = (x - mean) * invstd`` over each (n, g)'s
        m values (biased var, ``invstd = 1 / sqrt(var + eps)``), then per channel ``y = gamma[c] * xhat +
        beta[c]``. No running statistics: training and eval compute the same. G = 1 is LayerNorm over
        (C, *) with per-channel weights; G = C is instance normalisation.
    Backward: ``dgamma[c] = sum(dy * xhat)``, ``dbeta[c] = sum(dy)`` over (n, *), ``dxhat = gamma[c] * dy``;
        then, in the (N, G, m) view, ``dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``,
        the means over each group's m values (as LayerNorm; the mean and var are each group's own).
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> gn = sc.GroupNorm(2, 4); y = gn(np.arange(16.0).reshape(1, 4, 2, 2))
        >>> y.shape, y.dtype, y[0, :2].mean().round(6), gn.backward(np.ones_like(y)).shape
        ((1, 4, 2, 2), dtype('float32'), np.float32(0.0), (1, 4, 2, 2))

    See also: the loop :func:`scratchcnn.nn.loops.groupnorm_forward_backward`; :class:`LayerNorm`;
        :class:`scratchcnn.nn.BatchNorm2D` (statistics over the batch instead).
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        super().__init__()
        self.num_groups = positive_int("GroupNorm", "num_groups", num_groups)
        self.num_channels = positive_int("GroupNorm", "num_channels", num_channels)
        if self.num_channels % self.num_groups:
            raise ConfigError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                              f"({num_groups})")
        self.eps = number("GroupNorm", "eps", eps, low=0, low_open=True)
        self.affine, dtype = flag("GroupNorm", "affine", affine), float_dtype("GroupNorm", dtype)
        if self.affine:
            weights_fit(f"GroupNorm({num_groups}, {num_channels})", 2 * self.num_channels, dtype)
            self.weight = Parameter(np.ones(self.num_channels, dtype=dtype))
            self.bias = Parameter(np.zeros(self.num_channels, dtype=dtype))
        self._saved = None

    def config(self):
        return {"num_groups": self.num_groups, "num_channels": self.num_channels, "eps": self.eps,
                "affine": self.affine}

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"

    def output_shape(self, input_shape):
        if len(input_shape) < 1 or input_shape[0] != self.num_channels:
            raise ShapeError(f"{self!r} expects input (N, {self.num_channels}, *) with C=num_channels, "
                             f"got (N, {', '.join(map(str, input_shape))})")
        return tuple(input_shape)

    def macs(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def _check_input(self, x):
        if x.ndim < 2:
            raise ShapeError(f"{self!r} expects input (N, {self.num_channels}, *), got shape {x.shape}")
        self.output_shape(x.shape[1:])

    def _grouped(self, a):
        """``a`` (N, C, *) as (N, G, m), m = C / G * prod(*) (a view; m explicit, so N = 0 works)."""
        return a.reshape(a.shape[0], self.num_groups, int(np.prod(a.shape[1:])) // self.num_groups)

    def forward(self, x):
        keep = is_grad_enabled()
        if keep:
            self._saved = None
        xhat, invstd = _standardize(self._grouped(x), (2,), self.eps)
        if keep:
            self._saved = (xhat, invstd)        # in the (N, G, m) view
        xhat = xhat.reshape(x.shape)
        if self.affine:
            per_channel = (1, -1) + (1,) * (x.ndim - 2)
            return xhat * self.weight.data.reshape(per_channel) + self.bias.data.reshape(per_channel)
        return xhat

    def backward(self, grad_out):
        xhat, invstd = self._saved
        if self.affine:
            axes = (0,) + tuple(range(2, grad_out.ndim))
            if self.weight.requires_grad:
                self.weight.grad += (grad_out * xhat.reshape(grad_out.shape)).sum(axis=axes)
            if self.bias.requires_grad:
                self.bias.grad += grad_out.sum(axis=axes)
            dxhat = grad_out * self.weight.data.reshape((1, -1) + (1,) * (grad_out.ndim - 2))
        else:
            dxhat = grad_out
        if not self.needs_input_grad:
            return None
        return _standardize_backward(self._grouped(dxhat), xhat, invstd, (2,)).reshape(grad_out.shape)

    def _clear_cache(self):
        self._saved = None
