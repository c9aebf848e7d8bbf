"""Depthwise convolution (``groups == in_channels``): the fast kernel of :class:`scratchcnn.nn.Conv2D`
for depthwise layers, any kernel size, stride, padding and dilation, channels-last.

With one input channel per group, im2col's product ``y_g = cols_g @ W_g^T`` has only ``kh*kw``
terms per output, so the matrix product gains nothing and the columns cost ``kh*kw`` copies of
the input. Here the sum is taken directly: for each kernel offset ``(di, dj)`` the strided,
dilated view ``xp[:, i*sh + di*dh, j*sw + dj*dw, :]`` of the padded NHWC input, ``(N, OH, OW, C)``,
is multiplied by the per-channel weights ``w[:, 0, di, dj]`` (broadcast along the contiguous
channel axis) and added to the output. With a channel multiplier ``M = C_out / C_in`` output
channel ``o = c*M + m`` takes input channel ``c``: the padded input is repeated M times along the
channel axis once, so every pass stays one contiguous broadcast (backward sums the M copies). The batch is processed in pieces whose output
stays in the processor's cache across the ``kh*kw`` passes. Backward, per offset:
``dw[c, di, dj] = sum_{n,i,j} dy[n, i, j, c] * xp[n, i*sh + di*dh, j*sw + dj*dw, c]`` (an einsum),
``db = sum dy`` and ``dxp[n, i*sh + di*dh, j*sw + dj*dw, c] += dy[n, i, j, c] * w[c, di, dj]``
(one strided slice-add per offset). The output is NHWC memory as an NCHW-shaped view, as
:mod:`.conv_channels_last` returns. Contract: :mod:`.conv_kernel`.

Measured roughly (one BLAS thread, float32, 64 images, a 2-core Xeon shared with other jobs):
against the textbook path's im2col and batched product, ``Conv2D(32, 32, 3, padding=1, groups=32)``
on 28x28 trains (forward + backward) 3.3-5.6x and infers 3.5-5x faster,
``Conv2D(128, 128, 3, padding=2, dilation=2, groups=128)`` on 14x14 7x and 5-6x; the least gain,
``Conv2D(16, 32, 5, stride=2, padding=2, groups=16)`` (a multiplier of 2, strided reads) on 32x32,
1.1-2x and 1.4-1.8x. (An NCHW variant of the forward pass, measured too, was no faster.)
"""
from typing import NamedTuple

import numpy as np

from .conv_grouped import DilatedGroupedKernel
from .workspace import shared_workspace


class DepthwiseSaved(NamedTuple):
    """What :meth:`DepthwiseConv.forward` keeps for backward."""
    xp: np.ndarray              # (N, Hp, Wp, C_out): the zero-padded NHWC input, each channel M times
    out_size: tuple             # (OH, OW)
    has_bias: bool


