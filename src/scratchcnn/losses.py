"""Loss functions: ``loss = crit(output, target)`` returns a float, ``crit.backward()``
returns d loss / d output (same shape as ``output``).

The losses of PyTorch's names and definitions: :class:`CrossEntropyLoss` (with
``label_smoothing``), :class:`BCEWithLogitsLoss` (one sigmoid output per class, or one for a
two-class model), :class:`MultiMarginLoss` (the multi-class hinge) and :class:`MSELoss`.
Each computes its gradient by hand in ``forward`` (kept for ``backward``); the docstrings
give the maths. For the three classification losses ``reduction`` is ``"mean"`` (PyTorch's
default) or ``"sum"``: ``fit`` needs one number per batch, so PyTorch's ``"none"`` is not
offered; ``MSELoss`` is always the mean.
"""
import numpy as np

from .errors import ConfigError, LabelError, ShapeError
from .nn.activations import log_softmax
from .nn.checks import number as check_number


class Loss:
    #: the loss's name where a run records it (``train --loss``, the model file's metadata, metrics.json)
    name = "loss"
    #: what ``reduction="mean"`` divides by: the examples (N), or every output element (N * K)
    mean_over = "examples"

    def __call__(self, output, target):
        return self.forward(output, target)

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class CrossEntropyLoss(Loss):
    """``CrossEntropyLoss(label_smoothing=0.0, reduction="mean")``: softmax cross-entropy on logits
    (PyTorch's ``CrossEntropyLoss``).

    output: (N, K) logits. target: (N,) integer class labels in ``[0, K)``, or (N, K) one-hot /
    probability rows. Labels become one-hot rows ``t``; with label smoothing ``e`` every row is
    ``t' = (1 - e) t + e / K`` (PyTorch's definition, for labels and probabilities alike). Then
    ``loss = -1/N sum_n sum_k t'[n, k] * log_softmax(z)[n, k]`` (``"sum"``: without the 1/N),
    computed with log-sum-exp so large logits do not overflow.

    Backward: ``d loss / d z[n, j] = (softmax(z)[n, j] * sum_k t'[n, k] - t'[n, j]) / N``, the
    famously simple ``(softmax(z) - t) / N`` when each target row sums to 1.
    """
    name = "cross_entropy"

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        self.label_smoothing = check_number("CrossEntropyLoss", "label_smoothing", label_smoothing, 0, 1)
        self.reduction = _reduction("CrossEntropyLoss", reduction)
        self._cache = None

    def config(self):
        return {"label_smoothing": self.label_smoothing, "reduction": self.reduction}

    @staticmethod
    def targets_as_probs(target, n, k, dtype):
        """Integer labels -> one-hot (N, K); probability rows are checked and returned."""
        target = as_target(target, "CrossEntropyLoss")
        if target.ndim == 1:
            target = class_labels(target, n, k, "CrossEntropyLoss")
            t = np.zeros((n, k), dtype=dtype)
            t[np.arange(n), target] = 1
            return t
        if target.shape != (n, k):
            raise LabelError(f"CrossEntropyLoss: targets of shape {target.shape} do not match outputs "
                             f"({n}, {k}); give (N,) labels or (N, K) probabilities")
        if target.size and (target.min() < 0 or target.max() > 1):
            row = int(np.flatnonzero(((target < 0) | (target > 1)).any(axis=1))[0])
            raise LabelError(f"CrossEntropyLoss: probability targets must lie in [0, 1]; row {row} is "
                             f"{np.asarray(target[row]).tolist()}"[:300])
        return target.astype(dtype, copy=False)

    def forward(self, output, target):
        output = _as_output(output, "CrossEntropyLoss")
        if output.ndim != 2:
            raise ShapeError(f"CrossEntropyLoss expects logits (N, K), got shape {output.shape}")
        n, k = output.shape
        t = self.targets_as_probs(target, n, k, output.dtype)
        if self.label_smoothing:
            e = self.label_smoothing
            t = t * output.dtype.type(1 - e) + output.dtype.type(e / k)
        logp = log_softmax(output, axis=1)
        scale = n if self.reduction == "mean" else 1
        self._cache = (np.exp(logp), t, scale)
        return float(-(t * logp).sum() / scale)

    def backward(self):
        if self._cache is None:
            raise ConfigError("CrossEntropyLoss.backward called before a forward pass (call loss(output, target) first)")
        p, t, scale = self._cache
        return (p * t.sum(axis=1, keepdims=True) - t) / p.dtype.type(scale)


