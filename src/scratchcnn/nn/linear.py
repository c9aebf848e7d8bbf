"""Fully connected layer and Flatten."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .init import init_bias, init_weight
from .module import Module, Parameter, is_grad_enabled


class Dense(Module):
    """``Dense(in_features, out_features, bias=True)`` (PyTorch's ``Linear``).

    x: (N, in_features) -> y: (N, out_features), ``y = x @ W^T + b`` with
    weight W: (out_features, in_features), bias b: (out_features,).
    Backward: ``dW = dy^T @ x``, ``db = sum_n dy``, ``dx = dy @ W``.
    """

    def __init__(self, in_features, out_features, bias=True, init="he", dtype=np.float32):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"Dense: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.init = init
        self.weight = Parameter(init_weight((out_features, in_features), in_features, out_features,
                                            init, dtype))
        self.use_bias = bool(bias)
        if bias:
            self.bias = Parameter(init_bias((out_features,), in_features, init, dtype))
        self._x = None

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
        if self.weight.requires_grad:
            self.weight.grad += grad_out.T @ self._x
        if self.use_bias and self.bias.requires_grad:
            self.bias.grad += grad_out.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return grad_out @ self.weight.data

    def _clear_cache(self):
        self._x = None


class Flatten(Module):
    """x: (N, d1, d2, ...) -> (N, d1*d2*...). Backward reshapes the gradient back."""

    def __init__(self):
        super().__init__()
        self._shape = None

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
