"""2-D convolution (cross-correlation, as in every deep-learning library): ``Conv2D``.

This page is the textbook algorithm, im2col and one matrix product per group, and the backward
pass that follows from it. The same maths with less work lives in :mod:`scratchcnn.kernels` ("See also"):
the layer picks one of those kernels unless the textbook switch is on (:func:`~scratchcnn.textbook`).
"""
from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from ..kernels import by_group, col2im, conv_output_size, im2col, pad2d, textbook_enabled, ungroup, unpad2d
from ..kernels.conv_channels_last import ChannelsLastConv
from ..kernels.conv_depthwise import DepthwiseConv
from ..kernels.conv_grouped import GroupedConv
from ..kernels.conv_one_channel import OneChannelConv
from ..kernels.conv_winograd import WinogradConv
from .checks import conv_arguments, flag, float_dtype, weights_fit
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


class TextbookSaved(NamedTuple):
    """What the textbook forward keeps for backward."""
    cols: np.ndarray            # (N*OH*OW, C_in*kh*kw)
    padded_shape: tuple         # (N, C_in, Hp, Wp)
    out_size: tuple             # (OH, OW)


class Conv2D(Module):
    """``Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, init="he")``.

    **Shape**
        x: (N, C_in, H, W) float32 -> y: (N, C_out, OH, OW), where
        ``OH = (H + pad_top + pad_bottom - dh*(kh-1) - 1) // sh + 1`` (PyTorch's floor rule; OW alike).
        weight: (C_out, C_in/G, kh, kw), bias: (C_out,) -- PyTorch's names and shapes (G: groups).

    **Forward**
        ``y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * xp[n, g*C_in/G + c, i*sh + di*dh, j*sw + dj*dw]``
        with ``xp`` the zero-padded ``x`` and ``g = o // (C_out/G)`` the group of output channel ``o``.
        im2col lays every receptive field out as a row, ``cols: (N*OH*OW, C_in*kh*kw)``, so the sum
        is one matrix product ``y = cols @ W^T + b`` with the flattened weight ``W: (C_out, C_in*kh*kw)``.
        Dilation spaces the kernel's taps ``dh`` rows and ``dw`` columns apart (im2col reads every
        ``dh``-th row of a taller window). Groups make G independent convolutions, ``y_g = cols_g @ W_g^T``
        (group g's C_in/G channels, its C_out/G filters): one batched product (depthwise: G = C_in).

    **Backward**
        ``y = cols @ W^T + b`` is linear in each factor, so ``dW = dy^T @ cols``,
        ``db = sum of dy over (N, OH, OW)`` and ``dcols = dy @ W``. Each pixel sits in several
        rows of ``cols``: col2im adds every row of ``dcols`` back onto the pixels it was read
        from, which is ``dx`` (once the padding is cut off). Dilation: col2im adds each tap back where
        it was read. Groups: the products per group, ``dW_g = dy_g^T @ cols_g``, ``dcols_g = dy_g @ W_g``.

    **Example**
        >>> conv = Conv2D(3, 8, kernel_size=3, padding=1)
        >>> conv(np.zeros((2, 3, 32, 32), np.float32)).shape
        (2, 8, 32, 32)
        >>> Conv2D(8, 8, 3, padding="same", dilation=2, groups=8).weight.shape     # depthwise
        (8, 1, 3, 3)

    **See also**
        :func:`scratchcnn.nn.loops.conv2d_forward` / :func:`~scratchcnn.nn.loops.conv2d_backward`:
        the formulas as naive loops. The fast kernels, the same maths with less work (contract:
        :mod:`scratchcnn.kernels.conv_kernel`): :mod:`scratchcnn.kernels.conv_channels_last`
        (channels-last im2col in cache-sized pieces), :mod:`scratchcnn.kernels.conv_one_channel`
        (one input channel: one batched NCHW product), :mod:`scratchcnn.kernels.conv_winograd` (Winograd
        F(2x2, 3x3), see :meth:`uses_winograd`); with dilation or groups :mod:`scratchcnn.kernels.conv_depthwise`
        (shifted views) and :mod:`scratchcnn.kernels.conv_grouped`.
    """

    #: 3x3 stride-1 convolutions with at least this many input and output channels use
    #: Winograd F(2x2, 3x3) among the fast kernels (2.25x fewer multiplications); below it the
    #: transforms cost more than they save (benchmarks/conv_paths.py). ``None``: never.
    winograd_min_channels = 4

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, init="he", dtype=np.float32):
        super().__init__()
        (self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, self.pads,
         self.dilation, self.groups) = conv_arguments("Conv2D", in_channels, out_channels, kernel_size,
                                                      stride, padding, dilation, groups)
        self.init = init
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels // self.groups * kh * kw, self.out_channels * kh * kw   # as PyTorch
        dtype, bias = float_dtype("Conv2D", dtype), flag("Conv2D", "bias", bias)
        weights_fit(f"Conv2D({in_channels}, {out_channels}, kernel_size={self.kernel_size})", out_channels * (fan_in + bias), dtype)
        self.weight = Parameter(init_weight((out_channels, in_channels // self.groups, kh, kw), fan_in, fan_out, init, dtype))
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
        n, xp = x.shape[0], pad2d(x, self.pads)                                  # xp: (N, C_in, Hp, Wp)
        cols, (oh, ow) = im2col(xp, self.kernel_size, self.stride, self.dilation)  # (N*OH*OW, C_in*kh*kw)
        w_g = self.weight.data.reshape(self.groups, self.out_channels // self.groups, -1)   # W_g
        y = ungroup(np.matmul(by_group(cols, self.groups), w_g.transpose(0, 2, 1)))  # (N*OH*OW, C_out)
        if self.use_bias:
            y += self.bias.data
        if is_grad_enabled():
            self._saved, self.kernel_in_use = TextbookSaved(cols, xp.shape, (oh, ow)), None
        return y.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        if self._saved is None:
            raise RuntimeError(f"{self!r}: backward called before a forward pass with gradients on")
        need_w, need_b = self.weight.requires_grad, self.use_bias and self.bias.requires_grad
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
        g_g = by_group(g, self.groups)                                       # dy_g: (G, N*OH*OW, C_out/G)
        if need_w:                                                           # dW_g = dy_g^T cols_g
            self.weight.grad += np.matmul(g_g.transpose(0, 2, 1), by_group(cols, self.groups)).reshape(self.weight.shape)
        if need_b:
            self.bias.grad += g.sum(axis=0)                                   # db = sum dy
        if not self.needs_input_grad:
            return None
        w_g = self.weight.data.reshape(self.groups, self.out_channels // self.groups, -1)
        dcols = ungroup(np.matmul(g_g, w_g))                                 # dcols_g = dy_g W_g
        dxp = col2im(dcols, padded_shape, self.kernel_size, self.stride, (oh, ow), self.dilation)
        return unpad2d(dxp, self.pads)

    # ---- the fast kernels ---------------------------------------------
    def uses_winograd(self):
        """True when the fast kernels compute this layer with Winograd F(2x2, 3x3): a 3x3 kernel,
        stride 1, no dilation or groups, padding at most 2 on each side, and at least
        ``winograd_min_channels`` input and output channels."""
        m = self.winograd_min_channels
        return (m is not None and self.kernel_size == (3, 3) and self.stride == (1, 1) and self.groups == 1
                and self.dilation == (1, 1) and max(self.pads) <= 2 and min(self.in_channels, self.out_channels) >= m)

    def fast_kernel(self):
        """The fast kernel this layer is computed with (built once, then kept): with dilation or
        groups, DepthwiseConv (groups == in_channels > 1) or GroupedConv; else one input channel ->
        OneChannelConv, :meth:`uses_winograd` -> WinogradConv, else ChannelsLastConv."""
        geometry = (self.kernel_size, self.stride, self.pads, self.in_channels, self.out_channels)
        if self.dilation != (1, 1) or self.groups != 1:
            kind = DepthwiseConv if self.groups == self.in_channels > 1 else GroupedConv
            geometry += (self.dilation, self.groups)
        else:
            kind = (OneChannelConv if self.in_channels == 1 else
                    WinogradConv if self.uses_winograd() else ChannelsLastConv)
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
        (t, b, l, r), (kh, kw), (dh, dw) = self.pads, self.kernel_size, self.dilation
        oh = conv_output_size(input_shape[1], kh, self.stride[0], t, b, dh)
        ow = conv_output_size(input_shape[2], kw, self.stride[1], l, r, dw)
        if oh < 1 or ow < 1:
            span = f" (dilated: {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1})" if (dh, dw) != (1, 1) else ""
            raise ShapeError(f"{self!r}: input {input_shape[1]}x{input_shape[2]} (padded {input_shape[1] + t + b}x"
                             f"{input_shape[2] + l + r}) is smaller than the kernel {kh}x{kw}{span}")
        return (self.out_channels, oh, ow)

    def macs(self, input_shape):
        c, oh, ow = self.output_shape(input_shape)
        return c * oh * ow * (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def _check_input(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects input (N, {self.in_channels}, H, W), got shape {x.shape}")
        self.output_shape(x.shape[1:])

    # ---- description --------------------------------------------------
    def config(self):
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": padding, "dilation": list(self.dilation), "groups": self.groups,
                "bias": self.use_bias, "init": self.init}

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, value, plain in (("stride", self.stride, ((1, 1),)), ("padding", self.padding, ((0, 0), "valid")),
                                   ("dilation", self.dilation, ((1, 1),)), ("groups", self.groups, (1,)),
                                   ("bias", self.use_bias, (True,))):
            if value not in plain:
                s += f", {name}={value!r}"
        return s

