"""Sequential: a container that applies a list of layers in order, itself a Module (as in PyTorch)."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .module import Module


class Sequential(Module):
    """``Sequential(*layers, input_shape=None)``: applies the layers in order.

    ``forward`` runs each layer on the previous one's output; ``backward`` runs the
    layers' backward passes in reverse order. Layers are named ``"0"``, ``"1"``, ... so
    state_dict keys are PyTorch's (``"0.weight"``, ``"3.bias"``). ``input_shape`` (no
    batch axis, e.g. ``(1, 28, 28)``) is optional; it is learned from the first input
    and lets ``summary()`` and the layer-size checks run before any data is seen.

    This is the pure container of the layer floor. ``scratchcnn.Sequential``
    (:class:`scratchcnn.model.Sequential`) is the same container with the Keras-style
    training API on top: ``fit``, ``evaluate``, ``predict``, ``summary``, ``save``.
    """

    def __init__(self, *layers, input_shape=None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.input_shape = _shape(input_shape) if input_shape is not None else None
        self._checked_shape = None
        for layer in layers:
            self.add(layer)
        if self.input_shape is not None:
            self.build(self.input_shape)

    def add(self, layer):
        """Append a layer (a Module)."""
        if not isinstance(layer, Module):
            raise ConfigError(f"Sequential.add: expected a layer (Module), got {type(layer).__name__}")
        self._modules[str(len(self._modules))] = layer
        self._checked_shape = None
        for i, m in enumerate(self._modules.values()):
            m.needs_input_grad = i > 0 or self.needs_input_grad_first
        return self

    needs_input_grad_first = False

    @property
    def layers(self):
        return list(self._modules.values())

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self.layers)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    # ---- shapes -------------------------------------------------------
    def build(self, input_shape):
        """Check every layer's input size against the previous layer's output for an
        input of ``input_shape`` (no batch axis); returns the list of output shapes."""
        shape = _shape(input_shape)
        shapes = []
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.output_shape(shape))
            except ShapeError as exc:
                where = "the model input" if i == 0 else "the previous layer's output"
                raise ShapeError(f"layer {i} ({layer!r}) does not fit {where}: {exc}") from None
            shapes.append(shape)
        if self.input_shape is None:
            self.input_shape = tuple(input_shape)
        self._checked_shape = tuple(input_shape)
        return shapes

    def output_shape(self, input_shape):
        shapes = self.build(input_shape)
        return shapes[-1] if shapes else tuple(input_shape)

    def macs(self, input_shape):
        total, shape = 0, tuple(input_shape)
        for layer in self.layers:
            total += layer.macs(shape)
            shape = layer.output_shape(shape)
        return total

    def _check_input(self, x):
        if x.ndim < 1:
            raise ShapeError(f"model input must have a batch axis, got a scalar")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"model expects input (N, {', '.join(map(str, self.input_shape))}), "
                             f"got shape {x.shape}")
        if self._checked_shape != tuple(x.shape[1:]):
            self.build(x.shape[1:])

    # ---- maths --------------------------------------------------------
    def forward(self, x):
        # For an input shape build() has already checked, every layer's input shape is known to
        # fit: call its forward directly, seeing only to the dtype it computes in (what layer(x)
        # would also do). Otherwise layer(x) checks and converts the input itself.
        checked = (isinstance(x, np.ndarray) and x.dtype.kind == "f" and self._checked_shape is not None
                   and x.shape[1:] == self._checked_shape)
        for i, layer in enumerate(self._modules.values()):
            try:
                if checked:
                    dtype = layer.dtype
                    if dtype is not None and x.dtype != dtype:
                        x = x.astype(dtype)
                    x = layer.forward(x)
                else:
                    x = layer(x)
            except ShapeError as exc:
                raise ShapeError(f"layer {i}: {exc}") from None
        return x

    def backward(self, grad_out):
        """Backward through the layers in reverse; returns d loss / d input (None when the first
        layer skips it, the default)."""
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
            if grad_out is None:
                break
        return grad_out

    def config(self):
        return {"layers": [{"class": type(l).__name__, "config": l.config()} for l in self.layers],
                "input_shape": list(self.input_shape) if self.input_shape else None}


def _shape(input_shape):
    """An input shape (no batch axis) as a tuple of positive ints, else ShapeError."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 1
                               for d in dims):
        raise ShapeError(f"input_shape must be sizes (positive integers) without the batch axis, such as "
                         f"(1, 28, 28); got {input_shape!r}")
    return tuple(int(d) for d in dims)
