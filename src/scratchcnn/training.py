"""The training loop: ``fit``, ``evaluate``, ``predict``.

``fit`` is mini-batch gradient descent over epochs, the seeds' loop in PyTorch's
words: for each batch, ``optimizer.zero_grad()``, forward, loss, ``backward``,
``optimizer.step()``. Evaluation and prediction run in bounded batches under
``no_grad`` (no caches kept), in eval mode (Dropout off, BatchNorm on running stats).

One training step, the lines to read first (in :func:`fit`)::

    optimizer.zero_grad()                  # scratchcnn.optim: every p.grad = 0
    out = model(xb)                        # each layer's forward, in order (scratchcnn.nn)
    batch_loss = crit(out, yb)             # scratchcnn.losses: softmax + cross-entropy
    model.backward(crit.backward())        # each layer's backward, in reverse; fills p.grad
    optimizer.step()                       # p.data -= lr * (update from p.grad)

``fit``, ``evaluate`` and the ``predict`` functions first ask the C library to keep freed
memory for reuse (:func:`scratchcnn.kernels.tune_allocator`; ``SCRATCHCNN_MALLOC=system``
opts out), so each batch's fresh arrays cost no page faults.
"""
import math
import time

import numpy as np
from tqdm.auto import tqdm

from .callbacks import History
from .errors import LabelError, ShapeError, TrainingDivergedError
from .kernels.allocator import tune_allocator
from .losses import CrossEntropyLoss, get_loss
from .nn.activations import softmax
from .nn.module import no_grad
from .optim import SGD, LRScheduler
from .random import get_rng


