"""Batch normalisation with PyTorch's training / eval semantics."""
from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..kernels import batchnorm_views, textbook_enabled
from .checks import flag, float_dtype, number, positive_int
from .module import Module, Parameter, is_grad_enabled


class TextbookSaved(NamedTuple):
    """What the textbook backward needs from the textbook forward."""
    xhat: np.ndarray       # the normalised input, x's shape
    invstd: np.ndarray     # (C,) 1 / sqrt(var + eps)
    training: bool         # normalised with the batch's own statistics


class _BatchNorm(Module):
    """The code of BatchNorm2D and BatchNorm1D; their docstrings give the maths."""

    _axes = None     # the axes reduced over: all but the channel axis
    _ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        who = type(self).__name__
        self.num_features = positive_int(who, "num_features", num_features)
        self.eps, self.momentum = number(who, "eps", eps, low=0, low_open=True), number(who, "momentum", momentum, 0, 1)
        self.affine, dtype = flag(who, "affine", affine), float_dtype(who, dtype)
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self._saved = None     # what backward reads: a TextbookSaved or the kernel's BatchNormSaved

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
        self.output_shape(x.shape[1:])

    def _bshape(self, v):
        return v.reshape((1, -1) + (1,) * (self._ndim - 2))

    def _check_batch(self, x):
        m = x.size // self.num_features
        if self.training and m < 2:
            raise ShapeError(f"{self!r}: training needs more than one value per channel, got input shape {x.shape}")
        return m

    def _update_running(self, mean, var, m, dtype):
        mom = self.momentum
        self._buffers["running_mean"] = ((1 - mom) * self.running_mean + mom * mean).astype(dtype)
        self._buffers["running_var"] = ((1 - mom) * self.running_var + mom * var * (m / (m - 1))).astype(dtype)
        self._buffers["num_batches_tracked"] = self.num_batches_tracked + 1

    def forward(self, x):
        m, keep, axes = self._check_batch(x), is_grad_enabled(), self._axes
        if keep:
            self._saved = None      # free the last batch's xhat before this batch's arrays are made
        if not textbook_enabled() and batchnorm_views.applies(x):        # the fast kernel
            gamma, beta = (self.weight.data, self.bias.data) if self.affine else (None, None)
            stats = () if self.training else (self.running_mean, self.running_var)
            y, saved, batch = batchnorm_views.forward(x, gamma, beta, keep, self.eps, *stats)
            if batch is not None:
                self._update_running(batch.mean, batch.var, m, x.dtype)
            if saved is not None:
                self._saved = saved
            return y
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
        xhat, invstd = xhat.astype(x.dtype, copy=False), invstd.astype(x.dtype, copy=False)
        if keep:
            self._saved = TextbookSaved(xhat, invstd, self.training)
        if self.affine:
            return xhat * self._bshape(self.weight.data) + self._bshape(self.bias.data)
        return xhat

    def backward(self, grad_out):
        saved, axes = self._saved, self._axes
        if isinstance(saved, batchnorm_views.BatchNormSaved):                # the fast kernel
            dx, dgamma, dbeta = batchnorm_views.backward(saved, grad_out, self.weight.data if self.affine else None,
                                                         need_input_grad=self.needs_input_grad,
                                                         need_weight_grad=self.affine)
            if self.affine and self.weight.requires_grad:
                self.weight.grad += dgamma
            if self.affine and self.bias.requires_grad:
                self.bias.grad += dbeta
            return dx
        xhat, invstd, training = saved
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
        self._saved = None


class BatchNorm2D(_BatchNorm):
    """``BatchNorm2D(num_features, eps=1e-5, momentum=0.1, affine=True)``, PyTorch's BatchNorm2d. ``forward`` /
    ``backward`` are the textbook path; :mod:`scratchcnn.kernels.batchnorm_views` the fast kernel.

    Shape: x: (N, C, H, W) float32 -> y: (N, C, H, W) float32 (float64 after ``.to(np.float64)``);
        C = num_features; weight (gamma), bias (beta), running_mean, running_var: (C,).
    Forward: per channel, over its m = N*H*W values: ``xhat = (x - mean) * invstd``, ``invstd = 1 / sqrt(var +
        eps)``, ``y = gamma * xhat + beta``, with the batch's mean and biased var (/ m) in training, which also
        sets ``running = (1 - momentum) * running + momentum * batch`` (PyTorch; var unbiased, * m / (m - 1)).
        Eval mode normalises with the running estimates.
    Backward: ``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)``, ``dxhat = gamma * dy``; eval: ``dx = invstd *
        dxhat``. Training also differentiates mean and var, which takes out dxhat's mean and its part along
        xhat: ``dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``, one of three closed
        forms. The fast kernel (``batchnorm_views.backward``) writes ``a * dy - a / m * (dbeta + xhat * dgamma)``,
        ``a = gamma * invstd``: equal, as ``sum(dxhat) = gamma * dbeta``, ``sum(dxhat * xhat) = gamma * dgamma``.
        The loop (``loops.batchnorm_train_forward_backward``) keeps the chain rule's dvar, dmean: equal, as
        its ``dmean = -invstd * sum(dxhat)``, ``dvar * 2 (x - mean) = -invstd * xhat * sum(dxhat * xhat)``.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> bn = sc.BatchNorm2D(8); y = bn(np.random.rand(4, 8, 5, 5))
        >>> y.shape, y.dtype, bn.backward(np.ones_like(y)).shape    # backward fills weight.grad, bias.grad
        ((4, 8, 5, 5), dtype('float32'), (4, 8, 5, 5))

    See also: the loops :func:`scratchcnn.nn.loops.batchnorm_train_forward_backward` and
        ``batchnorm_eval_forward_backward``; the fast kernel :mod:`scratchcnn.kernels.batchnorm_views`; BatchNorm1D.
    """
    _axes = (0, 2, 3)
    _ndim = 4


class BatchNorm1D(_BatchNorm):
    """``BatchNorm1D(num_features, eps=1e-5, momentum=0.1, affine=True)``, PyTorch's BatchNorm1d.

    Shape: x: (N, C) float32 -> y: (N, C) float32, C = num_features (float64 after ``.to``).
    Forward: as :class:`BatchNorm2D`, each feature's statistics over the batch (m = N).
    Backward: as BatchNorm2D (its three equal closed forms), the sums over the batch axis.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.BatchNorm1D(3)(np.arange(6.0).reshape(2, 3)).round(3).tolist()
        [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]

    See also: the loop :func:`scratchcnn.nn.loops.batchnorm_train_forward_backward` (2-D input too); the
        fast kernel :mod:`scratchcnn.kernels.batchnorm_views` (rows layout).
    """
    _axes = (0,)
    _ndim = 2
