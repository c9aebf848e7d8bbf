"""Look inside a trained Sequential model: intermediate activations and first-layer filters.

    >>> acts = activations(model, x_test[:1])            # every conv / pooling / BatchNorm2D output
    >>> for index, name, a in acts:
    ...     print(index, name, a.shape)                   # e.g. 0 Conv2D (1, 8, 28, 28)
    >>> w = first_conv_filters(model)                     # (O, C, kh, kw)
"""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..nn import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D, Sequential, no_grad

#: Layer types whose outputs ``activations`` returns by default (all give (N, C, H, W) maps).
FEATURE_MAP_LAYERS = (Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D)


def _check_model(model, where):
    if not isinstance(model, Sequential):
        raise ConfigError(f"{where}: expected a Sequential model, got {type(model).__name__}")


def _select(model, layers):
    """The sorted layer indices requested by ``layers`` (see :func:`activations`)."""
    n = len(model)
    if layers is None:
        return [i for i, layer in enumerate(model.layers) if isinstance(layer, FEATURE_MAP_LAYERS)]
    if isinstance(layers, str) and layers == "all":
        return list(range(n))
    if isinstance(layers, (int, np.integer, str, type)):
        layers = [layers]
    chosen = set()
    for item in layers:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n <= item < n:
                raise ConfigError(f"activations: layer index {item} out of range for a model of {n} layers")
            chosen.add(int(item) % n)
        elif isinstance(item, (str, type)):
            name = item if isinstance(item, str) else item.__name__
            found = [i for i, layer in enumerate(model.layers) if type(layer).__name__ == name]
            if not found:
                raise ConfigError(f"activations: the model has no {name} layer")
            chosen.update(found)
        else:
            raise ConfigError(f"activations: layers must be indices, layer type names or classes, "
                              f"got {item!r}")
    return sorted(chosen)


def activations(model, x, layers=None):
    """Outputs of chosen layers of ``model`` for the input ``x``, from one forward pass.

    x: (N, *model.input_shape), e.g. (N, C, H, W) float32 (a single example needs its
    batch axis: ``x[None]``).
    layers: None (default) for every Conv2D, MaxPool2D, AvgPool2D and BatchNorm2D layer
    (those whose outputs are (N, C, H, W) feature maps); ``"all"``; or a list of layer
    indices (negative ones count from the end) and/or layer type names or classes
    (``[0, "MaxPool2D"]``).

    Returns a list of ``(index, layer_name, array)`` in layer order, where ``layer_name`` is
    the layer's type name and ``array`` that layer's output, e.g. (N, C_out, OH, OW). The
    model runs layer by layer in eval mode (BatchNorm uses running statistics, Dropout is
    off) under :func:`scratchcnn.nn.no_grad`, stopping after the last chosen layer; its
    training / eval mode is restored afterwards.
    """
    _check_model(model, "activations")
    wanted = _select(model, layers)
    if not wanted:
        return []
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            h = model._prepare_input(x)          # dtype conversion and the model's shape check
            last = wanted[-1]
            keep = set(wanted)
            for i, layer in enumerate(model.layers[:last + 1]):
                try:
                    h = layer(h)
                except ShapeError as exc:
                    raise ShapeError(f"layer {i}: {exc}") from None
                if i in keep:
                    out.append((i, type(layer).__name__, h))
    finally:
        model.train(was_training)
    return out


def first_conv_filters(model):
    """The weights of the model's first Conv2D layer, a copy: (O, C, kh, kw) (PyTorch's layout:
    output channels, input channels, kernel height, kernel width), or None when the model
    has no Conv2D layer."""
    _check_model(model, "first_conv_filters")
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            return layer.weight.data.copy()
    return None


__all__ = ["FEATURE_MAP_LAYERS", "activations", "first_conv_filters"]