class BCEWithLogitsLoss(Loss):
    """``BCEWithLogitsLoss(weight=None, reduction="mean", pos_weight=None)``: binary cross-entropy
    on logits, one sigmoid per output (PyTorch's ``BCEWithLogitsLoss``).

    output: (N,) or (N, 1) logits of a two-class model (class 1 when the logit is > 0), or (N, K)
    for K independent yes/no labels (multi-label). target: the output's shape, each value a
    probability in [0, 1] (labels 0 / 1 as a special case); for a (N, 1) output also (N,) labels
    0 / 1. ``weight`` rescales each element's loss, ``pos_weight`` (K,) the positive term of each
    class (both broadcast against the output, PyTorch's rule). Per element, with ``s = sigmoid(x)``::

        l = -w [pw t log s + (1 - t) log(1 - s)] = w [pw t softplus(-x) + (1 - t) softplus(x)]

    with the stable ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` (never overflows, never
    logs 0); ``loss = mean(l)`` over all N * K elements (``"sum"``: their sum).

    Backward: ``softplus' = sigmoid``, so ``d l / d x = w [(1 - t) s - pw t (1 - s)]``, which is
    ``w (s - t)`` without ``pos_weight``; divided by N * K for the mean. ``1 - s`` is computed as
    ``sigmoid(-x)``, exact for large logits.
    """
    name = "bce"

    mean_over = "elements"

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        self.weight = _weights("BCEWithLogitsLoss", "weight", weight)
        self.pos_weight = _weights("BCEWithLogitsLoss", "pos_weight", pos_weight)
        self.reduction = _reduction("BCEWithLogitsLoss", reduction)
        self._grad = None

    def config(self):
        return {"weight": None if self.weight is None else self.weight.tolist(), "reduction": self.reduction,
                "pos_weight": None if self.pos_weight is None else self.pos_weight.tolist()}

    @staticmethod
    def targets(target, shape, dtype):
        """The targets as an array of ``shape`` (the output's) and ``dtype``, each in [0, 1];
        (N,) labels for a (N, 1) output are reshaped; anything else is a LabelError."""
        who = "BCEWithLogitsLoss"
        target = as_target(target, who)
        if target.shape != tuple(shape):
            if len(shape) == 2 and shape[1] == 1 and target.shape == (shape[0],):
                target = target.reshape(shape)
            else:
                want = "(N,) labels 0 / 1 or (N, 1)" if len(shape) == 2 and shape[1] == 1 else str(tuple(shape))
                raise LabelError(f"{who}: targets of shape {target.shape} do not match logits of shape "
                                 f"{tuple(shape)}: expected {want} values in [0, 1]")
        if target.size and (target.min() < 0 or target.max() > 1):
            flat = target.reshape(len(target), -1)
            row = int(np.flatnonzero(((flat < 0) | (flat > 1)).any(axis=1))[0])
            kind = "label" if target.dtype.kind in "iu" else "target"
            raise LabelError(f"{who}: {kind} {flat[row].tolist() if flat.shape[1] > 1 else flat[row, 0]} of "
                             f"example {row} is out of range: expected "
                             f"{'0 or 1' if kind == 'label' else 'probabilities in [0, 1]'}"[:300])
        return target.astype(dtype, copy=False)

    def forward(self, output, target):
        who = "BCEWithLogitsLoss"
        x = _as_output(output, who)
        if x.ndim not in (1, 2):
            raise ShapeError(f"{who} expects logits (N,), (N, 1) or (N, K), got shape {x.shape}")
        t = self.targets(target, x.shape, x.dtype)
        w = _broadcast(who, "weight", self.weight, x)
        pw = _broadcast(who, "pos_weight", self.pos_weight, x)
        e = np.exp(-np.abs(x))                          # in (0, 1]: never overflows
        soft = np.log1p(e)
        sp_pos = np.maximum(x, 0) + soft                # softplus(x)  = -log(1 - s)
        sp_neg = np.maximum(-x, 0) + soft               # softplus(-x) = -log s
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid(x), stable
        s_neg = np.where(x >= 0, e / (1 + e), 1 / (1 + e))   # sigmoid(-x) = 1 - s
        pos = t if pw is None else pw * t
        loss = pos * sp_neg + (1 - t) * sp_pos
        grad = (1 - t) * s - pos * s_neg
        if w is not None:
            loss, grad = w * loss, w * grad
        scale = x.size if self.reduction == "mean" else 1
        self._grad = (grad / x.dtype.type(max(scale, 1))).astype(x.dtype, copy=False)
        return float(loss.sum() / scale) if scale else float("nan")

    def backward(self):
        if self._grad is None:
            raise ConfigError("BCEWithLogitsLoss.backward called before a forward pass (call loss(output, target) first)")
        return self._grad


