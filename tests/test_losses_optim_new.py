"""The losses, optimizer and schedules of issue 14: CrossEntropyLoss(label_smoothing),
BCEWithLogitsLoss (and two-class models with one sigmoid output), MultiMarginLoss, RMSprop,
clip_grad_norm_ and ReduceLROnPlateau.

Each is checked three ways: against PyTorch on random configurations in float64 (tight) and
float32 (loose); the losses also against a per-example Python loop of their formula, and their
hand-written gradients by float64 central differences (alone and inside a small stack with
``sc.gradcheck``). Then the pieces in use: ``fit`` with a one-output model, with gradient
clipping and with the plateau schedule, and the command line end to end on the digits.
"""
import json
import math

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import metrics, optim
from scratchcnn.app.cli import main
from scratchcnn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MultiMarginLoss, get_loss

from conftest import require_torch
from parity_helpers import TOL, assert_close, torch_dtype

DTYPES = [np.float64, np.float32]


@pytest.fixture(scope="module")
def torch(one_torch_thread):
    return require_torch()


def torch_loss_and_grad(torch, fn, x, dtype):
    """``(loss, d loss / d x)`` of a torch function ``fn(tx)`` at ``x`` (numpy)."""
    tx = torch.tensor(x, dtype=torch_dtype(torch, dtype), requires_grad=True)
    value = fn(tx)
    value.backward()
    return value.detach().numpy(), tx.grad.numpy()


def check_loss(crit, x, target, expected_value, expected_grad, dtype, what):
    value = crit(x, target)
    assert isinstance(value, float)
    assert_close(np.asarray(value, dtype=dtype), np.asarray(expected_value, dtype=dtype), dtype, f"{what}: loss")
    assert_close(crit.backward(), expected_grad, dtype, f"{what}: gradient")


# ---- naive loops: each loss per example, straight from its formula ------------------
def loop_cross_entropy(x, y, smoothing=0.0):
    """x: (N, K) logits; y: (N,) labels or (N, K) probabilities -> (mean loss, gradient)."""
    n, k = x.shape
    total, grad = 0.0, np.zeros((n, k))
    for i in range(n):
        row = [float(v) for v in x[i]]
        top = max(row)
        lse = top + math.log(sum(math.exp(v - top) for v in row))
        t = [1.0 if j == y[i] else 0.0 for j in range(k)] if np.ndim(y) == 1 else [float(v) for v in y[i]]
        t = [(1 - smoothing) * tj + smoothing / k for tj in t]
        total += -sum(tj * (row[j] - lse) for j, tj in enumerate(t))
        for j in range(k):
            grad[i, j] = (math.exp(row[j] - lse) * sum(t) - t[j]) / n
    return total / n, grad


def loop_bce(x, t, pos_weight=None):
    """x, t: (N, K); the textbook -[pw t log s + (1 - t) log(1 - s)], mean over every element."""
    n, k = x.shape
    total, grad = 0.0, np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            z, tt = float(x[i, j]), float(t[i, j])
            pw = 1.0 if pos_weight is None else float(pos_weight[j])
            s = 1 / (1 + math.exp(-z))
            total += -(pw * tt * math.log(s) + (1 - tt) * math.log(1 - s))
            grad[i, j] = ((1 - tt) * s - pw * tt * (1 - s)) / (n * k)
    return total / (n * k), grad


def loop_multimargin(x, y, p=1, margin=1.0, weight=None):
    """x: (N, C); sum over i != y of w[y] max(0, margin - x[y] + x[i])^p / C, mean over N."""
    n, c = x.shape
    total, grad = 0.0, np.zeros((n, c))
    for i in range(n):
        yi = int(y[i])
        w = 1.0 if weight is None else float(weight[yi])
        for j in range(c):
            if j == yi:
                continue
            z = margin - float(x[i, yi]) + float(x[i, j])
            if z > 0:
                total += w * z ** p / c
                g = w * p * z ** (p - 1) / c / n
                grad[i, j] += g
                grad[i, yi] -= g
    return total / n, grad


