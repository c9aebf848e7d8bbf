"""The training loop: ``fit``, ``evaluate``, ``predict``.

``fit`` is mini-batch gradient descent over epochs, the seeds' loop in PyTorch's
words: for each batch, ``optimizer.zero_grad()``, forward, loss, ``backward``,
``optimizer.step()``. Evaluation and prediction run in bounded batches under
``no_grad`` (no caches kept), in eval mode (Dropout off, BatchNorm on running stats).

One training step, the lines to read first (in :func:`_epochs`, fit's loop)::

    optimizer.zero_grad()                  # scratchcnn.optim: every p.grad = 0
    out = model(xb)                        # each layer's forward, in order (scratchcnn.nn)
    batch_loss = crit(out, yb)             # scratchcnn.losses: softmax + cross-entropy
    model.backward(crit.backward())        # each layer's backward, in reverse; fills p.grad
    optimizer.step()                       # p.data -= lr * (update from p.grad)

A model with ONE output unit is a two-class (sigmoid) classifier: its default loss is
:class:`~scratchcnn.losses.BCEWithLogitsLoss`, its accuracy and ``predict`` threshold the logit
at 0 (class 1 when ``logit > 0``), and ``predict_proba`` gives the two columns ``[1 - p, p]``
with ``p = sigmoid(logit)``, the (N, K) form every consumer of class probabilities expects.

``fit``, ``evaluate`` and the ``predict`` functions first ask the C library to keep freed
memory for reuse (:func:`scratchcnn.kernels.tune_allocator`; ``SCRATCHCNN_MALLOC=system``
opts out), so each batch's fresh arrays cost no page faults.
"""
import contextlib
import math
import time

import numpy as np
from tqdm.auto import tqdm

from .callbacks import History
from .errors import ConfigError, LabelError, ShapeError, TrainingDivergedError
from .kernels.allocator import tune_allocator
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MultiMarginLoss, as_target, class_labels, get_loss
from .nn.activations import softmax
from .nn.module import check_finite, no_grad
from .nn.sizes import activation_elements, check_activations
from .optim import SGD, check_number, clip_grad_norm_
from .parallel import DataParallel, check_workers
from .random import get_rng, get_state, set_state


