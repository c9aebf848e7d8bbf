"""Batch normalisation with PyTorch's training / eval semantics."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .module import Module, Parameter, is_grad_enabled


class _BatchNorm(Module):
    """Normalise each feature (channel) with the batch's mean and variance in training and
    with running estimates in eval mode, then scale and shift: ``y = gamma * xhat + beta``.

    Running statistics follow PyTorch: ``running = (1 - momentum) * running + momentum *
    batch_stat``, the variance being the unbiased one (divided by m - 1) while the
    normalisation uses the biased one (divided by m), m = values per feature.

    Backward in training mode (xhat depends on the batch through mean and variance):
    ``dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`` with
    ``dxhat = dy * gamma``; ``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)``.
    """

    _axes = None     # axes reduced over
    _ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ConfigError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.affine = bool(affine)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self._cache = None

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine}

    def extra_repr(self):
        return f"{self.num_features}"

    def output_shape(self, input_shape):
        if len(input_shape) != self._ndim - 1 or input_shape[0] != self.num_features:
            want = "(N, C)" if self._ndim == 2 else "(N, C, H, W)"
            raise ShapeError(f"{self!r} expects input {want} with C={self.num_features}, "
                             f"got (N, {', '.join(map(str, input_shape))})")
        return tuple(input_shape)

    def macs(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def _check_input(self, x):
        if x.ndim != self._ndim:
            self.output_shape(x.shape[1:])
        self.output_shape(x.shape[1:])

    def _bshape(self, v):
        return v.reshape((1, -1) + (1,) * (self._ndim - 2))

    def forward(self, x):
        axes = self._axes
        if self.training:
            m = x.size // self.num_features
            if m < 2:
                raise ShapeError(f"{self!r}: training needs more than one value per channel, "
                                 f"got input shape {x.shape}")
            mean = x.mean(axis=axes)
            xc = x - self._bshape(mean)
            var = (xc * xc).mean(axis=axes)
            invstd = 1.0 / np.sqrt(var + self.eps)
            mom = self.momentum
            self._buffers["running_mean"] = ((1 - mom) * self.running_mean + mom * mean).astype(x.dtype)
            self._buffers["running_var"] = ((1 - mom) * self.running_var + mom * var * (m / (m - 1))).astype(x.dtype)
            self._buffers["num_batches_tracked"] = self.num_batches_tracked + 1
            xhat = xc * self._bshape(invstd)
        else:
            invstd = 1.0 / np.sqrt(self.running_var + self.eps)
            xhat = (x - self._bshape(self.running_mean)) * self._bshape(invstd)
        xhat = xhat.astype(x.dtype, copy=False)
        invstd = invstd.astype(x.dtype, copy=False)
        if is_grad_enabled():
            self._cache = (xhat, invstd, self.training)
        if self.affine:
            return xhat * self._bshape(self.weight.data) + self._bshape(self.bias.data)
        return xhat

    def backward(self, grad_out):
        xhat, invstd, training = self._cache
        axes = self._axes
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += (grad_out * xhat).sum(axis=axes)
            if self.bias.requires_grad:
                self.bias.grad += grad_out.sum(axis=axes)
            dxhat = grad_out * self._bshape(self.weight.data)
        else:
            dxhat = grad_out
        if not self.needs_input_grad:
            return None
        if not training:
            return dxhat * self._bshape(invstd)
        m = grad_out.size // self.num_features
        sum_d = self._bshape(dxhat.sum(axis=axes))
        sum_dx = self._bshape((dxhat * xhat).sum(axis=axes))
        return self._bshape(invstd / m) * (m * dxhat - sum_d - xhat * sum_dx)

    def _clear_cache(self):
        self._cache = None


class BatchNorm2D(_BatchNorm):
    """``BatchNorm2D(num_features, eps=1e-5, momentum=0.1)`` over x: (N, C, H, W), statistics per
    channel over (N, H, W)."""
    _axes = (0, 2, 3)
    _ndim = 4


class BatchNorm1D(_BatchNorm):
    """``BatchNorm1D(num_features, eps=1e-5, momentum=0.1)`` over x: (N, C), statistics per
    feature over N."""
    _axes = (0,)
    _ndim = 2