# ---- PyTorch parity: the losses ---------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_label_smoothing_matches_torch(torch, dtype):
    r = np.random.default_rng(1)
    for trial in range(8):
        n, k = int(r.integers(1, 9)), int(r.integers(2, 7))
        x = (3 * r.standard_normal((n, k))).astype(dtype)
        smoothing = [0.0, 0.1, 0.37, 1.0][trial % 4]
        reduction = ["mean", "sum"][trial // 4]
        labels = r.integers(0, k, n)
        probs = r.random((n, k))
        if trial % 2:
            probs /= probs.sum(axis=1, keepdims=True)      # rows summing to 1, and (even trials) not
        for target in (labels, probs.astype(dtype)):
            tt = torch.tensor(target) if target.dtype.kind == "i" else torch.tensor(target)
            fn = lambda tx: torch.nn.CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)(tx, tt)
            value, grad = torch_loss_and_grad(torch, fn, x, dtype)
            check_loss(CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction), x, target, value, grad,
                       dtype, f"CE n={n} k={k} ls={smoothing} {reduction} {target.dtype}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_matches_torch(torch, dtype):
    r = np.random.default_rng(2)
    shapes = [(7,), (6, 1), (5, 3), (1, 4), (9, 2)]
    for trial, shape in enumerate(shapes * 2):
        x = (4 * r.standard_normal(shape)).astype(dtype)
        x.reshape(-1)[0] = 60.0                 # large logits of both signs: no overflow, no log(0)
        x.reshape(-1)[-1] = -60.0
        t = r.random(shape).astype(dtype)
        t.reshape(-1)[: x.size // 2] = np.round(t.reshape(-1)[: x.size // 2])
        k = shape[-1] if len(shape) == 2 else 1
        pos_weight = r.uniform(0.2, 3.0, k) if trial % 2 else None
        weight = r.uniform(0.5, 2.0, shape if trial % 3 == 0 else (k,)) if trial >= 5 else None
        reduction = "sum" if trial in (3, 8) else "mean"
        fn = lambda tx: torch.nn.BCEWithLogitsLoss(
            weight=None if weight is None else torch.tensor(weight, dtype=tx.dtype), reduction=reduction,
            pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=tx.dtype))(
            tx, torch.tensor(t))
        value, grad = torch_loss_and_grad(torch, fn, x, dtype)
        crit = BCEWithLogitsLoss(weight=weight, reduction=reduction, pos_weight=pos_weight)
        check_loss(crit, x, t, value, grad, dtype, f"BCE {shape} pw={pos_weight is not None} "
                                                   f"w={None if weight is None else weight.shape} {reduction}")
    # (N,) labels 0 / 1 for a (N, 1) output: the same as the (N, 1) targets
    x = r.standard_normal((6, 1)).astype(dtype)
    y = r.integers(0, 2, 6)
    fn = lambda tx: torch.nn.BCEWithLogitsLoss()(tx, torch.tensor(y.reshape(6, 1), dtype=tx.dtype))
    value, grad = torch_loss_and_grad(torch, fn, x, dtype)
    check_loss(BCEWithLogitsLoss(), x, y, value, grad, dtype, "BCE (N,) labels for (N, 1) logits")


@pytest.mark.parametrize("dtype", DTYPES)
def test_multimargin_matches_torch(torch, dtype):
    r = np.random.default_rng(3)
    for trial in range(12):
        n, c = int(r.integers(1, 8)), int(r.integers(2, 6))
        x = r.standard_normal((n, c)).astype(dtype)
        y = r.integers(0, c, n)
        p, margin = 1 + trial % 2, [1.0, 0.5, 2.0][trial % 3]
        weight = r.uniform(0.1, 2.0, c) if trial % 4 >= 2 else None
        reduction = "sum" if trial >= 9 else "mean"
        fn = lambda tx: torch.nn.MultiMarginLoss(
            p=p, margin=margin, weight=None if weight is None else torch.tensor(weight, dtype=tx.dtype),
            reduction=reduction)(tx, torch.tensor(y))
        value, grad = torch_loss_and_grad(torch, fn, x, dtype)
        check_loss(MultiMarginLoss(p=p, margin=margin, weight=weight, reduction=reduction), x, y, value, grad,
                   dtype, f"MultiMargin n={n} c={c} p={p} margin={margin} w={weight is not None} {reduction}")


