"""The training doctor: the checks an experienced practitioner runs before a long training run.

    >>> import scratchcnn as sc
    >>> report = sc.doctor(model, x_train, y_train, optimizer=sc.optim.SGD(model.parameters(), lr=0.01))
    >>> print(report)                      # a table: check, status, finding, evidence, fix
    >>> report["input-scale"].status       # 'ok', 'warn' or 'fail'
    >>> [f.to_dict() for f in report.findings]    # id, status, message, evidence, fix

Every check works on a deep copy of the model (the user's weights and optimizer state are never
touched) and is deterministic for a ``seed`` (the shared generator's state is restored at the
end). The checks, by id, with the thresholds they use:

``input-scale``
    range, mean and spread of the inputs. fail: every input the same value (all zero included);
    inputs tiny (max |x| < 0.02: divided by 255 twice lands at max 1/255). warn: the raw 0..255
    scale (min >= 0, max > 25), a large scale (max |x| > 50), little spread (std < 0.05), more
    than 10% of the examples constant (blank images).
``labels``
    labels against the model's outputs and the loss. fail: a label outside 0..K-1 (1..K named
    as such), non-integer labels for cross-entropy, targets whose shape does not fit the loss.
    warn: classes the model has but the data lack, a class more than 5x as frequent as another,
    a model ending with Softmax under cross-entropy (softmax applied twice).
``initial-loss``
    the loss at initialisation against ln K (cross-entropy over K classes). fail above 3 ln K,
    warn above 2 ln K, naming the layer whose weights are furthest above He's scale
    ``sqrt(2 / fan_in)`` as the likely cause.
``activations``
    per layer, on one batch: the fraction of dead ReLU units (never positive: a channel of a
    conv output, a feature of a Dense output), fail >= 90%, warn >= 50%; saturated sigmoid /
    tanh outputs (within 0.02 of their bounds) fail >= 90%, warn >= 50%; the RMS of each layer's
    output against the input's, warn outside 1e-3..1e3 (fail outside 1e-6..1e6), and logits
    with RMS over 50 or under 0.01.
``gradient-flow``
    per-layer gradient norms and update-to-weight ratios ``||delta W|| / ||W||`` over a few steps
    of the chosen optimizer (median). fail: a non-finite gradient, a trainable layer with no
    gradient at all, an update ratio above 1; warn: a ratio above 0.1 or below 1e-5 (about 1e-3
    is healthy), a first layer whose relative gradient ``||g|| / ||W||`` is under 1e-3 (vanishing)
    or over 1e3 (exploding) times the last layer's, a frozen layer.
``overfit-batch``
    Adam (lr 3e-3, dropout off) on one batch of 16 examples for up to ``steps`` steps: ok when
    the loss falls under 0.1 (cross-entropy; 5% of the first loss for other losses), warn
    when it at least halves, fail otherwise (a broken backward, a wrong loss, a frozen model).
``gradcheck``
    float64 central differences (:func:`scratchcnn.gradcheck`) on 4 examples (with a little
    noise, biases jittered, so no ReLU sits on its kink and no max-pool window ties), a few
    entries of every parameter: ok under 1e-4, warn under 1e-2, fail at or above it, by layer.
``learning-rate``
    a range test: the chosen optimizer with its learning rate growing exponentially from
    ``min(1e-5, lr / 100)`` to ``max(10, 10 lr)`` over ``steps`` steps, the loss smoothed
    (EMA, 0.9). Suggested rate: a tenth of the rate at the smoothed minimum. The loss "blows up"
    at the first rate past the minimum where it exceeds its starting value by 10% (or stops being
    finite). Then a fresh copy trains 30 steps at the chosen rate (the range test warms the
    model up at small rates, so it sees a blow-up late). fail: the chosen rate at or past the
    blow-up, over 10x the rate of the minimum, or a loss that more than doubles (or stops being
    finite) in those 30 steps; warn: past the minimum, over 100x below the suggestion, or a
    loss that goes down by less than 5% at every rate.
"""
import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .diagnostics import layer_groups, norm
from .errors import ConfigError, ScratchCNNError, ShapeError
from .gradcheck import gradcheck as _gradcheck
from .gradcheck import jitter_biases
from .kernels.allocator import tune_allocator
from .losses import CrossEntropyLoss, MSELoss, get_loss
from .nn import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, LeakyReLU, ReLU, Residual, Sigmoid, Softmax, Tanh
from .optim import SGD, Adam, Optimizer
from .random import get_state, set_state
from .training import _as_inputs

CHECKS = ("input-scale", "labels", "initial-loss", "activations", "gradient-flow", "overfit-batch", "gradcheck",
          "learning-rate")
STATUSES = ("ok", "warn", "fail")


@dataclass
class Finding:
    """One check's verdict: ``id`` (one of :data:`CHECKS`), ``status`` ('ok', 'warn', 'fail'),
    ``message`` (what was found, one sentence), ``evidence`` (the numbers behind it: a dict of
    numbers, or of ``{layer: number}`` dicts) and ``fix`` (what to do, one sentence; empty when
    there is nothing to do)."""
    id: str
    status: str
    message: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""

    def to_dict(self):
        return {"id": self.id, "status": self.status, "message": self.message, "evidence": _plain(self.evidence),
                "fix": self.fix}


class DoctorReport:
    """What :func:`doctor` found: ``findings`` (a list of :class:`Finding`, in check order),
    ``seconds`` (wall time), ``lr_range`` (the range test's curve: ``{"lrs", "losses",
    "smoothed", "chosen", "suggested", "lr_at_min", "blow_up"}``, or None). ``str(report)`` is the
    table; ``report["gradcheck"]`` one finding; ``report.status`` the worst status."""

    def __init__(self, findings, seconds=0.0, lr_range=None):
        self.findings = list(findings)
        self.seconds = float(seconds)
        self.lr_range = lr_range

    def __getitem__(self, check_id):
        for f in self.findings:
            if f.id == check_id:
                return f
        raise KeyError(check_id)

    def __contains__(self, check_id):
        return any(f.id == check_id for f in self.findings)

    def __iter__(self):
        return iter(self.findings)

    def __len__(self):
        return len(self.findings)

    @property
    def status(self):
        return max((f.status for f in self.findings), key=STATUSES.index, default="ok")

    def to_list(self):
        """The findings as JSON-friendly dicts (``scratchcnn doctor --json`` prints this list)."""
        return [f.to_dict() for f in self.findings]

    def __str__(self):
        return format_table(self.findings, self.seconds)

    def __repr__(self):
        counts = {s: sum(f.status == s for f in self.findings) for s in STATUSES}
        return f"DoctorReport({len(self.findings)} checks: {counts['fail']} fail, {counts['warn']} warn)"


