"""Optimizers and learning-rate schedules with the update rules of their PyTorch namesakes.

Every optimizer takes the list of :class:`~scratchcnn.nn.Parameter` to update, reads
each ``p.grad`` in ``step()`` and changes ``p.data`` in place. Frozen parameters
(``requires_grad=False``) are skipped.
"""
import math

import numpy as np

from .errors import ConfigError


def check_number(who, name, value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` as a float (or int with ``integer``), checked: a real, finite number (not a bool,
    a string or NaN) within ``[low, high]`` (``low_open`` / ``high_open``: the bound excluded);
    else ConfigError naming ``who`` and ``name``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok and integer and not isinstance(value, (int, np.integer)):
        ok = False
    if ok:
        ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        kind = "an integer" if integer else "a finite number"
        rng = []
        if low is not None:
            rng.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            rng.append(f"{'<' if high_open else '<='} {high}")
        raise ConfigError(f"{who}: {name} must be {kind}{' ' + ' and '.join(rng) if rng else ''}, got {value!r}")
    return int(value) if integer else float(value)


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
        if config:      # checked as the constructor checks them
            type(self)(self.params, **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
        steps = sd.get("steps", 0)
        initial_lr = sd.get("initial_lr", self.lr)
        steps = check_number(who, "steps", steps, low=0, integer=True)
        initial_lr = check_number(who, "initial_lr", initial_lr, low=0, low_open=True)
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


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


# ---- learning-rate schedules ------------------------------------------
class LRScheduler:
    """Sets ``optimizer.lr`` from the epoch count. Call ``step()`` once per epoch (``fit``
    does, when the scheduler is passed in ``callbacks``)."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"{type(self).__name__}: optimizer must be a scratchcnn optimizer (SGD, Adam, "
                              f"AdamW), got {type(optimizer).__name__}")
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
