"""BatchNorm's fast kernel: the layer's maths on a 2-D or 3-D *view* of x, sums done by BLAS.

:class:`scratchcnn.BatchNorm2D` / ``BatchNorm1D`` compute exactly this in their textbook
path (``x.mean(axis=(0, 2, 3))`` and broadcasting). This kernel gets the same numbers with
fewer passes over memory, by looking at x without copying it as one of two layouts:

* **rows** ``(M, C)``: BatchNorm1D's C-contiguous ``(N, C)``, or a 4-D x whose memory is NHWC
  (what the channels-last convolution kernels hand on), M = N*H*W; per-channel vectors
  broadcast as ``(C,)``;
* **planes** ``(N, C, H*W)``: a C-contiguous (NCHW) 4-D x; vectors broadcast as ``(C, 1)``.

Per-channel sums are matrix-vector products with a vector of ones (BLAS), sums of products
are one ``einsum`` without a temporary, and the element-wise passes are fused (``x - mean``
is normalised in place). Any other x (say a strided slice) goes to the textbook path:
:func:`applies` says which.

Contract: the layer kernels' forward / backward pair (as the convolution kernels'), the
forward returning one more value, ``stats``::

    y, saved, stats = forward(x, weight, bias, keep_for_backward, eps, mean=None, var=None)
    grad_x, grad_weight, grad_bias = backward(saved, grad_y, weight,
                                              need_input_grad=True, need_weight_grad=True)

``saved`` is a :class:`BatchNormSaved` (``None`` when ``keep_for_backward`` is false);
``stats`` is a :class:`BatchStats`, the batch's mean and biased variance the layer folds
into its running estimates (``None`` in eval, where the running ``mean`` and ``var`` are
passed in). ``weight`` and ``bias`` are ``(C,)`` arrays, or ``None`` for
``affine=False``; every array keeps the dtype of x.
"""
from typing import NamedTuple

import numpy as np


class _Rows:
    """x as ``(M, C)`` rows of C values, a view (see the module docstring)."""

    def __init__(self, shape):
        self.shape = shape                 # the shape of x, to give arrays back in it

    @staticmethod
    def view(x):
        """The rows view of x, or None when x's memory is not rows."""
        if x.ndim == 2:
            return x if x.flags.c_contiguous else None
        xh = x.transpose(0, 2, 3, 1)
        return xh.reshape(-1, x.shape[1]) if xh.flags.c_contiguous else None

    def unview(self, a):
        """An array of the layout's shape as an array of x's shape (a view)."""
        if len(self.shape) == 2:
            return a
        n, c, h, w = self.shape
        return a.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    def view_of_grad(self, g):
        """The layout's view of a gradient of x's shape; one copy if its memory order differs."""
        v = self.view(g)
        if v is None:
            g = np.ascontiguousarray(g) if g.ndim == 2 else \
                np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            v = self.view(g)
        return v

    @staticmethod
    def vec(v):
        """A per-channel vector ``(C,)`` shaped to broadcast against the view."""
        return v

    @staticmethod
    def csum(a):
        """Per-channel sums, as a BLAS matrix-vector product."""
        return np.ones(a.shape[0], dtype=a.dtype) @ a

    @staticmethod
    def cdot(a, b):
        """Per-channel sums of ``a * b``, without a temporary."""
        return np.einsum("ij,ij->j", a, b)


class _Planes(_Rows):
    """A C-contiguous 4-D x (NCHW memory) as ``(N, C, H*W)`` planes, a view."""

    @staticmethod
    def view(x):
        return x.reshape(x.shape[0], x.shape[1], -1) if x.ndim == 4 and x.flags.c_contiguous else None

    def unview(self, a):
        return a.reshape(self.shape)

    def view_of_grad(self, g):
        v = self.view(g)
        return self.view(np.ascontiguousarray(g)) if v is None else v

    @staticmethod
    def vec(v):
        return v[:, None]

    @staticmethod
    def csum(a):
        return (a @ np.ones(a.shape[2], dtype=a.dtype)).sum(axis=0)

    @staticmethod
    def cdot(a, b):
        return np.einsum("ncp,ncp->c", a, b)


