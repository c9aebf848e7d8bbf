"""How much memory a model needs, worked out from its layers' configs before anything is allocated.

A layer's constructor allocates (and initialises) its weights, and a forward pass allocates every
layer's output, so a model that does not fit must be refused *before* either happens: from a
spec string, a preset or a model file, a ``conv100000x3`` or a 100000-wide kernel gets a
:class:`~scratchcnn.errors.ConfigError` saying how many GiB it would need, not a MemoryError (or
the operating system's out-of-memory killer) half-way through.

- :func:`config_parameters` counts the parameters (and buffer elements) a layer config implies;
- :func:`config_output_shape` gives the output shape of the known layer types from their configs;
- :func:`check_parameters` / :func:`check_activations` / :func:`check_model_size` compare the
  bytes with :func:`memory_limit`: ``$SCRATCHCNN_MEMORY_LIMIT`` (bytes, or with a K/M/G/T
  suffix) if set, else 80% of the memory the operating system says is available.

The estimates count what training holds: each parameter with its gradient and two optimizer
buffers (:data:`PARAMETER_COPIES`), plus the float64 draw of initialisation; each activation with
its cache and its gradient (:data:`ACTIVATION_COPIES`).
"""
import math
import os
import re

from ..errors import ConfigError

#: bytes held per parameter element, in units of the dtype: weight, gradient, two Adam moments
PARAMETER_COPIES = 4
#: bytes held per activation element in training: the output, its cache, its gradient
ACTIVATION_COPIES = 3
#: used when the operating system does not say how much memory there is
FALLBACK_LIMIT = 8 << 30
#: the share of the available memory a model may take (the rest: data, the interpreter, others)
AVAILABLE_FRACTION = 0.8


def memory_limit():
    """Bytes a model may use: ``$SCRATCHCNN_MEMORY_LIMIT``, else :data:`AVAILABLE_FRACTION` of the
    available memory."""
    text = os.environ.get("SCRATCHCNN_MEMORY_LIMIT")
    if text:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
        if m is None:
            raise ConfigError(f"SCRATCHCNN_MEMORY_LIMIT must be a number of bytes (e.g. 4G), got {text!r}")
        return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * AVAILABLE_FRACTION)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * AVAILABLE_FRACTION)
    except (AttributeError, ValueError, OSError):
        return FALLBACK_LIMIT


def format_bytes(n):
    """``1536 -> '1.5 KiB'``; ``3 * 2**30 -> '3.0 GiB'``."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def _int(v):
    """A non-negative int from an untrusted config value, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__index__"):
        return None
    try:
        return int(v) if int(v) >= 0 else None
    except (TypeError, ValueError, OverflowError):
        return None


def _pair(v):
    a, b = (_int(v[0]), _int(v[1])) if isinstance(v, (list, tuple)) and len(v) == 2 else (_int(v), _int(v))
    return None if a is None or b is None or isinstance(v, (list, tuple)) and len(v) != 2 else (a, b)


def config_parameters(name, config):
    """``(parameters, buffer elements)`` a layer of class ``name`` with ``config`` holds; (0, 0)
    for a layer type without weights (or one not known here), None for an unreadable config."""
    if not isinstance(config, dict):
        return None
    if name == "Conv2D":
        cin, cout, k = (_int(config.get("in_channels")), _int(config.get("out_channels")), _pair(config.get("kernel_size")))
        if None in (cin, cout, k):
            return None
        groups = _int(config.get("groups", 1)) or 1       # weight (C_out, C_in/groups, kh, kw); unreadable: 1
        return cin // groups * cout * k[0] * k[1] + (cout if config.get("bias", True) else 0), 0
    if name == "Dense":
        fin, fout = _int(config.get("in_features")), _int(config.get("out_features"))
        if None in (fin, fout):
            return None
        return fin * fout + (fout if config.get("bias", True) else 0), 0
    if name in ("BatchNorm1D", "BatchNorm2D"):
        nf = _int(config.get("num_features"))
        return None if nf is None else ((2 * nf if config.get("affine", True) else 0), 2 * nf + 1)
    if name == "LayerNorm":
        dims = config.get("normalized_shape")
        sizes = [_int(d) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        return None if None in sizes else ((2 * math.prod(sizes) if config.get("elementwise_affine", True) else 0), 0)
    if name == "GroupNorm":
        c = _int(config.get("num_channels"))
        return None if c is None else ((2 * c if config.get("affine", True) else 0), 0)
    if name in ("Sequential", "Residual"):
        counts = [config_parameters(sub.get("class"), sub.get("config", {})) if isinstance(sub, dict) else None
                  for sub in _parts(name, config)]
        return None if None in counts else (sum(c[0] for c in counts), sum(c[1] for c in counts))
    return 0, 0


def _parts(name, config):
    """The layer configs inside a container config: a Sequential's layers in order, a Residual's
    body and shortcut (None for the identity, left out)."""
    if name == "Sequential":
        return list(config.get("layers") or [])
    return [b for b in (config.get("body"), config.get("shortcut")) if b is not None]


def config_output_shape(name, config, shape):
    """The output shape (no batch axis) of a known layer type for ``shape``, from its config;
    None when it cannot be told (unknown type, unreadable config, or the layer does not fit)."""
    if not isinstance(config, dict):
        return None
    shape = tuple(shape)
    if name in ("Conv2D", "MaxPool2D", "AvgPool2D"):
        if len(shape) != 3:
            return None
        k = _pair(config.get("kernel_size"))
        s = _pair(config.get("stride") or (1 if name == "Conv2D" else config.get("kernel_size")))   # pools: k
        d, pad = _pair(config.get("dilation", 1)) if name == "Conv2D" else (1, 1), config.get("padding", 0)
        if k is None or s is None or d is None or min(k) < 1 or min(s) < 1 or min(d) < 1:
            return None
        k = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)      # the span of a dilated kernel
        if isinstance(pad, str):
            p = ((k[0] - 1), (k[1] - 1)) if pad.lower() == "same" else (0, 0)
        else:
            p = _pair(pad)
            if p is None:
                return None
            p = (2 * p[0], 2 * p[1])
        c = _int(config.get("out_channels")) if name == "Conv2D" else shape[0]
        oh, ow = (shape[1] + p[0] - k[0]) // s[0] + 1, (shape[2] + p[1] - k[1]) // s[1] + 1
        return None if c is None or oh < 1 or ow < 1 else (c, oh, ow)
    if name == "Dense":
        out = _int(config.get("out_features"))
        return None if out is None else (out,)
    if name == "Flatten":
        return (math.prod(shape),)
    if name == "GlobalAvgPool2D":
        return (shape[0],) if len(shape) == 3 else None
    if name in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "BatchNorm1D", "BatchNorm2D",
                "LayerNorm", "GroupNorm"):
        return shape
    if name in ("Sequential", "Residual"):                 # a chain; a Residual gives its body's shape
        parts = _parts(name, config)[:None if name == "Sequential" else 1]
        for sub in parts:
            if not isinstance(sub, dict) or shape is None:
                return None
            shape = config_output_shape(sub.get("class"), sub.get("config", {}), shape)
        return shape
    return None


