"""Sequential: a container that applies a list of layers in order, itself a Module (as in PyTorch)."""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..kernels import textbook_enabled
from . import fast_plan
from .module import Module, is_grad_enabled


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
    Its fast path runs the same layers in a slightly different plan (:meth:`run_plan`).
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
            set_needs_input_grad(m, i > 0 or self.needs_input_grad_first)
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
    def run_plan(self):
        """The steps ``forward`` takes, ``(index, layer, fused_relu)`` each: under :func:`~scratchcnn.textbook`
        the layers in order; otherwise the fast path's exact rewrites of :mod:`scratchcnn.nn.fast_plan`
        (a ReLU before a MaxPool2D runs after it; a ReLU after a Conv2D is fused into its kernel)."""
        layers = tuple(self._modules.values())
        if textbook_enabled():
            return fast_plan.textbook_plan(layers)
        if self.__dict__.get("_plan_key") != layers:
            self._plan_key, self._plan = layers, fast_plan.plan(layers)
        return self._plan

    def forward(self, x):
        # For an input shape build() has already checked, every layer's input shape is known to
        # fit: call its forward directly, seeing only to the dtype it computes in (what layer(x)
        # would also do). Otherwise layer(x) checks and converts the input itself.
        checked = (isinstance(x, np.ndarray) and x.dtype.kind == "f" and self._checked_shape is not None
                   and x.shape[1:] == self._checked_shape)
        plan = self.run_plan() if checked else fast_plan.textbook_plan(self._modules.values())
        if is_grad_enabled():
            self._ran = plan                    # backward retraces these steps
        for step in plan:
            i, layer = step[:2]
            try:
                if checked:
                    dtype = layer.dtype
                    if dtype is not None and x.dtype != dtype:
                        x = x.astype(dtype)
                    x = layer.forward(x) if step[2] is None else fast_plan.forward(step, x)
                else:
                    x = layer(x)
            except ShapeError as exc:
                raise ShapeError(f"layer {i}: {exc}") from None
        return x

    def backward(self, grad_out):
        """Backward through the layers in reverse (of the steps the last forward took); returns
        d loss / d input (None when the first layer skips it, the default)."""
        plan = self.__dict__.get("_ran") or fast_plan.textbook_plan(self._modules.values())
        for step in reversed(plan):
            grad_out = step[1].backward(grad_out) if step[2] is None else fast_plan.backward(step, grad_out)
            if grad_out is None:
                break
        return grad_out

    def config(self):
        return {"layers": [{"class": type(l).__name__, "config": l.config()} for l in self.layers],
                "input_shape": list(self.input_shape) if self.input_shape else None}


def set_needs_input_grad(module, value):
    """Whether ``module`` computes d input; a nested Sequential hands it down to its first layer
    (recursively), so a container inside a container passes the gradient on."""
    module.needs_input_grad = value
    if isinstance(module, Sequential):
        module.needs_input_grad_first = value
        if len(module):
            set_needs_input_grad(module[0], value)


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