def _view(x):
    """(layout, its view of x) for the first layout that views x without a copy, or (None, None)."""
    for layout in (_Rows, _Planes):
        v = layout.view(x)
        if v is not None:
            return layout(x.shape), v
    return None, None


class BatchNormSaved(NamedTuple):
    """What :func:`backward` needs from :func:`forward`."""
    layout: _Rows          # how x was viewed (a _Rows or _Planes), and how to give dx x's shape
    xhat: np.ndarray       # the normalised input, in the layout's view
    invstd: np.ndarray     # (C,) ``1 / sqrt(var + eps)``
    training: bool         # True: normalised with the batch's own statistics


class BatchStats(NamedTuple):
    """The batch's per-channel statistics (training mode), for the layer's running estimates."""
    mean: np.ndarray       # (C,)
    var: np.ndarray        # (C,) biased: divided by m, the number of values per channel


def applies(x):
    """True when x is non-empty and one of the layouts views it without a copy."""
    return x.size > 0 and _view(x)[0] is not None


def forward(x, weight, bias, keep_for_backward, eps, mean=None, var=None):
    """``y = weight * (x - mean) * invstd + bias``, ``invstd = 1 / sqrt(var + eps)`` per channel.

    x: (N, C, H, W) or (N, C), one of the layouts (see :func:`applies`). ``mean``, ``var``:
    the statistics to normalise with (eval: the running estimates); ``None``: the batch's
    own, returned as ``stats``. Returns ``(y, saved, stats)``, y a fresh array of x's shape
    and memory order.
    """
    layout, v = _view(x)
    vec = layout.vec
    if mean is None:                                   # training: the batch's statistics
        m = x.size // x.shape[1]
        mean = layout.csum(v) / m
        xhat = v - vec(mean)                           # x - mean, normalised in place below
        var = layout.cdot(xhat, xhat) / m
        stats = BatchStats(mean, var)
    else:
        xhat = v - vec(mean)
        stats = None
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat *= vec(invstd)
    saved = BatchNormSaved(layout, xhat, invstd, stats is not None) if keep_for_backward else None
    if weight is None:
        y = xhat.copy() if keep_for_backward else xhat     # the saved xhat stays private
    else:
        y = xhat * vec(weight)
        y += vec(bias)
    return layout.unview(y), saved, stats


def backward(saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
    """``(dx, dweight, dbias)`` from ``g = dy``, with ``a = weight * invstd`` (``invstd`` if no weight):

    ``dweight = sum(g * xhat)``, ``dbias = sum(g)`` (per channel), and in training

        dx = a * g - a / m * (dbias + xhat * dweight)

    (``a * g`` in eval, where xhat does not depend on the batch); dweight, dbias are the
    layer's dgamma, dbeta. This is one of three closed forms of one derivative: the textbook
    path (``BatchNorm2D.backward``) writes ``invstd / m * (m * dxhat - sum(dxhat) - xhat *
    sum(dxhat * xhat))`` with ``dxhat = weight * g``, and the loop
    (:func:`scratchcnn.nn.loops.batchnorm_train_forward_backward`) keeps the chain rule's dvar
    and dmean. Equal: ``sum(dxhat) = weight * dbias`` and ``sum(dxhat * xhat) = weight * dweight``
    turn the textbook form into the line above; the loop's ``dmean = -invstd * sum(dxhat)``
    and ``dvar * 2 (x - mean) = -invstd * xhat * sum(dxhat * xhat)`` give the textbook form.

    dx has grad_y's shape, in x's memory order (``None`` unless ``need_input_grad``);
    dweight and dbias are ``(C,)`` (``None`` unless ``need_weight_grad`` and there is a weight).
    """
    layout, xhat, invstd, training = saved
    g, vec = layout.view_of_grad(grad_y), layout.vec
    dweight = layout.cdot(g, xhat)
    dbias = layout.csum(g)
    dx = None
    if need_input_grad:
        a = invstd if weight is None else weight * invstd
        dx = g * vec(a)
        if training:
            m = g.size // invstd.size
            dx -= xhat * vec((a * dweight / m).astype(g.dtype))
            dx -= vec((a * dbias / m).astype(g.dtype))
        dx = layout.unview(dx)
    if not need_weight_grad or weight is None:
        return dx, None, None
    return dx, dweight, dbias