def _inside(name, config, shape):
    """Values per example a container config holds besides its output: a Sequential's inner
    outputs, a Residual's two branch outputs (and what is inside them); 0 for any other layer."""
    if name not in ("Sequential", "Residual") or not isinstance(config, dict):
        return 0
    if name == "Residual":
        return sum(activation_elements([b], shape) - math.prod(shape) for b in _parts(name, config))
    out = config_output_shape(name, config, shape)
    return activation_elements(_parts(name, config), shape) - math.prod(shape) - (math.prod(out) if out else 0)


def _limit_text(limit):
    source = "SCRATCHCNN_MEMORY_LIMIT" if os.environ.get("SCRATCHCNN_MEMORY_LIMIT") else "80% of the available memory"
    return f"{format_bytes(limit)} ({source})"


def check_parameters(what, count, itemsize=4, limit=None):
    """Raise ConfigError if ``count`` parameters of ``itemsize`` bytes (with their gradients,
    optimizer state and the float64 draw of initialisation) would not fit in memory."""
    limit = memory_limit() if limit is None else limit
    need = count * itemsize * PARAMETER_COPIES + count * 8
    if need > limit:
        raise ConfigError(f"{what} would hold {count:,} parameters and need about {format_bytes(need)} to "
                          f"train, more than the {_limit_text(limit)}: make it smaller")
    return need


def check_activations(what, elements, batch_size=1, itemsize=4, limit=None):
    """Raise ConfigError if ``elements`` activation values per example, for ``batch_size``
    examples, would not fit in memory."""
    limit = memory_limit() if limit is None else limit
    need = elements * batch_size * itemsize * ACTIVATION_COPIES
    if need > limit:
        raise ConfigError(f"{what} would need about {format_bytes(need)} for the layer outputs of a batch of "
                          f"{batch_size} ({elements:,} values per example), more than the {_limit_text(limit)}: "
                          f"make the model or the batch smaller")
    return need


def check_model_size(layers, input_shape=None, batch_size=1, itemsize=4, what="the model", limit=None):
    """Check that a model fits in memory before it is built (or run).

    ``layers``: ``[{"class": name, "config": {...}}, ...]`` as a model file or
    ``Sequential.config()["layers"]`` lists them, or built Modules. Parameters come from the
    configs; with ``input_shape`` (no batch axis) the outputs of every layer, for a batch of
    ``batch_size``, are added. Returns the estimated bytes; raises ConfigError when too large."""
    limit = memory_limit() if limit is None else limit
    params = 0
    for layer in layers:
        if isinstance(layer, dict):
            counts = config_parameters(layer.get("class"), layer.get("config", {}))
            params += counts[0] + counts[1] if counts else 0
        else:
            params += sum(p.size for p in layer.parameters())
    need = check_parameters(what, params, itemsize, limit)
    if input_shape is not None:
        elements = activation_elements(layers, input_shape)
        need += check_activations(what, elements, batch_size, itemsize, limit - need)
    return need


def activation_elements(layers, input_shape):
    """Values per example of the input and of every layer's output, as far as the shapes can be
    told (``layers``: config dicts or Modules, as for :func:`check_model_size`)."""
    shape = tuple(input_shape)
    elements = math.prod(shape)
    for layer in layers:
        if type(layer).__name__ in ("Sequential", "Residual"):     # a built container: count inside it
            layer = {"class": type(layer).__name__, "config": layer.config()}
        if isinstance(layer, dict):
            name, config = layer.get("class"), layer.get("config", {})
            elements += _inside(name, config, shape)
            shape = config_output_shape(name, config, shape)
        else:
            try:
                shape = tuple(layer.output_shape(shape))
            except Exception:            # a layer that does not fit: its call will say so
                shape = None
        if shape is None:
            break
        elements += math.prod(shape)
    return elements
