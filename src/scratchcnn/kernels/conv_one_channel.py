"""One input channel (the first layer on gray images): the fast kernel of
:class:`scratchcnn.nn.Conv2D` when ``in_channels == 1``, NCHW throughout.

It equals Conv2D's textbook method (im2col, one product ``y = cols @ W^T``; backward
``dW = dy^T cols``, ``db = sum dy``, ``dcols = dy W``, col2im) with the product turned
around: with a single input channel there is nothing to gain from channels-last, so the
receptive fields are gathered as ``colsT: (N, kh*kw, OH*OW)`` (one block copy per kernel
offset, each a contiguous (OH, OW) image when the stride is 1) and ``W2: (C_out, kh*kw)``
times ``colsT[n]`` is directly image n's NCHW output ``(C_out, OH*OW)``: one batched product.
The bias rides along as one more column of ``W2`` times a row of ones under ``colsT[n]``
(``K = kh*kw + 1`` rows), so no separate pass adds it, and backward gets its gradient from
the same product as the weight's. Contract: :mod:`.conv_kernel`.
"""
from typing import NamedTuple

import numpy as np

from .conv_kernel import ConvKernel
from .workspace import shared_workspace


def im2col_one_channel(xp, kernel_size, stride, out_size, out):
    """``xp: (N, Hp, Wp)`` -> ``out: (N, kh*kw, OH*OW)``, row ``(di, dj)`` of image n holding
    ``xp[n, i*sh + di, j*sw + dj]`` at column ``(i, j)``. ``out`` may be a slice of a larger
    buffer (rows strided): splitting its axes below is always a view."""
    n = xp.shape[0]
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = out_size
    o5 = out.reshape(n, kh, kw, oh, ow)
    for di in range(kh):
        for dj in range(kw):
            o5[:, di, dj] = xp[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw]
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


class OneChannelSaved(NamedTuple):
    """What :meth:`OneChannelConv.forward` keeps for backward."""
    cols: np.ndarray            # (N, K, OH*OW): colsT of every image (+ the row of ones)
    padded_shape: tuple         # (N, Hp, Wp)
    out_size: tuple             # (OH, OW)
    has_bias: bool


class OneChannelConv(ConvKernel):
    """``y[n] = [W2 | b] @ [colsT[n]; 1]``, a batched product per piece of the batch."""

    def forward(self, x, weight, bias, keep_for_backward):
        """x: (N, 1, H, W) -> y: (N, C_out, OH, OW), C-contiguous NCHW."""
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
            np.matmul(w2, cols, out=y[s:s + m])
        saved = None
        if keep_for_backward:
            saved = OneChannelSaved(all_cols, (n,) + padded, (oh, ow), bias is not None)
        return y.reshape(n, o, oh, ow), saved

    def backward(self, saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
        """``[dW | db] = sum_n g[n] @ colsT[n]^T`` (a batched product, then a sum over the
        batch: the row of ones under ``colsT`` makes its last column the sums of g over
        (N, OH, OW), the bias gradient), and, when needed, ``dcolsT[n] = W2^T @ g[n]`` added
        back onto the pixels by col2im."""
        cols, padded_shape, (oh, ow), has_bias = saved
        n = padded_shape[0]
        o = self.out_channels
        kk = self.kernel_size[0] * self.kernel_size[1]
        g = grad_y.reshape(n, o, oh * ow)
        grad_w = grad_b = None
        if need_weight_grad:
            dwb = np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)       # (C_out, K)
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
