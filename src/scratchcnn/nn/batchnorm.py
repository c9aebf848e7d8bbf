"""Batch normalisation with PyTorch's training / eval semantics."""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import textbook_enabled
from .module import Module, Parameter, is_grad_enabled


class _Rows:
    """x as ``(M, C)`` rows of C values, a view: BatchNorm1D's C-contiguous (N, C), or a
    4-D x whose memory is NHWC (as convolutions hand it on). Per-channel vectors broadcast as (C,)."""

    def __init__(self, x):
        self.shape = x.shape

    @staticmethod
    def view(x):
        if x.ndim == 2:
            return x if x.flags.c_contiguous else None
        xh = x.transpose(0, 2, 3, 1)
        return xh.reshape(-1, x.shape[1]) if xh.flags.c_contiguous else None

    def back(self, a):
        if len(self.shape) == 2:
            return a
        n, c, h, w = self.shape
        return a.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    @staticmethod
    def vec(v):
        return v

    @staticmethod
    def csum(a):                       # per-channel sums, as a BLAS matrix-vector product
        return np.ones(a.shape[0], dtype=a.dtype) @ a

    @staticmethod
    def cdot(a, b):                    # per-channel sums of a * b, without a temporary
        return np.einsum("ij,ij->j", a, b)


class _Planes(_Rows):
    """A C-contiguous 4-D x (NCHW memory) as ``(N, C, H*W)`` planes; vectors broadcast as (C, 1)."""

    @staticmethod
    def view(x):
        return x.reshape(x.shape[0], x.shape[1], -1) if x.ndim == 4 and x.flags.c_contiguous else None

    def back(self, a):
        return a.reshape(self.shape)

    @staticmethod
    def vec(v):
        return v[:, None]

    @staticmethod
    def csum(a):
        return (a @ np.ones(a.shape[2], dtype=a.dtype)).sum(axis=0)

    @staticmethod
    def cdot(a, b):
        return np.einsum("ncp,ncp->c", a, b)


def _fast_layout(x):
    """(layout, view of x) for the fast path, or (None, None)."""
    for layout in (_Rows, _Planes):
        v = layout.view(x)
        if v is not None:
            return layout(x), v
    return None, None


class _BatchNorm(Module):
    """Normalise each feature (channel) with the batch's mean and variance in training and
    with running estimates in eval mode, then scale and shift: ``y = gamma * xhat + beta``.

    Running statistics follow PyTorch: ``running = (1 - momentum) * running + momentum *
    batch_stat``, the variance being the unbiased one (divided by m - 1) while the
    normalisation uses the biased one (divided by m), m = values per feature.

    Backward in training mode (xhat depends on the batch through mean and variance):
    ``dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`` with
    ``dxhat = dy * gamma``; ``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)``.

    Fast path: the same maths on a view of x as ``(M, C)`` rows (BatchNorm1D's (N, C), a
    conv's NHWC memory) or ``(N, C, H*W)`` planes (NCHW memory): per-channel sums are
    matrix-vector products with a vector of ones (BLAS) and the element-wise passes are
    fused into as few as possible. ``_forward_reference`` / ``_backward_reference`` are the
    plain version, used otherwise and under ``scratchcnn.kernels.textbook()``.
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

    def _check_batch(self, x):
        m = x.size // self.num_features
        if self.training and m < 2:
            raise ShapeError(f"{self!r}: training needs more than one value per channel, "
                             f"got input shape {x.shape}")
        return m

    def _update_running(self, mean, var, m, dtype):
        mom = self.momentum
        self._buffers["running_mean"] = ((1 - mom) * self.running_mean + mom * mean).astype(dtype)
        self._buffers["running_var"] = ((1 - mom) * self.running_var + mom * var * (m / (m - 1))).astype(dtype)
        self._buffers["num_batches_tracked"] = self.num_batches_tracked + 1

    def forward(self, x):
        m = self._check_batch(x)
        layout, v = _fast_layout(x) if not textbook_enabled() and x.size else (None, None)
        if layout is None:
            return self._forward_reference(x, m)
        return layout.back(self._forward_fast(layout, v, m, x.dtype))

    def backward(self, grad_out):
        if self._cache[0] == "fast":
            layout = self._cache[1]
            g = layout.view(grad_out)
            if g is None:          # a gradient in another memory order: one copy into the layout
                g = layout.view(self._in_layout_of(layout, grad_out))
            dx = self._backward_fast(g)
            return None if dx is None else layout.back(dx)
        return self._backward_reference(grad_out)

    @staticmethod
    def _in_layout_of(layout, a):
        if isinstance(layout, _Planes) or a.ndim == 2:
            return np.ascontiguousarray(a)
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    # fast path on a 2-D or 3-D view (see _Rows, _Planes) ------------------------------
    def _forward_fast(self, layout, x, m, dtype):
        """x: the layout's view of the input -> y of the same shape, a fresh array."""
        vec = layout.vec
        if self.training:
            mean = layout.csum(x) / m
            xhat = x - vec(mean)                              # xc, normalised in place below
            var = layout.cdot(xhat, xhat) / m
            invstd = (1.0 / np.sqrt(var + self.eps)).astype(dtype)
            self._update_running(mean, var, m, dtype)
            xhat *= vec(invstd)
        else:
            invstd = (1.0 / np.sqrt(self.running_var + self.eps)).astype(dtype)
            xhat = x - vec(self.running_mean)
            xhat *= vec(invstd)
        if is_grad_enabled():
            self._cache = ("fast", layout, xhat, invstd, self.training)
        if not self.affine:
            return xhat.copy() if is_grad_enabled() else xhat     # the cache stays private
        y = xhat * vec(self.weight.data)
        y += vec(self.bias.data)
        return y

    def _backward_fast(self, g):
        """g: the layout's view of grad_out -> dx, same shape. With ``a = gamma * invstd``:
        ``dx = a * g - a/m * (dbeta + xhat * dgamma)`` in training, ``a * g`` in eval."""
        _, layout, xhat, invstd, training = self._cache
        vec = layout.vec
        dgamma = layout.cdot(g, xhat)
        dbeta = layout.csum(g)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += dgamma
            if self.bias.requires_grad:
                self.bias.grad += dbeta
            a = self.weight.data * invstd
        else:
            a = invstd
        if not self.needs_input_grad:
            return None
        dx = g * vec(a)
        if training:
            m = g.size // self.num_features
            dx -= xhat * vec((a * dgamma / m).astype(g.dtype))
            dx -= vec((a * dbeta / m).astype(g.dtype))
        return dx

    # reference path ----------------------------------------------------------------------
    def _forward_reference(self, x, m):
        axes = self._axes
        if self.training:
            mean = x.mean(axis=axes)
            xc = x - self._bshape(mean)
            var = (xc * xc).mean(axis=axes)
            invstd = 1.0 / np.sqrt(var + self.eps)
            self._update_running(mean, var, m, x.dtype)
            xhat = xc * self._bshape(invstd)
        else:
            invstd = 1.0 / np.sqrt(self.running_var + self.eps)
            xhat = (x - self._bshape(self.running_mean)) * self._bshape(invstd)
        xhat = xhat.astype(x.dtype, copy=False)
        invstd = invstd.astype(x.dtype, copy=False)
        if is_grad_enabled():
            self._cache = ("reference", xhat, invstd, self.training)
        if self.affine:
            return xhat * self._bshape(self.weight.data) + self._bshape(self.bias.data)
        return xhat

    def _backward_reference(self, grad_out):
        _, xhat, invstd, training = self._cache
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
