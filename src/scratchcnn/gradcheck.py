"""Check a model's hand-written gradients against float64 central differences."""
import copy

import numpy as np

from .losses import get_loss
from .random import get_state, set_state


def gradcheck(model, x, y, loss=None, eps=1e-6, samples=20, seed=0, zero_grad=1e-7, print_fn=print):
    """Compare every parameter's analytic gradient with ``(L(p + eps) - L(p - eps)) / (2 eps)``.

    Works on a float64 copy of ``model`` (the model itself is untouched), in training
    mode with the same dropout mask for every evaluation. For each parameter,
    ``samples`` entries (all, if fewer) are perturbed. The relative error
    ``|a - n| / max(|a| + |n|, 1e-12)`` (norms over the sampled entries) is below
    ~1e-6 for a correct backward. Where both gradients' norms are below ``zero_grad`` (a
    gradient that is zero in exact arithmetic), the absolute difference is reported. Returns ``{parameter name: relative error}`` and
    prints a per-layer table.
    """
    m = copy.deepcopy(model)
    m.to(np.float64)
    m.train()
    x = np.asarray(x, dtype=np.float64)
    crit = get_loss(loss)
    if y is not None and np.asarray(y).dtype.kind == "f":
        y = np.asarray(y, dtype=np.float64)
    rng_state = get_state()

    def loss_value():
        set_state(rng_state)
        return crit(m(x), y)

    m.zero_grad()
    loss_value()
    m.backward(crit.backward())
    pick = np.random.default_rng(seed)
    errors = {}
    rows = []
    for name, p in m.named_parameters():
        analytic = p.grad.copy()
        flat = p.data.reshape(-1)
        idx = np.arange(flat.size) if flat.size <= samples else pick.choice(flat.size, samples, replace=False)
        num = np.empty(len(idx))
        for j, i in enumerate(idx):
            orig = flat[i]
            flat[i] = orig + eps
            lp = loss_value()
            flat[i] = orig - eps
            lm = loss_value()
            flat[i] = orig
            num[j] = (lp - lm) / (2 * eps)
        a = analytic.reshape(-1)[idx]
        scale = np.linalg.norm(a) + np.linalg.norm(num)
        # A gradient that is truly zero (a conv bias before BatchNorm) leaves only rounding
        # noise: compare it in absolute terms instead of dividing noise by noise.
        err = float(np.linalg.norm(a - num) / (scale if scale > zero_grad else 1.0))
        errors[name] = err
        layer = _owner(m, name)
        rows.append((name, repr(layer), str(len(idx)), f"{err:.2e}"))
    set_state(rng_state)
    if print_fn is not None:
        head = ("parameter", "layer", "checked", "rel. error")
        widths = [max(len(r[c]) for r in rows + [head]) for c in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        worst = max(errors.values(), default=0.0)
        lines.append(f"worst relative error: {worst:.2e} ({'OK' if worst < 1e-5 else 'CHECK THIS'})")
        print_fn("\n".join(lines))
    return errors


def _owner(model, name):
    """The module holding the parameter ``name`` ("3.body.0.weight" -> the Conv2D inside block 3)."""
    module = model
    for part in name.split(".")[:-1]:
        module = module._modules.get(part, module)
    return module


def jitter_biases(model, scale=0.1, seed=0):
    """Give every bias small random values (in place) and return the model.

    A freshly built model has zero biases, so a ReLU whose whole receptive field is zero
    sits exactly on its kink at 0, where the central difference sees half a slope: that is
    the maths, not a bug. Checking a fresh model, jitter its biases first."""
    r = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data += (scale * r.standard_normal(p.shape)).astype(p.data.dtype)
    return model