# ---- the naive loops ---------------------------------------------------------------
def test_losses_match_their_naive_loops():
    r = np.random.default_rng(4)
    for _ in range(4):
        n, k = int(r.integers(1, 7)), int(r.integers(2, 6))
        x = 2 * r.standard_normal((n, k))
        labels = r.integers(0, k, n)
        probs = r.random((n, k))                # rows not summing to 1: the general gradient
        for target in (labels, probs):
            for smoothing in (0.0, 0.25):
                crit = CrossEntropyLoss(label_smoothing=smoothing)
                value, grad = loop_cross_entropy(x, target, smoothing)
                assert crit(x, target) == pytest.approx(value, rel=1e-12, abs=1e-12)
                np.testing.assert_allclose(crit.backward(), grad, rtol=1e-11, atol=1e-14)
        t = r.random((n, k))
        pw = r.uniform(0.5, 2, k)
        for pos_weight in (None, pw):
            crit = BCEWithLogitsLoss(pos_weight=pos_weight)
            value, grad = loop_bce(x, t, pos_weight)
            assert crit(x, t) == pytest.approx(value, rel=1e-12)
            np.testing.assert_allclose(crit.backward(), grad, rtol=1e-11, atol=1e-14)
        for p in (1, 2):
            for weight in (None, r.uniform(0.5, 2, k)):
                crit = MultiMarginLoss(p=p, margin=0.8, weight=weight)
                value, grad = loop_multimargin(x, labels, p, 0.8, weight)
                assert crit(x, labels) == pytest.approx(value, rel=1e-12, abs=1e-15)
                np.testing.assert_allclose(crit.backward(), grad, rtol=1e-11, atol=1e-15)


# ---- float64 central differences ----------------------------------------------------
def central_difference(crit, x, target, h=1e-6):
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + h
        up = crit(x, target)
        x[i] = orig - h
        down = crit(x, target)
        x[i] = orig
        num[i] = (up - down) / (2 * h)
    return num


@pytest.mark.parametrize("make, target", [
    (lambda: CrossEntropyLoss(), "labels"),
    (lambda: CrossEntropyLoss(label_smoothing=0.2), "labels"),
    (lambda: CrossEntropyLoss(label_smoothing=0.3, reduction="sum"), "probs"),
    (lambda: BCEWithLogitsLoss(), "probs"),
    (lambda: BCEWithLogitsLoss(pos_weight=[0.5, 2.0, 1.5], weight=[1.0, 0.2, 3.0]), "probs"),
    (lambda: MultiMarginLoss(), "labels"),
    (lambda: MultiMarginLoss(p=2, margin=0.7, weight=[1.0, 2.0, 0.5]), "labels"),
])
def test_loss_gradients_by_central_differences(make, target):
    r = np.random.default_rng(5)
    x = 1.5 * r.standard_normal((5, 3))
    y = r.integers(0, 3, 5) if target == "labels" else r.random((5, 3))
    crit = make()
    if isinstance(crit, MultiMarginLoss):        # keep every margin away from its kink at 0
        z = crit.margin - x[np.arange(5), y][:, None] + x
        assert np.abs(z[np.arange(3)[None] != y[:, None]]).min() > 1e-3
    crit(x, y)
    analytic = crit.backward()
    numeric = central_difference(crit, x.copy(), y)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss, outputs", [(CrossEntropyLoss(label_smoothing=0.1), 3), (BCEWithLogitsLoss(), 1),
                                           (MultiMarginLoss(p=2), 3), (BCEWithLogitsLoss(pos_weight=[2.0]), 1)])
def test_gradcheck_through_a_small_stack(loss, outputs):
    sc.manual_seed(0)
    model = sc.Sequential(sc.Dense(4, 6), sc.Tanh(), sc.Dense(6, outputs), input_shape=(4,))
    r = np.random.default_rng(6)
    x = r.standard_normal((5, 4))
    y = r.integers(0, 3 if outputs == 3 else 2, 5)
    errors = sc.gradcheck(model, x, y, loss=loss, print_fn=None)
    assert max(errors.values()) < 1e-6, errors


