"""Channels-last (NHWC) im2col, col2im and weight layouts: the helpers of
:class:`scratchcnn.kernels.conv_channels_last.ChannelsLastConv` (and of the Winograd kernel).

The textbook path (:mod:`scratchcnn.kernels.im2col`) works on NCHW arrays; its
im2col rows are ordered ``(c, di, dj)`` and its output must be transposed back to
NCHW. Here the input is ``xh: (N, H, W, C)``, and a receptive field laid out as a row
is ``(di, dj, c)``: each of its ``kh*kw`` pieces is a contiguous run of ``C`` values,
so building the column matrix is a fast block copy, and the product
``cols @ W^T: (N*OH*OW, C_out)`` *is* the NHWC output, with no transpose at all.

Layers hand NCHW-shaped *views* of NHWC memory to each other
(``y.transpose(0, 3, 1, 2)``); element-wise layers (ReLU) keep that memory order, so
a stack of convolutions never pays for a layout change.

Shapes: ``xp: (N, Hp, Wp, C)`` padded input, ``cols: (N*OH*OW, kh*kw*C)``,
``w_rows: (C_out, kh*kw*C)`` (the weight ``(C_out, C, kh, kw)`` reordered to
``(C_out, kh, kw, C)`` and flattened).
"""
import numpy as np


def weight_rows(weight):
    """``(C_out, C, kh, kw) -> (C_out, kh*kw*C)``: rows matching :func:`im2col_nhwc`'s columns."""
    o = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(o, -1)


def weight_from_rows(rows, weight_shape):
    """Inverse of :func:`weight_rows`: ``(C_out, kh*kw*C) -> (C_out, C, kh, kw)`` (a view)."""
    o, c, kh, kw = weight_shape
    return rows.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)


def pad_nhwc(xh, pads, out):
    """Copy ``xh: (N, H, W, C)`` into the interior of ``out: (N, H+t+b, W+l+r, C)``.

    ``out``'s border must already be zero (a workspace buffer allocated zeroed keeps
    its zero border, since only the interior is ever written)."""
    t, _, l, _ = pads
    h, w = xh.shape[1:3]
    out[:, t:t + h, l:l + w, :] = xh
    return out


def im2col_nhwc(xp, kernel_size, stride, out_size, out):
    """Receptive fields of ``xp: (N, Hp, Wp, C)`` as rows of ``out: (N*OH*OW, kh*kw*C)``.

    Row ``(n, i, j)``, column ``(di, dj, c)`` holds ``xp[n, i*sh + di, j*sw + dj, c]``.
    One block copy per kernel offset ``(di, dj)``: ``kh*kw`` copies, no loop over pixels."""
    n, _, _, c = xp.shape
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = out_size
    cols6 = out.reshape(n, oh, ow, kh, kw, c)
    for di in range(kh):
        for dj in range(kw):
            cols6[:, :, :, di, dj, :] = xp[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw, :]
    return out


def col2im_nhwc(dcols, kernel_size, stride, out_size, out):
    """Adjoint of :func:`im2col_nhwc`: add every row of ``dcols: (N*OH*OW, kh*kw*C)`` back
    onto the pixels it was read from, in ``out: (N, Hp, Wp, C)`` (overwritten).

    One strided slice-add per kernel offset (never ``np.add.at``)."""
    n, _, _, c = out.shape
    kh, kw = kernel_size
    sh, sw = stride
    oh, ow = out_size
    d6 = dcols.reshape(n, oh, ow, kh, kw, c)
    out[...] = 0
    for di in range(kh):
        for dj in range(kw):
            out[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw, :] += d6[:, :, :, di, dj, :]
    return out


def flipped_weight_rows(weight):
    """``(C_out, C, kh, kw) -> (kh*kw*C_out, C)``: row ``(ei, ej, o)`` holds
    ``w[o, :, kh-1-ei, kw-1-ej]``, the kernel of the full convolution below."""
    o, c, kh, kw = weight.shape
    wf = weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)            # (kh, kw, C_out, C)
    return np.ascontiguousarray(wf).reshape(kh * kw * o, c)


def conv_input_grad_nhwc(g, wf_rows, in_hw, pads, gpad, cols, out=None):
    """Input gradient of a stride-1 convolution as a *full* convolution (no col2im scatter).

    ``dx[n, i, j] = sum_{ei, ej, o} gpad[n, i + ei, j + ej, o] * w[o, :, kh-1-ei, kw-1-ej]``
    where ``gpad`` is ``g: (N, OH, OW, C_out)`` placed at offset ``(kh-1-top, kw-1-left)`` in
    zeros of shape ``(N, H+kh-1, W+kw-1, C_out)`` (``gpad``: a buffer with zero border, as
    left by previous calls). That is an ordinary "valid" convolution of ``gpad`` with the
    flipped kernel, so it is one :func:`im2col_nhwc` into ``cols: (N*H*W, kh*kw*C_out)`` and
    one matrix product with ``wf_rows: (kh*kw*C_out, C)`` (:func:`flipped_weight_rows`).
    Returns dx: (N, H, W, C), written into ``out: (N*H*W, C)`` when given, else a fresh array.
    """
    n, oh, ow, o = g.shape
    h, w = in_hw
    kh = gpad.shape[1] - h + 1
    kw = gpad.shape[2] - w + 1
    top, _, left, _ = pads
    oi, oj = kh - 1 - top, kw - 1 - left
    gpad[:, oi:oi + oh, oj:oj + ow, :] = g
    im2col_nhwc(gpad, (kh, kw), (1, 1), (h, w), cols)
    return np.matmul(cols, wf_rows, out=out).reshape(n, h, w, wf_rows.shape[1])
