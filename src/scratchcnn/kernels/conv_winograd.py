"""Winograd F(2x2, 3x3): the fast kernel of :class:`scratchcnn.nn.Conv2D` for 3x3 stride-1
layers with enough channels (``Conv2D.uses_winograd()``).

It equals Conv2D's textbook method (im2col, one product, col2im) up to rounding, computing
the same convolution with 16/36 of the multiplications (the algorithm and its backward are
in :mod:`scratchcnn.kernels.winograd`), channels-last, in pieces of the batch: each piece is
padded into a zero-bordered ``(2*TH+2, 2*TW+2)`` buffer and convolved by
:func:`~scratchcnn.kernels.winograd.winograd_conv_piece`; with gradients each piece's
transformed input ``V`` (16/36 of im2col's columns) is kept for backward. Backward: the
weight gradient from the kept ``V`` and the tiled output gradient (``dU[k] = V[k]^T dM[k]``),
the input gradient as a Winograd "full" convolution of the output gradient, padded by
``2 - pad``, with the flipped, transposed kernel. Contract: :mod:`.conv_kernel`.
A following ReLU can be applied per piece in cache (``fuse_relu_once``, as in
:mod:`.conv_one_channel`).
"""
import math
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError
from .conv_kernel import ConvKernel
from .conv_nhwc import pad_nhwc
from .winograd import (flipped_transposed_weight, tiles, winograd_conv_piece, winograd_weight,
                       winograd_weight_grad, winograd_weight_grad_piece)
from .workspace import shared_workspace


def _piece_of_v(v_all, start, m, tiles_per_image, c):
    """The transformed input ``V: (16, m*tiles, C)`` of images ``start .. start+m`` inside the flat
    buffer that keeps every piece's ``V`` side by side for backward."""
    size = 16 * tiles_per_image * c
    return v_all[start * size:(start + m) * size].reshape(16, m * tiles_per_image, c)


class WinogradSaved(NamedTuple):
    """What :meth:`WinogradConv.forward` keeps for backward."""
    v: np.ndarray               # (16 * N * TH*TW * C_in,): every piece's V side by side
    piece: int                  # images per piece of the forward pass
    in_size: tuple              # (H, W)
    out_size: tuple             # (OH, OW)
    nchw_input: bool            # the input was C-contiguous NCHW (dx is returned so too)
    has_bias: bool


class WinogradConv(ConvKernel):
    """3x3, stride 1, padding <= 2: ``M[k] = V[k] @ U[k]`` for the 16 Winograd positions."""

    #: one-shot request: the next forward also applies ReLU to its output, piece by piece
    fuse_relu_once = False

    def __init__(self, kernel_size, stride, pads, in_channels, out_channels):
        super().__init__(kernel_size, stride, pads, in_channels, out_channels)
        if self.kernel_size != (3, 3) or self.stride != (1, 1) or max(self.pads) > 2:
            raise ConfigError(f"WinogradConv computes 3x3, stride-1 convolutions padded by at most 2, "
                              f"not kernel {self.kernel_size}, stride {self.stride}, pads {self.pads}")

    def forward(self, x, weight, bias, keep_for_backward):
        """x: (N, C, H, W), any memory order -> y: (N, C_out, OH, OW), an NCHW view of NHWC memory
        (``max(y, 0)`` when ``fuse_relu_once`` was set; the flag is cleared)."""
        relu, self.fuse_relu_once = self.fuse_relu_once, False
        n, c, h, w = x.shape
        t, b, l, r = self.pads
        o = self.out_channels
        oh, ow = h + t + b - 2, w + l + r - 2
        th, tw = tiles((oh, ow))
        tt = th * tw
        u = winograd_weight(weight)
        chunk = self.images_per_piece(n, 16 * tt * c)
        xh = x.transpose(0, 2, 3, 1)
        xp = self.workspace.get("xpw", (chunk, 2 * th + 2, 2 * tw + 2, c), x.dtype, zero=True)
        y = np.empty((n, oh, ow, o), dtype=x.dtype)
        if keep_for_backward:
            v_all = self.workspace.get("v", (16 * n * tt * c,), x.dtype)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            pad_nhwc(xh[s:s + m], self.pads, xp[:m])       # the border stays zero
            v_out = _piece_of_v(v_all, s, m, tt, c) if keep_for_backward else None
            winograd_conv_piece(xp[:m], u, y[s:s + m], shared_workspace, v_out=v_out, bias=bias)
            if relu:
                np.maximum(y[s:s + m], 0, out=y[s:s + m])       # contiguous, still in cache
        saved = None
        if keep_for_backward:
            saved = WinogradSaved(v_all, chunk, (h, w), (oh, ow), x.flags.c_contiguous, bias is not None)
        return y.transpose(0, 3, 1, 2), saved

    def backward(self, saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
        """grad_y: (N, C_out, OH, OW) -> dx in the input's memory order, dW, db; piece by piece."""
        v_all, chunk, (h, w), (oh, ow), nchw_input, has_bias = saved
        o, c = self.out_channels, self.in_channels
        g = grad_y.transpose(0, 2, 3, 1)                   # (N, OH, OW, C_out) view
        n = g.shape[0]
        tt = math.prod(tiles((oh, ow)))
        grad_w = grad_b = None
        if need_weight_grad:
            if has_bias:
                g2 = g.reshape(-1, o)                      # a view when g is NHWC memory
                grad_b = np.ones(len(g2), dtype=g.dtype) @ g2              # column sums, by BLAS
            du = np.zeros((16, c, o), dtype=g.dtype)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                du += winograd_weight_grad_piece(_piece_of_v(v_all, s, m, tt, c), g[s:s + m], shared_workspace)
            grad_w = winograd_weight_grad(du, weight.shape)
        if not need_input_grad:
            return None, grad_w, grad_b
        t, _, l, _ = self.pads
        th, tw = tiles((h, w))
        u_in = winograd_weight(flipped_transposed_weight(weight))        # (16, C_out, C)
        chunk_in = self.images_per_piece(n, 16 * th * tw * o)
        gp = self.workspace.get("gpw", (chunk_in, 2 * th + 2, 2 * tw + 2, o), g.dtype, zero=True)
        # dx in the memory order the input had (NCHW after a one-channel convolution, say), so
        # that the layer below multiplies arrays of one memory order
        dx = np.empty((n, c, h, w) if nchw_input else (n, h, w, c), dtype=g.dtype)
        dx_nhwc = dx.transpose(0, 2, 3, 1) if nchw_input else dx
        for s in range(0, n, chunk_in):
            m = min(chunk_in, n - s)
            gp[:m, 2 - t:2 - t + oh, 2 - l:2 - l + ow] = g[s:s + m]      # the border stays zero
            winograd_conv_piece(gp[:m], u_in, dx_nhwc[s:s + m], shared_workspace)
        return (dx if nchw_input else dx.transpose(0, 3, 1, 2)), grad_w, grad_b
