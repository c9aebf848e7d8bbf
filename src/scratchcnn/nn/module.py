"""The Module contract every layer follows, and Parameter, a trainable array.

A Module turns an input array into an output array (``forward``) and, given the
gradient of the loss with respect to that output, returns the gradient with
respect to its input while *accumulating* the gradients of its parameters
(``backward``). Names follow PyTorch: ``parameters()``, ``named_parameters()``,
``zero_grad()``, ``train()`` / ``eval()``, ``state_dict()`` / ``load_state_dict()``.
"""
import functools
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ..errors import ConfigError, ShapeError

_state = threading.local()     # per thread, like torch.no_grad


@contextmanager
def no_grad():
    """Within this block (in this thread) layers keep no forward caches: inference uses less memory."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


class Parameter:
    """A trainable array ``data`` and the gradient ``grad`` accumulated for it (same shape and dtype)."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=True):
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data)
        self.requires_grad = requires_grad

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad[...] = 0

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def check_finite(x, what="input"):
    """Raise ShapeError naming the first example (index along axis 0) of ``x`` that holds NaN or
    an infinity (``np.isfinite(x).all()``: measured quicker than a sum, with or without a float64
    accumulator). ``what`` names the array in the message: a string, or a function returning one (called only
    when there is an error, so a caller on the hot path pays nothing to describe itself)."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    finite = np.isfinite(x)
    if finite.all():
        return
    if callable(what):
        what = what()
    bad = ~finite
    if x.ndim == 0:
        raise ShapeError(f"{what} is {x.item()}, not a finite number")
    index = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
    value = x[index][bad[index]].flat[0]
    raise ShapeError(f"{what} holds {value} (not a finite number) in example {index}")


LAYER_REGISTRY = {}


def _notes_forward(forward):
    @functools.wraps(forward)
    def noted(self, x):
        y = forward(self, x)
        self._note_forward()
        return y
    return noted


def _needs_forward(backward):
    @functools.wraps(backward)
    def checked(self, grad_out):
        if not self.__dict__.get("_forward_ran"):
            raise ConfigError(f"{self!r}.backward: there is no forward pass with gradients on to go back through "
                              f"(call the layer or model on an input first, outside no_grad())"[:300])
        return backward(self, grad_out)
    return checked


class Module:
    """Base class of layers and models.

    Subclasses implement ``forward(x)`` and ``backward(grad_out)``; they may also
    implement ``output_shape(input_shape)`` and ``macs(input_shape)`` (shapes
    without the batch axis) used by ``summary()`` and by the layer-size checks,
    and ``_check_input(x)`` to reject a wrong input with a clear message.
    """

    def __init_subclass__(cls, register=True, **kwargs):
        super().__init_subclass__(**kwargs)
        if register:      # so a saved architecture can be rebuilt by name
            LAYER_REGISTRY[cls.__name__] = cls
        # every layer's backward needs the caches of a forward pass with gradients on: the base
        # class notes each forward and refuses a backward without one (a clear error, not a
        # TypeError from a missing cache deep inside the layer's maths)
        if "forward" in cls.__dict__:
            cls.forward = _notes_forward(cls.__dict__["forward"])
        if "backward" in cls.__dict__:
            cls.backward = _needs_forward(cls.__dict__["backward"])

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        self.training = True
        # The first layer of a model need not compute d loss / d input.
        self.needs_input_grad = True

    # ---- registration -------------------------------------------------
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module) and name not in ("_parent",):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A non-trainable array saved in the state_dict (e.g. BatchNorm running statistics)."""
        self._buffers[name] = np.asarray(array)

    def __getattr__(self, name):
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # ---- running ------------------------------------------------------
    def __call__(self, x):
        return self.forward(self._prepare_input(x))

    def _prepare_input(self, x):
        """Check ``x`` and convert it to the dtype this module computes in."""
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception as exc:  # pragma: no cover - exotic objects
                raise ShapeError(f"{self!r}: input must be an array, got {type(x).__name__}") from exc
        if x.dtype.kind not in "fiub":
            raise ShapeError(f"{self!r}: input must hold real numbers, got dtype {x.dtype}")
        check_finite(x, lambda: f"{self!r}: input")
        dtype = self.dtype
        if dtype is None:
            dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        if x.dtype != dtype:
            x = x.astype(dtype)
        self._check_input(x)
        return x

    def _check_input(self, x):
        """Raise :class:`ShapeError` if ``x`` cannot be this module's input."""

    def _note_forward(self):
        """Record that a forward pass ran (with gradients on or not: backward needs one with them
        on). Called after every subclass's ``forward``; a fast path that does a layer's forward
        work elsewhere (a ReLU fused into a convolution) calls it itself."""
        self.__dict__["_forward_ran"] = is_grad_enabled()

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    # ---- shapes -------------------------------------------------------
    def output_shape(self, input_shape):
        """Output shape (no batch axis) for an input of ``input_shape`` (no batch axis)."""
        return tuple(input_shape)

    def macs(self, input_shape):
        """Multiply-accumulate operations of one forward pass for one example."""
        return 0

    # ---- parameters ---------------------------------------------------
    @property
    def dtype(self):
        """The dtype of the parameters (None for a module without any)."""
        for p in self._parameters.values():          # the common case, without generators
            return p.data.dtype
        if not self._modules and not self._buffers:
            return None
        for _, p in self.named_parameters():
            return p.data.dtype
        for _, b in self.named_buffers():
            if b.dtype.kind == "f":
                return b.dtype
        return None

    def named_parameters(self, prefix=""):
        for name, p in self._parameters.items():
            yield prefix + name, p
        for mname, m in self._modules.items():
            yield from m.named_parameters(prefix + mname + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def named_buffers(self, prefix=""):
        for name, b in self._buffers.items():
            yield prefix + name, b
        for mname, m in self._modules.items():
            yield from m.named_buffers(prefix + mname + ".")

    def children(self):
        return list(self._modules.values())

    def named_children(self):
        """``[(name, child), ...]``: the modules this one holds directly, in the order they were
        registered, which is the order forward runs them (a Sequential's layers ``"0"``, ``"1"``,
        ...; a Residual's ``"body"``, then ``"shortcut"`` unless it is the identity); empty for a
        layer. The names are the state_dict prefixes, as in PyTorch."""
        return list(self._modules.items())

    def num_parameters(self, trainable_only=False):
        return int(sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only))

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def freeze(self):
        """Stop updating this module's parameters (optimizers skip them)."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self):
        for p in self.parameters():
            p.requires_grad = True
        return self

    def train(self, mode=True):
        self.training = mode
        for m in self._modules.values():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Convert parameters and floating buffers to ``dtype`` (e.g. ``np.float64``), in place."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ConfigError(f"{self!r}.to: dtype must be a float type, got {dtype}")
        for m in self.modules():
            for p in m._parameters.values():
                p.data = p.data.astype(dtype)
                p.grad = p.grad.astype(dtype)
            for name, b in list(m._buffers.items()):
                if b.dtype.kind == "f":
                    m._buffers[name] = b.astype(dtype)
            m._clear_cache()
        return self

    def modules(self):
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def _clear_cache(self):
        """Forget arrays kept from the last forward pass."""

    # ---- state --------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by PyTorch-style dotted names (copies)."""
        state = OrderedDict()
        for m_prefix, m in self._prefixed_modules():
            for name, p in m._parameters.items():
                state[m_prefix + name] = p.data.copy()
            for name, b in m._buffers.items():
                state[m_prefix + name] = b.copy()
        return state

    def _prefixed_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m._prefixed_modules(prefix + name + ".")

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` (e.g. a PyTorch state_dict converted with ``.numpy()``).

        Shapes must match exactly; with ``strict`` every key must be present and
        no extra key allowed.
        """
        if not hasattr(state, "keys") or not hasattr(state, "items"):
            raise ConfigError(f"load_state_dict: expected a mapping of parameter names to arrays (a state_dict), "
                              f"got {type(state).__name__}")
        converted = {}
        for k, v in state.items():
            if not isinstance(k, str):
                raise ConfigError(f"load_state_dict: keys must be parameter names (str), got {k!r}")
            try:
                a = _to_numpy(v)
            except Exception as exc:
                raise ConfigError(f"load_state_dict: {k!r} is not an array: {exc}") from None
            if a.dtype.kind not in "fiub":
                raise ConfigError(f"load_state_dict: {k!r} must hold real numbers, got dtype {a.dtype}")
            if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
                raise ConfigError(f"load_state_dict: {k!r} holds NaN or infinite values")
            converted[k] = a
        state = converted
        expected = set()
        for m_prefix, m in self._prefixed_modules():
            for name, p in m._parameters.items():
                key = m_prefix + name
                expected.add(key)
                if key not in state:
                    if strict:
                        raise ConfigError(f"load_state_dict: missing key {key!r}")
                    continue
                value = state[key]
                if value.shape != p.data.shape:
                    raise ConfigError(
                        f"load_state_dict: {key!r} has shape {value.shape}, expected {p.data.shape}")
                if value.dtype.kind != "f":
                    raise ConfigError(f"load_state_dict: parameter {key!r} must be real floating point, "
                                      f"got dtype {value.dtype}")
                p.data = value.astype(p.data.dtype, copy=True)
                p.grad = np.zeros_like(p.data)
            for name, b in m._buffers.items():
                key = m_prefix + name
                expected.add(key)
                if key not in state:
                    if strict:
                        raise ConfigError(f"load_state_dict: missing key {key!r}")
                    continue
                value = state[key]
                if value.shape != b.shape:
                    raise ConfigError(
                        f"load_state_dict: {key!r} has shape {value.shape}, expected {b.shape}")
                m._buffers[name] = value.astype(b.dtype, copy=True)
            m._clear_cache()
        extra = set(state) - expected
        if strict and extra:
            raise ConfigError(f"load_state_dict: unexpected keys {sorted(extra)}")
        return self

    # ---- description --------------------------------------------------
    def config(self):
        """Constructor arguments as JSON-friendly values (used by save/load)."""
        return {}

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)
