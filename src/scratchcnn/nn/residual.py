"""The residual connection, ``y = body(x) + shortcut(x)``, and ResNet's basic block built with it."""
import numpy as np

from ..errors import ConfigError, ShapeError
from .activations import ReLU
from .batchnorm import BatchNorm1D, BatchNorm2D
from .checks import positive_int
from .conv import Conv2D
from .linear import Dense
from .module import Module
from .sequential import Sequential, set_needs_input_grad

#: layers whose forward output is a fresh array they do not keep, and whose backward returns a fresh
#: d input: the sum may be added in place into such an array (a ReLU keeps its output for its mask;
#: a BatchNorm without weights returns the xhat it keeps).
_FRESH = (Conv2D, BatchNorm2D, BatchNorm1D, Dense)


class Residual(Module):
    """``Residual(body, shortcut=None)``: ``y = body(x) + shortcut(x)``, the identity when ``shortcut`` is None.

    **Shape**
        x: (N, *S) float32 -> y: (N, *T), where ``T`` is the body's output shape for ``S``; the
        shortcut must give ``T`` too (the identity: ``T == S``). ``body`` and ``shortcut`` are any
        modules, usually :class:`Sequential`; their parameters are named ``body.*`` and ``shortcut.*``
        (``body.0.weight``, ``shortcut.1.running_mean``), as a PyTorch module holding ``self.body``
        and ``self.shortcut`` names them, so its state_dict loads as is.

    **Forward**
        Both branches read the same ``x``; ``y = body(x) + shortcut(x)`` (``+ x`` for the identity).
        The sum is added in place into the body's output when that array is the body's own and not
        kept for its backward (a Conv2D, BatchNorm or Dense output). Multiply-adds: the two branches'.

    **Backward**
        ``x`` reaches ``y`` along two paths, so by the chain rule its gradient is the sum of the two:
        ``dy`` goes down both branches unchanged (``dy / d body(x) = dy / d shortcut(x) = dy``) and
        ``dx = body.backward(dy) + shortcut.backward(dy)``, ``dx = body.backward(dy) + dy`` for the identity.
        The first layers of both branches compute d input whenever the block needs it (all but a
        model's first layer: see ``needs_input_grad``).

    **Example**
        >>> import numpy as np; import scratchcnn as sc
        >>> block = sc.Residual(sc.nn.Sequential(sc.Conv2D(8, 8, 3, padding=1), sc.BatchNorm2D(8)))
        >>> x = np.random.rand(2, 8, 6, 6).astype(np.float32)
        >>> y = block(x); y.shape, block.backward(np.ones_like(y)).shape
        ((2, 8, 6, 6), (2, 8, 6, 6))
        >>> sc.nn.basic_block(8, 16, stride=2).shortcut is not None     # a 1x1 projection
        True

    **See also**
        :func:`basic_block` (ResNet's block); :class:`Sequential`, the chain this adds a second path to;
        ``tests/test_residual.py`` checks it against the two branches computed apart, central
        differences and PyTorch.
    """

    def __init__(self, body, shortcut=None):
        super().__init__()
        for name, branch in (("body", body), ("shortcut", shortcut)):
            if not (isinstance(branch, Module) or name == "shortcut" and branch is None):
                raise ConfigError(f"Residual: {name} must be a layer or Sequential (a Module)"
                                  f"{' or None for the identity' if name == 'shortcut' else ''}, "
                                  f"got {type(branch).__name__}")
        if body is shortcut:
            raise ConfigError("Residual: body and shortcut must be two modules, not the same one twice")
        self.body = body
        self.shortcut = shortcut              # None (the identity) is not registered: keys are body.*, shortcut.*
        self._built_shape = None              # the input shape both branches were last built for
        self.needs_input_grad = self.needs_input_grad     # hand it down to the branches

    # ---- d input: both branches' first layers compute it -----------------------------------
    @property
    def needs_input_grad(self):
        return self.__dict__.get("_needs_input_grad", True)

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self.__dict__["_needs_input_grad"] = bool(value)
        for branch in (self.__dict__.get("body"), self.__dict__.get("shortcut")):
            if branch is not None:
                set_needs_input_grad(branch, bool(value))

    # ---- shapes ------------------------------------------------------------------------------
    def output_shape(self, input_shape):
        """The output shape for ``input_shape`` (no batch axis); builds both branches for it, so that
        a forward pass on inputs of this shape runs them without per-layer input checks."""
        shape = tuple(input_shape)
        try:
            out = tuple(self.body.output_shape(shape))
        except ShapeError as exc:
            raise ShapeError(f"Residual body does not fit the input {shape}: {exc}") from None
        try:
            short = shape if self.shortcut is None else tuple(self.shortcut.output_shape(shape))
        except ShapeError as exc:
            raise ShapeError(f"Residual shortcut does not fit the input {shape}: {exc}") from None
        if out != short:
            what = "the identity shortcut gives the input" if self.shortcut is None else "the shortcut gives"
            raise ShapeError(f"Residual: the body gives {_fmt(out)} but {what} {_fmt(short)}: the two must have "
                             f"the same shape to be added (a change of stride or channels needs a projection "
                             f"shortcut, e.g. a 1x1 Conv2D)")
        self._built_shape = shape
        return out

    def macs(self, input_shape):
        shape = tuple(input_shape)
        return self.body.macs(shape) + (0 if self.shortcut is None else self.shortcut.macs(shape))

    def _check_input(self, x):
        if x.ndim < 1:
            raise ShapeError("Residual: input must have a batch axis, got a scalar")
        if tuple(x.shape[1:]) != self._built_shape:
            self.output_shape(x.shape[1:])

    # ---- maths -------------------------------------------------------------------------------
    def forward(self, x):
        if x.shape[1:] != self._built_shape:        # a new input shape: check and build both branches
            self.output_shape(x.shape[1:])
        y = _run(self.body, x)
        s = x if self.shortcut is None else _run(self.shortcut, x)
        last = _last(self.body)
        if (isinstance(last, _FRESH) and getattr(last, "affine", True) and y.dtype == s.dtype
                and y.flags.writeable and not np.may_share_memory(y, x)):
            y += s                                  # y is the body's own fresh array
            return y
        return y + s

    def backward(self, grad_out):
        dx = self.body.backward(grad_out)
        ds = grad_out if self.shortcut is None else self.shortcut.backward(grad_out)
        if not self.needs_input_grad:
            return None
        if dx is None or ds is None:                # a branch whose first layer gave no d input
            return ds if dx is None else dx
        if (isinstance(_first(self.body), _FRESH) and dx.dtype == ds.dtype and dx.flags.writeable
                and not np.may_share_memory(dx, grad_out) and not np.may_share_memory(dx, ds)):
            dx += ds
            return dx
        return dx + ds

    # ---- description -------------------------------------------------------------------------
    def config(self):
        branch = lambda m: None if m is None else {"class": type(m).__name__, "config": m.config()}
        return {"body": branch(self.body), "shortcut": branch(self.shortcut)}

    def extra_repr(self):
        return "identity" if self.shortcut is None else "projection"

    def __repr__(self):         # one line, as error messages and Sequential's repr quote it
        shortcut = "identity" if self.shortcut is None else _names(self.shortcut)
        return f"Residual(body={_names(self.body)}, shortcut={shortcut})"