class MultiMarginLoss(Loss):
    """``MultiMarginLoss(p=1, margin=1.0, weight=None, reduction="mean")``: the multi-class hinge
    (PyTorch's ``MultiMarginLoss``, the loss of a multi-class SVM).

    output: (N, C) scores; target: (N,) class labels in ``[0, C)``. For each example, with
    ``y`` its label and ``z_i = margin - x[y] + x[i]``::

        loss_n = sum_{i != y} w[y] * max(0, z_i) ** p / C          (p = 1 or 2)

    ``loss = mean_n loss_n`` (``"sum"``: the sum). ``weight`` (C,): a weight per class, applied by
    the example's own class ``y`` (PyTorch's rule; 1 without it).

    Backward: each violated margin (``z_i > 0``, i != y) adds ``g_i = w[y] p z_i ** (p - 1) / C``
    to ``d loss_n / d x[i]`` and subtracts it from ``d loss_n / d x[y]`` (``x[y]`` enters each
    ``z_i`` with a minus sign); a margin met (``z_i <= 0``) contributes nothing. Divided by N for
    the mean.
    """
    name = "multimargin"

    def __init__(self, p=1, margin=1.0, weight=None, reduction="mean"):
        who = "MultiMarginLoss"
        if isinstance(p, (bool, np.bool_)) or p not in (1, 2):
            raise ConfigError(f"{who}: p must be 1 or 2 (PyTorch's choices), got {p!r}")
        self.p = int(p)
        self.margin = check_number(who, "margin", margin)
        self.weight = _weights(who, "weight", weight)
        if self.weight is not None and self.weight.ndim != 1:
            raise ConfigError(f"{who}: weight must be one number per class (C,), got shape {self.weight.shape}")
        self.reduction = _reduction(who, reduction)
        self._grad = None

    def config(self):
        return {"p": self.p, "margin": self.margin,
                "weight": None if self.weight is None else self.weight.tolist(), "reduction": self.reduction}

    def forward(self, output, target):
        who = "MultiMarginLoss"
        x = _as_output(output, who)
        if x.ndim != 2:
            raise ShapeError(f"{who} expects scores (N, C), got shape {x.shape}")
        n, c = x.shape
        target = as_target(target, who)
        if target.ndim != 1:
            raise LabelError(f"{who}: targets must be (N,) class labels, got shape {target.shape}")
        y = class_labels(target, n, c, who)
        rows = np.arange(n)
        z = x.dtype.type(self.margin) - x[rows, y][:, None] + x      # (N, C)
        z[rows, y] = 0                                               # i == y is left out
        h = np.maximum(z, 0)
        slope = (z > 0).astype(x.dtype) if self.p == 1 else 2 * h    # d max(0, z)^p / dz
        if self.p == 2:
            h = h * h
        if self.weight is not None:
            if self.weight.shape != (c,):
                raise ShapeError(f"{who}: weight has {self.weight.shape[0]} entries for {c} classes")
            wy = self.weight.astype(x.dtype)[y][:, None]
            h, slope = h * wy, slope * wy
        scale = n if self.reduction == "mean" else 1
        g = slope / x.dtype.type(c)
        g[rows, y] = -g.sum(axis=1)
        self._grad = g / x.dtype.type(max(scale, 1))
        return float(h.sum() / c / scale) if scale else float("nan")

    def backward(self):
        if self._grad is None:
            raise ConfigError("MultiMarginLoss.backward called before a forward pass (call loss(output, target) first)")
        return self._grad


class MSELoss(Loss):
    """Mean squared error over every element: ``mean((y - t)^2)``; gradient ``2 (y - t) / numel``."""
    mean_over = "elements"
    name = "mse"

    def __init__(self):
        self._diff = None

    def forward(self, output, target):
        output = _as_output(output, "MSELoss")
        target = as_target(target, "MSELoss").astype(output.dtype, copy=False)
        if target.shape != output.shape:
            raise LabelError(f"MSELoss: target shape {target.shape} differs from output shape {output.shape}")
        self._diff = output - target
        return float(np.mean(self._diff * self._diff))

    def backward(self):
        if self._diff is None:
            raise ConfigError("MSELoss.backward called before a forward pass (call loss(output, target) first)")
        return 2 * self._diff / self._diff.size


