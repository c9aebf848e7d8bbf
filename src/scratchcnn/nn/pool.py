"""Pooling layers: max, average and global average."""
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import (conv_output_size, normalize_padding, pad2d, pair, pool_tiled, textbook_enabled, unpad2d,
                       window_view)
from .module import Module, is_grad_enabled


class MaxPoolTextbookSaved(NamedTuple):
    """What MaxPool2D's textbook backward needs from its forward."""
    arg: np.ndarray          # (N, C, OH, OW) int: each window's first maximum, at k = di*kw + dj
    padded_shape: tuple      # (N, C, Hp, Wp)


class _Pool2D(Module):
    """Shared arguments and shape rules of MaxPool2D and AvgPool2D (PyTorch's, floor mode)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, f"{name} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{name} stride")
        self.padding = pair(padding, f"{name} padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ConfigError(f"{name}: kernel_size and stride must be >= 1")
        if self.padding[0] * 2 > self.kernel_size[0] or self.padding[1] * 2 > self.kernel_size[1]:
            raise ConfigError(f"{name}: padding {self.padding} must be at most half the kernel "
                              f"{self.kernel_size}")
        self.pads = normalize_padding(self.padding, self.kernel_size, self.stride, name)
        self._saved = None      # what backward reads: MaxPool2D a named tuple, AvgPool2D the padded shape

    def config(self):
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}"
        if self.stride != self.kernel_size:
            s += f", stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        return s

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects input (N, C, H, W), got (N, {', '.join(map(str, input_shape))})")
        c, h, w = input_shape
        t, b, l, r = self.pads
        oh = conv_output_size(h, self.kernel_size[0], self.stride[0], t, b)
        ow = conv_output_size(w, self.kernel_size[1], self.stride[1], l, r)
        if oh < 1 or ow < 1:
            raise ShapeError(f"{self!r}: input {h}x{w} is smaller than the window {self.kernel_size}")
        return (c, oh, ow)

    def macs(self, input_shape):
        c, oh, ow = self.output_shape(input_shape)
        return c * oh * ow * self.kernel_size[0] * self.kernel_size[1]

    def _check_input(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input (N, C, H, W), got shape {x.shape}")
        self.output_shape(x.shape[1:])

    def _clear_cache(self):
        self._saved = None


class MaxPool2D(_Pool2D):
    """``MaxPool2D(kernel_size, stride=None, padding=0)``, PyTorch's MaxPool2d. ``forward`` / ``backward`` are
    the textbook path; windows that tile x (stride == kernel, no padding) use the fast kernel ``pool_tiled``.

    Shape: x: (N, C, H, W) float32 -> y: (N, C, OH, OW) float32 (a float64 x stays float64), ``OH = (H +
        pad_top + pad_bottom - kh) // sh + 1`` (PyTorch's floor rule), OW likewise; stride defaults to kernel.
    Forward: the largest value of each window, ``y[n, c, i, j] = max over (di, dj) of xp[n, c, i*sh + di,
        j*sw + dj]``, xp = x padded with -inf (the textbook path: ``argmax`` over a sliding-window view).
    Backward: locally the max selects one element, so ``dy[n, c, i, j]`` goes to that element alone:
        the window's first maximum in row-major order when values tie (as PyTorch; real images tie a
        lot on zero backgrounds, and an ``x == max`` mask would multiply the gradient). Overlaps add up.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> pool = sc.MaxPool2D(2)
        >>> pool(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0].tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]

    See also: the loop :func:`scratchcnn.nn.loops.maxpool2d_forward_backward`; the fast kernel
        :mod:`scratchcnn.kernels.pool_tiled`; :class:`AvgPool2D`.
    """

    def _tiles(self):
        return self.stride == self.kernel_size and self.pads == (0, 0, 0, 0)

    def forward(self, x):
        keep = is_grad_enabled()
        if not textbook_enabled() and self._tiles():                          # the fast kernel
            y, saved = pool_tiled.forward(x, self.kernel_size, keep_for_backward=keep)
            if saved is not None:
                self._saved = saved
            return y
        n, c = x.shape[:2]
        xp = pad2d(x, self.pads, value=-np.inf)
        win = window_view(xp, self.kernel_size, self.stride)            # (N, C, OH, OW, kh, kw)
        oh, ow = win.shape[2:4]
        flat = win.reshape(n, c, oh, ow, win.shape[4] * win.shape[5])   # (no -1: N may be 0)
        arg = flat.argmax(axis=-1)                                      # first maximum
        y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        if keep:
            self._saved = MaxPoolTextbookSaved(arg, xp.shape)
        return y

    def backward(self, grad_out):
        if isinstance(self._saved, pool_tiled.TiledMaxPoolSaved):             # the fast kernel
            return pool_tiled.backward(self._saved, grad_out)
        arg, padded_shape = self._saved
        kh, kw = self.kernel_size
        sh, sw = self.stride
        oh, ow = arg.shape[2:]
        dxp = np.zeros(padded_shape, dtype=grad_out.dtype)
        # One kernel offset at a time: windows whose arg-max is that offset send their
        # gradient to the element at that offset (windows may overlap, hence +=).
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            dxp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += np.where(arg == k, grad_out, 0)
        return unpad2d(dxp, self.pads)


class AvgPool2D(_Pool2D):
    """``AvgPool2D(kernel_size, stride=None, padding=0)``, PyTorch's AvgPool2d: the mean of each window.
    ``forward`` / ``backward`` are the textbook path (there is no fast kernel).

    Shape: x: (N, C, H, W) float32 -> y: (N, C, OH, OW) float32 (a float64 x stays float64), as MaxPool2D.
    Forward: ``y[n, c, i, j] = sum over (di, dj) of xp[n, c, i*sh + di, j*sw + dj] / (kh*kw)``, xp = x
        zero-padded: as PyTorch's default ``count_include_pad=True``, padding counts in the mean.
    Backward: y is linear in x, each window element weighing ``1 / (kh*kw)``: every window spreads
        ``dy / (kh*kw)`` evenly over its elements; overlapping windows add up.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.AvgPool2D(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]

    See also: the loop :func:`scratchcnn.nn.loops.avgpool2d_forward_backward`; :class:`GlobalAvgPool2D`.
    """

    def forward(self, x):
        xp = pad2d(x, self.pads)
        win = window_view(xp, self.kernel_size, self.stride)
        if is_grad_enabled():
            self._saved = xp.shape          # (N, C, Hp, Wp)
        return win.mean(axis=(-2, -1))

    def backward(self, grad_out):
        padded_shape, (oh, ow) = self._saved, grad_out.shape[2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        g = grad_out / (kh * kw)
        dxp = np.zeros(padded_shape, dtype=grad_out.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += g
        return unpad2d(dxp, self.pads)


class GlobalAvgPool2D(Module):
    """``GlobalAvgPool2D()``: the mean of each feature map (before a classifier, instead of Flatten).

    Shape: x: (N, C, H, W) float32 -> y: (N, C) float32 (a float64 x stays float64).
    Forward: ``y[n, c] = sum over (i, j) of x[n, c, i, j] / (H*W)``.
    Backward: every element weighs ``1 / (H*W)`` in its map's mean: ``dx[n, c, i, j] = dy[n, c] / (H*W)``.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.GlobalAvgPool2D()(np.arange(8.0).reshape(1, 2, 2, 2)).tolist()
        [[1.5, 5.5]]

    See also: the loop :func:`scratchcnn.nn.loops.global_avgpool2d_forward_backward`; :class:`AvgPool2D`.
    """

    def __init__(self):
        super().__init__()
        self._hw = None       # (H, W) of the last input

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects input (N, C, H, W), got (N, {', '.join(map(str, input_shape))})")
        return (input_shape[0],)

    def macs(self, input_shape):
        return int(np.prod(input_shape))

    def _check_input(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input (N, C, H, W), got shape {x.shape}")

    def forward(self, x):
        self._hw = x.shape[2:]
        return x.mean(axis=(2, 3))

    def backward(self, grad_out):
        h, w = self._hw
        g = grad_out[:, :, None, None] / (h * w)
        return np.broadcast_to(g, g.shape[:2] + (h, w)).copy()