# ---- RMSprop -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_rmsprop_trajectory_matches_torch(torch, dtype, momentum, centered, weight_decay):
    r = np.random.default_rng(7)
    start = [r.standard_normal((3, 4)).astype(dtype), r.standard_normal(5).astype(dtype)]
    params = [sc.Parameter(a.copy()) for a in start]
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    kw = dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=weight_decay, momentum=momentum, centered=centered)
    opt, topt = optim.RMSprop(params, **kw), torch.optim.RMSprop(tparams, **kw)
    for step in range(20):
        for p, tp in zip(params, tparams):
            g = r.standard_normal(p.shape).astype(dtype)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for i, (p, tp) in enumerate(zip(params, tparams)):
        assert_close(p.data, tp, dtype, f"RMSprop parameter {i} after 20 steps {kw}")
        tstate = topt.state[tp]
        assert set(opt.state[i]) == {k for k in tstate if k != "step"}, (opt.state[i].keys(), tstate.keys())
        for name, buf in opt.state[i].items():
            assert_close(buf, tstate[name], dtype, f"RMSprop buffer {name} of parameter {i}")


def test_rmsprop_state_round_trips_through_state_dict_and_model_files(tmp_path):
    sc.manual_seed(0)
    model = sc.Sequential(sc.Dense(3, 4), sc.ReLU(), sc.Dense(4, 2), input_shape=(3,))
    opt = optim.RMSprop(model.parameters(), lr=0.02, alpha=0.95, momentum=0.5, centered=True, weight_decay=0.01)
    r = np.random.default_rng(8)
    x, y = r.standard_normal((16, 3)).astype(np.float32), r.integers(0, 2, 16)
    model.fit(x, y, epochs=2, batch_size=8, optimizer=opt, verbose=0)
    model.save(tmp_path / "m.npz")
    back = sc.load(tmp_path / "m.npz")
    assert isinstance(back.optimizer, optim.RMSprop)
    assert back.optimizer.config() == opt.config() and back.optimizer.centered is True
    for a, b in zip(opt.state, back.optimizer.state):
        assert set(a) == set(b) == {"square_avg", "grad_avg", "momentum_buffer"}
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    copy = optim.RMSprop(model.parameters(), lr=1.0).load_state_dict(opt.state_dict())
    assert copy.config() == opt.config() and copy.steps == opt.steps


# ---- clip_grad_norm_ ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(torch, dtype, norm_type, max_norm):
    r = np.random.default_rng(9)
    grads = [r.standard_normal(s).astype(dtype) for s in [(3, 4), (5,), (2, 1, 3)]]
    params = [sc.Parameter(np.zeros(g.shape, dtype)) for g in grads]
    tparams = [torch.zeros(g.shape, dtype=torch_dtype(torch, dtype), requires_grad=True) for g in grads]
    for p, tp, g in zip(params, tparams, grads):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    frozen = sc.Parameter(np.ones(3, dtype))
    frozen.requires_grad = False
    frozen.grad[...] = 100                # left out of the norm and left as it is, as torch's grad-less tensor
    total = sc.clip_grad_norm_(params + [frozen], max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert_close(np.asarray(total, dtype), ttotal, dtype, f"total norm ({norm_type})")
    for i, (p, tp) in enumerate(zip(params, tparams)):
        assert_close(p.grad, tp.grad, dtype, f"clipped gradient {i} ({norm_type}, max_norm {max_norm})")
    np.testing.assert_array_equal(frozen.grad, 100)
    if max_norm < 1:
        assert not np.allclose(params[0].grad, grads[0])         # it did clip


def test_clip_grad_norm_errors_and_model_argument():
    model = sc.Sequential(sc.Dense(2, 2), input_shape=(2,))
    for p in model.parameters():
        p.grad[...] = 3.0
    assert sc.clip_grad_norm_(model, 1.0) == pytest.approx(math.sqrt(6 * 9), rel=1e-6)   # a model as argument
    assert np.sqrt(sum((p.grad.astype(np.float64) ** 2).sum() for p in model.parameters())) < 1.0
    with pytest.raises(sc.ConfigError, match="max_norm"):
        sc.clip_grad_norm_(model, -1.0)
    with pytest.raises(sc.ConfigError, match="norm_type"):
        sc.clip_grad_norm_(model, 1.0, norm_type=0)
    with pytest.raises(sc.ConfigError, match="not a Parameter"):
        sc.clip_grad_norm_([np.zeros(3)], 1.0)
    model.parameters()[0].grad[0, 0] = np.nan
    with pytest.raises(sc.TrainingDivergedError, match="non-finite|nan"):
        sc.clip_grad_norm_(model, 1.0, error_if_nonfinite=True)


def test_fit_clips_each_batch_gradients():
    """With clip_grad_norm the gradients the optimizer sees have a total norm <= max_norm."""
    seen = []

    class Spy(optim.SGD):
        def step(self):
            seen.append(math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in self.params)))
            super().step()

    sc.manual_seed(0)
    model = sc.Sequential(sc.Dense(3, 8), sc.ReLU(), sc.Dense(8, 3), input_shape=(3,))
    r = np.random.default_rng(10)
    x, y = (10 * r.standard_normal((40, 3))).astype(np.float32), r.integers(0, 3, 40)
    model.fit(x, y, epochs=1, batch_size=10, optimizer=Spy(model.parameters(), lr=0.01), verbose=0,
              clip_grad_norm=0.05)
    assert len(seen) == 4 and max(seen) <= 0.05 * (1 + 1e-5)
    with pytest.raises(sc.ConfigError, match="clip_grad_norm"):
        model.fit(x, y, epochs=1, verbose=0, clip_grad_norm=0)


