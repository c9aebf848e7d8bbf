"""Optimizers and learning-rate schedules with the update rules of their PyTorch namesakes.

Every optimizer takes the list of :class:`~scratchcnn.nn.Parameter` to update, reads
each ``p.grad`` in ``step()`` and changes ``p.data`` in place. Frozen parameters
(``requires_grad=False``) are skipped. The optimizers: :class:`SGD`, :class:`Adam`,
:class:`AdamW`, :class:`RMSprop`; the schedules: :class:`StepLR`, :class:`CosineAnnealingLR`
(from the epoch count), :class:`ReduceLROnPlateau` (from a monitored metric) and
:class:`OneCycleLR` (from the batch count: it steps after every batch); and
:func:`clip_grad_norm_`, which rescales the gradients before a step.
"""
import math

import numpy as np

from .errors import ConfigError, TrainingDivergedError
from .nn.checks import number as check_number       # the library's one number check (re-exported here)


def _buffer(state, name, like):
    """``state[name]``, created as zeros shaped like ``like`` on first use (once, not per step)."""
    buf = state.get(name)
    if buf is None:
        buf = state[name] = np.zeros_like(like)
    return buf


class Optimizer:
    hyper = ()      # names of the hyper-parameters saved in state_dict

    def __init__(self, params, lr):
        if hasattr(params, "parameters"):
            params = params.parameters()
        try:
            self.params = list(params)
        except TypeError:
            raise ConfigError(f"{type(self).__name__}: params must be a list of Parameters (model.parameters()), "
                              f"got {type(params).__name__}") from None
        if not self.params:
            raise ConfigError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not (hasattr(p, "data") and hasattr(p, "grad") and hasattr(p, "requires_grad")):
                raise ConfigError(f"{type(self).__name__}: params[{i}] is a {type(p).__name__}, not a Parameter "
                                  f"(pass model.parameters())")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ConfigError(f"{type(self).__name__}: a parameter appears more than once in params")
        self.lr = check_number(type(self).__name__, "lr", lr, low=0, low_open=True)
        self.initial_lr = self.lr
        self.state = [dict() for _ in self.params]   # per-parameter buffers
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        self.steps += 1
        for p, state in zip(self.params, self.state):
            if p.requires_grad:
                self._update(p, state)

    def _update(self, p, state):
        raise NotImplementedError

    def config(self):
        return {k: getattr(self, k) for k in ("lr",) + self.hyper}

    def state_dict(self):
        """``{"type", "config", "steps", "initial_lr", "state": [{name: array}, ...]}``."""
        return {"type": type(self).__name__, "config": self.config(), "steps": self.steps,
                "initial_lr": self.initial_lr,
                "state": [{k: v.copy() for k, v in s.items()} for s in self.state]}

    def load_state_dict(self, sd):
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(sd, dict):
            raise ConfigError(f"{who}: expected a dict as state_dict() returns, got {type(sd).__name__}")
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ConfigError(f"{who}: state is for {sd['type']!r}")
        state = sd.get("state")
        if not isinstance(state, (list, tuple)) or not all(isinstance(s, dict) for s in state):
            raise ConfigError(f"{who}: 'state' must be a list of one dict of buffers per parameter")
        if len(state) != len(self.params):
            raise ConfigError(f"{who}: state for {len(state)} parameters, optimizer has {len(self.params)}")
        config = sd.get("config", {})
        if not isinstance(config, dict) or set(config) - set(("lr",) + self.hyper):
            raise ConfigError(f"{who}: 'config' must be a dict of {', '.join(('lr',) + self.hyper)}, got {config!r}")
        steps = sd.get("steps", 0)
        initial_lr = sd.get("initial_lr", self.lr)
        steps = check_number(who, "steps", steps, low=0, integer=True)
        initial_lr = check_number(who, "initial_lr", initial_lr, low=0, low_open=True)
        if config:      # checked as the constructor checks them, but the current lr may be 0: a schedule
            hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "lr"}
            type(self)(self.params, lr=initial_lr, **hyper)      # (a cosine's eta_min) may have annealed it there
            if "lr" in config:
                check_number(who, "lr", config["lr"], low=0)
        buffers = []
        for i, (p, s) in enumerate(zip(self.params, state)):
            b = {}
            for k, v in s.items():
                try:
                    a = np.asarray(v)
                except Exception:
                    a = np.asarray(None)
                if not isinstance(k, str) or a.dtype.kind not in "fiu" or a.shape != p.data.shape:
                    raise ConfigError(f"{who}: buffer {k!r} of parameter {i} must be a real array of shape "
                                      f"{p.data.shape}, got {a.dtype} {a.shape}")
                if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
                    raise ConfigError(f"{who}: buffer {k!r} of parameter {i} holds NaN or infinite values")
                b[k] = a.astype(p.data.dtype, copy=True)
            buffers.append(b)
        for k, v in config.items():
            setattr(self, k, tuple(float(a) for a in v) if isinstance(v, (list, tuple)) else
                    (bool(v) if isinstance(v, bool) else float(v)))
        self.steps = steps
        self.initial_lr = initial_lr
        self.state = buffers
        return self

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, nesterov=False, weight_decay=0)`` (PyTorch's rule):

    ``g = grad + weight_decay * p``; with momentum ``b = momentum * b + g`` (``b = g`` at
    the first step) and ``g = g + momentum * b`` (Nesterov) or ``g = b``; then ``p -= lr * g``.
    """
    hyper = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        momentum = check_number("SGD", "momentum", momentum, low=0, high=1, high_open=True)
        weight_decay = check_number("SGD", "weight_decay", weight_decay, low=0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ConfigError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and momentum <= 0:
            raise ConfigError("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, bool(nesterov), weight_decay

    def _update(self, p, state):
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= p.data.dtype.type(self.lr) * g


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)`` (PyTorch's rule):

    ``g = grad + weight_decay * p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """
    hyper = ("betas", "eps", "weight_decay")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"{who}: betas must be a pair of numbers in [0, 1), got {betas!r}")
        b1, b2 = (check_number(who, f"betas[{i}]", b, low=0, high=1, high_open=True) for i, b in enumerate(betas))
        eps = check_number(who, "eps", eps, low=0, low_open=True)
        weight_decay = check_number(who, "weight_decay", weight_decay, low=0)
        if self.decoupled and self.lr * weight_decay >= 1:
            raise ConfigError(f"{who}: lr * weight_decay must be < 1 (each step multiplies the weights by "
                              f"1 - lr * weight_decay), got {self.lr} * {weight_decay}")
        self.betas, self.eps, self.weight_decay = (b1, b2), eps, weight_decay

    def _update(self, p, state):
        b1, b2 = self.betas
        g = p.grad
        if self.weight_decay:
            if self.decoupled:
                p.data *= p.data.dtype.type(1 - self.lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p.data
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        t = self.steps
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        p.data -= (step_size * m / denom).astype(p.data.dtype, copy=False)


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``: Adam with
    decoupled weight decay, ``p *= 1 - lr * weight_decay`` before the Adam step (PyTorch's rule)."""
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """``RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)``
    (PyTorch's rule, every buffer zero at the start):

    ``g = grad + weight_decay * p``; ``v = alpha v + (1 - alpha) g^2`` (the running mean square,
    buffer ``square_avg``); with ``centered`` also ``m = m + (1 - alpha) (g - m)`` (the running
    mean, ``grad_avg``) and ``avg = sqrt(v - m^2) + eps``, else ``avg = sqrt(v) + eps``; then with
    momentum ``b = momentum * b + g / avg`` (``momentum_buffer``) and ``p -= lr * b``, without it
    ``p -= lr * g / avg``. Each weight's step is its gradient divided by that weight's recent
    gradient size, so every weight moves at about the rate ``lr``.
    """
    hyper = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr)
        self.alpha = check_number("RMSprop", "alpha", alpha, low=0, high=1)
        self.eps = check_number("RMSprop", "eps", eps, low=0, low_open=True)
        self.weight_decay = check_number("RMSprop", "weight_decay", weight_decay, low=0)
        self.momentum = check_number("RMSprop", "momentum", momentum, low=0, high=1, high_open=True)
        if not isinstance(centered, (bool, np.bool_)):
            raise ConfigError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.centered = bool(centered)

    def _update(self, p, state):
        g = p.grad
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        v = _buffer(state, "square_avg", p.data)
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        if self.centered:
            m = _buffer(state, "grad_avg", p.data)
            m += (1 - self.alpha) * (g - m)
            avg = np.sqrt(v - m * m)
        else:
            avg = np.sqrt(v)
        avg += self.eps
        lr = p.data.dtype.type(self.lr)
        if self.momentum:
            buf = _buffer(state, "momentum_buffer", p.data)
            buf *= self.momentum
            buf += g / avg
            p.data -= lr * buf
        else:
            p.data -= lr * (g / avg)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Rescale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``; return the total norm before clipping (a float). PyTorch's
    ``torch.nn.utils.clip_grad_norm_``:

    ``total = || (||g_1||, ||g_2||, ...) ||`` (the ``norm_type`` norm of the per-parameter norms,
    which is the norm of all gradients laid end to end; ``inf``: the largest ``|g|``); every
    gradient is multiplied by ``min(max_norm / (total + 1e-6), 1)``. The gradients keep their
    direction; only a step that would be too long is shortened. Frozen parameters
    (``requires_grad=False``) are left out. A non-finite total with ``error_if_nonfinite`` is a
    :class:`~scratchcnn.errors.TrainingDivergedError`.

    parameters: a model, a list of Parameters or one Parameter. Call it between
    ``model.backward(...)`` and ``optimizer.step()`` (``fit(..., clip_grad_norm=max_norm)`` does).
    """
    who = "clip_grad_norm_"
    if hasattr(parameters, "parameters"):
        parameters = parameters.parameters()
    elif hasattr(parameters, "grad") and hasattr(parameters, "data"):
        parameters = [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise ConfigError(f"{who}: parameters must be a model or a list of Parameters, got "
                          f"{type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not (hasattr(p, "data") and hasattr(p, "grad") and hasattr(p, "requires_grad")):
            raise ConfigError(f"{who}: parameters[{i}] is a {type(p).__name__}, not a Parameter")
    max_norm = check_number(who, "max_norm", max_norm, low=0, low_open=True)
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    if (not isinstance(norm_type, (int, float, np.integer, np.floating)) or isinstance(norm_type, (bool, np.bool_))
            or math.isnan(norm_type) or norm_type <= 0):
        raise ConfigError(f"{who}: norm_type must be a number > 0 or inf, got {norm_type!r}")
    grads = [p.grad for p in params if p.requires_grad and p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        norms = [np.max(np.abs(g)) if g.size else g.dtype.type(0) for g in grads]
        total = np.max(np.array(norms))
    else:
        norms = [np.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads]
        total = np.linalg.norm(np.array(norms), ord=norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise TrainingDivergedError(f"{who}: the total norm of order {norm_type} of the gradients is {total}, so "
                                    f"they cannot be clipped (error_if_nonfinite=False scales them anyway)")
    dtype = grads[0].dtype.type
    coef = np.minimum(dtype(max_norm) / (dtype(total) + dtype(1e-6)), dtype(1.0))
    for g in grads:
        g *= coef.astype(g.dtype)
    return float(total)


# ---- learning-rate schedules ------------------------------------------
class LRScheduler:
    """Sets ``optimizer.lr`` from the epoch count. Call ``step()`` once per epoch (``fit``
    does, when the scheduler is passed in ``callbacks``)."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"{type(self).__name__}: optimizer must be a scratchcnn optimizer (SGD, Adam, "
                              f"AdamW, RMSprop), got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_epoch = 0

    def get_lr(self, epoch):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr(self.last_epoch)
        return self.optimizer.lr

    # callback protocol, so a scheduler can go in fit(callbacks=[...])
    def on_epoch_end(self, epoch, logs=None):
        self.step()

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}

    def load_state_dict(self, sd):
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(sd, dict) or "last_epoch" not in sd or "base_lr" not in sd:
            raise ConfigError(f"{who}: expected a dict with 'last_epoch' and 'base_lr', got {sd!r}"[:300])
        self.last_epoch = check_number(who, "last_epoch", sd["last_epoch"], low=0, integer=True)
        self.base_lr = check_number(who, "base_lr", sd["base_lr"], low=0, low_open=True)
        self.optimizer.lr = self.get_lr(self.last_epoch) if self.last_epoch else self.base_lr


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = check_number("StepLR", "step_size", step_size, low=1, integer=True)
        self.gamma = check_number("StepLR", "gamma", gamma, low=0, low_open=True)

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max = check_number("CosineAnnealingLR", "T_max", T_max, low=1, integer=True)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min, low=0)
        if self.eta_min > self.base_lr:
            raise ConfigError(f"CosineAnnealingLR: eta_min ({self.eta_min}) must not exceed the optimizer's "
                              f"lr ({self.base_lr})")

    def get_lr(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class ReduceLROnPlateau(LRScheduler):
    """``ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
    threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)``: multiply the lr by ``factor`` when a
    metric has stopped improving (PyTorch's ``step(metrics)`` logic).

    ``step(metric)`` once per epoch: the metric is *better* than the best so far when, for
    ``mode="min"``, it is below ``best * (1 - threshold)`` (``"rel"``) or ``best - threshold``
    (``"abs"``); for ``"max"``, above ``best * (1 + threshold)`` or ``best + threshold``. A better
    metric becomes the best and clears the count of bad epochs; any other adds one. During the
    ``cooldown`` epochs after a reduction bad epochs are not counted. When the count exceeds
    ``patience``: ``lr = max(lr * factor, min_lr)`` (skipped if that changes lr by no more than
    ``eps``), the count restarts and the cooldown begins.

    In ``fit(callbacks=[...])`` it is stepped at each epoch's end with ``logs[monitor]``;
    ``monitor`` (a keyword of this class, not of PyTorch's) defaults to ``"val_loss"`` when
    ``fit`` has validation data, else ``"loss"``.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8, *, monitor=None):
        super().__init__(optimizer)
        who = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ConfigError(f"{who}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ConfigError(f"{who}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ConfigError(f"{who}: monitor must be the name of a logged metric (e.g. 'val_loss'), got {monitor!r}")
        self.mode, self.threshold_mode, self.monitor = mode, threshold_mode, monitor
        self.factor = check_number(who, "factor", factor, low=0, high=1, low_open=True, high_open=True)
        self.patience = check_number(who, "patience", patience, low=0, integer=True)
        self.threshold = check_number(who, "threshold", threshold, low=0)
        self.cooldown = check_number(who, "cooldown", cooldown, low=0, integer=True)
        self.min_lr = check_number(who, "min_lr", min_lr, low=0)
        self.eps = check_number(who, "eps", eps, low=0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (self.threshold + 1) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics):
        """One epoch's value of the monitored metric; returns the lr for the next epoch."""
        ok = isinstance(metrics, (int, float, np.integer, np.floating)) and not isinstance(metrics, (bool, np.bool_))
        if not ok and getattr(metrics, "size", None) == 1:
            metrics, ok = np.asarray(metrics).reshape(()).item(), True
        if not ok:
            raise ConfigError(f"ReduceLROnPlateau.step: the metric must be a number, got {metrics!r}"[:200])
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        key = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
        if key not in logs:
            raise ConfigError(f"ReduceLROnPlateau: fit logged no {key!r} to monitor (logged: "
                              f"{', '.join(sorted(logs))})")
        self.step(logs[key])

    def state_dict(self):
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
                "last_epoch": self.last_epoch, "lr": self.optimizer.lr}

    def load_state_dict(self, sd):
        who = "ReduceLROnPlateau.load_state_dict"
        keys = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "lr")
        if not isinstance(sd, dict) or any(k not in sd for k in keys):
            raise ConfigError(f"{who}: expected a dict with {', '.join(keys)}, got {sd!r}"[:300])
        best = sd["best"]
        if not isinstance(best, (int, float, np.integer, np.floating)) or isinstance(best, bool) or math.isnan(best):
            raise ConfigError(f"{who}: best must be a number (inf before the first step), got {best!r}")
        self.num_bad_epochs = check_number(who, "num_bad_epochs", sd["num_bad_epochs"], low=0, integer=True)
        self.cooldown_counter = check_number(who, "cooldown_counter", sd["cooldown_counter"], low=0, integer=True)
        self.last_epoch = check_number(who, "last_epoch", sd["last_epoch"], low=0, integer=True)
        self.optimizer.lr = check_number(who, "lr", sd["lr"], low=0, low_open=True)
        self.best = float(best)
        return self

    def __repr__(self):
        return (f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience}, "
                f"threshold={self.threshold}, threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown}, "
                f"min_lr={self.min_lr})")