def basic_block(in_channels, out_channels, stride=1):
    """ResNet's basic block (He et al. 2016) as a :class:`Residual`, for (N, in_channels, H, W) inputs.

    body: ``Conv2D(in, out, 3, stride, padding=1, bias=False) - BatchNorm2D - ReLU - Conv2D(out, out, 3,
    padding=1, bias=False) - BatchNorm2D``; shortcut: the identity, or the projection ``Conv2D(in, out, 1,
    stride, bias=False) - BatchNorm2D`` when ``stride != 1`` or ``in != out``. Output:
    (N, out_channels, ceil(H / stride), ceil(W / stride)). The ReLU after the sum is a layer of its own
    after the block: ``Sequential(..., basic_block(16, 32, 2), ReLU(), ...)``."""
    cin, cout = positive_int("basic_block", "in_channels", in_channels), positive_int("basic_block", "out_channels",
                                                                                      out_channels)
    stride = positive_int("basic_block", "stride", stride)
    body = Sequential(Conv2D(cin, cout, 3, stride, padding=1, bias=False), BatchNorm2D(cout), ReLU(),
                      Conv2D(cout, cout, 3, 1, padding=1, bias=False), BatchNorm2D(cout))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = Sequential(Conv2D(cin, cout, 1, stride, bias=False), BatchNorm2D(cout))
    return Residual(body, shortcut)


def _run(module, x):
    """``module.forward(x)`` in the module's dtype; a Sequential converts for each of its layers."""
    if not isinstance(module, Sequential):
        dtype = module.dtype
        if dtype is not None and x.dtype != dtype:
            x = x.astype(dtype)
    return module.forward(x)


def _first(module):
    while isinstance(module, Sequential) and len(module):
        module = module[0]
    return module


def _last(module):
    while isinstance(module, Sequential) and len(module):
        module = module[len(module) - 1]
    return module


def _fmt(shape):
    return "(N, " + ", ".join(map(str, shape)) + ")"


def _names(module):
    """``Conv2D-BatchNorm2D-ReLU``: the layer types of a branch, in order."""
    if isinstance(module, Sequential):
        return "-".join(_names(m) for m in module) or "Sequential()"
    return repr(module) if isinstance(module, Residual) else type(module).__name__