def format_table(findings, seconds=None, width=110):
    """The findings as a text table: check, status, then the finding, its evidence and its fix."""
    counts = {s: sum(f.status == s for f in findings) for s in STATUSES}
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    lines = [f"scratchcnn doctor: {len(findings)} checks{took}: {counts['ok']} ok, {counts['warn']} warn, "
             f"{counts['fail']} fail", "", f"{'check':<15} {'status':<7} finding", "-" * width]
    indent = " " * 24
    for f in findings:
        lines += _wrap(f"{f.id:<15} {f.status.upper():<7} ", f.message, width, indent)
        evidence = _evidence_text(f.evidence)
        if evidence:
            lines += _wrap(indent + "evidence: ", evidence, width, indent + "  ")
        if f.fix:
            lines += _wrap(indent + "fix: ", f.fix, width, indent + "  ")
    lines.append("-" * width)
    return "\n".join(lines)


def _wrap(first, text, width, indent):
    words, lines, line = text.split(), [], first
    for w in words:
        if len(line) + len(w) + 1 > width and line.strip() and line != first:
            lines.append(line.rstrip())
            line = indent
        line += w + " "
    lines.append(line.rstrip())
    return lines


def _fmt(v):
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "none"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0 or not math.isfinite(v):
            return str(v) if not math.isfinite(v) else "0"
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(a) for a in v) + "]"
    return str(v)


def _evidence_text(evidence):
    parts = []
    for k, v in evidence.items():
        if isinstance(v, dict):
            parts.append(f"{k} {{" + ", ".join(f"{a}={_fmt(b)}" for a, b in v.items()) + "}")
        else:
            parts.append(f"{k} {_fmt(v)}")
    return "; ".join(parts)


def _plain(obj):
    """Evidence as JSON-friendly Python values (NumPy scalars to numbers, NaN / inf to None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


# ---- the context every check reads ------------------------------------------
class _Context:
    def __init__(self, model, x, y, crit, opt_class, opt_config, batch_size, seed, examples, steps):
        self.model = model                      # a pristine deep copy, never trained
        self.x, self.y = x, y                    # every example (the label / input checks)
        self.crit = crit
        self.is_ce = isinstance(crit, CrossEntropyLoss)
        self.opt_class, self.opt_config = opt_class, opt_config
        self.lr = float(opt_config["lr"])
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.steps = int(steps)
        out = tuple(model.output_shape(tuple(x.shape[1:])))
        self.out_shape = out
        self.k = out[0] if len(out) == 1 else None
        self.valid = self._valid_targets()
        pick = np.random.default_rng(seed).permutation(np.flatnonzero(self.valid))[:examples]
        self.xs, self.ys = x[pick], y[pick]     # the examples the training checks use
        self.lr_range = None

    def _valid_targets(self):
        """The examples whose targets the loss accepts (a label check that fails leaves the
        other checks running on the rest)."""
        y, n = self.y, len(self.y)
        if self.is_ce and y.ndim == 1:
            if y.dtype.kind not in "iuf":
                return np.zeros(n, bool)
            ok = np.mod(y, 1) == 0 if y.dtype.kind == "f" else np.ones(n, bool)
            ok &= y >= 0
            if self.k is not None:
                ok &= y < self.k
            return ok
        if self.is_ce:
            return np.full(n, y.shape[1:] == self.out_shape and y.min() >= 0 and y.max() <= 1)
        if isinstance(self.crit, MSELoss):
            return np.full(n, y.shape[1:] == self.out_shape)
        return np.ones(n, bool)

    def fresh(self, dropout=True):
        """A copy of the pristine model in training mode (Dropout off unless ``dropout``)."""
        m = copy.deepcopy(self.model)
        m.train()
        if not dropout:
            for mod in m.modules():
                if isinstance(mod, Dropout):
                    mod.training = False
        return m

    def optimizer(self, params, lr=None):
        cfg = dict(self.opt_config)
        if lr is not None:
            cfg["lr"] = lr
        return self.opt_class(params, **cfg)

    def targets(self, yb):
        if self.is_ce and yb.ndim == 1:
            return yb.astype(np.int64)
        return yb

    def batches(self, size, rng):
        """An endless stream of (x, y) batches of ``size`` from the chosen examples, reshuffled
        after every pass."""
        n = len(self.xs)
        size = max(1, min(size, n))
        while True:
            order = rng.permutation(n)
            for start in range(0, n - size + 1, size):
                idx = order[start:start + size]
                yield self.xs[idx], self.targets(self.ys[idx])

    def seed_rng(self, offset):
        """Seed the shared generator (dropout masks) and return a generator for picking batches."""
        set_state(np.random.default_rng(self.seed + 1000 + offset).bit_generator.state)
        return np.random.default_rng(self.seed + offset)


def _optimizer_recipe(optimizer, model):
    """(class, constructor arguments) of the optimizer the doctor copies: the one given, else
    ``model.optimizer``, else fit's default ``SGD(lr=0.01, momentum=0.9)``."""
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return SGD, {"lr": 0.01, "momentum": 0.9}
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(f"doctor: optimizer must be a scratchcnn optimizer (SGD, Adam, AdamW), got "
                          f"{type(optimizer).__name__}")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in optimizer.config().items()}
    return type(optimizer), cfg


