"""Optimizers and learning-rate schedules with the update rules of their PyTorch namesakes.

Every optimizer takes the list of :class:`~scratchcnn.nn.Parameter` to update, reads
each ``p.grad`` in ``step()`` and changes ``p.data`` in place. Frozen parameters
(``requires_grad=False``) are skipped.
"""
import math

import numpy as np

from .errors import ConfigError


class Optimizer:
    hyper = ()      # names of the hyper-parameters saved in state_dict

    def __init__(self, params, lr):
        if hasattr(params, "parameters"):
            params = params.parameters()
        self.params = list(params)
        if not self.params:
            raise ConfigError(f"{type(self).__name__}: got an empty parameter list")
        if not lr > 0:
            raise ConfigError(f"{type(self).__name__}: lr must be > 0, got {lr!r}")
        self.lr = float(lr)
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
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ConfigError(f"{type(self).__name__}.load_state_dict: state is for {sd['type']}")
        if len(sd["state"]) != len(self.params):
            raise ConfigError(f"{type(self).__name__}.load_state_dict: state for {len(sd['state'])} "
                              f"parameters, optimizer has {len(self.params)}")
        for k, v in sd.get("config", {}).items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.steps = int(sd.get("steps", 0))
        self.initial_lr = float(sd.get("initial_lr", self.lr))
        self.state = []
        for p, s in zip(self.params, sd["state"]):
            self.state.append({k: np.asarray(v, dtype=p.data.dtype).copy() for k, v in s.items()})
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
        if momentum < 0 or weight_decay < 0:
            raise ConfigError("SGD: momentum and weight_decay must be >= 0")
        if nesterov and momentum <= 0:
            raise ConfigError("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

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
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ConfigError(f"{type(self).__name__}: betas must be in [0, 1), got {betas!r}")
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)

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
        self.last_epoch, self.base_lr = int(sd["last_epoch"]), float(sd["base_lr"])
        self.optimizer.lr = self.get_lr(self.last_epoch) if self.last_epoch else self.base_lr


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        if step_size < 1:
            raise ConfigError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        if T_max < 1:
            raise ConfigError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def get_lr(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