def _as_inputs(x, what="x", allow_empty=False):
    """``x`` as an array of real numbers with a batch axis, every value finite, else ShapeError
    naming the first bad example."""
    try:
        x = np.asarray(x)
    except (ValueError, TypeError) as exc:       # ragged lists, exotic objects
        raise ShapeError(f"{what}: the inputs must be one array of numbers (N, ...): {exc}") from None
    if x.dtype.kind not in "fiub":
        raise ShapeError(f"{what}: the inputs must be real numbers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ShapeError(f"{what}: the inputs need a batch axis (N, ...), got a scalar")
    if len(x) == 0 and not allow_empty:
        raise ShapeError(f"{what}: no examples")
    check_finite(x, f"{what}: the input")
    return x


def _check_xy(model, x, y, what="x"):
    x = _as_inputs(x, what)
    if y is not None:
        y = as_target(y, what)
        if len(y) != len(x):
            raise LabelError(f"{what}: {len(x)} inputs but {len(y)} targets")
    return x, y


def _check_targets(model, x, y, crit, what="y"):
    """Targets that cannot go with the model's outputs are refused before any batch runs."""
    out = None
    if hasattr(model, "output_shape"):
        out = tuple(model.output_shape(tuple(x.shape[1:])))
    if isinstance(crit, CrossEntropyLoss):
        if y.ndim == 1:
            class_labels(y, len(y), out[0] if out is not None and len(out) == 1 else None, what)
        elif out is not None and y.shape[1:] != out:
            raise LabelError(f"{what}: targets of shape {y.shape} do not match the model's outputs (N, "
                             f"{', '.join(map(str, out))}); give (N,) labels or (N, K) probabilities")
    elif isinstance(crit, MultiMarginLoss):
        if y.ndim != 1:
            raise LabelError(f"{what}: MultiMarginLoss takes (N,) class labels, got targets of shape {y.shape}")
        k = out[0] if out is not None and len(out) == 1 else None
        if k is not None:
            class_labels(y, len(y), k, what)
    elif isinstance(crit, BCEWithLogitsLoss):
        if out is not None:
            if len(out) > 1:
                raise LabelError(f"{what}: BCEWithLogitsLoss needs logits (N,), (N, 1) or (N, K); the model "
                                 f"outputs (N, {', '.join(map(str, out))})")
            crit.targets(y, (len(y),) + out, np.float64)
    elif out is not None and type(crit).__name__ == "MSELoss" and y.shape[1:] != out:
        raise LabelError(f"{what}: targets of shape {y.shape} do not match the model's outputs "
                         f"(N, {', '.join(map(str, out))})")


def _check_batch_size(batch_size, who):
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ShapeError(f"{who}: batch_size must be a positive int, got {batch_size!r}")


def _check_memory(model, x, batch_size, who):
    """The layer outputs of one batch must fit in memory (checked before the first batch)."""
    layers = getattr(model, "layers", None)
    if layers:
        itemsize = np.dtype(model.dtype or np.float32).itemsize
        check_activations(f"{who}: the model", activation_elements(layers, x.shape[1:]),
                          min(batch_size, len(x)), itemsize)


def _diagnose(model, xb):
    """Why a batch's loss was not finite: the first layer whose output holds NaN or infinity
    (re-running the batch's forward layer by layer, the model's state restored afterwards)."""
    layers = getattr(model, "layers", None)
    if not layers:
        return ""
    buffers = [(m, {k: np.array(v, copy=True) for k, v in m._buffers.items()}) for m in model.modules()]
    rng_state = get_state()
    out = xb
    try:
        with no_grad():
            for i, layer in enumerate(layers):
                dtype = layer.dtype
                if dtype is not None and out.dtype != dtype:
                    out = out.astype(dtype)
                out = layer.forward(out)
                if out.dtype.kind == "f" and not np.isfinite(out).all():
                    bad_params = [n for n, p in layer.named_parameters() if not np.isfinite(p.data).all()]
                    why = (f"; its parameters {', '.join(bad_params)} are no longer finite (the updates diverged)"
                           if bad_params else "")
                    return f"; the first layer whose output is not finite is layer {i} ({layer!r}){why}"
    except Exception:          # a diagnosis must never hide the real error
        return ""
    finally:
        for m, b in buffers:
            m._buffers.update(b)
        set_state(rng_state)
    return "; every layer's output is finite: the loss itself overflowed (are the targets right?)"


def _accuracy_counts(logits, y, crit=None):
    """``(correct, counted)``: rows whose arg-max matches the label (or the target's arg-max);
    for BCEWithLogitsLoss, outputs whose sign (logit > 0) matches the target (>= 0.5), every
    one of the N * K outputs counted (one per example for a two-class, one-output model)."""
    if isinstance(crit, BCEWithLogitsLoss):
        t = np.asarray(y).reshape(logits.shape)
        return int(((logits > 0) == (t >= 0.5)).sum()), int(logits.size)
    pred = logits.argmax(axis=1)
    truth = y if y.ndim == 1 else y.argmax(axis=1)
    return int((pred == truth).sum()), len(pred)


def _batch_total(crit, value, m, out):
    """A batch's loss summed over its ``m`` examples, in the units of the loss's mean (the logged
    loss is what ``reduction="mean"`` would give over the epoch): ``value * m`` for a mean;
    ``value`` itself for ``reduction="sum"``, divided by the outputs per example when the mean
    is taken over every output element (BCEWithLogitsLoss with K outputs)."""
    if getattr(crit, "reduction", "mean") != "sum":
        return value * m
    return value / (out.size // max(m, 1)) if getattr(crit, "mean_over", "examples") == "elements" else value


def _has_accuracy(crit):
    return isinstance(crit, (CrossEntropyLoss, MultiMarginLoss, BCEWithLogitsLoss))


def _one_output(model, x):
    """True for a two-class (sigmoid) model: one output unit per example."""
    if not hasattr(model, "output_shape"):
        return False
    try:
        return tuple(model.output_shape(tuple(np.shape(x)[1:]))) in ((1,), ())
    except Exception:          # the model's own checks report a bad input shape, later
        return False


def _loss_for(model, x, loss):
    """``get_loss(loss)``; None is cross-entropy, or BCEWithLogitsLoss for a one-output model."""
    if loss is None and _one_output(model, x):
        return BCEWithLogitsLoss()
    return get_loss(loss)


def fit(model, x, y, epochs=1, batch_size=32, optimizer=None, loss=None, validation_data=None,
        shuffle=True, callbacks=None, verbose=1, augment=None, initial_epoch=0, clip_grad_norm=None, workers=1):
    """Train ``model`` on ``x: (N, ...)``, ``y: (N,)`` labels (or (N, K) targets).

    optimizer: an optimizer over ``model.parameters()`` (default ``SGD(lr=0.01, momentum=0.9)``).
    loss: a loss object or name (default cross-entropy; BCEWithLogitsLoss for a model with one
    output). validation_data: ``(x_val, y_val)``.
    callbacks: Callbacks and/or LR schedulers (stepped at each epoch's end; ReduceLROnPlateau
    with ``val_loss`` when there are validation data, else ``loss``).
    augment: optional ``f(x_batch) -> x_batch`` applied to each training batch.
    clip_grad_norm: optional ``max_norm``: each batch's gradients are rescaled to a total L2 norm
    of at most ``max_norm`` before the step (:func:`scratchcnn.optim.clip_grad_norm_`).
    workers: threads that each run the network on a part of every batch (data parallel on the
    machine's cores, :mod:`scratchcnn.parallel`; the BLAS threads are shared out among them).
    BatchNorm then normalises each part with its own statistics, as PyTorch's DataParallel.
    Returns the model's :class:`History` (extended, not replaced, when ``initial_epoch > 0``).
    """
    tune_allocator()
    x, y = _check_xy(model, x, y, "fit")
    if y is None:
        raise LabelError("fit: no targets (y is None)")
    _check_batch_size(batch_size, "fit")
    for name, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"fit: {name} must be an integer >= 0, got {v!r}")
    if initial_epoch > epochs:
        raise ConfigError(f"fit: initial_epoch ({initial_epoch}) is past epochs ({epochs}): the model has already "
                          f"been trained for {initial_epoch} epochs; ask for more epochs in all")
    if clip_grad_norm is not None:
        clip_grad_norm = check_number("fit", "clip_grad_norm", clip_grad_norm, low=0, low_open=True)
    workers = check_workers(workers)
    crit = _loss_for(model, x, loss)
    _check_targets(model, x, y, crit, "fit")
    if isinstance(crit, BCEWithLogitsLoss) and _ends_with(model, "Sigmoid"):
        raise ConfigError("fit: the model ends with Sigmoid, but BCEWithLogitsLoss takes logits: remove the "
                          "Sigmoid layer (predict_proba applies the sigmoid)")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("fit: validation_data must be a pair (x_val, y_val)")
        vx, vy = _check_xy(model, validation_data[0], validation_data[1], "fit: validation_data")
        _check_targets(model, vx, vy, crit, "fit: validation_data")
        _check_memory(model, vx, max(batch_size, 256), "fit: validation_data")
        validation_data = (vx, vy)
    if augment is not None and not callable(augment):
        raise ConfigError(f"fit: augment must be a function of a batch, got {augment!r}"[:200])
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"fit: callbacks must be a list, got {type(callbacks).__name__}")
    for cb in callbacks or []:
        if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
            raise ConfigError(f"fit: {cb!r} is not a callback (it has none of {', '.join(_HOOKS)})"[:300])
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None) or SGD(model.parameters(), lr=0.01, momentum=0.9)
    if not (callable(getattr(optimizer, "step", None)) and callable(getattr(optimizer, "zero_grad", None))):
        raise ConfigError(f"fit: optimizer must be an optimizer (scratchcnn.optim.SGD, Adam, AdamW, RMSprop), got "
                          f"{optimizer!r}"[:200])
    mine = {id(p) for p in model.parameters()}
    if any(id(p) not in mine for p in getattr(optimizer, "params", [])):
        raise ConfigError("fit: the optimizer holds parameters that are not this model's (build it with "
                          "model.parameters())")
    _check_memory(model, x, batch_size, "fit")
    model.optimizer = optimizer
    history = getattr(model, "history", None)
    if initial_epoch == 0 or history is None:
        history = History()
    model.history = history
    cbs = [history] + list(callbacks or [])
    for cb in cbs:
        if hasattr(cb, "set_model"):
            cb.set_model(model)
    model.stop_training = False
    _call(cbs, "on_train_begin")
    par = DataParallel(model, crit, workers) if workers > 1 else None
    try:
        _epochs(model, x, y, epochs, batch_size, optimizer, crit, validation_data, shuffle, cbs, verbose,
                augment, initial_epoch, clip_grad_norm, par)
    finally:
        if par is not None:
            par.close()
    _call(cbs, "on_train_end")
    model.train()
    return history


