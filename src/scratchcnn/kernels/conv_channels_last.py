"""Channels-last im2col: the fast kernel of :class:`scratchcnn.nn.Conv2D` for most layers.

It equals Conv2D's textbook method -- im2col, one matrix product ``y = cols @ W^T``, and
backward ``dW = dy^T cols``, ``db = sum dy``, ``dcols = dy W`` added back by col2im -- on
channels-last memory (helpers in :mod:`scratchcnn.kernels.conv_nhwc`): a receptive field's
row is ``(di, dj, c)``, so im2col is ``kh*kw`` block copies into a reused buffer, and
``cols @ W^T: (N*OH*OW, C_out)`` *is* the NHWC output, returned as an NCHW-shaped view (no
transpose copy). For stride 1 the input gradient is a full convolution of the output
gradient with the flipped kernel (no col2im scatter). Contract: :mod:`.conv_kernel`.
A following ReLU can be applied per piece in cache (``fuse_relu_once``, as in
:mod:`.conv_one_channel`).
"""
from typing import NamedTuple

import numpy as np

from .conv_kernel import ConvKernel
from .conv_nhwc import (col2im_nhwc, conv_input_grad_nhwc, flipped_weight_rows, im2col_nhwc, pad_nhwc,
                        weight_from_rows, weight_rows)
from .workspace import shared_workspace


class ChannelsLastSaved(NamedTuple):
    """What :meth:`ChannelsLastConv.forward` keeps for backward."""
    cols: np.ndarray            # (N*OH*OW, kh*kw*C_in), every piece's columns side by side
    padded_shape: tuple         # (N, Hp, Wp, C_in)
    out_size: tuple             # (OH, OW)
    w_rows: np.ndarray          # (C_out, kh*kw*C_in), the weight in the columns' order
    has_bias: bool


class ChannelsLastConv(ConvKernel):
    """NHWC im2col + one product per piece of the batch (any kernel size, stride, padding)."""

    #: one-shot request: the next forward also applies ReLU to its output, piece by piece
    fuse_relu_once = False

    def forward(self, x, weight, bias, keep_for_backward):
        """x: (N, C, H, W), any memory order -> y: (N, C_out, OH, OW), an NCHW view of NHWC memory
        (``max(y, 0)`` when ``fuse_relu_once`` was set; the flag is cleared)."""
        relu, self.fuse_relu_once = self.fuse_relu_once, False
        n, c, h, w = x.shape
        t, b, l, r = self.pads
        kh, kw = self.kernel_size
        o = self.out_channels
        oh, ow = self.out_size(h, w)
        padded = (h + t + b, w + l + r)
        xh = x.transpose(0, 2, 3, 1)                      # (N, H, W, C) view
        w_rows = weight_rows(weight)                      # (C_out, kh*kw*C)
        # Pieces of `chunk` images; with gradients every piece's columns are kept for backward.
        chunk = self.images_per_piece(n, oh * ow * kh * kw * c)
        y = np.empty((n * oh * ow, o), dtype=x.dtype)
        if keep_for_backward:
            all_cols = self.workspace.get("cols", (n * oh * ow, kh * kw * c), x.dtype)
        for s in range(0, n, chunk):
            xs = xh[s:s + chunk]
            m = xs.shape[0]
            if t or b or l or r:
                xp = self.workspace.get("xp", (chunk,) + padded + (c,), x.dtype, zero=True)[:m]
                pad_nhwc(xs, self.pads, xp)        # (also turns NCHW memory into NHWC)
            elif not xs.flags.c_contiguous:
                xp = self.workspace.get("xp", (chunk, h, w, c), x.dtype)[:m]
                xp[...] = xs                        # one layout change, then block copies
            else:
                xp = xs
            if keep_for_backward:
                cols = all_cols[s * oh * ow:(s + m) * oh * ow]
            else:
                cols = shared_workspace.flat("cols", (m * oh * ow, kh * kw * c), x.dtype)
            im2col_nhwc(xp, self.kernel_size, self.stride, (oh, ow), cols)
            ys = np.matmul(cols, w_rows.T, out=y[s * oh * ow:(s + m) * oh * ow])
            if bias is not None:
                ys += bias                          # while the piece is in cache
            if relu:
                np.maximum(ys, 0, out=ys)
        saved = None
        if keep_for_backward:
            saved = ChannelsLastSaved(all_cols, (n,) + padded + (c,), (oh, ow), w_rows, bias is not None)
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2), saved

    def backward(self, saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
        """grad_y: (N, C_out, OH, OW) (free when it is NHWC memory, as ReLU passes it back)."""
        cols, padded_shape, (oh, ow), w_rows, has_bias = saved
        n, hp, wp, c = padded_shape
        g = grad_y.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)   # (N*OH*OW, C_out)
        grad_w = grad_b = None
        if need_weight_grad:
            grad_w = weight_from_rows(g.T @ cols, weight.shape)
            if has_bias:
                grad_b = np.ones(len(g), dtype=g.dtype) @ g    # column sums, by BLAS
        if not need_input_grad:
            return None, grad_w, grad_b
        kh, kw = self.kernel_size
        t, b, l, r = self.pads
        if self.stride == (1, 1) and t < kh and l < kw:
            # full convolution of the output gradient with the flipped kernel (no scatter), in
            # pieces of `chunk` images whose columns stay in cache, as in the forward pass
            o = self.out_channels
            h, w = hp - t - b, wp - l - r
            g4 = g.reshape(n, oh, ow, o)
            wf_rows = flipped_weight_rows(weight)
            chunk = self.images_per_piece(n, h * w * kh * kw * o)
            gpad = self.workspace.get("gpad", (chunk, h + kh - 1, w + kw - 1, o), g.dtype, zero=True)
            dx = np.empty((n * h * w, c), dtype=g.dtype)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                conv_input_grad_nhwc(g4[s:s + m], wf_rows, (h, w), self.pads, gpad[:m],
                                     shared_workspace.flat("dcols", (m * h * w, kh * kw * o), g.dtype),
                                     out=dx[s * h * w:(s + m) * h * w])
            return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), grad_w, grad_b
        dcols = np.matmul(g, w_rows, out=shared_workspace.flat("dcols", cols.shape, cols.dtype))
        dxp = col2im_nhwc(dcols, self.kernel_size, self.stride, (oh, ow),
                          np.empty(padded_shape, dtype=cols.dtype))
        return dxp[:, t:hp - b, l:wp - r, :].transpose(0, 3, 1, 2), grad_w, grad_b
