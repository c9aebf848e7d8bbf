"""One input channel (the first layer on gray images): the fast kernel of
:class:`scratchcnn.nn.Conv2D` when ``in_channels == 1``, NCHW throughout.

It equals Conv2D's textbook method (im2col, one product ``y = cols @ W^T``; backward
``dW = dy^T cols``, ``db = sum dy``, ``dcols = dy W``, col2im) with the product turned
around: with a single input channel there is nothing to gain from channels-last, so the
receptive fields are gathered as ``colsT: (N, kh*kw, OH*OW)`` (one copy from a strided
view of the padded images, each row a contiguous (OH, OW) image) and ``W2: (C_out, kh*kw)``
times ``colsT[n]`` is directly image n's NCHW output ``(C_out, OH*OW)``: one batched product.
The bias rides along as one more column of ``W2`` times a row of ones under ``colsT[n]``
(``K = kh*kw + 1`` rows), so no separate pass adds it, and backward gets its gradient from
the same product as the weight's. Contract: :mod:`.conv_kernel`.

A ReLU right after the layer can be applied here, on each piece while it is still in cache,
instead of in a separate pass over the whole output: set ``kernel.fuse_relu_once = True``
before the next ``forward`` (which returns ``max(y, 0)`` and clears the flag: a one-shot
request; :class:`scratchcnn.nn.Sequential`'s fast path makes it, see its ``run_plan``). Backward
then takes that ReLU's derivative too (``relu_mask_once``: ``dy * (y > 0)``, piece by piece).
"""
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv_kernel import ConvKernel
from .workspace import shared_workspace


def im2col_one_channel(xp, kernel_size, stride, out_size, out):
    """``xp: (N, Hp, Wp)`` -> ``out: (N, kh*kw, OH*OW)``, row ``(di, dj)`` of image n holding
    ``xp[n, i*sh + di, j*sw + dj]`` at column ``(i, j)``. ``out`` may be a slice of a larger
    buffer (rows strided): splitting its axes below is always a view. One copy from a read-only
    strided view of xp with axes ``(n, di, dj, i, j)`` (windows overlap: it repeats elements)."""
    n = xp.shape[0]
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = out_size
    s0, s1, s2 = xp.strides
    windows = as_strided(xp, (n, kh, kw, oh, ow), (s0, s1, s2, sh * s1, sw * s2), writeable=False)
    out.reshape(n, kh, kw, oh, ow)[...] = windows
    return out


def col2im_one_channel(dcols, kernel_size, stride, out_size, out):
    """Adjoint of :func:`im2col_one_channel`: ``dcols: (N, kh*kw, OH*OW)`` added back onto
    ``out: (N, Hp, Wp)`` (overwritten), one strided slice-add per kernel offset."""
    n = out.shape[0]
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = out_size
    d5 = dcols.reshape(n, kh, kw, oh, ow)
    out[...] = 0
    for di in range(kh):
        for dj in range(kw):
            out[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw] += d5[:, di, dj]
    return out


def _weight_grad(g, cols):
    """``sum_n g[n] @ cols[n]^T``: g (N, C_out, P), cols (N, K, P) -> (C_out, K). For large kernels
    (K > 25) as the transpose of ``sum_n cols[n] @ g[n]^T``, the same sums in the BLAS shape measured
    1.2x faster for 7x7 (K = 50); for 3x3 (K = 10) the direct product was as fast or faster."""
    if cols.shape[1] > 25:
        return np.matmul(cols, g.transpose(0, 2, 1)).sum(axis=0).T
    return np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)


class OneChannelSaved(NamedTuple):
    """What :meth:`OneChannelConv.forward` keeps for backward."""
    cols: np.ndarray            # (N, K, OH*OW): colsT of every image (+ the row of ones)
    padded_shape: tuple         # (N, Hp, Wp)
    out_size: tuple             # (OH, OW)
    has_bias: bool