def _epochs(model, x, y, epochs, batch_size, optimizer, crit, validation_data, shuffle, cbs, verbose, augment,
            initial_epoch, clip_grad_norm, par):
    """fit's loop over epochs and batches (``par``: the DataParallel of ``workers > 1``)."""
    is_ce = _has_accuracy(crit)
    n = len(x)
    n_batches = math.ceil(n / batch_size)
    rng = get_rng()
    for epoch in range(initial_epoch, epochs):
        if getattr(model, "stop_training", False):     # stopped before this epoch (a TimeBudget already spent)
            break
        model.train()
        _call(cbs, "on_epoch_begin", epoch)
        if par is not None:
            par.sync_modes()               # the replicas train as the model does (and freeze what it froze)
        order = rng.permutation(n) if shuffle else np.arange(n)
        total_loss, correct, counted, seen = 0.0, 0, 0, 0
        t0 = time.perf_counter()
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=not verbose, leave=True, dynamic_ncols=True)
        # with workers, BLAS keeps its per-worker thread count for the whole epoch: restoring it
        # between steps woke OpenBLAS's own threads, which then competed with the workers
        with par.blas_limit() if par is not None else contextlib.nullcontext():
            for b in bar:
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb)
                optimizer.zero_grad()
                if par is None:
                    out = model(xb)
                    batch_loss = crit(out, yb)
                else:                              # forward and backward on the workers' shards
                    out, batch_loss = par.forward_backward(xb, yb)
                if not math.isfinite(batch_loss):
                    bar.close()
                    where = _diagnose(model, xb)
                    raise TrainingDivergedError(
                        f"loss became {batch_loss} at epoch {epoch + 1}, batch {b + 1} of {n_batches}{where}; "
                        f"try a smaller learning rate (optimizer: {optimizer!r})", epoch=epoch + 1, batch=b + 1)
                if par is None:
                    model.backward(crit.backward())
                if clip_grad_norm is not None:
                    clip_grad_norm_(model.parameters(), clip_grad_norm)
                optimizer.step()
                m = len(idx)
                total_loss += _batch_total(crit, batch_loss, m, out)
                seen += m
                if is_ce:
                    c, k = _accuracy_counts(out, yb, crit)
                    correct, counted = correct + c, counted + k
                _call(cbs, "on_batch_end", b, {"loss": batch_loss})
                if getattr(model, "stop_training", False):   # a callback stopped it mid-epoch (Keras)
                    break
                if verbose and (b % 10 == 0 or b == n_batches - 1):
                    post = {"loss": f"{total_loss / seen:.4f}"}
                    if is_ce:
                        post["acc"] = f"{correct / counted:.4f}"
                    post["img/s"] = f"{seen / max(time.perf_counter() - t0, 1e-9):.0f}"
                    bar.set_postfix(post, refresh=False)
        bar.close()
        logs = {"loss": total_loss / seen}
        if is_ce:
            logs["accuracy"] = correct / counted
        if validation_data is not None:
            val = _evaluate(model, validation_data[0], validation_data[1], max(batch_size, 256), crit)
            logs.update({"val_" + k: v for k, v in val.items()})
        logs["lr"] = optimizer.lr
        logs["time"] = time.perf_counter() - t0
        if verbose:
            tqdm.write(f"epoch {epoch + 1}/{epochs}: " +
                       " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        _call(cbs, "on_epoch_end", epoch, logs)


_HOOKS = ("set_model", "on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


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
    x = _as_inputs(x, "predict", allow_empty=True)
    _check_batch_size(batch_size, "predict")
    if len(x):
        _check_memory(model, x, batch_size, "predict")
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


def _ends_with(model, name):
    layers = getattr(model, "layers", [])
    return bool(layers) and type(layers[-1]).__name__ == name


def _ends_with_softmax(model):
    return _ends_with(model, "Softmax")


def _sigmoid_pair(out, is_probability):
    """(N,) or (N, 1) outputs of a two-class model -> ``(1 - p, p)``, ``p = sigmoid(logit)``
    (``1 - p`` as ``sigmoid(-logit)``, exact where p is close to 1); the outputs themselves when
    the model already ends with Sigmoid."""
    z = out.reshape(len(out))
    if is_probability:
        return 1 - z, z
    e = np.exp(-np.abs(z))
    p = np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)
    q = np.where(z >= 0, e / (1 + e), 1 / (1 + e)).astype(z.dtype, copy=False)
    return q, p


def _is_one_output(out):
    return out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)