# ---- ReduceLROnPlateau ---------------------------------------------------------------
METRICS = [10, 9, 9, 9, 9.0005, 9.0009, 8, 8, 8.0001, 8, 8, 8, 7.9999, 7.99, 8, 8, 8, 8, float("nan"), 8, 8,
           5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode, threshold", [("rel", 1e-4), ("abs", 0.005), ("rel", 0.0)])
@pytest.mark.parametrize("patience, cooldown, min_lr, factor", [(2, 0, 0.0, 0.1), (1, 2, 0.02, 0.5),
                                                                (0, 1, 0.0, 0.3)])
def test_reduce_lr_on_plateau_matches_torch(torch, mode, threshold_mode, threshold, patience, cooldown, min_lr,
                                            factor):
    metrics = METRICS if mode == "min" else [-m for m in METRICS]
    kw = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
              cooldown=cooldown, min_lr=min_lr)
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, **kw)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    ours, theirs = [], []
    for m in metrics:
        ours.append(sched.step(m))
        tsched.step(m)
        theirs.append(topt.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs, rel=1e-15), (kw, ours, theirs)
    assert len(set(theirs)) > 1                  # the sequence did reduce the lr


def test_reduce_lr_on_plateau_state_and_errors():
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=1)
    for m in METRICS[:9]:
        sched.step(m)
    twin_opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0)
    twin = optim.ReduceLROnPlateau(twin_opt, patience=1).load_state_dict(sched.state_dict())
    assert twin_opt.lr == opt.lr < 1.0
    assert [twin.step(m) for m in METRICS[9:]] == [sched.step(m) for m in METRICS[9:]]
    for bad in (dict(mode="lowest"), dict(threshold_mode="pct"), dict(factor=1.0), dict(factor=0),
                dict(patience=-1), dict(patience=1.5), dict(cooldown=-2), dict(min_lr=-1), dict(monitor="")):
        with pytest.raises(sc.ConfigError):
            optim.ReduceLROnPlateau(opt, **bad)
    with pytest.raises(sc.ConfigError, match="number"):
        sched.step("low")
    with pytest.raises(sc.ConfigError, match="val_acc"):
        optim.ReduceLROnPlateau(opt, monitor="val_acc").on_epoch_end(0, {"loss": 1.0})


def test_fit_steps_the_plateau_schedule_with_the_validation_loss():
    sc.manual_seed(0)
    model = sc.Sequential(sc.Dense(2, 3), input_shape=(2,))
    r = np.random.default_rng(11)
    x, y = r.standard_normal((30, 2)).astype(np.float32), r.integers(0, 3, 30)    # noise: the loss plateaus
    opt = optim.SGD(model.parameters(), lr=0.5)
    sched = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=0.05)
    history = model.fit(x, y, epochs=8, batch_size=10, optimizer=opt, validation_data=(x[:10], y[:10]),
                        callbacks=[sched], verbose=0)
    replay_opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=0.5)
    replay = optim.ReduceLROnPlateau(replay_opt, patience=0, factor=0.5, threshold=0.05)
    expected = [0.5] + [replay.step(v) for v in history.history["val_loss"]]
    assert history.history["lr"] == expected[:8] and opt.lr == expected[8]
    assert len(set(history.history["lr"])) > 1
    # without validation data: the training loss
    opt2 = optim.SGD(model.parameters(), lr=0.5)
    sched2 = optim.ReduceLROnPlateau(opt2, patience=0, factor=0.5, threshold=0.05)
    history = model.fit(x, y, epochs=3, batch_size=10, optimizer=opt2, callbacks=[sched2], verbose=0)
    replay = optim.ReduceLROnPlateau(optim.SGD([sc.Parameter(np.zeros(1))], lr=0.5), patience=0, factor=0.5,
                                     threshold=0.05)
    assert opt2.lr == [replay.step(v) for v in history.history["loss"]][-1]


