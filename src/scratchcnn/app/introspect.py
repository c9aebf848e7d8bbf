"""Look inside a trained Sequential model: intermediate activations and first-layer filters.

    >>> acts = activations(model, x_test[:1])            # every conv / pooling / BatchNorm2D / residual output
    >>> for index, name, a in acts:
    ...     print(index, name, a.shape)                   # e.g. 0 Conv2D (1, 8, 28, 28)
    >>> w = first_conv_filters(model)                     # (O, C, kh, kw)

Layers inside a container (a :class:`~scratchcnn.nn.Residual` block, a nested Sequential) are named
by their state_dict prefix, ``"3.body.0"`` (:func:`named_layers`); ``activations`` returns their
outputs too when asked for by that name or with ``layers="nested"``.
"""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..nn import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D, Residual, Sequential, no_grad

#: Layer types whose outputs ``activations`` returns by default (all give (N, C, H, W) maps; a
#: Residual block's output where it is (N, C, H, W)).
FEATURE_MAP_LAYERS = (Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D, Residual)


def _check_model(model, where):
    if not isinstance(model, Sequential):
        raise ConfigError(f"{where}: expected a Sequential model, got {type(model).__name__}")


def named_layers(model):
    """Every layer of ``model``, nested ones included, in forward order as ``(name, layer, depth)``:
    ``("3", Residual, 0)``, ``("3.body", Sequential, 1)``, ``("3.body.0", Conv2D, 2)``, ... (a
    container before its layers; the names are the state_dict prefixes)."""
    _check_model(model, "named_layers")
    out = []

    def walk(name, layer, depth):
        out.append((name, layer, depth))
        for child, sub in layer.named_children():
            walk(f"{name}.{child}", sub, depth + 1)

    for i, layer in enumerate(model.layers):
        walk(str(i), layer, 0)
    return out


def _select(model, layers):
    """The requested layers (see :func:`activations`): top-level indices (ints) and nested names
    (strings such as ``"3.body.0"``), in no particular order."""
    n = len(model)
    if layers is None:
        return {i for i, layer in enumerate(model.layers) if isinstance(layer, FEATURE_MAP_LAYERS)}
    if isinstance(layers, str) and layers == "all":
        return set(range(n))
    if isinstance(layers, str) and layers == "nested":
        return {int(name) if depth == 0 else name for name, _, depth in named_layers(model)}
    if isinstance(layers, (int, np.integer, str, type)):
        layers = [layers]
    chosen = set()
    names = None
    for item in layers:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n <= item < n:
                raise ConfigError(f"activations: layer index {item} out of range for a model of {n} layers")
            chosen.add(int(item) % n)
        elif isinstance(item, str) and item.split(".")[0].isdigit():        # a layer's name, "3.body.0"
            names = names if names is not None else {name for name, _, _ in named_layers(model)}
            if item not in names:
                raise ConfigError(f"activations: the model has no layer named {item!r} (layers inside a "
                                  f"block are named like '3.body.0'; see named_layers)")
            chosen.add(int(item) if item.isdigit() else item)
        elif isinstance(item, (str, type)):
            name = item if isinstance(item, str) else item.__name__
            found = [i for i, layer in enumerate(model.layers) if type(layer).__name__ == name]
            if not found:
                raise ConfigError(f"activations: the model has no {name} layer")
            chosen.update(found)
        else:
            raise ConfigError(f"activations: layers must be indices, layer names ('3.body.0'), layer type "
                              f"names or classes, got {item!r}")
    return chosen


def _run(layer, h, name, keep, inside, out):
    """``layer(h)``; the outputs of the layers named in ``keep`` appended to ``out`` as they are made.
    A container holding one of them (its name in ``inside``) is run layer by layer, as its forward
    runs them (a Residual: ``body(h) + shortcut(h)``)."""
    if name in inside and isinstance(layer, Residual):
        y = _run(layer.body, h, name + ".body", keep, inside, out)
        y = y + (h if layer.shortcut is None else _run(layer.shortcut, h, name + ".shortcut", keep, inside, out))
    elif name in inside and isinstance(layer, Sequential):
        y = h
        for child, sub in layer.named_children():
            y = _run(sub, y, f"{name}.{child}", keep, inside, out)
    else:
        y = layer(h)
    if name in keep:
        out.append((int(name) if name.isdigit() else name, type(layer).__name__, y))
    return y


def activations(model, x, layers=None):
    """Outputs of chosen layers of ``model`` for the input ``x``, from one forward pass.

    x: (N, *model.input_shape), e.g. (N, C, H, W) float32 (a single example needs its
    batch axis: ``x[None]``).
    layers: None (default) for every Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D layer and Residual
    block (those whose outputs are (N, C, H, W) feature maps); ``"all"`` (the model's own layers);
    ``"nested"`` (every layer, those inside blocks too); or a list of layer indices (negative ones
    count from the end), layer names (``"3.body.0"``, see :func:`named_layers`) and/or layer type
    names or classes (``[0, "MaxPool2D", "3.body.1"]``; a type matches the model's own layers).

    Returns a list of ``(index, layer_name, array)`` in the order the outputs are computed (a
    block's layers before the block), where ``index`` is the layer's index in the model (an int)
    or, for a layer inside a block, its name (``"3.body.0"``); ``layer_name`` is the layer's type
    name and ``array`` that layer's output, e.g. (N, C_out, OH, OW). The model runs layer by layer
    in eval mode (BatchNorm uses running statistics, Dropout is off) under
    :func:`scratchcnn.nn.no_grad`, stopping after the last chosen layer; its training / eval mode
    is restored afterwards.
    """
    _check_model(model, "activations")
    wanted = _select(model, layers)
    if not wanted:
        return []
    keep = {str(w) for w in wanted}
    inside = {".".join(w.split(".")[:k]) for w in keep for k in range(1, w.count(".") + 1)}
    last = max(int(w.split(".")[0]) for w in keep)
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            h = model._prepare_input(x)          # dtype conversion and the model's shape check
            for i, layer in enumerate(model.layers[:last + 1]):
                try:
                    h = _run(layer, h, str(i), keep, inside, out)
                except ShapeError as exc:
                    raise ShapeError(f"layer {i}: {exc}") from None
    finally:
        model.train(was_training)
    if layers is None:                           # a block of Dense layers gives no feature maps
        out = [(i, name, a) for i, name, a in out if name != "Residual" or a.ndim == 4]
    return out


def first_conv_filters(model):
    """The weights of the model's first Conv2D layer, a copy: (O, C, kh, kw) (PyTorch's layout:
    output channels, input channels, kernel height, kernel width), or None when the model
    has no Conv2D layer."""
    _check_model(model, "first_conv_filters")
    for _, layer, _ in named_layers(model):          # the first in forward order, inside a block too
        if isinstance(layer, Conv2D):
            return layer.weight.data.copy()
    return None


__all__ = ["FEATURE_MAP_LAYERS", "activations", "first_conv_filters", "named_layers"]
