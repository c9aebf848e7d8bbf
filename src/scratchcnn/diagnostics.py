"""Per-layer gradient norms and update-to-weight ratios: the numbers that say whether every
layer of a network is learning, and how fast.

For a layer with parameters ``W`` (its weight and bias together), after one optimizer step:

- the **gradient norm** ``||dL/dW||`` (Frobenius norm over all of the layer's parameters);
- the **update ratio** ``||delta W|| / ||W||``, the size of the step the optimizer just took
  relative to the weights. About ``1e-3`` is healthy (Karpathy's rule of thumb): much smaller
  and the layer barely moves (a learning rate too small, a vanishing gradient), much larger
  and it is thrown around (a learning rate too large, an exploding gradient).

:class:`GradientDiagnostics` is a callback recording both, once per epoch, from the last
batch's gradients (still in ``p.grad`` at the epoch's end) and the step the optimizer took
from them (computed from its state: no copy of the weights is kept, no extra pass is run).
They go into the model's :class:`~scratchcnn.callbacks.History` as ``grad_norm/<layer>`` and
``update_ratio/<layer>``, ``<layer>`` being ``"<index>:<type>"`` (``"0:Conv2D"``), so they are
saved with the model and in a run's history.json.

    >>> import scratchcnn as sc
    >>> model.fit(x, y, epochs=3, callbacks=[sc.GradientDiagnostics()])      # doctest: +SKIP
    >>> model.history.history["update_ratio/0:Conv2D"]                       # doctest: +SKIP
    [0.0021, 0.0017, 0.0012]
"""
import math

import numpy as np

from .callbacks import Callback

GRAD_NORM = "grad_norm/"
UPDATE_RATIO = "update_ratio/"


def layer_groups(model):
    """``[(name, [Parameter, ...])]``: the parameters of each top-level layer that has any,
    named ``"<index>:<type>"`` (a model that is not a Sequential is one group, ``"model"``)."""
    layers = getattr(model, "layers", None)
    if layers is None:
        params = model.parameters()
        return [("model", params)] if params else []
    out = []
    for i, layer in enumerate(layers):
        params = layer.parameters()
        if params:
            out.append((f"{i}:{type(layer).__name__}", params))
    return out


def norm(arrays):
    """The Frobenius norm of several arrays together, in float64 (no overflow for float32)."""
    total = 0.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        total += float(np.dot(a.ravel(), a.ravel()))
    return math.sqrt(total) if math.isfinite(total) else total      # inf or NaN as it is


def last_update(optimizer, p, state):
    """The step ``optimizer`` just took for parameter ``p``, ``p_before - p_after`` (call it after
    ``optimizer.step()``), recovered exactly from the optimizer's state, ``p.grad`` and ``p.data``:
    SGD (momentum, Nesterov, weight decay), Adam, AdamW and RMSprop; another optimizer as ``lr * grad``."""
    lr = float(getattr(optimizer, "lr", 0.0))
    wd = float(getattr(optimizer, "weight_decay", 0.0) or 0.0)
    g = np.asarray(p.grad, dtype=np.float64)
    w = np.asarray(p.data, dtype=np.float64)            # the weights after the step
    if "exp_avg" in state and "exp_avg_sq" in state:     # Adam, AdamW
        b1, b2 = optimizer.betas
        t = max(int(getattr(optimizer, "steps", 1)), 1)
        m = np.asarray(state["exp_avg"], dtype=np.float64)
        v = np.asarray(state["exp_avg_sq"], dtype=np.float64)
        step = lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + optimizer.eps)
        if getattr(optimizer, "decoupled", False) and wd:
            # w = w_before * (1 - lr wd) - step, so w_before - w = (w + step) / (1 - lr wd) - w
            return (w + step) / (1 - lr * wd) - w
        return step                                     # Adam's weight decay is inside m and v
    if "square_avg" in state:                            # RMSprop: g / avg, avg from the buffers after the step
        v = np.asarray(state["square_avg"], dtype=np.float64)
        if "grad_avg" in state:
            v = v - np.asarray(state["grad_avg"], dtype=np.float64) ** 2
        avg = np.sqrt(v) + optimizer.eps
        if "momentum_buffer" in state:
            return lr * np.asarray(state["momentum_buffer"], dtype=np.float64)
        # w = w_before - lr (g + wd w_before) / avg
        return (w + lr * g / avg) / (1 - lr * wd / avg) - w if wd else lr * g / avg
    buf = state.get("momentum_buffer")
    if buf is not None:
        buf = np.asarray(buf, dtype=np.float64)          # it already holds wd * w_before
        if not getattr(optimizer, "nesterov", False):
            return lr * buf
        rest = g + optimizer.momentum * buf              # Nesterov: g + wd * w_before + momentum * buf
    else:
        rest = g
    # w = w_before - lr (rest + wd * w_before)
    return (w + lr * rest) / (1 - lr * wd) - w if wd else lr * rest