class OneCycleLR(LRScheduler):
    """``OneCycleLR(optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
    pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
    max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False)``: the 1cycle
    policy (Smith and Topin 2019) with PyTorch's phases, stepped once per **batch**.

    The lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the
    ``total_steps`` (= ``epochs * steps_per_epoch`` when not given) and falls from there to
    ``max_lr / div_factor / final_div_factor`` at the last step; ``three_phase`` climbs back to
    the starting lr before the final fall. Each phase interpolates by ``anneal_strategy``:
    ``"cos"``: ``end + (start - end) * (1 + cos(pi * t)) / 2``, ``"linear"``: ``start + (end -
    start) * t``, with ``t`` the fraction of the phase done. With ``cycle_momentum`` the momentum
    (SGD's and RMSprop's ``momentum``, Adam's ``betas[0]``) moves the other way, from
    ``max_momentum`` to ``base_momentum`` while the lr rises and back while it falls: a large
    step is taken with less memory of the old direction.

    In ``fit(callbacks=[...])`` it steps after every batch (``on_batch_end``), so build it with
    ``epochs`` and ``steps_per_epoch = ceil(len(x) / batch_size)``; a step past ``total_steps``
    is a ConfigError, as PyTorch refuses it.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        super().__init__(optimizer)
        who = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ConfigError(f"{who}: give total_steps, or both epochs and steps_per_epoch")
            epochs = check_number(who, "epochs", epochs, low=1, integer=True)
            steps_per_epoch = check_number(who, "steps_per_epoch", steps_per_epoch, low=1, integer=True)
            total_steps = epochs * steps_per_epoch
        self.total_steps = check_number(who, "total_steps", total_steps, low=1, integer=True)
        self.max_lr = check_number(who, "max_lr", max_lr, low=0, low_open=True)
        self.pct_start = check_number(who, "pct_start", pct_start, low=0, high=1, low_open=True, high_open=True)
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(f"{who}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = check_number(who, "div_factor", div_factor, low=0, low_open=True)
        self.final_div_factor = check_number(who, "final_div_factor", final_div_factor, low=0, low_open=True)
        for name, v in (("cycle_momentum", cycle_momentum), ("three_phase", three_phase)):
            if not isinstance(v, (bool, np.bool_)):
                raise ConfigError(f"{who}: {name} must be True or False, got {v!r}")
        self.cycle_momentum, self.three_phase = bool(cycle_momentum), bool(three_phase)
        self.base_momentum = check_number(who, "base_momentum", base_momentum, low=0, high=1, high_open=True)
        self.max_momentum = check_number(who, "max_momentum", max_momentum, low=0, high=1, high_open=True)
        if self.cycle_momentum and not (hasattr(optimizer, "momentum") or hasattr(optimizer, "betas")):
            raise ConfigError(f"{who}: {type(optimizer).__name__} has no momentum to cycle: "
                              f"pass cycle_momentum=False")
        self.initial_lr = self.max_lr / self.div_factor
        self.min_lr = self.initial_lr / self.final_div_factor
        up = self.pct_start * self.total_steps - 1
        lo, hi, mx, mn = self.max_momentum, self.base_momentum, self.max_lr, self.min_lr
        # (last step of the phase, lr at its start and end, momentum at its start and end)
        if self.three_phase:
            self.phases = [(up, self.initial_lr, mx, lo, hi), (2 * up, mx, self.initial_lr, hi, lo),
                           (self.total_steps - 1, self.initial_lr, mn, lo, lo)]
        else:
            self.phases = [(up, self.initial_lr, mx, lo, hi), (self.total_steps - 1, mx, mn, hi, lo)]
        start = 0.0
        for end, *_ in self.phases:
            if end <= start and end != self.phases[-1][0]:
                raise ConfigError(f"{who}: {self.total_steps} steps with pct_start={self.pct_start} leave a phase "
                                  f"without steps: give more steps or another pct_start")
            start = end
        self.base_lr = self.initial_lr
        self._apply(0)

    def _anneal(self, start, end, t):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * t) + 1)
        return (end - start) * t + start

    def values(self, step):
        """``(lr, momentum)`` at step ``step`` (momentum None without ``cycle_momentum``)."""
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(self.phases):
            if step <= end or i == len(self.phases) - 1:
                t = (step - start) / (end - start) if end > start else 1.0
                return self._anneal(lr0, lr1, t), (self._anneal(m0, m1, t) if self.cycle_momentum else None)
            start = end

    def get_lr(self, step):
        return self.values(step)[0]

    def _apply(self, step):
        lr, momentum = self.values(step)
        self.optimizer.lr = lr
        if momentum is not None:
            if hasattr(self.optimizer, "betas"):
                self.optimizer.betas = (momentum, self.optimizer.betas[1])
            else:
                self.optimizer.momentum = momentum

    def step(self):
        if self.last_epoch + 1 > self.total_steps:
            raise ConfigError(f"OneCycleLR: stepped {self.last_epoch + 1} times, past its total_steps "
                              f"({self.total_steps}): build it with the epochs and steps per epoch fit runs "
                              f"(steps_per_epoch = ceil(len(x) / batch_size))")
        self.last_epoch += 1
        self._apply(self.last_epoch)
        return self.optimizer.lr

    # stepped per batch, not per epoch
    def on_batch_end(self, batch, logs=None):
        self.step()

    def on_epoch_end(self, epoch, logs=None):
        pass

    def load_state_dict(self, sd):
        who = "OneCycleLR.load_state_dict"
        if not isinstance(sd, dict) or "last_epoch" not in sd:
            raise ConfigError(f"{who}: expected a dict with 'last_epoch' (the steps taken), got {sd!r}"[:300])
        self.last_epoch = check_number(who, "last_epoch", sd["last_epoch"], low=0, high=self.total_steps,
                                       integer=True)
        self._apply(self.last_epoch)
        return self

    def __repr__(self):
        return (f"OneCycleLR(max_lr={self.max_lr}, total_steps={self.total_steps}, pct_start={self.pct_start}, "
                f"anneal_strategy={self.anneal_strategy!r}, cycle_momentum={self.cycle_momentum}, "
                f"div_factor={self.div_factor}, final_div_factor={self.final_div_factor}, "
                f"three_phase={self.three_phase})")
