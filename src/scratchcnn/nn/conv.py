"""2-D convolution (cross-correlation, as in every deep-learning library): ``Conv2D``.

This page is the textbook algorithm, im2col and one matrix product, and the backward pass that
follows from it. The same maths with less work lives in :mod:`scratchcnn.kernels` ("See also"):
the layer picks one of those kernels unless the textbook switch is on (:func:`~scratchcnn.textbook`).
"""
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import col2im, conv_output_size, im2col, normalize_padding, pad2d, pair, textbook_enabled, unpad2d
from ..kernels.conv_channels_last import ChannelsLastConv
from ..kernels.conv_one_channel import OneChannelConv
from ..kernels.conv_winograd import WinogradConv
from .checks import flag, float_dtype, positive_int, weights_fit
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


class TextbookSaved(NamedTuple):
    """What the textbook forward keeps for backward."""
    cols: np.ndarray            # (N*OH*OW, C_in*kh*kw)
    padded_shape: tuple         # (N, C_in, Hp, Wp)
    out_size: tuple             # (OH, OW)


class Conv2D(Module):
    """``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, init="he")``.

    **Shape**
        x: (N, C_in, H, W) float32 -> y: (N, C_out, OH, OW), where
        ``OH = (H + pad_top + pad_bottom - kh) // sh + 1`` (PyTorch's floor rule; OW alike).
        weight: (C_out, C_in, kh, kw), bias: (C_out,) -- PyTorch's names and shapes.

    **Forward**
        ``y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * xp[n, c, i*sh + di, j*sw + dj]``
        with ``xp`` the zero-padded ``x``. im2col lays every receptive field out as a row,
        ``cols: (N*OH*OW, C_in*kh*kw)``, so the sum is one matrix product ``y = cols @ W^T + b``
        with the flattened weight ``W: (C_out, C_in*kh*kw)``.

    **Backward**
        ``y = cols @ W^T + b`` is linear in each factor, so ``dW = dy^T @ cols``,
        ``db = sum of dy over (N, OH, OW)`` and ``dcols = dy @ W``. Each pixel sits in several
        rows of ``cols``: col2im adds every row of ``dcols`` back onto the pixels it was read
        from, which is ``dx`` (once the padding is cut off).

    **Example**
        >>> conv = Conv2D(3, 8, kernel_size=3, padding=1)
        >>> conv(np.zeros((2, 3, 32, 32), np.float32)).shape
        (2, 8, 32, 32)

    **See also**
        :func:`scratchcnn.nn.loops.conv2d_forward` / :func:`~scratchcnn.nn.loops.conv2d_backward`:
        the formulas as naive loops. The fast kernels, the same maths with less work (contract:
        :mod:`scratchcnn.kernels.conv_kernel`): :mod:`scratchcnn.kernels.conv_channels_last`
        (channels-last im2col in cache-sized pieces), :mod:`scratchcnn.kernels.conv_one_channel`
        (one input channel: one batched NCHW product), :mod:`scratchcnn.kernels.conv_winograd`
        (Winograd F(2x2, 3x3), see :meth:`uses_winograd`).
    """

    #: 3x3 stride-1 convolutions with at least this many input and output channels use
    #: Winograd F(2x2, 3x3) among the fast kernels (2.25x fewer multiplications); below it the
    #: transforms cost more than they save (benchmarks/conv_paths.py). ``None``: never.
    winograd_min_channels = 4

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 init="he", dtype=np.float32):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            positive_int("Conv2D", name, v)
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
        dtype, bias = float_dtype("Conv2D", dtype), flag("Conv2D", "bias", bias)
        weights_fit(f"Conv2D({in_channels}, {out_channels}, kernel_size={self.kernel_size})", out_channels * (fan_in + bias), dtype)
        self.weight = Parameter(init_weight((out_channels, in_channels, kh, kw), fan_in, fan_out,
                                            init, dtype))
        self.use_bias = bool(bias)
        if bias:
            self.bias = Parameter(init_bias((out_channels,), fan_in, init, dtype))
        self._saved = None              # what backward reads (TextbookSaved or a kernel's)
        self.kernel_in_use = None       # the fast kernel that made _saved (None: textbook)
        self._kernels = {}              # fast kernels built for this layer, by class

    # ---- maths --------------------------------------------------------
    def forward(self, x):
        kernel = None if textbook_enabled() or x.shape[0] == 0 else self.fast_kernel()
        if kernel is not None:                            # the same maths, faster
            bias = self.bias.data if self.use_bias else None
            y, saved = kernel.forward(x, self.weight.data, bias, keep_for_backward=is_grad_enabled())
            if saved is not None:
                self._saved, self.kernel_in_use = saved, kernel
            return y
        n = x.shape[0]
        xp = pad2d(x, self.pads)                                     # (N, C_in, Hp, Wp)
        cols, (oh, ow) = im2col(xp, self.kernel_size, self.stride)   # (N*OH*OW, C_in*kh*kw)
        w2 = self.weight.data.reshape(self.out_channels, -1)         # W: (C_out, C_in*kh*kw)
        y = cols @ w2.T                                              # (N*OH*OW, C_out)
        if self.use_bias:
            y += self.bias.data
        if is_grad_enabled():
            self._saved, self.kernel_in_use = TextbookSaved(cols, xp.shape, (oh, ow)), None
        return y.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        if self._saved is None:
            raise RuntimeError(f"{self!r}: backward called before a forward pass with gradients on")
        need_w = self.weight.requires_grad
        need_b = self.use_bias and self.bias.requires_grad
        if self.kernel_in_use is not None:                # the kernel that ran forward
            dx, dw, db = self.kernel_in_use.backward(self._saved, grad_out, self.weight.data,
                                                     need_input_grad=self.needs_input_grad,
                                                     need_weight_grad=need_w or need_b)
            if need_w:
                self.weight.grad += dw
            if need_b:
                self.bias.grad += db
            return dx
        cols, padded_shape, (oh, ow) = self._saved
        g = grad_out.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)   # dy: (N*OH*OW, C_out)
        if need_w:
            self.weight.grad += (g.T @ cols).reshape(self.weight.data.shape)   # dW = dy^T cols
        if need_b:
            self.bias.grad += g.sum(axis=0)                                   # db = sum dy
        if not self.needs_input_grad:
            return None
        dcols = g @ self.weight.data.reshape(self.out_channels, -1)           # dcols = dy W
        dxp = col2im(dcols, padded_shape, self.kernel_size, self.stride, (oh, ow))
        return unpad2d(dxp, self.pads)

    # ---- the fast kernels ---------------------------------------------
    def uses_winograd(self):
        """True when the fast kernels compute this layer with Winograd F(2x2, 3x3): a 3x3 kernel,
        stride 1, padding at most 2 on each side, and at least ``winograd_min_channels`` input and
        output channels."""
        m = self.winograd_min_channels
        return (m is not None and self.kernel_size == (3, 3) and self.stride == (1, 1)
                and max(self.pads) <= 2 and min(self.in_channels, self.out_channels) >= m)

    def fast_kernel(self):
        """The fast kernel this layer is computed with (built once, then kept): one input
        channel -> OneChannelConv, :meth:`uses_winograd` -> WinogradConv, else ChannelsLastConv."""
        kind = (OneChannelConv if self.in_channels == 1 else
                WinogradConv if self.uses_winograd() else ChannelsLastConv)
        geometry = (self.kernel_size, self.stride, self.pads, self.in_channels, self.out_channels)
        kernel = self._kernels.get(kind)
        if kernel is None or kernel.geometry != geometry:
            kernel = self._kernels[kind] = kind(*geometry)
        return kernel

    def _clear_cache(self):
        self._saved = self.kernel_in_use = None
        for kernel in self._kernels.values():
            kernel.clear()                                # their workspaces (e.g. after .to(dtype))

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

    # ---- description --------------------------------------------------
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