def doctor(model, x, y, loss=None, optimizer=None, *, batch_size=32, seed=0, examples=512, steps=200,
           checks=None, progress=None):
    """Run the pre-training checks on ``model`` with inputs ``x`` (N, ...) and targets ``y``;
    return a :class:`DoctorReport` (``print(report)`` shows the table).

    loss: a loss or its name (default cross-entropy). optimizer: the optimizer to be used (its
    type and hyper-parameters are copied onto a copy of the model; default ``model.optimizer``,
    else fit's default). batch_size: the training batch size (gradient flow, range test).
    seed: every random choice (batches, dropout masks). examples: how many examples the
    training checks draw from ``x`` (the input and label checks read all of them). steps: the
    most steps of the overfit test and the steps of the learning-rate range test. checks: ids
    to run (default all, :data:`CHECKS`). progress: ``f(check_id)`` called as each starts.

    The model and the optimizer are left exactly as they were (the doctor trains copies), and so
    is the state of the shared random generator.
    """
    t0 = time.perf_counter()
    tune_allocator()          # keep freed memory for reuse: each step's fresh arrays cost no page faults
    if not (callable(getattr(model, "forward", None)) and callable(getattr(model, "backward", None))
            and hasattr(model, "parameters")):
        raise ConfigError(f"doctor: model must be a scratchcnn model (a Module), got {type(model).__name__}")
    x = _as_inputs(x, "doctor")
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"doctor: y must be an array of labels or targets: {exc}") from None
    if y.ndim == 0 or len(y) != len(x):
        raise ConfigError(f"doctor: {len(x)} inputs but {'a scalar' if y.ndim == 0 else len(y)} targets")
    if y.dtype.kind not in "iufb":
        raise ConfigError(f"doctor: y must hold numbers (labels or probabilities), got dtype {y.dtype}")
    crit = get_loss(loss)
    for name, v, low in (("batch_size", batch_size, 1), ("examples", examples, 2), ("steps", steps, 10),
                         ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise ConfigError(f"doctor: {name} must be an integer >= {low}, got {v!r}")
    wanted = list(CHECKS) if checks is None else [checks] if isinstance(checks, str) else list(checks)
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown:
        raise ConfigError(f"doctor: unknown check {unknown[0]!r}; the checks are {', '.join(CHECKS)}")
    base = copy.deepcopy(model)
    expected = getattr(base, "input_shape", None)
    if expected is not None and tuple(expected) != tuple(x.shape[1:]):
        raise ShapeError(f"doctor: the model expects inputs (N, {', '.join(map(str, expected))}), got {x.shape}")
    if hasattr(base, "build"):
        base.build(tuple(x.shape[1:]))           # a model that does not fit the inputs: ShapeError now
    elif hasattr(base, "output_shape"):
        base.output_shape(tuple(x.shape[1:]))
    opt_class, opt_config = _optimizer_recipe(optimizer, model)
    rng_state = get_state()
    findings = []
    try:
        with np.errstate(all="ignore"):
            ctx = _Context(base, x, y, crit, opt_class, opt_config, batch_size, seed, examples, steps)
            for number, check_id in enumerate(CHECKS):
                if check_id not in wanted:
                    continue
                if progress is not None:
                    progress(check_id)
                ctx.seed_rng(number)
                findings.append(_run_check(check_id, ctx))
    finally:
        set_state(rng_state)
    return DoctorReport(findings, time.perf_counter() - t0, ctx.lr_range)


def _run_check(check_id, ctx):
    fn = _CHECK_FUNCTIONS[check_id]
    needs_targets = check_id not in ("input-scale", "labels")
    if needs_targets and len(ctx.xs) < 2:
        return Finding(check_id, "warn", "not run: fewer than 2 examples have targets the loss accepts "
                                         "(see labels)", {"usable_examples": int(len(ctx.xs))},
                       "fix the labels first (see the labels finding)")
    try:
        return fn(ctx)
    except (ScratchCNNError, ArithmeticError, ValueError) as exc:
        return Finding(check_id, "fail", f"the check could not run: {type(exc).__name__}: "
                                         f"{' '.join(str(exc).split())}"[:400], {},
                       "make the model run a forward and backward pass on these inputs first")


# ---- input-scale ---------------------------------------------------------------
def _check_input_scale(ctx):
    x = ctx.x
    if len(x) > 10000:
        x = x[np.random.default_rng(ctx.seed).choice(len(x), 10000, replace=False)]
    x = x.astype(np.float64)
    lo, hi, mean, std = float(x.min()), float(x.max()), float(x.mean()), float(x.std())
    amax = max(abs(lo), abs(hi))
    flat = x.reshape(len(x), -1)
    constant = float(np.mean(flat.max(axis=1) == flat.min(axis=1))) if flat.shape[1] else 1.0
    ev = {"min": lo, "max": hi, "mean": mean, "std": std, "constant_examples": constant}
    f = lambda status, message, fix="": Finding("input-scale", status, message, ev, fix)
    if std == 0:
        what = "zero" if amax == 0 else f"{hi:.4g}"
        return f("fail", f"every input value is {what}: the network sees no signal at all",
                 "check how the inputs are read and scaled: the images came out blank")
    if amax < 0.02:
        if lo >= 0 and 0.4 / 255 <= hi <= 1.5 / 255:
            return f("fail", f"the inputs lie in [{lo:.3g}, {hi:.3g}]: max about 1/255 = 0.0039, the mark of pixels "
                             f"divided by 255 twice", "divide the pixels by 255 once (they are already in 0..1 "
                                                      "before the second division)")
        return f("fail", f"the inputs are tiny: max |x| = {amax:.3g}, std {std:.3g}; the first layer's outputs "
                         f"are as small and the gradients of its weights too",
                 "scale the inputs to about 0..1 or mean 0 and std 1 (they were divided once too often)")
    if lo >= 0 and 25 < hi <= 256:
        return f("warn", f"the inputs are on the raw 0..255 pixel scale (max {hi:.4g}): activations and "
                         f"gradients start about 255x too large", "divide the pixels by 255 (normalize scale) "
                                                                   "or standardise them")
    if amax > 50:
        return f("warn", f"the inputs are large: max |x| = {amax:.3g}, std {std:.3g}",
                 "scale the inputs to about 0..1 or standardise them (mean 0, std 1)")
    if std < 0.05:
        return f("warn", f"the inputs hardly vary: std {std:.3g} around mean {mean:.3g}",
                 "standardise the inputs (subtract the mean, divide by the std)")
    if constant > 0.1:
        return f("warn", f"{100 * constant:.0f}% of the examples are constant (blank images)",
                 "look at a few of the inputs: blank images carry no signal (wrong channel, a crop off the image)")
    return f("ok", f"inputs in [{lo:.3g}, {hi:.3g}], mean {mean:.3g}, std {std:.3g}")


# ---- labels -----------------------------------------------------------------------
def _check_labels(ctx):
    y, k, crit = ctx.y, ctx.k, ctx.crit
    f = lambda status, message, ev, fix="": Finding("labels", status, message, ev, fix)
    layers = getattr(ctx.model, "layers", None) or []
    if isinstance(crit, CrossEntropyLoss) and y.ndim == 1:
        if y.dtype.kind == "b":
            return f("fail", "the labels are booleans; cross-entropy needs integer class indices",
                     {"examples": len(y)}, "turn them into 0 / 1 integers (y.astype(int))")
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            bad = int(np.flatnonzero(np.mod(y, 1) != 0)[0])
            return f("fail", f"label {bad} is {y[bad]:.4g}, not a whole number: cross-entropy needs integer class "
                             f"indices", {"non_integer": int(np.sum(np.mod(y, 1) != 0))},
                     "give class indices 0..K-1 (for regression targets use MSELoss)")
        yi = y.astype(np.int64)
        lo, hi = int(yi.min()), int(yi.max())
        values, counts = np.unique(yi, return_counts=True)
        ev = {"min": lo, "max": hi, "outputs": k, "classes_seen": len(values),
              "smallest_class": float(counts.min() / len(y)), "largest_class": float(counts.max() / len(y))}
        if k is None:
            return f("fail", f"the model's output has shape {ctx.out_shape}: cross-entropy over labels needs "
                             f"(N, K) logits", ev, "end the model with a Dense layer of K outputs")
        if lo < 0 or hi >= k:
            outside = int(np.sum((yi < 0) | (yi >= k)))
            ev["outside"] = outside
            if lo == 1 and hi == k:
                return f("fail", f"the labels run 1..{k} for a model of {k} outputs: they count from 1, so label "
                                 f"{k} has no output and output 0 no label ({outside} examples)", ev,
                         "subtract 1 from every label (classes must be 0..K-1)")
            if lo < 0:
                return f("fail", f"{outside} labels are outside 0..{k - 1} (the smallest is {lo})", ev,
                         "make the labels class indices 0..K-1")
            return f("fail", f"labels go up to {hi} but the model has {k} outputs (0..{k - 1}): {outside} "
                             f"examples have no output", ev,
                     f"give the model {hi + 1} outputs, or map the labels to 0..{k - 1}")
        if layers and isinstance(layers[-1], Softmax):
            return f("warn", "the model ends with Softmax and CrossEntropyLoss applies softmax again: the "
                             "gradients are squashed", ev, "remove the last Softmax layer (the loss takes logits)")
        if len(values) < k:
            missing = sorted(set(range(k)) - set(values.tolist()))
            return f("warn", f"the model has {k} outputs but only {len(values)} classes occur (missing: "
                             f"{', '.join(map(str, missing[:10]))})", ev,
                     "train with every class, or give the model as many outputs as there are classes")
        ratio = counts.max() / counts.min()
        ev["imbalance"] = float(ratio)
        if ratio > 5:
            return f("warn", f"the classes are imbalanced: the largest is {ratio:.1f}x the smallest", ev,
                     "balance the classes (resample or weight them), and watch per-class recall, not accuracy")
        return f("ok", f"labels 0..{k - 1} fit the {k} outputs; classes balanced within {ratio:.2g}x", ev)
    if isinstance(crit, CrossEntropyLoss):
        ev = {"target_shape": list(y.shape[1:]), "output_shape": list(ctx.out_shape)}
        if y.shape[1:] != ctx.out_shape:
            return f("fail", f"targets of shape {y.shape[1:]} do not fit outputs of shape {ctx.out_shape}", ev,
                     "give (N,) class indices or (N, K) probability rows")
        yf = y.astype(np.float64)
        sums = yf.sum(axis=1)
        ev.update({"min": float(yf.min()), "max": float(yf.max()), "row_sum_error": float(np.abs(sums - 1).max())})
        if yf.min() < 0 or yf.max() > 1:
            return f("fail", "probability targets outside [0, 1]", ev, "give one-hot or probability rows")
        if np.abs(sums - 1).max() > 1e-3:
            return f("warn", "some target rows do not sum to 1", ev, "normalise each target row to sum to 1")
        return f("ok", "probability targets fit the outputs", ev)
    if isinstance(crit, MSELoss):
        ev = {"target_shape": list(y.shape[1:]), "output_shape": list(ctx.out_shape)}
        if y.shape[1:] != ctx.out_shape:
            hint = (" (class labels with MSELoss: use cross-entropy, or one-hot targets)"
                    if y.ndim == 1 and ctx.k and ctx.k > 1 else "")
            return f("fail", f"targets of shape {y.shape[1:]} do not fit outputs of shape {ctx.out_shape}{hint}", ev,
                     "give targets of the outputs' shape, or use cross-entropy for class labels")
        return f("ok", "targets fit the outputs", ev)
    return f("ok", f"targets of shape {y.shape[1:]} (not checked for {type(crit).__name__})", {})


# ---- initial-loss -----------------------------------------------------------------
def _init_scales(model):
    """{layer: weight std / He std sqrt(2 / fan_in)} of every Conv2D and Dense layer, those inside a
    Residual block too (named by their state_dict prefix: ``"3.body.0:Conv2D"``)."""
    out = {}
    for i, top in enumerate(getattr(model, "layers", None) or []):
        for prefix, layer in top._prefixed_modules(str(i) + "."):
            if isinstance(layer, (Conv2D, Dense)):
                w = layer.weight.data
                fan_in = int(np.prod(w.shape[1:]))
                out[f"{prefix[:-1]}:{type(layer).__name__}"] = float(w.astype(np.float64).std() /
                                                                     math.sqrt(2.0 / fan_in))
    return out


def _check_initial_loss(ctx):
    m = ctx.fresh(dropout=False)
    xb, yb = ctx.xs[:256], ctx.targets(ctx.ys[:256])
    out = m(xb)
    loss = float(ctx.crit(out, yb))
    logits = np.asarray(out, dtype=np.float64)
    scales = _init_scales(m)
    ev = {"loss": loss, "logit_std": float(logits.std()), "examples": len(xb)}
    f = lambda status, message, fix="": Finding("initial-loss", status, message, ev, fix)
    if not math.isfinite(loss):
        return f("fail", f"the loss at initialisation is {loss}", "see the activations finding: a layer's "
                                                                  "output is not finite")
    if not (ctx.is_ce and ctx.k):
        return f("ok", f"the loss at initialisation is {loss:.4g} (no expected value for {type(ctx.crit).__name__})")
    expected = math.log(ctx.k)
    ratio = loss / expected if expected > 0 else float("inf")
    ev.update({"expected": expected, "ratio": ratio})
    if scales:
        worst = max(scales, key=scales.get)
        ev["init_scale_vs_he"] = scales
    if ratio > 2:
        status = "fail" if ratio > 3 else "warn"
        cause = ""
        fix = "start the weights smaller: He (Kaiming) init for ReLU layers, Glorot for the last one"
        if scales and scales[worst] > 2:
            cause = (f"; the likely cause is the initial weights' scale: layer {worst} has weights {scales[worst]:.2g}x "
                     f"He's std sqrt(2 / fan_in)")
            fix = (f"initialise the weights with He (Kaiming normal, std sqrt(2 / fan_in)) and the last layer with "
                   f"Glorot, not a fixed range such as U(-1, 1)")
        elif logits.std() > 5:
            cause = f"; the logits start with std {logits.std():.3g}, far from 0"
        return f(status, f"the loss at initialisation is {loss:.4g}, {ratio:.1f}x the expected ln {ctx.k} = "
                         f"{expected:.3g} of a network that starts out guessing{cause}", fix)
    if ratio < 0.5:
        return f("ok", f"the loss is {loss:.4g}, below ln {ctx.k} = {expected:.3g}: the model is already trained "
                       f"(or the inputs give the labels away)")
    return f("ok", f"the loss at initialisation is {loss:.4g}, close to ln {ctx.k} = {expected:.3g}")


# ---- activations ------------------------------------------------------------------
def _check_activations(ctx):
    m = ctx.fresh(dropout=False)
    layers = getattr(m, "layers", None)
    if not layers:
        return Finding("activations", "ok", "not a Sequential model: per-layer activations not checked", {})
    h = ctx.xs[:256]
    in_rms = float(np.sqrt(np.mean(np.square(h, dtype=np.float64))))
    dead, saturated, rms, problems, fixes = {}, {}, {}, [], []
    fail = warn = False
    for i, layer in enumerate(layers):
        dtype = layer.dtype
        if dtype is not None and h.dtype != dtype:
            h = h.astype(dtype)
        pre = h
        h = layer.forward(h)
        name = f"{i}:{type(layer).__name__}"
        if h.dtype.kind == "f" and not np.isfinite(h).all():
            return Finding("activations", "fail", f"layer {name}'s output is not finite on a batch at "
                                                   f"initialisation", {"rms": rms},
                           "lower the input scale and the initial weights (He init)")
        if isinstance(layer, ReLU) and not isinstance(layer, LeakyReLU):
            p = np.asarray(pre)
            axes = (0, 2, 3) if p.ndim == 4 else tuple(a for a in range(p.ndim) if a != 1) if p.ndim > 1 else (0,)
            alive = p.max(axis=axes) > 0
            dead[name] = float(1 - alive.mean())
            if dead[name] >= 0.5:
                cause = ""
                prev = layers[i - 1] if i else None
                bias = getattr(prev, "bias", None) if prev is not None else None
                if bias is not None and hasattr(bias, "data"):
                    cause = f" (the layer before has biases of mean {float(bias.data.mean()):.3g})"
                problems.append(f"{100 * dead[name]:.0f}% of the units of layer {name} are dead (never positive "
                                f"on {len(p)} examples){cause}")
                fixes.append("keep the pre-activations centred: zero (not negative) biases, He init, BatchNorm "
                             "before the ReLU, or LeakyReLU")
                fail, warn = fail or dead[name] >= 0.9, True
        elif isinstance(layer, (Sigmoid, Tanh)):
            a = np.abs(np.asarray(h, dtype=np.float64) - (0.5 if isinstance(layer, Sigmoid) else 0.0))
            bound = 0.5 if isinstance(layer, Sigmoid) else 1.0
            saturated[name] = float(np.mean(a > bound - 0.02 * (1 if isinstance(layer, Sigmoid) else 2)))
            if saturated[name] >= 0.5:
                problems.append(f"{100 * saturated[name]:.0f}% of the outputs of layer {name} are saturated "
                                f"(their gradient is almost 0)")
                fixes.append("shrink the pre-activations (Glorot init, inputs scaled to about 0..1, BatchNorm) or "
                             "use ReLU")
                fail, warn = fail or saturated[name] >= 0.9, True
        if isinstance(layer, (Conv2D, Dense, BatchNorm1D, BatchNorm2D, Residual)) or i == len(layers) - 1:
            rms[name] = float(np.sqrt(np.mean(np.square(h, dtype=np.float64))))
    ev = {"input_rms": in_rms, "rms": rms}
    if dead:
        ev["dead_relu"] = dead
    if saturated:
        ev["saturated"] = saturated
    if rms and in_rms > 0:
        ratios = {k: v / in_rms for k, v in rms.items()}
        hi, lo = max(ratios, key=ratios.get), min(ratios, key=ratios.get)
        if ratios[hi] > 1e3:
            problems.append(f"the activations explode: layer {hi}'s output has {ratios[hi]:.3g}x the input's RMS")
            fixes.append("initialise with He (ReLU) or Glorot scale, or add BatchNorm")
            fail, warn = fail or ratios[hi] > 1e6, True
        if ratios[lo] < 1e-3:
            problems.append(f"the activations vanish: layer {lo}'s output has {ratios[lo]:.3g}x the input's RMS")
            fixes.append("initialise with He (ReLU) or Glorot scale, look for dead or saturated units, or add BatchNorm")
            fail, warn = fail or ratios[lo] < 1e-6, True
    last = list(rms)[-1] if rms else None
    if last is not None and rms[last] > 50:
        problems.append(f"the logits start with RMS {rms[last]:.3g} (a guessing network starts near 0)")
        fixes.append("start the weights smaller (He init, Glorot for the last layer) and the inputs at about 0..1")
        warn = True
    elif last is not None and rms[last] < 0.01:
        problems.append(f"the outputs barely depend on the input: the logits start with RMS {rms[last]:.3g}")
        fixes.append("scale the inputs to about 0..1 (or mean 0, std 1) and initialise with He / Glorot scale")
        warn = True
    if problems:
        return Finding("activations", "fail" if fail else "warn", "; ".join(problems), ev, fixes[0])
    parts = [f"no dead ReLU (most dead: {100 * max(dead.values()):.0f}%)" if dead else "no ReLU layer"]
    if rms:
        parts.append(f"output RMS {min(rms.values()):.3g}..{max(rms.values()):.3g} for input RMS {in_rms:.3g}")
    return Finding("activations", "ok", ", ".join(parts), ev)


# ---- gradient-flow ----------------------------------------------------------------
FLOW_STEPS = 5


def _check_gradient_flow(ctx):
    m = ctx.fresh()
    opt = ctx.optimizer(m.parameters())
    rng = ctx.seed_rng(40)
    batches = ctx.batches(ctx.batch_size, rng)
    groups = layer_groups(m)
    frozen = [name for name, params in groups if not any(p.requires_grad for p in params)]
    groups = [(name, [p for p in params if p.requires_grad]) for name, params in groups]
    groups = [(name, params) for name, params in groups if params]
    grads = {name: [] for name, _ in groups}
    ratios = {name: [] for name, _ in groups}
    rel = {name: [] for name, _ in groups}
    for _ in range(FLOW_STEPS):
        xb, yb = next(batches)
        opt.zero_grad()
        loss = ctx.crit(m(xb), yb)
        if not math.isfinite(loss):
            return Finding("gradient-flow", "fail", f"the loss became {loss} within {FLOW_STEPS} steps at lr "
                                                    f"{ctx.lr:.3g}{_diagnosis(m, xb)}", {"lr": ctx.lr},
                           "lower the learning rate (see the learning-rate finding)")
        m.backward(ctx.crit.backward())
        before = {name: [p.data.copy() for p in params] for name, params in groups}
        for name, params in groups:
            g, w = norm(p.grad for p in params), norm(p.data for p in params)
            grads[name].append(g)
            rel[name].append(g / w if w > 0 else g)
        opt.step()
        for name, params in groups:
            w = norm(before[name])
            u = norm(p.data - b for p, b in zip(params, before[name]))
            ratios[name].append(u / w if w > 0 else (float("inf") if u > 0 else 0.0))
    med = lambda v: float(np.median(v))
    ev = {"lr": ctx.lr, "steps": FLOW_STEPS, "batch_size": min(ctx.batch_size, len(ctx.xs)),
          "grad_norm": {k: med(v) for k, v in grads.items()},
          "update_ratio": {k: med(v) for k, v in ratios.items()}}
    f = lambda status, message, fix="": Finding("gradient-flow", status, message, ev, fix)
    if not groups:
        return f("fail", "no layer has a trainable parameter", "unfreeze the model (model.unfreeze())")
    bad = [k for k, v in grads.items() if not all(math.isfinite(a) for a in v)]
    if bad:
        return f("fail", f"exploding gradients: the gradient of layer {bad[0]} is not finite",
                 "lower the learning rate and the input scale; check the initial weights")
    none = [k for k, v in grads.items() if max(v) == 0]
    if none:
        return f("fail", f"layer{'s' if len(none) > 1 else ''} {', '.join(none)} get{'' if len(none) > 1 else 's'} no "
                         f"gradient at all: nothing reaches {'them' if len(none) > 1 else 'it'} in the backward pass",
                 "look for dead ReLUs before the layer (see activations) or a backward that returns zeros")
    upd = ev["update_ratio"]
    hi, lo = max(upd, key=upd.get), min(upd, key=upd.get)
    problems, status = [], "ok"
    fix = ""
    if upd[hi] > 1:
        problems.append(f"layer {hi}'s weights change by {upd[hi]:.3g}x their size per step (about 1e-3 is healthy)")
        status, fix = "fail", "lower the learning rate (see the learning-rate finding)"
    elif upd[hi] > 0.1:
        problems.append(f"layer {hi}'s update ratio is {upd[hi]:.3g} per step (about 1e-3 is healthy): the "
                        f"updates are large")
        status, fix = "warn", "lower the learning rate, or check that the gradients do not explode"
    if upd[lo] < 1e-5:
        problems.append(f"layer {lo}'s update ratio is {upd[lo]:.3g} per step (about 1e-3 is healthy): it "
                        f"barely learns")
        status = status if status == "fail" else "warn"
        fix = fix or "raise the learning rate, or look for a vanishing gradient (input scale, saturated units)"
    names = [name for name, _ in groups]
    if len(names) > 1:
        first, last = med(rel[names[0]]), med(rel[names[-1]])
        if last > 0:
            ev["relative_gradient_first_vs_last"] = first / last
            if first / last < 1e-3:
                problems.append(f"vanishing gradient: layer {names[0]} gets a relative gradient {first / last:.3g}x "
                                f"the last layer's")
                status = status if status == "fail" else "warn"
                fix = fix or "use ReLU with He init, BatchNorm, or fewer saturating layers"
            elif first / last > 1e3:
                problems.append(f"exploding gradient towards the input: layer {names[0]} gets a relative gradient "
                                f"{first / last:.3g}x the last layer's")
                status = status if status == "fail" else "warn"
                fix = fix or "lower the input scale and the initial weights; add BatchNorm"
    if frozen:
        ev["frozen"] = frozen
        problems.append(f"frozen layer{'s' if len(frozen) > 1 else ''} {', '.join(frozen)} will not learn")
        status = status if status == "fail" else "warn"
        fix = fix or "unfreeze them unless that is intended (layer.unfreeze())"
    if problems:
        return f(status, "; ".join(problems), fix)
    return f("ok", f"every layer gets a gradient; update ratios {upd[lo]:.2g} ({lo}) to {upd[hi]:.2g} ({hi}) per step "
                   f"at lr {ctx.lr:.3g} (about 1e-3 is healthy)")


def _diagnosis(model, xb):
    """The training loop's explanation of a non-finite loss (the first layer whose output is not
    finite), when it has one."""
    try:
        from . import training
        diagnose = getattr(training, "_diagnose", None)
        return diagnose(model, xb) if diagnose is not None else ""
    except Exception:          # a diagnosis must never hide the finding
        return ""


# ---- overfit-batch ----------------------------------------------------------------
OVERFIT_BATCH = 16
OVERFIT_LR = 3e-3


def _check_overfit_batch(ctx):
    m = ctx.fresh(dropout=False)
    n = min(OVERFIT_BATCH, len(ctx.xs))
    xb, yb = ctx.xs[:n], ctx.targets(ctx.ys[:n])
    params = m.trainable_parameters()
    if not params:
        return Finding("overfit-batch", "fail", "the model has no trainable parameter: it cannot learn anything",
                       {}, "unfreeze the model (model.unfreeze())")
    opt = Adam(params, lr=OVERFIT_LR)
    target = 0.1 if ctx.is_ce else None
    first = best = None
    losses = []
    for step in range(ctx.steps):
        opt.zero_grad()
        out = m(xb)
        loss = float(ctx.crit(out, yb))
        if not math.isfinite(loss):
            return Finding("overfit-batch", "fail", f"the loss became {loss} at step {step + 1} of Adam lr "
                                                    f"{OVERFIT_LR:g} on one batch{_diagnosis(m, xb)}",
                           {"steps": step + 1}, "check the backward passes (see gradcheck) and the input scale")
        first = loss if first is None else first
        best = loss if best is None else min(best, loss)
        losses.append(loss)
        limit = target if target is not None else 0.05 * first
        if loss < limit / 5:
            break
        m.backward(ctx.crit.backward())
        opt.step()
    ev = {"examples": n, "steps": len(losses), "first_loss": first, "best_loss": best, "final_loss": losses[-1],
          "optimizer": f"Adam lr {OVERFIT_LR:g}"}
    if ctx.is_ce and yb.ndim == 1:
        ev["batch_accuracy"] = float(np.mean(np.asarray(out).argmax(axis=1) == yb))
    limit = target if target is not None else 0.05 * first
    f = lambda status, message, fix="": Finding("overfit-batch", status, message, ev, fix)
    if best < limit:
        return f("ok", f"the model fits one batch of {n}: the loss fell from {first:.3g} to {best:.3g} in "
                       f"{len(losses)} steps")
    if best < 0.5 * first:
        return f("warn", f"the loss on one batch of {n} fell only from {first:.3g} to {best:.3g} in {len(losses)} "
                         f"steps (a healthy model gets under {limit:.3g})",
                 "check the input scale and the gradient flow: a model should memorise a handful of examples")
    return f("fail", f"the model cannot fit one batch of {n} examples: the loss went from {first:.3g} to only "
                     f"{best:.3g} in {len(losses)} steps of Adam",
             "check the backward passes (see gradcheck), the loss, frozen layers and the input scale")


# ---- gradcheck --------------------------------------------------------------------
GRADCHECK_EXAMPLES = 4
GRADCHECK_SAMPLES = 8


def _check_gradcheck(ctx):
    per_layer = _gradcheck_once(ctx, ctx.seed)
    if max(per_layer.values(), default=0.0) >= 1e-4:
        # a kink (a ReLU input within eps of 0) spoils a central difference now and then; a wrong
        # backward is wrong on any draw: check again on other noise and keep each layer's better result
        again = _gradcheck_once(ctx, ctx.seed + 1)
        per_layer = {k: min(v, again.get(k, v)) for k, v in per_layer.items()}
    xb_len = min(GRADCHECK_EXAMPLES, len(ctx.xs))
    worst = max(per_layer.values(), default=0.0)
    ev = {"worst_relative_error": worst, "relative_error": per_layer, "examples": xb_len,
          "entries_per_parameter": GRADCHECK_SAMPLES}
    f = lambda status, message, fix="": Finding("gradcheck", status, message, ev, fix)
    if not per_layer:
        return f("ok", "the model has no parameter to check")
    if worst < 1e-4:
        return f("ok", f"every layer's gradient matches float64 central differences (worst relative error "
                       f"{worst:.2g})")
    bad = [k for k, v in per_layer.items() if v >= 1e-2]
    if bad:
        suspects = _suspects(ctx.model, per_layer, bad)
        ev["suspects"] = suspects
        return f("fail", f"the backward pass is wrong: the gradients of layer{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(bad)} differ from central differences (relative error up to {worst:.2g}); the "
                         f"wrong backward is one of {', '.join(suspects)} (from the last layer with wrong gradients "
                         f"to the next one with right ones)",
                 f"check the backward passes of {', '.join(suspects)} against their maths (scratchcnn.gradcheck on "
                 f"a stack of one layer and a Dense)")
    return f("warn", f"relative errors up to {worst:.2g} (a correct backward gives below 1e-6; kinks such as ReLU "
                     f"at 0 give some noise)", "run scratchcnn gradcheck on the model to look closer")


def _suspects(model, per_layer, bad):
    """The layers whose backward may be wrong: from the last layer with wrong parameter gradients
    up to (not including) the next layer whose gradients are right."""
    layers = getattr(model, "layers", None) or []
    index = lambda name: int(name.split(":")[0]) if name.split(":")[0].isdigit() else None
    last_bad = max((index(k) for k in bad if index(k) is not None), default=None)
    if last_bad is None:
        return list(bad)
    good_after = [index(k) for k, v in per_layer.items() if index(k) is not None and index(k) > last_bad and v < 1e-2]
    stop = min(good_after, default=len(layers))
    return [f"{i}:{type(layers[i]).__name__}" for i in range(last_bad, stop)]


def _gradcheck_once(ctx, seed):
    """{layer: worst relative error of its parameters} of one central-difference check on a
    float64 copy with biases jittered and the inputs slightly noised (by ``seed``)."""
    m = ctx.fresh()
    m.to(np.float64)
    jitter_biases(m, seed=seed)
    r = np.random.default_rng(seed)
    xb = ctx.xs[:GRADCHECK_EXAMPLES].astype(np.float64)
    spread = float(xb.std()) or 1.0
    xb = xb + 0.01 * spread * r.standard_normal(xb.shape)       # no two max-pool candidates tie exactly
    yb = ctx.targets(ctx.ys[:GRADCHECK_EXAMPLES])
    errors = _gradcheck(m, xb, yb, loss=ctx.crit, samples=GRADCHECK_SAMPLES, seed=seed, print_fn=None)
    names = {str(i): f"{i}:{type(layer).__name__}" for i, layer in enumerate(getattr(m, "layers", None) or [])}
    per_layer = {}
    for param, err in errors.items():
        key = names.get(param.split(".")[0], param)
        per_layer[key] = max(per_layer.get(key, 0.0), float(err) if math.isfinite(err) else float("inf"))
    return per_layer


# ---- learning-rate ----------------------------------------------------------------
def _check_learning_rate(ctx):
    m = ctx.fresh()
    chosen = ctx.lr
    lr_min, lr_max = min(1e-5, chosen / 100), max(10.0, chosen * 10)
    steps = ctx.steps
    opt = ctx.optimizer(m.parameters())
    rng = ctx.seed_rng(70)
    batch = max(16, min(ctx.batch_size, 128))
    batches = ctx.batches(batch, rng)
    lrs, losses, smoothed = [], [], []
    avg, beta, best = 0.0, 0.9, float("inf")
    diverged = None
    for i in range(steps):
        lr = lr_min * (lr_max / lr_min) ** (i / (steps - 1))
        opt.lr = lr
        xb, yb = next(batches)
        opt.zero_grad()
        loss = float(ctx.crit(m(xb), yb))
        lrs.append(lr)
        losses.append(loss)
        if not math.isfinite(loss):
            smoothed.append(float("nan"))
            diverged = i
            break
        avg = beta * avg + (1 - beta) * loss
        s = avg / (1 - beta ** (i + 1))
        smoothed.append(s)
        best = min(best, s)
        if i > steps // 10 and s > 4 * max(best, 1e-12) and s > smoothed[0]:
            break
        m.backward(ctx.crit.backward())
        opt.step()
    finite = [j for j, s in enumerate(smoothed) if math.isfinite(s)]
    start = float(np.mean([losses[j] for j in finite[:5]])) if finite else float("nan")
    j_min = min(finite, key=lambda j: smoothed[j]) if finite else None
    lr_at_min = lrs[j_min] if j_min is not None else None
    blow_up = None
    if j_min is not None:
        for j in range(j_min + 1, len(lrs)):
            if not math.isfinite(smoothed[j]) or smoothed[j] > 1.1 * start:
                blow_up = lrs[j]
                break
    if blow_up is None and diverged is not None:
        blow_up = lrs[diverged]
    min_loss = smoothed[j_min] if j_min is not None else float("nan")
    useful = j_min is not None and min_loss < 0.95 * start         # the loss went down somewhere (5%)
    suggested = lr_at_min / 10 if useful else None
    ctx.lr_range = {"lrs": lrs, "losses": [l if math.isfinite(l) else None for l in losses],
                    "smoothed": [s if math.isfinite(s) else None for s in smoothed], "chosen": chosen,
                    "suggested": suggested, "lr_at_min": lr_at_min, "blow_up": blow_up,
                    "optimizer": ctx.opt_class.__name__, "batch_size": batch}
    ev = {"chosen": chosen, "suggested": suggested, "lr_at_min": lr_at_min, "blow_up": blow_up,
          "start_loss": start, "min_loss": min_loss, "steps": len(lrs), "batch_size": batch,
          "range": [lr_min, lr_max]}
    probe = _probe_chosen_rate(ctx, batch)
    ev.update(probe)
    f = lambda status, message, fix="": Finding("learning-rate", status, message, ev, fix)
    name = ctx.opt_class.__name__
    spiked = not math.isfinite(probe["probe_max_loss"]) or probe["probe_max_loss"] > 2 * probe["probe_first_loss"]
    if spiked and not (j_min is not None and suggested is not None and chosen <= suggested):
        what = ("stops being finite" if not math.isfinite(probe["probe_max_loss"]) else
                f"jumps from {probe['probe_first_loss']:.3g} to {probe['probe_max_loss']:.3g}")
        better = f"use lr about {suggested:.2g} (a tenth of the rate at the lowest loss of the range test)" \
            if suggested is not None else "lower the learning rate 10x at a time until the loss goes down smoothly"
        return f("fail", f"lr {chosen:.3g} is past the point where the loss blows up: in {probe['probe_steps']} steps "
                         f"from the initial weights at that rate the loss {what}", better)
    if not useful:
        return f("warn", f"the loss did not go down at any learning rate from {lr_min:.2g} to {lrs[-1]:.2g} "
                         f"({name}, batch {batch}): the range test suggests nothing",
                 "fix the other findings first (input scale, labels, gradient flow), then run the doctor again")
    where = f"the loss blows up from lr {blow_up:.2g}" if blow_up is not None else \
        f"it does not blow up up to lr {lrs[-1]:.2g}"
    if (blow_up is not None and chosen >= blow_up) or chosen > 10 * lr_at_min:
        edge = f"the loss blows up from {blow_up:.2g}" if blow_up is not None and chosen >= blow_up else \
            f"more than 10x the rate of the lowest loss, {lr_at_min:.2g}"
        return f("fail", f"lr {chosen:.3g} is past the point where the loss blows up ({edge}; {name}, "
                         f"batch {batch}): training will diverge or thrash",
                 f"use lr about {suggested:.2g} (a tenth of the rate at the lowest loss, {lr_at_min:.2g})")
    if chosen > lr_at_min:
        return f("warn", f"lr {chosen:.3g} is past the lowest point of the range test ({lr_at_min:.2g}) and close to "
                         f"where the loss rises; {where}", f"use lr about {suggested:.2g}")
    if chosen < suggested / 100:
        return f("warn", f"lr {chosen:.3g} is more than 100x below the suggested {suggested:.2g} ({name}, batch "
                         f"{batch}): training will be slow", f"try lr about {suggested:.2g}")
    return f("ok", f"lr {chosen:.3g} is in the good range: the loss is lowest at lr {lr_at_min:.2g} (suggested: "
                   f"a tenth, {suggested:.2g}) and {where}")


PROBE_STEPS = 30


def _probe_chosen_rate(ctx, batch):
    """Train a fresh copy at the chosen rate for a few steps: the loss's first, largest and last
    values (a range test warms the model up at small rates first, so it sees a blow-up late)."""
    m = ctx.fresh()
    opt = ctx.optimizer(m.parameters())
    batches = ctx.batches(batch, ctx.seed_rng(71))
    losses = []
    for _ in range(PROBE_STEPS):
        xb, yb = next(batches)
        opt.zero_grad()
        loss = float(ctx.crit(m(xb), yb))
        losses.append(loss)
        if not math.isfinite(loss):
            break
        m.backward(ctx.crit.backward())
        opt.step()
    worst = max(losses) if all(math.isfinite(l) for l in losses) else float("inf")
    return {"probe_steps": len(losses), "probe_first_loss": losses[0], "probe_max_loss": worst,
            "probe_final_loss": losses[-1]}


_CHECK_FUNCTIONS = {"input-scale": _check_input_scale, "labels": _check_labels, "initial-loss": _check_initial_loss,
                    "activations": _check_activations, "gradient-flow": _check_gradient_flow,
                    "overfit-batch": _check_overfit_batch, "gradcheck": _check_gradcheck,
                    "learning-rate": _check_learning_rate}

__all__ = ["CHECKS", "DoctorReport", "Finding", "doctor", "format_table"]
