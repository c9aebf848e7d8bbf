"""Callbacks for ``fit`` (Keras' protocol): each hook gets the epoch and a ``logs`` dict."""
import math
import numbers
import os

import numpy as np

from .errors import ConfigError


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


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _mode(who, mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode if mode != "auto" else ("max" if "acc" in monitor else "min")
