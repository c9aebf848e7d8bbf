"""Short model specs: ``"conv8x3-relu-maxpool2-flatten-dense10"``.

Tokens, separated by ``-`` (input sizes are inferred from the input shape):

=====================  =============================================================
``conv<O>x<K>``        Conv2D with O filters of KxK; suffixes ``s<S>`` (stride),
                       ``p<P>`` (padding) or ``same``: ``conv32x3same``, ``conv16x5s2p2``
``dense<N>``           Dense layer with N outputs (Flatten first for image inputs)
``maxpool<K>``         MaxPool2D(K), optional ``s<S>``: ``maxpool3s2``
``avgpool<K>``         AvgPool2D(K), optional ``s<S>``
``gap``                GlobalAvgPool2D
``bn``                 BatchNorm2D after a conv, BatchNorm1D after a dense layer
``dropout<P>``         Dropout(P), e.g. ``dropout0.3``
``relu`` ``leakyrelu`` ``sigmoid`` ``tanh`` ``softmax`` ``flatten``
=====================  =============================================================
"""
import re

from ..errors import ConfigError, ShapeError
from ..model import Sequential
from ..nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                 LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)

_CONV = re.compile(r"^conv(\d+)x(\d+)(?:s(\d+))?(?:p(\d+)|(same))?$")
_POOL = re.compile(r"^(max|avg)pool(\d+)(?:s(\d+))?$")
_DENSE = re.compile(r"^dense(\d+)$")
_DROP = re.compile(r"^dropout(0?\.\d+|0)$")
_SIMPLE = {"relu": ReLU, "leakyrelu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax,
           "flatten": Flatten, "gap": GlobalAvgPool2D}
HELP = ("conv<OUT>x<K>[s<S>][p<P>|same], dense<N>, maxpool<K>[s<S>], avgpool<K>[s<S>], gap, bn, "
        "dropout<P>, relu, leakyrelu, sigmoid, tanh, softmax, flatten")


def is_spec(text):
    return "-" in text or bool(_CONV.match(text) or _DENSE.match(text))


def _error(spec, tokens, i, why):
    start = sum(len(t) + 1 for t in tokens[:i])
    pointer = " " * start + "^" * max(len(tokens[i]), 1)
    return ConfigError(f"bad model spec token {tokens[i]!r} (token {i + 1}): {why}\n  {spec}\n  {pointer}\n"
                       f"tokens: {HELP}")


def build_from_spec(spec, input_shape):
    """Build a Sequential from a spec string for inputs of ``input_shape`` (C, H, W)."""
    tokens = spec.strip().lower().split("-")
    model = Sequential(input_shape=input_shape)
    shape = tuple(input_shape)
    for i, tok in enumerate(tokens):
        try:
            layer = _layer(tok, shape)
        except ConfigError as exc:
            raise _error(spec, tokens, i, str(exc)) from None
        if layer is None:
            raise _error(spec, tokens, i, "unknown token")
        try:
            shape = tuple(layer.output_shape(shape))
        except ShapeError as exc:
            raise _error(spec, tokens, i, f"does not fit its input {shape}: {exc}") from None
        model.add(layer)
    if not tokens or not len(model):
        raise ConfigError(f"empty model spec {spec!r}")
    model.build(input_shape)
    return model


def _layer(tok, shape):
    m = _CONV.match(tok)
    if m:
        if len(shape) != 3:
            raise ConfigError(f"a convolution needs (C, H, W) input, got {shape}")
        out, k, s, p, same = m.groups()
        padding = "same" if same else int(p or 0)
        return Conv2D(shape[0], int(out), int(k), stride=int(s or 1), padding=padding)
    m = _POOL.match(tok)
    if m:
        kind, k, s = m.groups()
        cls = MaxPool2D if kind == "max" else AvgPool2D
        return cls(int(k), stride=int(s) if s else None)
    m = _DENSE.match(tok)
    if m:
        if len(shape) != 1:
            raise ConfigError(f"dense needs a flat input; put 'flatten' before it (input is {shape})")
        return Dense(shape[0], int(m.group(1)))
    m = _DROP.match(tok)
    if m:
        return Dropout(float(m.group(1)))
    if tok == "bn":
        return BatchNorm2D(shape[0]) if len(shape) == 3 else BatchNorm1D(shape[0])
    if tok in _SIMPLE:
        return _SIMPLE[tok]()
    return None
