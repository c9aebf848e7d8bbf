"""Callbacks for ``fit`` (Keras' protocol): each hook gets the epoch and a ``logs`` dict."""
import math
import numbers
import os
import time

import numpy as np

from .errors import ConfigError
from .optim import Optimizer, check_number


class Callback:
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_end(self, logs=None): ...


class History(Callback):
    """Per-epoch metrics: ``history.history["loss"]``, ``["accuracy"]``, ``["val_loss"]``,
    ``["val_accuracy"]``, ``["lr"]``, ``["time"]``; ``history.epoch`` lists epoch indices."""

    def __init__(self, history=None, epoch=None):
        if history is not None and not isinstance(history, dict):
            raise ConfigError(f"History: history must be a dict of lists of numbers, got {type(history).__name__}")
        for k, v in (history or {}).items():
            if not isinstance(k, str) or not isinstance(v, (list, tuple)) or not all(_is_number(a) for a in v):
                raise ConfigError(f"History: history[{k!r}] must be a list of numbers (one per epoch), got "
                                  f"{v!r}"[:200])
        if epoch is not None and not (isinstance(epoch, (list, tuple)) and all(
                isinstance(e, numbers.Integral) and not isinstance(e, (bool, np.bool_)) and e >= 0 for e in epoch)):
            raise ConfigError(f"History: epoch must be a list of epoch numbers (integers >= 0), got {epoch!r}"[:200])
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.epoch = list(epoch or [])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def to_dict(self):
        return {"epoch": self.epoch, "history": self.history}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"History.from_dict: expected {{'epoch': [...], 'history': {{...}}}}, got "
                              f"{type(d).__name__}")
        return cls(d.get("history"), d.get("epoch"))

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, mode="auto"):
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"EarlyStopping: monitor must be the name of a logged metric, got {monitor!r}")
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ConfigError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not _is_number(min_delta) or not math.isfinite(min_delta) or min_delta < 0:
            raise ConfigError(f"EarlyStopping: min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode("EarlyStopping", mode, monitor)
        self.best, self.wait = None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        better = (self.best is None or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model (with optimizer and history) after each epoch, or only when
    ``monitor`` improves with ``save_best_only``."""

    def __init__(self, path, monitor="val_accuracy", save_best_only=False, mode="auto"):
        try:
            os.fspath(path)
        except TypeError:
            raise ConfigError(f"ModelCheckpoint: path must be a file name, got {path!r}") from None
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"ModelCheckpoint: monitor must be the name of a logged metric, got {monitor!r}")
        self.path, self.monitor, self.save_best_only = path, monitor, bool(save_best_only)
        self.mode = _mode("ModelCheckpoint", mode, monitor)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = (logs or {}).get(self.monitor)
            if value is None:
                return
            if self.best is not None and (value <= self.best if self.mode == "max" else value >= self.best):
                return
            self.best = value
        self.model.save(self.path)


class TimeBudget(Callback):
    """Train for ``seconds`` of wall-clock time (PyTorch Lightning's ``max_time``): the time is
    checked after every batch, so training stops within one batch of the budget, and ``fit``
    ends the epoch it is in there (that epoch's logs cover the batches that ran; the epoch-end
    callbacks, checkpoints included, still run). ``fit``'s ``epochs`` stays the upper bound.

    optimizer: optional. Its learning rate then follows a cosine over the time instead of the
    epochs (CosineAnnealingLR with elapsed / seconds in place of epoch / T_max), set after each
    batch for the next: ``lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * t / seconds)) / 2``
    with ``lr0`` the optimizer's initial lr and ``t`` the seconds trained, so a run anneals fully
    however fast or slow the machine turns out to be (and is, for the same reason, not exactly
    repeatable). spent: seconds already trained, for a resumed run (the clock starts there).
    ``stopped`` says whether the budget ended the training.
    """

    clock = staticmethod(time.perf_counter)     # seconds; the tests put a fake clock here

    def __init__(self, seconds, optimizer=None, eta_min=0.0, spent=0.0):
        self.seconds = check_number("TimeBudget", "seconds", seconds, low=0, low_open=True)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise ConfigError(f"TimeBudget: optimizer must be a scratchcnn optimizer (SGD, Adam, AdamW, RMSprop) "
                              f"or None, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.eta_min = check_number("TimeBudget", "eta_min", eta_min, low=0)
        if optimizer is not None and self.eta_min > optimizer.initial_lr:
            raise ConfigError(f"TimeBudget: eta_min ({self.eta_min}) must not exceed the optimizer's lr "
                              f"({optimizer.initial_lr})")
        self.spent = check_number("TimeBudget", "spent", spent, low=0)
        self.start, self.stopped = None, False

    def elapsed(self):
        """Seconds trained so far (``spent`` included; just ``spent`` before training begins)."""
        return self.spent if self.start is None else self.clock() - self.start

    def get_lr(self, t):
        """The cosine's learning rate after ``t`` seconds (``eta_min`` from ``seconds`` on)."""
        lr0 = self.optimizer.initial_lr
        return self.eta_min + (lr0 - self.eta_min) * (1 + math.cos(math.pi * min(t / self.seconds, 1.0))) / 2

    def on_train_begin(self, logs=None):
        self.start, self.stopped = self.clock() - self.spent, False
        if self.optimizer is not None:
            self.optimizer.lr = self.get_lr(self.spent)
        if self.spent >= self.seconds:          # a resumed run that had used its budget trains no further
            self.model.stop_training = self.stopped = True

    def on_batch_end(self, batch, logs=None):
        t = self.elapsed()
        if self.optimizer is not None:
            self.optimizer.lr = self.get_lr(t)
        if t >= self.seconds:
            self.model.stop_training = self.stopped = True

    def __repr__(self):
        return f"TimeBudget(seconds={self.seconds:g}, cosine={'yes' if self.optimizer is not None else 'no'})"


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _mode(who, mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode if mode != "auto" else ("max" if "acc" in monitor else "min")
