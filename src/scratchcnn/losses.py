"""Loss functions: ``loss = crit(output, target)`` returns a float, ``crit.backward()``
returns d loss / d output (same shape as ``output``)."""
import numpy as np

from .errors import ConfigError, LabelError, ShapeError
from .nn.activations import log_softmax


class Loss:
    name = "loss"

    def __call__(self, output, target):
        return self.forward(output, target)

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits, mean over the batch (PyTorch's ``CrossEntropyLoss``).

    output: (N, K) logits. target: (N,) integer class labels in ``[0, K)``, or (N, K)
    one-hot / probability rows. ``loss = -mean_n sum_k t[n, k] * log_softmax(z)[n, k]``,
    computed with log-sum-exp so large logits do not overflow. Its gradient is the
    famously simple ``(softmax(z) - t) / N``.
    """
    name = "cross_entropy"

    def __init__(self):
        self._cache = None

    @staticmethod
    def targets_as_probs(target, n, k, dtype):
        """Integer labels -> one-hot (N, K); probability rows are checked and returned."""
        target = as_target(target, "CrossEntropyLoss")
        if target.ndim == 1:
            if target.shape[0] != n:
                raise LabelError(f"CrossEntropyLoss: {target.shape[0]} labels for {n} outputs")
            if target.dtype.kind == "f":
                if not np.all(np.mod(target, 1) == 0):
                    raise LabelError("CrossEntropyLoss: 1-D targets must be integer class labels")
                target = target.astype(np.int64)
            if target.dtype.kind not in "iu":
                raise LabelError(f"CrossEntropyLoss: labels must be integers, got dtype {target.dtype}")
            if n and (target.min() < 0 or target.max() >= k):
                bad = target[(target < 0) | (target >= k)][0]
                raise LabelError(f"CrossEntropyLoss: label {bad} is out of range for {k} classes "
                                 f"(expected 0..{k - 1})")
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
        logp = log_softmax(output, axis=1)
        self._cache = (np.exp(logp), t)
        return float(-(t * logp).sum() / n)

    def backward(self):
        if self._cache is None:
            raise ConfigError("CrossEntropyLoss.backward called before a forward pass (call loss(output, target) first)")
        p, t = self._cache
        return (p - t) / p.shape[0]


class MSELoss(Loss):
    """Mean squared error over every element: ``mean((y - t)^2)``; gradient ``2 (y - t) / numel``."""
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
          "CrossEntropyLoss": CrossEntropyLoss, "mse": MSELoss, "MSELoss": MSELoss}


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
