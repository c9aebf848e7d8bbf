"""2-D convolution (cross-correlation, as in every deep-learning library)."""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import col2im, conv_output_size, im2col, normalize_padding, pad2d, pair, unpad2d
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


class Conv2D(Module):
    """``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True)``.

    x: (N, C_in, H, W) -> y: (N, C_out, OH, OW) with
    ``OH = (H + pad_top + pad_bottom - kh) // sh + 1`` (PyTorch's floor rule) and
    ``y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * xp[n, c, i*sh + di, j*sw + dj]``
    where ``xp`` is ``x`` zero-padded.

    weight: (C_out, C_in, kh, kw), bias: (C_out,) -- PyTorch's names and shapes.

    Forward lays every receptive field out as a row (im2col, ``cols: (N*OH*OW, C_in*kh*kw)``)
    and does one matrix product with the flattened weight. Backward follows from
    ``y = cols @ W^T``: ``dW = dy^T @ cols``, ``db = sum of dy over (N, OH, OW)``, and
    ``dcols = dy @ W``, which col2im adds back onto the input pixels (``dx``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 init="he", dtype=np.float32):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"Conv2D: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "Conv2D kernel_size")
        self.stride = pair(stride, "Conv2D stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ConfigError(f"Conv2D: kernel_size and stride must be >= 1, got "
                              f"{kernel_size!r}, {stride!r}")
        self.padding = padding if isinstance(padding, str) else pair(padding, "Conv2D padding")
        self.pads = normalize_padding(padding, self.kernel_size, self.stride, "Conv2D")
        self.init = init
        kh, kw = self.kernel_size
        fan_in, fan_out = in_channels * kh * kw, out_channels * kh * kw
        self.weight = Parameter(init_weight((out_channels, in_channels, kh, kw), fan_in, fan_out,
                                            init, dtype))
        self.use_bias = bool(bias)
        if bias:
            self.bias = Parameter(init_bias((out_channels,), fan_in, init, dtype))
        self._cache = None

    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": padding, "bias": self.use_bias, "init": self.init}

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            s += f", stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding!r}"
        if not self.use_bias:
            s += ", bias=False"
        return s

    # ---- shapes -------------------------------------------------------
    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.in_channels:
            raise ShapeError(f"{self!r} expects input (N, {self.in_channels}, H, W), "
                             f"got (N, {', '.join(map(str, input_shape))})")
        t, b, l, r = self.pads
        oh = conv_output_size(input_shape[1], self.kernel_size[0], self.stride[0], t, b)
        ow = conv_output_size(input_shape[2], self.kernel_size[1], self.stride[1], l, r)
        if oh < 1 or ow < 1:
            raise ShapeError(f"{self!r}: input {input_shape[1]}x{input_shape[2]} (padded "
                             f"{input_shape[1] + t + b}x{input_shape[2] + l + r}) is smaller than "
                             f"the kernel {self.kernel_size[0]}x{self.kernel_size[1]}")
        return (self.out_channels, oh, ow)

    def macs(self, input_shape):
        c, oh, ow = self.output_shape(input_shape)
        return c * oh * ow * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def _check_input(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        self.output_shape(x.shape[1:])

    # ---- maths --------------------------------------------------------
    def forward(self, x):
        n = x.shape[0]
        xp = pad2d(x, self.pads)
        cols, (oh, ow) = im2col(xp, self.kernel_size, self.stride)
        w2 = self.weight.data.reshape(self.out_channels, -1)
        y = cols @ w2.T                                   # (N*OH*OW, C_out)
        if self.use_bias:
            y += self.bias.data
        if is_grad_enabled():
            self._cache = (cols, xp.shape, (oh, ow))
        return y.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before a forward pass with gradients on")
        cols, padded_shape, (oh, ow) = self._cache
        g = grad_out.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)   # (N*OH*OW, C_out)
        if self.weight.requires_grad:
            self.weight.grad += (g.T @ cols).reshape(self.weight.data.shape)
        if self.use_bias and self.bias.requires_grad:
            self.bias.grad += g.sum(axis=0)
        if not self.needs_input_grad:
            return None
        dcols = g @ self.weight.data.reshape(self.out_channels, -1)
        dxp = col2im(dcols, padded_shape, self.kernel_size, self.stride, (oh, ow))
        return unpad2d(dxp, self.pads)

    def _clear_cache(self):
        self._cache = None