def gradient_stats(model, optimizer=None):
    """``{layer name: {"grad_norm", "weight_norm", "update_norm", "update_ratio"}}`` from the
    gradients now in ``p.grad`` and (with ``optimizer``, after its step) the step it took.
    Frozen parameters (``requires_grad=False``) count in neither; a layer with only frozen
    parameters is left out. Without an optimizer the update entries are None."""
    states = {}
    if optimizer is not None:
        states = {id(p): s for p, s in zip(getattr(optimizer, "params", []), getattr(optimizer, "state", []))}
    out = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for name, params in layer_groups(model):
            params = [p for p in params if p.requires_grad]
            if not params:
                continue
            grad = norm(p.grad for p in params)
            weight = norm(p.data for p in params)
            update = None
            if optimizer is not None:
                update = norm(last_update(optimizer, p, states.get(id(p), {})) for p in params)
            ratio = None if update is None else (update / weight if weight > 0 else float("inf") if update else 0.0)
            out[name] = {"grad_norm": grad, "weight_norm": weight, "update_norm": update, "update_ratio": ratio}
    return out


class GradientDiagnostics(Callback):
    """Record per-layer gradient norms and update ratios once per epoch (see the module page).

    optimizer: the optimizer ``fit`` uses (default: ``model.optimizer``, which ``fit`` sets).
    The values are appended to ``model.history.history`` under ``grad_norm/<layer>`` and
    ``update_ratio/<layer>``; an epoch that a key missed (a run resumed from a model trained
    without this callback) is filled with NaN so every list stays aligned with the epochs.
    Put it before any ModelCheckpoint so the saved history includes the epoch's values."""

    def __init__(self, optimizer=None):
        self.optimizer = optimizer

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        history = getattr(model, "history", None)
        if model is None or history is None:
            return
        optimizer = self.optimizer or getattr(model, "optimizer", None)
        n = len(history.epoch)
        for name, s in gradient_stats(model, optimizer).items():
            for key, value in ((GRAD_NORM + name, s["grad_norm"]), (UPDATE_RATIO + name, s["update_ratio"])):
                values = history.history.setdefault(key, [])
                values.extend([float("nan")] * max(n - 1 - len(values), 0))
                if len(values) < n:
                    values.append(float("nan") if value is None else float(value))


def diagnostics_of(history):
    """``{"grad_norm": {layer: [...]}, "update_ratio": {layer: [...]}}`` from a History, its
    ``to_dict()`` or its ``.history`` dict (empty dicts when none was recorded)."""
    if hasattr(history, "history") and not isinstance(history, dict):
        values = history.history
    elif isinstance(history, dict) and isinstance(history.get("history"), dict):
        values = history["history"]
    else:
        values = history or {}
    out = {"grad_norm": {}, "update_ratio": {}}
    for key, v in values.items():
        for prefix, kind in ((GRAD_NORM, "grad_norm"), (UPDATE_RATIO, "update_ratio")):
            if key.startswith(prefix):
                out[kind][key[len(prefix):]] = list(v)
    return out


__all__ = ["GradientDiagnostics", "diagnostics_of", "gradient_stats", "last_update", "layer_groups", "norm"]
