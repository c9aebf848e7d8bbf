"""Fully connected layer and Flatten."""
import numpy as np

from ..errors import ShapeError
from ..kernels import dense_blocks, textbook_enabled
from .checks import flag, float_dtype, positive_int, weights_fit
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


class Dense(Module):
    """``Dense(in_features, out_features, bias=True, init="he")``, PyTorch's ``Linear``: a fully connected
    layer. ``forward`` / ``backward`` are its textbook path (one matrix product each); wide layers (2,048
    inputs or more) run backward's products with the fast kernel ``dense_blocks`` (the same products, cut).

    Shape: x: (N, in_features) float32 -> y: (N, out_features) float32 (float64 after ``.to(np.float64)``);
        weight W: (out_features, in_features), bias b: (out_features,), PyTorch's names and shapes.
    Forward: ``y = x @ W^T + b``, i.e. ``y[n, o] = sum_i x[n, i] * W[o, i] + b[o]``.
    Backward: y is linear in each of W, b and x: ``dW = dy^T @ x`` (the kept input), ``db = sum_n dy``,
        ``dx = dy @ W`` (skipped for a first layer, ``needs_input_grad = False``).
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> layer = sc.Dense(4, 3)
        >>> y = layer(np.ones((2, 4))); y.shape, y.dtype
        ((2, 3), dtype('float32'))
        >>> layer.backward(np.ones_like(y)).shape, layer.weight.grad.shape
        ((2, 4), (3, 4))

    See also: the loop :func:`scratchcnn.nn.loops.dense_forward_backward`; :mod:`scratchcnn.nn.init` (the
        ``init`` schemes); :class:`Flatten`.
    """

    def __init__(self, in_features, out_features, bias=True, init="he", dtype=np.float32):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            positive_int("Dense", name, v)
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype, bias = float_dtype("Dense", dtype), flag("Dense", "bias", bias)
        weights_fit(f"Dense({in_features}, {out_features})", out_features * (in_features + bias), dtype)
        self.init = init
        self.weight = Parameter(init_weight((out_features, in_features), in_features, out_features,
                                            init, dtype))
        self.use_bias = bool(bias)
        if bias:
            self.bias = Parameter(init_bias((out_features,), in_features, init, dtype))
        self._x = None        # the forward input, for dW

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.use_bias, "init": self.init}

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + ("" if self.use_bias else ", bias=False")

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            hint = " (add a Flatten layer before it?)" if len(input_shape) > 1 else ""
            raise ShapeError(f"{self!r} expects input (N, {self.in_features}), "
                             f"got (N, {', '.join(map(str, input_shape))}){hint}")
        return (self.out_features,)

    def macs(self, input_shape):
        return self.in_features * self.out_features

    def _check_input(self, x):
        if x.ndim != 2:
            self.output_shape(x.shape[1:]) if x.ndim > 0 else None
            raise ShapeError(f"{self!r} expects input (N, {self.in_features}), got shape {x.shape}")
        self.output_shape(x.shape[1:])

    def forward(self, x):
        if is_grad_enabled():
            self._x = x
        y = x @ self.weight.data.T
        if self.use_bias:
            y += self.bias.data
        return y

    def backward(self, grad_out):
        wide = not textbook_enabled() and dense_blocks.applies(self._x, self.weight.data)   # the fast kernel
        if self.weight.requires_grad:
            self.weight.grad += dense_blocks.weight_grad(grad_out, self._x) if wide else grad_out.T @ self._x
        if self.use_bias and self.bias.requires_grad:
            self.bias.grad += grad_out.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return dense_blocks.input_grad(grad_out, self.weight.data) if wide else grad_out @ self.weight.data

    def _clear_cache(self):
        self._x = None


class Flatten(Module):
    """``Flatten()``: each example's features as one vector, between the convolutions and a Dense layer.

    Shape: x: (N, d1, d2, ...) float32 -> y: (N, d1*d2*...) float32 (a float64 x stays float64).
    Forward: ``y = x.reshape(N, d1*d2*...)``, row-major as PyTorch's ``flatten`` (a view when it can be).
    Backward: a reshape moves no value: ``dx = dy.reshape(x.shape)``.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> sc.Flatten()(np.zeros((2, 3, 4, 4))).shape
        (2, 48)

    See also: no loop (a reshape); :class:`Dense`, :class:`scratchcnn.nn.GlobalAvgPool2D`.
    """

    def __init__(self):
        super().__init__()
        self._shape = None    # the forward input's shape

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def _check_input(self, x):
        if x.ndim < 2:
            raise ShapeError(f"Flatten expects input (N, ...), got shape {x.shape}")

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))   # (no -1: N may be 0)

    def backward(self, grad_out):
        return grad_out.reshape(self._shape)