LOSSES = {"cross_entropy": CrossEntropyLoss, "crossentropy": CrossEntropyLoss,
          "CrossEntropyLoss": CrossEntropyLoss, "mse": MSELoss, "MSELoss": MSELoss,
          "bce": BCEWithLogitsLoss, "bce_with_logits": BCEWithLogitsLoss, "BCEWithLogitsLoss": BCEWithLogitsLoss,
          "multimargin": MultiMarginLoss, "multi_margin": MultiMarginLoss, "hinge": MultiMarginLoss,
          "MultiMarginLoss": MultiMarginLoss}


def get_loss(loss):
    if loss is None:
        return CrossEntropyLoss()
    if isinstance(loss, str):
        try:
            return LOSSES[loss]()
        except KeyError:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {sorted(set(LOSSES))}") from None
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if not (callable(loss) and callable(getattr(loss, "backward", None))):
        raise ConfigError(f"loss must be a name ({', '.join(sorted(set(LOSSES)))}) or a loss object with "
                          f"__call__(output, target) and backward(), got {loss!r}"[:300])
    return loss


def _as_output(output, who):
    try:
        output = np.asarray(output)
    except (ValueError, TypeError) as exc:
        raise ShapeError(f"{who}: the output must be an array of numbers: {exc}") from None
    if output.dtype.kind not in "fiu":
        raise ShapeError(f"{who}: the output must hold real numbers, got dtype {output.dtype}")
    if output.dtype.kind != "f":
        output = output.astype(np.float64)
    return output


def as_target(target, who):
    """The targets as an array of real numbers with one entry per example, all finite, else
    LabelError naming ``who`` and the first bad target (used by the losses and by ``fit``)."""
    try:
        target = np.asarray(target)
    except (ValueError, TypeError) as exc:
        raise LabelError(f"{who}: targets must be an array of numbers (labels or probabilities): {exc}") from None
    if target.dtype.kind not in "fiub":
        raise LabelError(f"{who}: targets must be numbers, got dtype {target.dtype}")
    if target.ndim == 0:
        raise LabelError(f"{who}: targets need one entry per example, got a scalar")
    if target.dtype.kind == "f" and target.size and not np.isfinite(target).all():
        index = int(np.flatnonzero((~np.isfinite(target.reshape(len(target), -1))).any(axis=1))[0])
        raise LabelError(f"{who}: target {index} is not a finite number (NaN or infinite)")
    return target


def class_labels(target, n, k, who):
    """(N,) targets as int64 class indices in ``[0, k)`` (``k`` None: any index >= 0), else
    LabelError naming ``who``, the first bad label, its example and what was expected."""
    if target.shape[0] != n:
        raise LabelError(f"{who}: {target.shape[0]} labels for {n} outputs")
    if target.dtype.kind == "b":
        raise LabelError(f"{who}: labels must be integer class indices, got booleans")
    if target.dtype.kind == "f":
        fractional = np.mod(target, 1) != 0
        if fractional.any():
            i = int(np.flatnonzero(fractional)[0])
            raise LabelError(f"{who}: label {i} is {target[i]}, not an integer class index")
        target = target.astype(np.int64)
    if target.dtype.kind not in "iu":
        raise LabelError(f"{who}: labels must be integers, got dtype {target.dtype}")
    bad = (target < 0) | (target >= k) if k is not None else (target < 0)
    if n and bad.any():
        i = int(np.flatnonzero(bad)[0])
        expected = f"expected 0..{k - 1}" if k is not None else "labels must be >= 0"
        raise LabelError(f"{who}: label {target[i]} is out of range for {k if k is not None else 'the'} classes "
                         f"(example {i}; {expected})")
    return target


def _reduction(who, reduction):
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"{who}: reduction must be 'mean' or 'sum', got {reduction!r} ('none' is not offered: "
                          f"fit needs one number per batch)")
    return reduction


def _weights(who, name, value):
    """``weight`` / ``pos_weight``: None, or an array of finite numbers >= 0 (float64)."""
    if value is None:
        return None
    try:
        a = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ConfigError(f"{who}: {name} must be an array of numbers, got {value!r}"[:200]) from None
    if a.ndim > 2 or a.size == 0 or not np.isfinite(a).all() or (a < 0).any():
        raise ConfigError(f"{who}: {name} must be a non-empty array of finite numbers >= 0 (one per class), got "
                          f"{value!r}"[:200])
    return a


def _broadcast(who, name, w, x):
    """``w`` as x's dtype, checked to broadcast against x's shape without changing it."""
    if w is None:
        return None
    try:
        ok = np.broadcast_shapes(w.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{who}: {name} of shape {w.shape} does not broadcast against the logits {x.shape} "
                         f"(give one value per class, shape ({x.shape[-1]},))")
    return w.astype(x.dtype)
