"""2-D convolution (cross-correlation, as in every deep-learning library)."""
import math

import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import col2im, conv_output_size, im2col, normalize_padding, pad2d, pair, unpad2d
from ..kernels import (Workspace, col2im_nhwc, col2im_one_channel, conv_input_grad_nhwc, textbook_enabled,
                       im2col_one_channel,
                       flipped_weight_rows, im2col_nhwc, pad_nhwc, shared_workspace, weight_from_rows,
                       weight_rows)
from ..kernels.winograd import (flipped_transposed_weight, tiles, winograd_conv_piece, winograd_weight,
                                winograd_weight_grad, winograd_weight_grad_piece)
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


def _piece_of_v(v_all, start, m, tiles_per_image, c):
    """The transformed input ``V: (16, m*tiles, C)`` of images ``start .. start+m`` inside the flat
    buffer that keeps every piece's ``V`` side by side for backward."""
    size = 16 * tiles_per_image * c
    return v_all[start * size:(start + m) * size].reshape(16, m * tiles_per_image, c)


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

    Two implementations compute exactly this. ``_forward_reference`` / ``_backward_reference``
    are the plain NCHW im2col above. The fast path (the default, see
    :mod:`scratchcnn.kernels.conv_nhwc`) works channels-last: its im2col is ``kh*kw`` block
    copies into a reused workspace, ``cols @ W^T`` is already the NHWC output, returned as an
    NCHW-shaped view (no transpose copy). The batch is processed in pieces of at most
    ``max_cols_elements`` im2col entries: each piece's columns are multiplied while they are
    still in the processor's cache (measured: A complex inference 45 -> 33 ms per batch of 64
    against one 16 MB piece), and without gradients only one piece is ever held, so memory
    stays bounded whatever the batch size. With gradients the pieces are written side by side
    into one buffer that backward reads. Two more fast paths compute the same maths with less
    work: a layer with one input channel stays NCHW (one batched product, ``_forward_one_channel``),
    and a 3x3 stride-1 layer with enough channels uses Winograd F(2x2, 3x3)
    (:meth:`uses_winograd`, :mod:`scratchcnn.kernels.winograd`).
    """

    max_cols_elements = 1 << 19     # 2 MB of float32 per im2col piece (fits in L2 / L3 cache)

    #: 3x3 stride-1 convolutions with at least this many input and output channels use
    #: Winograd F(2x2, 3x3) on the fast path (:mod:`scratchcnn.kernels.winograd`): 2.25x fewer
    #: multiplications; below it the transforms cost more than they save. ``None``: never.
    winograd_min_channels = 4

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
        self._ws = Workspace()      # reused buffers of the fast path (padded input, im2col)

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
        if textbook_enabled() or x.shape[0] == 0:
            return self._forward_reference(x)
        if self.in_channels == 1:
            return self._forward_one_channel(x)
        if self.uses_winograd():
            return self._forward_winograd(x)
        return self._forward_fast(x)

    def _piece_size(self, n, entries_per_image):
        """Images per piece: as many as keep a piece's scratch (im2col columns or Winograd tiles,
        ``entries_per_image`` each) within ``max_cols_elements``; at least 1, at most ``n``."""
        return max(1, min(n, self.max_cols_elements // entries_per_image))

    def uses_winograd(self):
        """True when the fast path computes this layer with Winograd F(2x2, 3x3): a 3x3 kernel,
        stride 1, padding at most 2 on each side, and at least ``winograd_min_channels`` input and
        output channels."""
        m = self.winograd_min_channels
        return (m is not None and self.kernel_size == (3, 3) and self.stride == (1, 1)
                and max(self.pads) <= 2 and min(self.in_channels, self.out_channels) >= m)

    def backward(self, grad_out):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before a forward pass with gradients on")
        path = self._cache[0]
        if path == "fast":
            return self._backward_fast(grad_out)
        if path == "one_channel":
            return self._backward_one_channel(grad_out)
        if path == "winograd":
            return self._backward_winograd(grad_out)
        return self._backward_reference(grad_out)

    # reference path: NCHW im2col, one product, col2im
    def _forward_reference(self, x):
        n = x.shape[0]
        xp = pad2d(x, self.pads)
        cols, (oh, ow) = im2col(xp, self.kernel_size, self.stride)
        w2 = self.weight.data.reshape(self.out_channels, -1)
        y = cols @ w2.T                                   # (N*OH*OW, C_out)
        if self.use_bias:
            y += self.bias.data
        if is_grad_enabled():
            self._cache = ("reference", cols, xp.shape, (oh, ow))
        return y.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def _backward_reference(self, grad_out):
        _, cols, padded_shape, (oh, ow) = self._cache
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

    # fast path: channels-last im2col in reused buffers (kernels.conv_nhwc)
    def _forward_fast(self, x):
        """x: (N, C, H, W), any memory order -> (N, C_out, OH, OW), an NCHW view of NHWC memory."""
        n, c, h, w = x.shape
        t, b, l, r = self.pads
        kh, kw = self.kernel_size
        o = self.out_channels
        oh = conv_output_size(h, kh, self.stride[0], t, b)
        ow = conv_output_size(w, kw, self.stride[1], l, r)
        padded = (h + t + b, w + l + r)
        xh = x.transpose(0, 2, 3, 1)                      # (N, H, W, C) view
        w_rows = weight_rows(self.weight.data)            # (C_out, kh*kw*C)
        grad = is_grad_enabled()
        # Pieces of `chunk` images; with gradients every piece's columns are kept for backward.
        chunk = self._piece_size(n, oh * ow * kh * kw * c)
        y = np.empty((n * oh * ow, o), dtype=x.dtype)
        if grad:
            all_cols = self._ws.get("cols", (n * oh * ow, kh * kw * c), x.dtype)
        for s in range(0, n, chunk):
            xs = xh[s:s + chunk]
            m = xs.shape[0]
            if t or b or l or r:
                xp = self._ws.get("xp", (chunk,) + padded + (c,), x.dtype, zero=True)[:m]
                pad_nhwc(xs, self.pads, xp)        # (also turns NCHW memory into NHWC)
            elif not xs.flags.c_contiguous:
                xp = self._ws.get("xp", (chunk, h, w, c), x.dtype)[:m]
                xp[...] = xs                        # one layout change, then block copies
            else:
                xp = xs
            if grad:
                cols = all_cols[s * oh * ow:(s + m) * oh * ow]
            else:
                cols = shared_workspace.flat("cols", (m * oh * ow, kh * kw * c), x.dtype)
            im2col_nhwc(xp, self.kernel_size, self.stride, (oh, ow), cols)
            ys = np.matmul(cols, w_rows.T, out=y[s * oh * ow:(s + m) * oh * ow])
            if self.use_bias:
                ys += self.bias.data                # while the piece is in cache
        if grad:
            self._cache = ("fast", all_cols, (n,) + padded + (c,), (oh, ow), w_rows)
        return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    def _backward_fast(self, grad_out):
        """grad_out: (N, C_out, OH, OW) (free when it is NHWC memory, as ReLU passes it back)."""
        _, cols, padded_shape, (oh, ow), w_rows = self._cache
        n, hp, wp, c = padded_shape
        g = grad_out.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)   # (N*OH*OW, C_out)
        if self.weight.requires_grad:
            self.weight.grad += weight_from_rows(g.T @ cols, self.weight.data.shape)
        if self.use_bias and self.bias.requires_grad:
            self.bias.grad += np.ones(len(g), dtype=g.dtype) @ g    # column sums, by BLAS
        if not self.needs_input_grad:
            return None
        kh, kw = self.kernel_size
        t, b, l, r = self.pads
        if self.stride == (1, 1) and t < kh and l < kw:
            # full convolution of the output gradient with the flipped kernel (no scatter), in
            # pieces of `chunk` images whose columns stay in cache, as in the forward pass
            o = self.out_channels
            h, w = hp - t - b, wp - l - r
            g4 = g.reshape(n, oh, ow, o)
            wf_rows = flipped_weight_rows(self.weight.data)
            chunk = self._piece_size(n, h * w * kh * kw * o)
            gpad = self._ws.get("gpad", (chunk, h + kh - 1, w + kw - 1, o), g.dtype, zero=True)
            dx = np.empty((n * h * w, c), dtype=g.dtype)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                conv_input_grad_nhwc(g4[s:s + m], wf_rows, (h, w), self.pads, gpad[:m],
                                     shared_workspace.flat("dcols", (m * h * w, kh * kw * o), g.dtype),
                                     out=dx[s * h * w:(s + m) * h * w])
            return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        dcols = np.matmul(g, w_rows, out=shared_workspace.flat("dcols", cols.shape, cols.dtype))
        dxp = col2im_nhwc(dcols, self.kernel_size, self.stride, (oh, ow),
                          np.empty(padded_shape, dtype=cols.dtype))
        return dxp[:, t:hp - b, l:wp - r, :].transpose(0, 3, 1, 2)

    # fast path for 3x3 stride-1 layers: Winograd F(2x2, 3x3), channels-last, in pieces
    def _forward_winograd(self, x):
        """x: (N, C, H, W), any memory order -> (N, C_out, OH, OW), an NCHW view of NHWC memory.

        Pieces of ``chunk`` images are padded into a zero-bordered (2*TH+2, 2*TW+2) buffer and
        convolved by :func:`~scratchcnn.kernels.winograd.winograd_conv_piece`; with gradients
        each piece's transformed input ``V`` is kept (16/36 of im2col's columns) for backward."""
        n, c, h, w = x.shape
        t, b, l, r = self.pads
        o = self.out_channels
        oh, ow = h + t + b - 2, w + l + r - 2
        th, tw = tiles((oh, ow))
        tt = th * tw
        u = winograd_weight(self.weight.data)
        grad = is_grad_enabled()
        chunk = self._piece_size(n, 16 * tt * c)
        xh = x.transpose(0, 2, 3, 1)
        xp = self._ws.get("xpw", (chunk, 2 * th + 2, 2 * tw + 2, c), x.dtype, zero=True)
        y = np.empty((n, oh, ow, o), dtype=x.dtype)
        if grad:
            v_all = self._ws.get("v", (16 * n * tt * c,), x.dtype)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            pad_nhwc(xh[s:s + m], self.pads, xp[:m])       # the border stays zero
            v_out = _piece_of_v(v_all, s, m, tt, c) if grad else None
            winograd_conv_piece(xp[:m], u, y[s:s + m], shared_workspace, v_out=v_out,
                                bias=self.bias.data if self.use_bias else None)
        if grad:
            self._cache = ("winograd", v_all, chunk, (h, w), (oh, ow), x.flags.c_contiguous)
        return y.transpose(0, 3, 1, 2)

    def _backward_winograd(self, grad_out):
        """dW from the kept ``V`` and the tiled output gradient (``dU[k] = V[k]^T dM[k]``), and the
        input gradient as a Winograd "full" convolution of the output gradient, padded by
        ``2 - pad``, with the flipped, transposed kernel; both piece by piece."""
        _, v_all, chunk, (h, w), (oh, ow), nchw_input = self._cache
        o, c = self.out_channels, self.in_channels
        g = grad_out.transpose(0, 2, 3, 1)                 # (N, OH, OW, C_out) view
        n = g.shape[0]
        tt = math.prod(tiles((oh, ow)))
        if self.use_bias and self.bias.requires_grad:
            g2 = g.reshape(-1, o)                          # a view when g is NHWC memory
            self.bias.grad += np.ones(len(g2), dtype=g.dtype) @ g2          # column sums, by BLAS
        if self.weight.requires_grad:
            du = np.zeros((16, c, o), dtype=g.dtype)
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                du += winograd_weight_grad_piece(_piece_of_v(v_all, s, m, tt, c), g[s:s + m], shared_workspace)
            self.weight.grad += winograd_weight_grad(du, self.weight.data.shape)
        if not self.needs_input_grad:
            return None
        t, _, l, _ = self.pads
        th, tw = tiles((h, w))
        u_in = winograd_weight(flipped_transposed_weight(self.weight.data))     # (16, C_out, C)
        chunk_in = self._piece_size(n, 16 * th * tw * o)
        gp = self._ws.get("gpw", (chunk_in, 2 * th + 2, 2 * tw + 2, o), g.dtype, zero=True)
        # dx in the memory order the input had (NCHW after a one-channel convolution, say), so
        # that the layer below multiplies arrays of one memory order
        dx = np.empty((n, c, h, w) if nchw_input else (n, h, w, c), dtype=g.dtype)
        dx_nhwc = dx.transpose(0, 2, 3, 1) if nchw_input else dx
        for s in range(0, n, chunk_in):
            m = min(chunk_in, n - s)
            gp[:m, 2 - t:2 - t + oh, 2 - l:2 - l + ow] = g[s:s + m]      # the border stays zero
            winograd_conv_piece(gp[:m], u_in, dx_nhwc[s:s + m], shared_workspace)
        return dx if nchw_input else dx.transpose(0, 3, 1, 2)

    # fast path for one input channel (the first layer on gray images): NCHW throughout
    def _forward_one_channel(self, x):
        """x: (N, 1, H, W) -> (N, C_out, OH, OW), C-contiguous NCHW.

        ``y[n] = W2 @ colsT[n]`` with ``W2: (C_out, kh*kw)`` and ``colsT[n]: (kh*kw, OH*OW)``
        (see :func:`scratchcnn.kernels.im2col_one_channel`): one batched matrix product. The
        bias rides along as one more column of ``W2`` times a row of ones under ``colsT[n]``
        (``K = kh*kw + 1`` rows), so no separate pass adds it, and backward gets its gradient
        from the same product as the weight's."""
        n, _, h, w = x.shape
        t, b, l, r = self.pads
        kh, kw = self.kernel_size
        o = self.out_channels
        oh = conv_output_size(h, kh, self.stride[0], t, b)
        ow = conv_output_size(w, kw, self.stride[1], l, r)
        padded = (h + t + b, w + l + r)
        k = kh * kw + self.use_bias                        # rows of colsT: offsets (+ ones)
        w2 = self.weight.data.reshape(o, kh * kw)
        if self.use_bias:
            w2 = np.concatenate([w2, self.bias.data[:, None]], axis=1)     # (C_out, kh*kw + 1)
        grad = is_grad_enabled()
        chunk = self._piece_size(n, oh * ow * k)
        y = np.empty((n, o, oh * ow), dtype=x.dtype)
        if grad:
            all_cols = self._ws.get("cols1", (n, k, oh * ow), x.dtype)
        for s in range(0, n, chunk):
            xs = x[s:s + chunk, 0]
            m = xs.shape[0]
            if t or b or l or r:
                xp = self._ws.get("xp1", (chunk,) + padded, x.dtype, zero=True)[:m]
                xp[:, t:t + h, l:l + w] = xs      # the border stays zero
            else:
                xp = xs
            if grad:
                cols = all_cols[s:s + m]
            else:
                cols = shared_workspace.flat("cols", (m, k, oh * ow), x.dtype)
            im2col_one_channel(xp, self.kernel_size, self.stride, (oh, ow), cols[:, :kh * kw])
            if self.use_bias:
                cols[:, kh * kw] = 1
            np.matmul(w2, cols, out=y[s:s + m])
        if grad:
            self._cache = ("one_channel", all_cols, (n,) + padded, (oh, ow))
        return y.reshape(n, o, oh, ow)

    def _backward_one_channel(self, grad_out):
        """grad_out: (N, C_out, OH, OW). ``[dW | db] = sum_n g[n] @ colsT[n]^T`` (a batched
        product, then a sum over the batch: the row of ones under ``colsT`` makes its last column
        the sums of g over (N, OH, OW), the bias gradient), and, when needed,
        ``dcolsT[n] = W2^T @ g[n]`` added back onto the pixels by col2im."""
        _, cols, padded_shape, (oh, ow) = self._cache
        n = padded_shape[0]
        o = self.out_channels
        kk = self.kernel_size[0] * self.kernel_size[1]
        g = grad_out.reshape(n, o, oh * ow)
        need_w = self.weight.requires_grad
        need_b = self.use_bias and self.bias.requires_grad
        if need_w or need_b:
            dwb = np.matmul(g, cols.transpose(0, 2, 1)).sum(axis=0)       # (C_out, K)
            if need_w:
                self.weight.grad += dwb[:, :kk].reshape(self.weight.data.shape)
            if need_b:
                self.bias.grad += dwb[:, kk]
        if not self.needs_input_grad:
            return None
        dcols = np.matmul(self.weight.data.reshape(o, -1).T, g)          # (N, kh*kw, OH*OW)
        dxp = col2im_one_channel(dcols, self.kernel_size, self.stride, (oh, ow),
                                 np.empty(padded_shape, dtype=dcols.dtype))
        t, b, l, r = self.pads
        return dxp[:, None, t:padded_shape[1] - b, l:padded_shape[2] - r]

    def _clear_cache(self):
        self._cache = None
        self._ws.clear()