def predict_proba(model, x, batch_size=256):
    """Class probabilities (N, K): softmax of the logits (unless the model ends with Softmax).
    A two-class model with one output: (N, 2), the columns ``[1 - p, p]`` with
    ``p = sigmoid(logit)`` the probability of class 1 (``p`` itself if it ends with Sigmoid)."""
    out = predict_logits(model, x, batch_size)
    if _is_one_output(out):
        q, p = _sigmoid_pair(out, _ends_with(model, "Sigmoid"))
        return np.stack([q, p], axis=1)
    return out if _ends_with_softmax(model) else softmax(out, axis=1)


def predict(model, x, batch_size=256):
    """Predicted class index (N,) for each input: the arg-max of the outputs; for a two-class
    model with one output, 1 where the logit is > 0 (``sigmoid(logit) > 0.5``), else 0."""
    out = predict_logits(model, x, batch_size)
    if _is_one_output(out):
        threshold = 0.5 if _ends_with(model, "Sigmoid") else 0
        return (out.reshape(len(out)) > threshold).astype(np.int64)
    return out.argmax(axis=1)


def evaluate(model, x, y, batch_size=256, loss=None):
    """Mean loss (and accuracy, for the classification losses) over ``x``, ``y`` in bounded
    batches; ``loss`` as in :func:`fit` (default cross-entropy, BCEWithLogitsLoss for a model
    with one output). Returns ``{"loss": float, "accuracy": float}``."""
    tune_allocator()
    x, y = _check_xy(model, x, y, "evaluate")
    if y is None:
        raise LabelError("evaluate: no targets (y is None)")
    _check_batch_size(batch_size, "evaluate")
    crit = _loss_for(model, x, loss)
    _check_targets(model, x, y, crit, "evaluate")
    _check_memory(model, x, batch_size, "evaluate")
    return _evaluate(model, x, y, batch_size, crit)


def _evaluate(model, x, y, batch_size, crit):
    """evaluate's loop, on inputs, targets and a loss already checked (fit's validation data,
    checked once before the first epoch)."""
    is_ce = _has_accuracy(crit)
    was_training = model.training
    model.eval()
    total, correct, counted = 0.0, 0, 0
    try:
        with no_grad():
            for start, xb in _batches(x, batch_size):
                yb = y[start:start + len(xb)]
                out = model(xb)
                if isinstance(crit, CrossEntropyLoss) and _ends_with_softmax(model):
                    out = np.log(np.maximum(out, np.finfo(out.dtype).tiny))
                elif isinstance(crit, BCEWithLogitsLoss) and _ends_with(model, "Sigmoid"):   # back to logits
                    tiny = np.finfo(out.dtype).tiny
                    out = np.log(np.maximum(out, tiny)) - np.log(np.maximum(1 - out, tiny))
                total += _batch_total(crit, crit(out, yb), len(xb), out)
                if is_ce:
                    c, k = _accuracy_counts(out, yb, crit)
                    correct, counted = correct + c, counted + k
    finally:
        model.train(was_training)
    result = {"loss": total / len(x)}
    if is_ce:
        result["accuracy"] = correct / counted
    return result
