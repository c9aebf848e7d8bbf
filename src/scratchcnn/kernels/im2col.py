"""im2col, col2im and sliding windows: the vectorised heart of convolution and pooling.

A convolution of ``x: (N, C, H, W)`` with ``w: (O, C, kh, kw)`` is one matrix
product once every receptive field is laid out as a row: ``im2col`` builds the
matrix ``cols: (N*OH*OW, C*kh*kw)`` from strided views (no Python loop over
pixels), and ``col2im`` is its adjoint, adding each row back onto the pixels it
came from. col2im loops over the ``kh*kw`` kernel offsets and adds whole strided
slices at once, which is many times faster than ``np.add.at``. A dilated kernel
(``dilation=(dh, dw)``) reads ``xp[n, c, i*sh + di*dh, j*sw + dj*dw]``: the same
windows, ``dh*(kh-1)+1`` rows tall, with only every ``dh``-th row used.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError


def pair(value, name="value"):
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``; checks for positive ints."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (tuple, list)) and any(
            isinstance(v, (bool, np.bool_)) for v in value):
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        a, b = value
        out = (int(a), int(b))
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if out != tuple(value):
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
    return out


def dilated_extent(kernel_size, dilation=(1, 1)):
    """Rows and columns a dilated kernel spans: ``(dh*(kh-1) + 1, dw*(kw-1) + 1)``."""
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))


def normalize_padding(padding, kernel_size, stride, layer="Conv2D", dilation=(1, 1)):
    """Padding as ``(top, bottom, left, right)``.

    ``padding`` is an int, an ``(h, w)`` pair, ``"valid"`` (no padding) or
    ``"same"`` (stride 1 only; as PyTorch, ``dilation*(kernel-1)`` rows in all, an odd
    number putting the extra row and column at the bottom and right).
    """
    kh, kw = dilated_extent(kernel_size, dilation)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            if tuple(stride) != (1, 1):
                raise ConfigError(f"{layer}: padding='same' needs stride 1, got stride {stride}")
            top, left = (kh - 1) // 2, (kw - 1) // 2
            return (top, kh - 1 - top, left, kw - 1 - left)
        raise ConfigError(f"{layer}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, f"{layer} padding")
    if ph < 0 or pw < 0:
        raise ConfigError(f"{layer}: padding must be >= 0, got {padding!r}")
    return (ph, ph, pw, pw)


def conv_output_size(size, kernel, stride, pad_before=0, pad_after=0, dilation=1):
    """PyTorch's floor rule: ``(size + pads - dilation*(kernel-1) - 1) // stride + 1``
    (<= 0 means no output)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pad2d(x, pads, value=0.0):
    """Pad the last two axes of ``x: (N, C, H, W)`` by ``(top, bottom, left, right)``."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def unpad2d(xp, pads):
    """Inverse of :func:`pad2d` (a view)."""
    top, bottom, left, right = pads
    h, w = xp.shape[2], xp.shape[3]
    return xp[:, :, top:h - bottom, left:w - right]


def window_view(xp, kernel_size, stride, dilation=(1, 1)):
    """Read-only view ``(N, C, OH, OW, kh, kw)`` of every window of ``xp: (N, C, Hp, Wp)``:
    entry ``[n, c, i, j, di, dj]`` is ``xp[n, c, i*sh + di*dh, j*sw + dj*dw]``."""
    sh, sw = stride
    dh, dw = dilation
    win = sliding_window_view(xp, dilated_extent(kernel_size, dilation), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def im2col(xp, kernel_size, stride, dilation=(1, 1)):
    """Receptive fields of the padded input ``xp: (N, C, Hp, Wp)`` as rows.

    Returns ``cols: (N*OH*OW, C*kh*kw)`` (row ``(n, i, j)``, column ``(c, di, dj)``
    holding ``xp[n, c, i*sh + di*dh, j*sw + dj*dw]``), and ``(OH, OW)``.
    """
    n, c = xp.shape[:2]
    win = window_view(xp, kernel_size, stride, dilation)
    oh, ow = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kernel_size[0] * kernel_size[1])
    return cols, (oh, ow)


def col2im(dcols, padded_shape, kernel_size, stride, out_size, dilation=(1, 1)):
    """Adjoint of :func:`im2col`: sum the rows of ``dcols: (N*OH*OW, C*kh*kw)`` back
    onto an array of ``padded_shape`` (N, C, Hp, Wp), one kernel offset at a time."""
    n, c, hp, wp = padded_shape
    kh, kw = kernel_size
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_size
    d6 = dcols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, OH, OW)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            di, dj = i * dh, j * dw
            dxp[:, :, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw] += d6[:, :, i, j]
    return dxp


def by_group(a, groups):
    """``(M, G*k) -> (G, M, k)``: the columns of each of ``groups`` groups as one matrix (a view).
    With ``cols`` of :func:`im2col` (columns ``(c, di, dj)``) group g holds channels
    ``g*C/G .. (g+1)*C/G - 1``."""
    return a.reshape(len(a), groups, a.shape[1] // groups).transpose(1, 0, 2)


def ungroup(a):
    """``(G, M, k) -> (M, G*k)``: the inverse of :func:`by_group` (a view when G == 1)."""
    return a.transpose(1, 0, 2).reshape(a.shape[1], a.shape[0] * a.shape[2])