# ---- two-class models with one sigmoid output ---------------------------------------
def blobs(n, seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    x = r.standard_normal((n, 2)) + np.where(y[:, None] == 1, 2.5, -2.5)
    return x.astype(np.float32), y


@pytest.mark.parametrize("loss", [None, "bce", BCEWithLogitsLoss()])
def test_a_one_output_model_fits_a_separable_set(loss):
    sc.manual_seed(0)
    x, y = blobs(200, 12)
    vx, vy = blobs(60, 13)
    model = sc.Sequential(sc.Dense(2, 8), sc.ReLU(), sc.Dense(8, 1), input_shape=(2,))
    history = model.fit(x, y, epochs=10, batch_size=20, optimizer=optim.Adam(model.parameters(), lr=0.02),
                        loss=loss, validation_data=(vx, vy), verbose=0)
    assert history.history["accuracy"][-1] > 0.95 and history.history["val_accuracy"][-1] > 0.95
    result = model.evaluate(vx, vy)
    assert result["accuracy"] > 0.95 and result["loss"] == pytest.approx(history.history["val_loss"][-1])
    logits = model.predict_logits(vx)
    pred = model.predict(vx)
    probs = model.predict_proba(vx)
    assert logits.shape == (60, 1) and pred.shape == (60,) and pred.dtype == np.int64 and set(pred) <= {0, 1}
    np.testing.assert_array_equal(pred, (logits[:, 0] > 0).astype(int))
    assert probs.shape == (60, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-logits[:, 0].astype(np.float64))), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(probs.argmax(axis=1), pred)
    assert metrics.accuracy(vy, pred) == result["accuracy"]
    assert metrics.classification_metrics(vy, probs)["accuracy"] == result["accuracy"]
    with pytest.raises(sc.LabelError, match=r"\(N, 1\)"):
        metrics.accuracy(vy, logits)


def test_one_output_targets_are_checked_before_training():
    model = sc.Sequential(sc.Dense(2, 1), input_shape=(2,))
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(sc.LabelError, match="0 or 1"):
        model.fit(x, np.array([0, 1, 2, 1]), verbose=0)
    with pytest.raises(sc.LabelError, match="do not match"):
        model.fit(x, np.zeros((4, 2)), loss="bce", verbose=0)
    with pytest.raises(sc.LabelError, match=r"\[0, 1\]"):
        model.fit(x, np.array([0.0, 0.5, 1.5, 1.0]), verbose=0)
    with pytest.raises(sc.ConfigError, match="Sigmoid"):
        sc.Sequential(sc.Dense(2, 1), sc.Sigmoid(), input_shape=(2,)).fit(x, np.array([0, 1, 0, 1]), loss="bce",
                                                                          verbose=0)
    # a model ending with Sigmoid: predict and evaluate work on its probabilities as on the logits before it
    dense = sc.Dense(2, 1)
    dense.bias.data[...] = 0.3
    with_sigmoid = sc.Sequential(dense, sc.Sigmoid(), input_shape=(2,))
    logits_only = sc.Sequential(dense, input_shape=(2,))
    xs, ys = blobs(20, 15)
    assert with_sigmoid.evaluate(xs, ys) == pytest.approx(logits_only.evaluate(xs, ys), rel=1e-5)
    np.testing.assert_array_equal(with_sigmoid.predict(xs), logits_only.predict(xs))
    np.testing.assert_allclose(with_sigmoid.predict_proba(xs), logits_only.predict_proba(xs), rtol=1e-5, atol=1e-6)
    with pytest.raises(sc.LabelError, match="out of range for 3 classes"):
        sc.Sequential(sc.Dense(2, 3), input_shape=(2,)).fit(x, np.array([0, 1, 3, 1]), loss="multimargin",
                                                            verbose=0)