class OneChannelConv(ConvKernel):
    """``y[n] = [W2 | b] @ [colsT[n]; 1]``, a batched product per piece of the batch."""

    #: one-shot request: the next forward also applies ReLU to its output, piece by piece
    fuse_relu_once = False
    #: one-shot request: the next backward first multiplies grad_y by ``relu_mask_once > 0`` (the output
    #: of the ReLU fused into forward: the ReLU's derivative), piece by piece while in cache
    relu_mask_once = None

    def forward(self, x, weight, bias, keep_for_backward):
        """x: (N, 1, H, W) -> y: (N, C_out, OH, OW), C-contiguous NCHW (``max(y, 0)`` when
        ``fuse_relu_once`` was set; the flag is cleared)."""
        relu, self.fuse_relu_once = self.fuse_relu_once, False
        n, _, h, w = x.shape
        t, b, l, r = self.pads
        kh, kw = self.kernel_size
        o = self.out_channels
        oh, ow = self.out_size(h, w)
        padded = (h + t + b, w + l + r)
        k = kh * kw + (bias is not None)                   # rows of colsT: offsets (+ ones)
        w2 = weight.reshape(o, kh * kw)
        if bias is not None:
            w2 = np.concatenate([w2, bias[:, None]], axis=1)     # (C_out, kh*kw + 1)
        chunk = self.images_per_piece(n, oh * ow * k)
        y = np.empty((n, o, oh * ow), dtype=x.dtype)
        if keep_for_backward:
            all_cols = self.workspace.get("cols1", (n, k, oh * ow), x.dtype)
        for s in range(0, n, chunk):
            xs = x[s:s + chunk, 0]
            m = xs.shape[0]
            if t or b or l or r:
                xp = self.workspace.get("xp1", (chunk,) + padded, x.dtype, zero=True)[:m]
                xp[:, t:t + h, l:l + w] = xs      # the border stays zero
            else:
                xp = xs
            if keep_for_backward:
                cols = all_cols[s:s + m]
            else:
                cols = shared_workspace.flat("cols", (m, k, oh * ow), x.dtype)
            im2col_one_channel(xp, self.kernel_size, self.stride, (oh, ow), cols[:, :kh * kw])
            if bias is not None:
                cols[:, kh * kw] = 1
            ys = np.matmul(w2, cols, out=y[s:s + m])
            if relu:
                np.maximum(ys, 0, out=ys)                  # the ReLU, while the piece is in cache
        saved = None
        if keep_for_backward:
            saved = OneChannelSaved(all_cols, (n,) + padded, (oh, ow), bias is not None)
        return y.reshape(n, o, oh, ow), saved

    def backward(self, saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
        """``[dW | db] = sum_n g[n] @ colsT[n]^T`` (a batched product, then a sum over the
        batch: the row of ones under ``colsT`` makes its last column the sums of g over
        (N, OH, OW), the bias gradient; see :func:`_weight_grad`), and, when needed,
        ``dcolsT[n] = W2^T @ g[n]`` added back onto the pixels by col2im."""
        relu_y, self.relu_mask_once = self.relu_mask_once, None
        cols, padded_shape, (oh, ow), has_bias = saved
        n = padded_shape[0]
        o = self.out_channels
        kk = self.kernel_size[0] * self.kernel_size[1]
        g = grad_y.reshape(n, o, oh * ow)
        if relu_y is not None and need_input_grad:         # dx needs the whole masked gradient
            g, relu_y = np.multiply(g, relu_y.reshape(g.shape) > 0, dtype=g.dtype), None
        grad_w = grad_b = None
        if need_weight_grad:
            if relu_y is None:
                dwb = _weight_grad(g, cols)                  # (C_out, K)
            else:                                           # dy * (y > 0), a piece at a time
                y, dwb = relu_y.reshape(g.shape), 0
                chunk = self.images_per_piece(n, 2 * o * oh * ow)
                for s in range(0, n, chunk):
                    m = min(chunk, n - s)
                    gm = np.multiply(g[s:s + m], y[s:s + m] > 0,
                                     out=shared_workspace.flat("relu_dy", (m, o, oh * ow), g.dtype))
                    dwb = dwb + _weight_grad(gm, cols[s:s + m])
            grad_w = dwb[:, :kk].reshape(weight.shape)
            if has_bias:
                grad_b = dwb[:, kk]
        if not need_input_grad:
            return None, grad_w, grad_b
        dcols = np.matmul(weight.reshape(o, -1).T, g)                     # (N, kh*kw, OH*OW)
        dxp = col2im_one_channel(dcols, self.kernel_size, self.stride, (oh, ow),
                                 np.empty(padded_shape, dtype=dcols.dtype))
        t, b, l, r = self.pads
        return dxp[:, None, t:padded_shape[1] - b, l:padded_shape[2] - r], grad_w, grad_b
