"""Short model specs: ``"conv8x3-relu-maxpool2-flatten-dense10"``.

Tokens, separated by ``-`` (input sizes are inferred from the input shape):

=====================  =============================================================
``conv<O>x<K>``        Conv2D with O filters of KxK; suffixes, in this order, ``s<S>`` (stride),
                       ``d<D>`` (dilation), ``g<G>`` (groups), ``p<P>`` (padding) or ``same``:
                       ``conv32x3same``, ``conv16x5s2p2``, ``conv32x3d2same``, ``conv32x3g32p1``
``dwconv<K>``          depthwise Conv2D(C, C, K, groups=C), C the input channels; ``s<S>``,
                       ``p<P>`` or ``same`` as for conv: ``dwconv3same``, ``dwconv3s2p1``
``res<C>``             ResNet basic block to C channels, then ReLU (:func:`scratchcnn.nn.basic_block`),
                       optional ``s<S>`` (stride); a 1x1 projection shortcut exactly when the
                       stride or the channel count changes: ``res16``, ``res32s2``
``dense<N>``           Dense layer with N outputs (Flatten first for image inputs)
``maxpool<K>``         MaxPool2D(K), optional ``s<S>``: ``maxpool3s2``
``avgpool<K>``         AvgPool2D(K), optional ``s<S>``
``gap``                GlobalAvgPool2D
``bn``                 BatchNorm2D after a conv, BatchNorm1D after a dense layer
``ln``                 LayerNorm over the whole previous output (C, H, W) or (F,)
``gn<G>``              GroupNorm(G, C), C the input channels: ``gn8``
``dropout<P>``         Dropout(P), e.g. ``dropout0.3``
``relu`` ``leakyrelu`` ``sigmoid`` ``tanh`` ``softmax`` ``flatten``
=====================  =============================================================
"""
import math
import re

from ..errors import ConfigError, ShapeError
from ..model import Sequential
from ..nn.sizes import check_activations, check_parameters, config_parameters
from ..nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, GroupNorm,
                  LayerNorm, LeakyReLU, MaxPool2D, ReLU, Residual, Sigmoid, Softmax, Tanh, basic_block)

_CONV = re.compile(r"^conv(\d+)x(\d+)(?:s(\d+))?(?:d(\d+))?(?:g(\d+))?(?:p(\d+)|(same))?$")
_DWCONV = re.compile(r"^dwconv(\d+)(?:s(\d+))?(?:p(\d+)|(same))?$")
_RES = re.compile(r"^res(\d+)(?:s(\d+))?$")
_POOL = re.compile(r"^(max|avg)pool(\d+)(?:s(\d+))?$")
_DENSE = re.compile(r"^dense(\d+)$")
_DROP = re.compile(r"^dropout(0?\.\d+|0)$")
_GN = re.compile(r"^gn(\d+)$")
_SIMPLE = {"relu": ReLU, "leakyrelu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax,
           "flatten": Flatten, "gap": GlobalAvgPool2D}
HELP = ("conv<OUT>x<K>[s<S>][d<D>][g<G>][p<P>|same], dwconv<K>[s<S>][p<P>|same], res<C>[s<S>], dense<N>, "
        "maxpool<K>[s<S>], avgpool<K>[s<S>], gap, bn, ln, gn<G>, dropout<P>, relu, leakyrelu, sigmoid, tanh, "
        "softmax, flatten")


def is_spec(text):
    return isinstance(text, str) and ("-" in text or bool(_CONV.match(text) or _DENSE.match(text)))


def _error(spec, tokens, i, why):
    start = sum(len(t) + 1 for t in tokens[:i])
    pointer = " " * start + "^" * max(len(tokens[i]), 1)
    return ConfigError(f"bad model spec token {tokens[i]!r} (token {i + 1}): {why}\n  {spec}\n  {pointer}\n"
                       f"tokens: {HELP}")


#: a spec longer than this, a token longer than MAX_TOKEN or a number of more digits than
#: MAX_DIGITS is refused before it is parsed
MAX_SPEC = 4000
MAX_TOKEN = 40
MAX_DIGITS = 9


def build_from_spec(spec, input_shape):
    """Build a Sequential from a spec string for inputs of ``input_shape`` (C, H, W).

    Each layer's parameters are counted from the spec before it is built, and the layer outputs
    of one example added up, so a model that would not fit in memory is refused (naming the
    token) before any weight is allocated."""
    if not isinstance(spec, str):
        raise ConfigError(f"a model spec must be a string such as conv8x3-relu-flatten-dense10, got "
                          f"{type(spec).__name__}")
    if len(spec) > MAX_SPEC:
        raise ConfigError(f"model spec of {len(spec)} characters: at most {MAX_SPEC} are accepted")
    odd = re.search(r"[^a-z0-9.\-]", spec.strip().lower())
    if odd:
        raise ConfigError(f"model spec {spec[:60]!r} holds {odd.group()!r}: a spec is letters, digits, '.' and "
                          f"'-' only, e.g. conv8x3-relu-maxpool2-flatten-dense10 (tokens: {HELP})")
    tokens = spec.strip().lower().split("-")
    try:
        input_shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a tuple of sizes, got {input_shape!r}") from None
    model = Sequential(input_shape=input_shape)
    shape = tuple(input_shape)
    params, elements = 0, math.prod(shape)
    for i, tok in enumerate(tokens):
        if len(tok) > MAX_TOKEN or any(len(d) > MAX_DIGITS for d in re.findall(r"\d+", tok)):
            raise _error(spec, tokens, i, f"too long (at most {MAX_TOKEN} characters and numbers of at most "
                                          f"{MAX_DIGITS} digits)")
        try:
            made = _layer(tok, shape)
            if made is None:
                raise _error(spec, tokens, i, "unknown token")
            params += sum(_count(cls, args, kwargs) for cls, args, kwargs in made)
            check_parameters(f"the model up to token {i + 1} ({tok!r})", params)
            layers = [cls(*args, **kwargs) for cls, args, kwargs in made]
        except ConfigError as exc:
            if str(exc).startswith("bad model spec token"):
                raise
            raise _error(spec, tokens, i, str(exc)) from None
        for layer in layers:
            try:
                elements += _elements(layer, shape)
                shape = tuple(layer.output_shape(shape))
            except ShapeError as exc:
                raise _error(spec, tokens, i, f"does not fit its input {shape}: {exc}") from None
            try:
                check_activations(f"the model up to token {i + 1} ({tok!r})", elements)
            except ConfigError as exc:
                raise _error(spec, tokens, i, str(exc)) from None
            model.add(layer)
    if not tokens or not len(model):
        raise ConfigError(f"empty model spec {spec!r}")
    model.build(input_shape)
    return model