class DepthwiseConv(DilatedGroupedKernel):
    """``y[n, i, j, o] = b[o] + sum_{di, dj} xp[n, i*sh + di*dh, j*sw + dj*dw, o // M] * w[o, 0, di, dj]``,
    one broadcast multiply-add per kernel offset, per piece of the batch."""

    #: Output entries per piece: the piece's output, its temporary and the input it reads (up to
    #: ``sh*sw`` times as many entries) stay in the cache across the ``kh*kw`` passes.
    max_piece_elements = 1 << 17
    #: one-shot request: the next forward also applies ReLU to its output, piece by piece
    fuse_relu_once = False

    def taps(self, weight):
        """``(C_out, 1, kh, kw) -> (kh, kw, C_out)``: the weights of kernel offset ``(di, dj)`` as one
        contiguous vector over the output channels."""
        return np.ascontiguousarray(weight[:, 0].transpose(1, 2, 0))

    def window(self, xp, i, j, out_size):
        """The view ``xp[:, a*sh + i*dh, b*sw + j*dw, :]`` over output pixels ``(a, b)``: (m, OH, OW, C)."""
        (sh, sw), (dh, dw), (oh, ow) = self.stride, self.dilation, out_size
        return xp[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]

    def padded_input(self, x, name, images=None, copy=True):
        """The zero-padded NHWC input with each channel repeated M times (``(N, Hp, Wp, C_out)``),
        so that output channel o reads column o: the channel axis stays contiguous."""
        xp = self.padded_nhwc(x, name, images, copy)
        mult = self.out_channels // self.in_channels
        return xp if mult == 1 else np.repeat(xp, mult, axis=3)

    def forward(self, x, weight, bias, keep_for_backward):
        """x: (N, C_in, H, W), any memory order -> y: (N, C_out, OH, OW), an NCHW view of NHWC memory
        (``max(y, 0)`` when ``fuse_relu_once`` was set; the flag is cleared)."""
        relu, self.fuse_relu_once = self.fuse_relu_once, False
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        o = self.out_channels
        oh, ow = self.out_size(h, w)
        taps = self.taps(weight)
        chunk = self.images_per_piece(n, oh * ow * o)
        y = np.empty((n, oh, ow, o), dtype=x.dtype)
        if keep_for_backward:
            xp_all = self.padded_input(x, "xp")                    # the whole batch, kept for backward
        for s in range(0, n, chunk):
            xp = xp_all[s:s + chunk] if keep_for_backward else self.padded_input(x[s:s + chunk], "xp1", chunk, False)
            ys = y[s:s + len(xp)]
            tmp = shared_workspace.flat("depthwise", ys.shape, x.dtype)
            for i in range(kh):
                for j in range(kw):
                    if i == 0 and j == 0:
                        np.multiply(self.window(xp, i, j, (oh, ow)), taps[i, j], out=ys)
                    else:
                        ys += np.multiply(self.window(xp, i, j, (oh, ow)), taps[i, j], out=tmp)
            if bias is not None:
                ys += bias                                         # while the piece is in cache
            if relu:
                np.maximum(ys, 0, out=ys)
        saved = DepthwiseSaved(xp_all, (oh, ow), bias is not None) if keep_for_backward else None
        return y.transpose(0, 3, 1, 2), saved

    def backward(self, saved, grad_y, weight, need_input_grad=True, need_weight_grad=True):
        """grad_y: (N, C_out, OH, OW) (free when it is NHWC memory), per piece of the batch and
        kernel offset: ``dw`` by an einsum over (images, OH, OW), ``dx`` by a slice-add (then, with
        a multiplier M, the M copies of each input channel summed)."""
        xp, (oh, ow), has_bias = saved
        n, hp, wp, o = xp.shape
        kh, kw = self.kernel_size
        gh = np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))         # (N, OH, OW, C_out)
        taps = self.taps(weight)
        grad_w = grad_b = None
        if need_weight_grad:
            dtaps = np.zeros(taps.shape, dtype=gh.dtype)
            if has_bias:
                grad_b = np.ones(n * oh * ow, dtype=gh.dtype) @ gh.reshape(-1, o)   # column sums, by BLAS
        if need_input_grad:
            dxp = np.zeros(xp.shape, dtype=gh.dtype)
        chunk = self.images_per_piece(n, oh * ow * o)
        for s in range(0, n, chunk):
            g = gh[s:s + chunk]
            tmp = shared_workspace.flat("depthwise", g.shape, gh.dtype)
            for i in range(kh):
                for j in range(kw):
                    if need_weight_grad:
                        dtaps[i, j] += np.einsum("nhwc,nhwc->c", g, self.window(xp[s:s + chunk], i, j, (oh, ow)))
                    if need_input_grad:
                        dv = self.window(dxp[s:s + chunk], i, j, (oh, ow))
                        dv += np.multiply(g, taps[i, j], out=tmp)
        if need_weight_grad:
            grad_w = dtaps.transpose(2, 0, 1)[:, None]                  # (C_out, 1, kh, kw)
        if not need_input_grad:
            return None, grad_w, grad_b
        mult = o // self.in_channels
        if mult > 1:                                    # input channel c: the sum of its M copies
            d5 = dxp.reshape(n, hp, wp, self.in_channels, mult)
            dxp = d5[..., 0].copy()
            for k in range(1, mult):
                dxp += d5[..., k]
        t, b, l, r = self.pads
        return dxp[:, t:hp - b, l:wp - r, :].transpose(0, 3, 1, 2), grad_w, grad_b