def test_multimargin_and_smoothed_cross_entropy_train_a_classifier():
    sc.manual_seed(0)
    x, y = blobs(120, 14)
    for loss in ("hinge", CrossEntropyLoss(label_smoothing=0.1)):
        model = sc.Sequential(sc.Dense(2, 8), sc.ReLU(), sc.Dense(8, 2), input_shape=(2,))
        history = model.fit(x, y, epochs=6, batch_size=20, optimizer=optim.RMSprop(model.parameters(), lr=0.01),
                            loss=loss, verbose=0)
        assert history.history["accuracy"][-1] > 0.95, loss
        assert model.evaluate(x, y, loss=loss)["accuracy"] > 0.95


# ---- bad arguments ---------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: CrossEntropyLoss(label_smoothing=1.5), "label_smoothing"),
    (lambda: CrossEntropyLoss(label_smoothing=True), "label_smoothing"),
    (lambda: CrossEntropyLoss(reduction="none"), "reduction"),
    (lambda: BCEWithLogitsLoss(pos_weight=[-1.0]), "pos_weight"),
    (lambda: BCEWithLogitsLoss(weight="heavy"), "weight"),
    (lambda: MultiMarginLoss(p=3), "p must be 1 or 2"),
    (lambda: MultiMarginLoss(margin=float("nan")), "margin"),
    (lambda: MultiMarginLoss(weight=[[1.0, 2.0]]), "weight"),
    (lambda: optim.RMSprop([sc.Parameter(np.zeros(2))], alpha=1.5), "alpha"),
    (lambda: optim.RMSprop([sc.Parameter(np.zeros(2))], momentum=-0.1), "momentum"),
    (lambda: optim.RMSprop([sc.Parameter(np.zeros(2))], eps=0), "eps"),
    (lambda: optim.RMSprop([sc.Parameter(np.zeros(2))], centered="yes"), "centered"),
    (lambda: optim.RMSprop([sc.Parameter(np.zeros(2))], lr=0), "lr"),
    (lambda: get_loss("hinge2"), "unknown loss"),
])
def test_bad_arguments_are_config_errors(make, match):
    with pytest.raises(sc.ConfigError, match=match):
        make()


def test_bad_targets_are_label_errors_naming_the_loss():
    x = np.zeros((3, 2))
    with pytest.raises(sc.LabelError, match="MultiMarginLoss.*out of range"):
        MultiMarginLoss()(x, [0, 1, 2])
    with pytest.raises(sc.LabelError, match="MultiMarginLoss.*class labels"):
        MultiMarginLoss()(x, np.eye(3)[:, :2])
    with pytest.raises(sc.LabelError, match="BCEWithLogitsLoss.*shape"):
        BCEWithLogitsLoss()(x, [0, 1, 1])
    with pytest.raises(sc.LabelError, match="BCEWithLogitsLoss.*NaN"):
        BCEWithLogitsLoss()(np.zeros(2), [0.0, np.nan])
    with pytest.raises(sc.LabelError, match="CrossEntropyLoss.*out of range"):
        CrossEntropyLoss(label_smoothing=0.1)(x, [0, 1, 2])
    with pytest.raises(sc.ShapeError, match="pos_weight"):
        BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 3.0])(x, np.zeros((3, 2)))
    with pytest.raises(sc.ShapeError, match="weight has 3 entries for 2 classes"):
        MultiMarginLoss(weight=[1.0, 1.0, 1.0])(x, [0, 1, 0])