def _check_xy(model, x, y, what="x"):
    x = np.asarray(x)
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise LabelError(f"{what}: {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ShapeError(f"{what}: no examples")
    return x, y


def _accuracy_counts(logits, y):
    """Number of rows whose arg-max matches the label (or the target's arg-max)."""
    pred = logits.argmax(axis=1)
    truth = y if y.ndim == 1 else y.argmax(axis=1)
    return int((pred == truth).sum())


def fit(model, x, y, epochs=1, batch_size=32, optimizer=None, loss=None, validation_data=None,
        shuffle=True, callbacks=None, verbose=1, augment=None, initial_epoch=0):
    """Train ``model`` on ``x: (N, ...)``, ``y: (N,)`` labels (or (N, K) targets).

    optimizer: an optimizer over ``model.parameters()`` (default ``SGD(lr=0.01, momentum=0.9)``).
    loss: a loss object or name (default cross-entropy). validation_data: ``(x_val, y_val)``.
    callbacks: Callbacks and/or LR schedulers (stepped at each epoch's end).
    augment: optional ``f(x_batch) -> x_batch`` applied to each training batch.
    Returns the model's :class:`History` (extended, not replaced, when ``initial_epoch > 0``).
    """
    tune_allocator()
    x, y = _check_xy(model, x, y)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ShapeError(f"fit: batch_size must be a positive int, got {batch_size!r}")
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None) or SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.optimizer = optimizer
    crit = get_loss(loss)
    is_ce = isinstance(crit, CrossEntropyLoss)
    history = getattr(model, "history", None)
    if initial_epoch == 0 or history is None:
        history = History()
    model.history = history
    cbs = [history] + list(callbacks or [])
    for cb in cbs:
        if hasattr(cb, "set_model"):
            cb.set_model(model)
    model.stop_training = False
    n = len(x)
    n_batches = math.ceil(n / batch_size)
    rng = get_rng()
    _call(cbs, "on_train_begin")
    for epoch in range(initial_epoch, epochs):
        model.train()
        _call(cbs, "on_epoch_begin", epoch)
        order = rng.permutation(n) if shuffle else np.arange(n)
        total_loss, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=not verbose, leave=True, dynamic_ncols=True)
        for b in bar:
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb)
            optimizer.zero_grad()
            out = model(xb)
            batch_loss = crit(out, yb)
            if not math.isfinite(batch_loss):
                bar.close()
                raise TrainingDivergedError(
                    f"loss became {batch_loss} at epoch {epoch + 1}, batch {b + 1} of {n_batches}; "
                    f"try a smaller learning rate (optimizer: {optimizer!r})", epoch=epoch + 1, batch=b + 1)
            model.backward(crit.backward())
            optimizer.step()
            m = len(idx)
            total_loss += batch_loss * m
            seen += m
            if is_ce:
                correct += _accuracy_counts(out, yb)
            _call(cbs, "on_batch_end", b, {"loss": batch_loss})
            if verbose and (b % 10 == 0 or b == n_batches - 1):
                post = {"loss": f"{total_loss / seen:.4f}"}
                if is_ce:
                    post["acc"] = f"{correct / seen:.4f}"
                post["img/s"] = f"{seen / max(time.perf_counter() - t0, 1e-9):.0f}"
                bar.set_postfix(post, refresh=False)
        bar.close()
        logs = {"loss": total_loss / seen}
        if is_ce:
            logs["accuracy"] = correct / seen
        if validation_data is not None:
            val = evaluate(model, validation_data[0], validation_data[1], batch_size=max(batch_size, 256),
                           loss=crit)
            logs.update({"val_" + k: v for k, v in val.items()})
        logs["lr"] = optimizer.lr
        logs["time"] = time.perf_counter() - t0
        if verbose:
            tqdm.write(f"epoch {epoch + 1}/{epochs}: " +
                       " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        _call(cbs, "on_epoch_end", epoch, logs)
        if getattr(model, "stop_training", False):
            break
    _call(cbs, "on_train_end")
    model.train()
    return history


def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _batches(x, batch_size):
    for start in range(0, len(x), batch_size):
        yield start, x[start:start + batch_size]


def predict_logits(model, x, batch_size=256):
    """Raw outputs of the model for ``x``, computed ``batch_size`` examples at a time in eval mode."""
    tune_allocator()
    x = np.asarray(x)
    was_training = model.training
    model.eval()
    outs = None
    try:
        with no_grad():
            for start, xb in _batches(x, batch_size):
                out = model(xb)
                if outs is None:
                    outs = np.empty((len(x),) + out.shape[1:], dtype=out.dtype)
                outs[start:start + len(xb)] = out
    finally:
        model.train(was_training)
    if outs is None:         # no examples: an empty (0, ...) array of the output's shape
        shape = model.output_shape(x.shape[1:]) if hasattr(model, "output_shape") else ()
        outs = np.empty((0,) + tuple(shape), dtype=model.dtype or np.float32)
    return outs


def _ends_with_softmax(model):
    layers = getattr(model, "layers", [])
    return bool(layers) and type(layers[-1]).__name__ == "Softmax"


def predict_proba(model, x, batch_size=256):
    """Class probabilities (N, K): softmax of the logits (unless the model ends with Softmax)."""
    out = predict_logits(model, x, batch_size)
    return out if _ends_with_softmax(model) else softmax(out, axis=1)


def predict(model, x, batch_size=256):
    """Predicted class index (N,) for each input."""
    return predict_logits(model, x, batch_size).argmax(axis=1)


def evaluate(model, x, y, batch_size=256, loss=None):
    """Mean loss (and accuracy, for cross-entropy) over ``x``, ``y`` in bounded batches.
    Returns ``{"loss": float, "accuracy": float}``."""
    tune_allocator()
    x, y = _check_xy(model, x, y)
    crit = get_loss(loss)
    is_ce = isinstance(crit, CrossEntropyLoss)
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    try:
        with no_grad():
            for start, xb in _batches(x, batch_size):
                yb = y[start:start + len(xb)]
                out = model(xb)
                if is_ce and _ends_with_softmax(model):
                    out = np.log(np.maximum(out, np.finfo(out.dtype).tiny))
                total += crit(out, yb) * len(xb)
                if is_ce:
                    correct += _accuracy_counts(out, yb)
    finally:
        model.train(was_training)
    result = {"loss": total / len(x)}
    if is_ce:
        result["accuracy"] = correct / len(x)
    return result