def _count(cls, args, kwargs):
    """Parameters and buffer elements of the layer ``cls(*args, **kwargs)``, counted before it is built."""
    if cls is Conv2D:                 # groups: each filter sees in_channels / groups channels
        cin, cout, k = args
        return cout * max(cin // max(kwargs.get("groups", 1), 1), 1) * k * k + cout
    if cls is LayerNorm:
        return 2 * math.prod(args[0])
    if cls is GroupNorm:
        return 2 * args[1]
    if cls is basic_block:            # its layers, as the block builds them
        (cin, cout), stride = args, kwargs["stride"]
        parts = [(Conv2D, (cin, cout, 3), {}), (BatchNorm2D, (cout,), {}), (Conv2D, (cout, cout, 3), {}),
                 (BatchNorm2D, (cout,), {})]
        if stride != 1 or cin != cout:
            parts += [(Conv2D, (cin, cout, 1), {}), (BatchNorm2D, (cout,), {})]
        return sum(_count(*p) for p in parts)
    counts = config_parameters(cls.__name__, _config_of(cls, args, kwargs))
    return sum(counts) if counts else 0


def _elements(layer, shape):
    """Values per example of ``layer``'s output for an input of ``shape``, and of the outputs of the
    layers inside it (a Residual's branches and their sum)."""
    out = math.prod(layer.output_shape(shape))
    if isinstance(layer, Residual):
        branches = [layer.body] + ([] if layer.shortcut is None else [layer.shortcut])
        for branch in branches:
            s = shape
            for sub in (branch.layers if hasattr(branch, "layers") else [branch]):
                out += _elements(sub, s)
                s = tuple(sub.output_shape(s))
    return out


def _config_of(cls, args, kwargs):
    """The config dict the layer would report, for counting its parameters before it is built."""
    if cls is Conv2D:
        return {"in_channels": args[0], "out_channels": args[1], "kernel_size": args[2], **kwargs}
    if cls is Dense:
        return {"in_features": args[0], "out_features": args[1]}
    if cls in (BatchNorm1D, BatchNorm2D):
        return {"num_features": args[0]}
    return {}


def _image(shape, what):
    if len(shape) != 3:
        raise ConfigError(f"{what} needs (C, H, W) input, got {shape}")
    return shape[0]


def _layer(tok, shape):
    """``[(class, args, kwargs), ...]``: the layers a token stands for (None: an unknown token)."""
    m = _CONV.match(tok)
    if m:
        cin = _image(shape, "a convolution")
        out, k, s, d, g, p, same = m.groups()
        kwargs = {"stride": int(s or 1), "padding": "same" if same else int(p or 0)}
        if d:
            kwargs["dilation"] = int(d)
        if g:
            kwargs["groups"] = int(g)
        return [(Conv2D, (cin, int(out), int(k)), kwargs)]
    m = _DWCONV.match(tok)
    if m:
        c = _image(shape, "a depthwise convolution")
        k, s, p, same = m.groups()
        return [(Conv2D, (c, c, int(k)), {"stride": int(s or 1), "padding": "same" if same else int(p or 0),
                                          "groups": c})]
    m = _RES.match(tok)
    if m:
        cin = _image(shape, "a residual block")
        return [(basic_block, (cin, int(m.group(1))), {"stride": int(m.group(2) or 1)}), (ReLU, (), {})]
    m = _POOL.match(tok)
    if m:
        kind, k, s = m.groups()
        cls = MaxPool2D if kind == "max" else AvgPool2D
        return [(cls, (int(k),), {"stride": int(s) if s else None})]
    m = _DENSE.match(tok)
    if m:
        if len(shape) != 1:
            raise ConfigError(f"dense needs a flat input; put 'flatten' before it (input is {shape})")
        return [(Dense, (shape[0], int(m.group(1))), {})]
    m = _DROP.match(tok)
    if m:
        return [(Dropout, (float(m.group(1)),), {})]
    if tok == "bn":
        return [((BatchNorm2D if len(shape) == 3 else BatchNorm1D), (shape[0],), {})]
    if tok == "ln":
        return [(LayerNorm, (tuple(shape),), {})]
    m = _GN.match(tok)
    if m:
        if len(shape) < 2:
            raise ConfigError(f"gn needs (C, H, W) input, got {shape}")
        return [(GroupNorm, (int(m.group(1)), shape[0]), {})]
    if tok in _SIMPLE:
        return [(_SIMPLE[tok], (), {})]
    return None