# ---- the command line ------------------------------------------------------------------
def test_cli_bce_rmsprop_plateau_clipping_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "bce"
    args = ["train", "--dataset", "digits", "--classes", "0,1", "--per-class", "60", "--model",
            "conv4x3-relu-maxpool2-flatten-dense1", "--loss", "bce", "--optimizer", "rmsprop", "--lr", "0.01",
            "--alpha", "0.9", "--momentum", "0.5", "--schedule", "plateau1", "--clip-grad-norm", "1.0",
            "--epochs", "1", "--batch-size", "8", "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["loss"], config["optimizer"], config["alpha"], config["momentum"], config["schedule"],
            config["clip_grad_norm"]) == ("bce", "rmsprop", 0.9, 0.5, "plateau1", 1.0)
    model = sc.load(out / "last.npz")
    assert model.output_shape(model.input_shape) == (1,) and isinstance(model.optimizer, optim.RMSprop)
    assert model.optimizer.alpha == 0.9 and model.optimizer.momentum == 0.5
    assert model.metadata["loss"]["name"] == "bce" and model.metadata["class_names"] == ["0", "1"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8 and metrics["num_classes"] == 2 and len(metrics["confusion_matrix"]) == 2
    assert metrics["loss"] == "bce"             # one name for the loss: --loss, the metadata, the metrics
    report = (out / "report.md").read_text()
    assert "Loss: **bce**" in report and "| clip_grad_norm | 1.0 |" in report and "rmsprop" in report
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["epoch"]) == 3
    replay = optim.ReduceLROnPlateau(optim.SGD([sc.Parameter(np.zeros(1))], lr=0.01), patience=1)
    expected = [0.01] + [replay.step(v) for v in history["history"]["val_loss"]]
    assert history["history"]["lr"] == pytest.approx(expected[:3], rel=1e-12)
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--classes", "0,1"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_cli_multimargin_centered_rmsprop_and_label_smoothing(tmp_path, capsys):
    out = tmp_path / "hinge"
    assert main(["train", "--dataset", "digits", "--per-class", "10", "--model", "conv4x3-relu-maxpool2-flatten-dense10",
                 "--loss", "multimargin", "--optimizer", "rmsprop", "--centered", "--epochs", "1", "--out", str(out),
                 "--quiet"]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())["config"]
    model = sc.load(out / "model.npz")
    assert config["loss"] == "multimargin" and config["centered"] is True and model.optimizer.centered is True
    assert model.metadata["loss"] == {"name": "multimargin", "p": 1, "margin": 1.0, "weight": None,
                                      "reduction": "mean"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == "multimargin" and metrics["test_loss"] > 0
    # --label-smoothing reaches the loss the run trains with
    from scratchcnn.app.cli import _parser, _train_config
    from scratchcnn.app.experiment import make_loss
    cfg = _train_config(_parser().parse_args(["train", "--label-smoothing", "0.1"])).resolved()
    crit = make_loss(cfg)
    assert isinstance(crit, CrossEntropyLoss) and crit.label_smoothing == 0.1 and cfg.loss == "cross_entropy"


@pytest.mark.parametrize("extra, match", [
    (["--loss", "bce"], "two classes"),
    (["--loss", "bce", "--label-smoothing", "0.1"], "label_smoothing"),
    (["--alpha", "0.9", "--optimizer", "adam"], "RMSprop setting"),
    (["--schedule", "plateaux"], "unknown schedule"),
    (["--loss", "svm"], "invalid choice"),
    (["--clip-grad-norm", "0"], "clip-grad-norm"),
    (["--label-smoothing", "2"], "label-smoothing"),
])
def test_cli_refuses_bad_settings(tmp_path, capsys, extra, match):
    assert main(["train", "--dataset", "digits", "--per-class", "5", "--model", "conv4x3-flatten-dense10",
                 "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"] + extra) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_logged_loss_of_a_k_output_bce_is_the_same_for_mean_and_sum():
    r = np.random.default_rng(5)
    x, t = r.standard_normal((24, 3)).astype(np.float64), (r.random((24, 4)) > 0.5).astype(np.float64)
    logged = {}
    for reduction in ("mean", "sum"):
        sc.manual_seed(0)
        model = sc.Sequential(sc.Dense(3, 4), input_shape=(3,)).to(np.float64)
        crit = BCEWithLogitsLoss(reduction=reduction)
        expected = BCEWithLogitsLoss()(model.predict_logits(x), t)          # the per-element mean
        logged[reduction] = model.evaluate(x, t, loss=crit)["loss"]
        assert logged[reduction] == pytest.approx(expected, rel=1e-12)
    # and in fit's history (lr tiny: the weights barely move within the epoch)
    for reduction in ("mean", "sum"):
        sc.manual_seed(0)
        model = sc.Sequential(sc.Dense(3, 4), input_shape=(3,)).to(np.float64)
        h = model.fit(x, t, epochs=1, batch_size=8, loss=BCEWithLogitsLoss(reduction=reduction), verbose=0,
                      optimizer=optim.SGD(model.parameters(), lr=1e-12))
        assert h.history["loss"][0] == pytest.approx(logged["mean"], rel=1e-6)
