"""MaxPool2D's fast kernel: max pooling when the windows tile the input (stride == kernel, no padding).

Then window element ``(di, dj)`` of every window is the strided view
``x[:, :, di::kh, dj::kw]`` (cropped to ``OH*kh x OW*kw``, PyTorch's floor rule), and
the maximum is ``kh*kw - 1`` element-wise ``np.maximum`` calls on views -- no window
copy, no ``argmax`` over a reshaped copy. Views keep the input's memory order, so an
NCHW-shaped view of NHWC memory stays NHWC.

The backward pass sends each window's gradient to exactly one element: its *first*
maximum in row-major order (as PyTorch), found from the kept input and output by
equality tests offset by offset (cheaper than recording an arg-max in the forward pass,
which inference would pay for too). The result is the textbook path's
(:meth:`scratchcnn.nn.MaxPool2D.forward`, an ``argmax`` over every window) and the loop's
(:func:`scratchcnn.nn.loops.maxpool2d_forward_backward`).

Contract: the layer kernels' forward / backward pair; pooling has no weights, so backward
returns the input gradient alone (not a 3-tuple with None weight gradients)::

    y, saved = forward(x, kernel_size, keep_for_backward)      # saved: TiledMaxPoolSaved or None
    grad_x = backward(saved, grad_y)
"""
from typing import NamedTuple

import numpy as np


def _offset_view(x, k, kernel_size, out_size):
    """Element ``k = di*kw + dj`` of every window: ``x[:, :, di::kh, dj::kw]`` cropped to (OH, OW)."""
    kh, kw = kernel_size
    oh, ow = out_size
    di, dj = divmod(k, kw)
    return x[:, :, di:di + kh * (oh - 1) + 1:kh, dj:dj + kw * (ow - 1) + 1:kw]


class TiledMaxPoolSaved(NamedTuple):
    """What :func:`backward` needs from :func:`forward`."""
    x: np.ndarray            # the input (N, C, H, W), any memory order
    y: np.ndarray            # the output (N, C, OH, OW), in x's memory order
    kernel_size: tuple       # (kh, kw), also the stride


def forward(x, kernel_size, keep_for_backward):
    """x: (N, C, H, W) -> ``(y, saved)``, y: (N, C, OH, OW) with ``OH = H // kh``, ``OW = W // kw``,
    in the input's memory order; saved None unless ``keep_for_backward``."""
    kh, kw = kernel_size
    out_size = (x.shape[2] // kh, x.shape[3] // kw)
    y = np.array(_offset_view(x, 0, kernel_size, out_size), order="K")
    for k in range(1, kh * kw):
        np.maximum(y, _offset_view(x, k, kernel_size, out_size), out=y)
    return y, (TiledMaxPoolSaved(x, y, tuple(kernel_size)) if keep_for_backward else None)


def backward(saved, grad_y):
    """dx (shape and memory order of ``x``): ``grad_y[n, c, i, j]`` goes to the first element
    of window ``(i, j)`` (row-major) that equals the window's maximum ``y[n, c, i, j]``;
    every other element gets zero. ``taken`` marks windows whose maximum was already found,
    so a tie sends the gradient once, to the earliest offset."""
    x, y, kernel_size = saved
    kh, kw = kernel_size
    oh, ow = y.shape[2:]
    dx = np.empty_like(x)
    h, w = dx.shape[2:]
    if h != oh * kh:
        dx[:, :, oh * kh:, :] = 0                             # rows the floor rule dropped
    if w != ow * kw:
        dx[:, :, :, ow * kw:] = 0
    if grad_y.strides != y.strides:       # same memory order as x and y: faster loops below
        g = np.empty_like(y)
        g[...] = grad_y
        grad_y = g
    taken = None
    for k in range(kh * kw):
        hit = _offset_view(x, k, kernel_size, (oh, ow)) == y
        if taken is None:
            taken = hit
        else:
            hit &= ~taken
            taken |= hit
        np.multiply(grad_y, hit, out=_offset_view(dx, k, kernel_size, (oh, ow)))
    return dx
