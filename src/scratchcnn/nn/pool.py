"""Pooling layers: max, average and global average."""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import (conv_output_size, textbook_enabled, maxpool_tiled_backward, maxpool_tiled_forward,
                       normalize_padding, pad2d, pair, unpad2d, window_view)
from .module import Module, is_grad_enabled


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
        self._cache = None

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
        self._cache = None


class MaxPool2D(_Pool2D):
    """``MaxPool2D(kernel_size, stride=None, padding=0)``: the largest value of each window.

    x: (N, C, H, W) -> y: (N, C, OH, OW). Padding counts as -inf. Backward sends each
    window's gradient to exactly one element, the window's first maximum in row-major
    order (as PyTorch does): on real images many values tie (zero background), and a
    ``x == max`` mask would multiply the gradient.

    Fast path (when the windows tile the input: stride == kernel, no padding, the usual
    ``MaxPool2D(2)``): element-wise maxima of strided views, see
    :mod:`scratchcnn.kernels.pool_tiled`. Otherwise, or with fast paths off, the reference
    path below: ``argmax`` over every window of a sliding-window view.
    """

    def _tiles(self):
        return self.stride == self.kernel_size and self.pads == (0, 0, 0, 0)

    def forward(self, x):
        if not textbook_enabled() and self._tiles():
            y = maxpool_tiled_forward(x, self.kernel_size)
            if is_grad_enabled():
                self._cache = ("tiled", x, y)
            return y
        return self._forward_reference(x)

    def backward(self, grad_out):
        if self._cache[0] == "tiled":
            _, x, y = self._cache
            return maxpool_tiled_backward(grad_out, x, y, self.kernel_size)
        return self._backward_reference(grad_out)

    def _forward_reference(self, x):
        n, c = x.shape[:2]
        xp = pad2d(x, self.pads, value=-np.inf)
        win = window_view(xp, self.kernel_size, self.stride)            # (N, C, OH, OW, kh, kw)
        oh, ow = win.shape[2:4]
        flat = win.reshape(n, c, oh, ow, win.shape[4] * win.shape[5])   # (no -1: N may be 0)
        arg = flat.argmax(axis=-1)                                      # first maximum
        y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        if is_grad_enabled():
            self._cache = ("windows", arg, xp.shape)
        return y

    def _backward_reference(self, grad_out):
        _, arg, padded_shape = self._cache
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
    """``AvgPool2D(kernel_size, stride=None, padding=0)``: the mean of each window.

    x: (N, C, H, W) -> y: (N, C, OH, OW). As PyTorch's default
    (``count_include_pad=True``), zero padding counts in the mean, so every window is
    divided by ``kh*kw``. Backward spreads ``dy / (kh*kw)`` evenly over the window.
    """

    def forward(self, x):
        xp = pad2d(x, self.pads)
        win = window_view(xp, self.kernel_size, self.stride)
        if is_grad_enabled():
            self._cache = (xp.shape, win.shape[2:4])
        return win.mean(axis=(-2, -1))

    def backward(self, grad_out):
        padded_shape, (oh, ow) = self._cache
        kh, kw = self.kernel_size
        sh, sw = self.stride
        g = grad_out / (kh * kw)
        dxp = np.zeros(padded_shape, dtype=grad_out.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += g
        return unpad2d(dxp, self.pads)


class GlobalAvgPool2D(Module):
    """The mean of each channel: x: (N, C, H, W) -> y: (N, C). Backward: ``dx = dy / (H*W)``
    broadcast over the feature map."""

    def __init__(self):
        super().__init__()
        self._hw = None

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
