"""Fuzz the Python API: layer constructors and calls, Sequential, losses, optimizers, schedules,
callbacks, fit / evaluate / predict, load_state_dict, save. Each generated bad argument must raise
a ScratchCNNError subclass naming what is wrong.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchcnn as sc
from scratchcnn import optim
from .fuzzlib import api_error

ENTRY = "Python API"
NAN, INF = float("nan"), float("inf")

NOT_POS_INT = st.sampled_from([0, -1, -10**9, 1.5, "3", None, True, NAN, INF, [], (2,), np.float64(2.0)])
NOT_FINITE = st.sampled_from([NAN, INF, -INF, np.float32("nan")])
NOT_NUMBER = st.sampled_from(["0.1", None, [], {}, True, "x", object(), 1j])


# ---- layers: constructors ------------------------------------------------------------------------------
def _conv_cases():
    ok = {"in_channels": 1, "out_channels": 2, "kernel_size": 3}
    bad = {
        "in_channels": NOT_POS_INT, "out_channels": NOT_POS_INT,
        "kernel_size": st.one_of(NOT_POS_INT, st.sampled_from([(3,), (3, 3, 3), ("3", 3), (0, 3), (3, -1)]),
                                 st.integers(10**5, 10**7)),
        "stride": st.one_of(NOT_POS_INT, st.sampled_from([(1,), (0, 1), ("1", 1)])),
        "padding": st.sampled_from(["full", "SAME!", -1, (1,), (-1, 0), 1.5, None, {}, (1, 1, 1)]),
        "bias": st.sampled_from(["no", 2, None, [], "false", 0.5]),
        "init": st.sampled_from(["nope", 5, None, [], "", "HE"]),
        "dtype": st.sampled_from(["int32", np.int64, "complex64", "nope", object, bool]),
    }
    return sc.Conv2D, ok, bad


def _dense_cases():
    ok = {"in_features": 4, "out_features": 3}
    bad = {"in_features": st.one_of(NOT_POS_INT, st.just(10**10)), "out_features": st.one_of(NOT_POS_INT, st.just(10**10)),
           "bias": st.sampled_from(["no", 2, None, "true"]), "init": st.sampled_from(["nope", 5, None]),
           "dtype": st.sampled_from(["int32", "complex64", "nope", np.int8])}
    return sc.Dense, ok, bad


def _bn_cases(cls):
    ok = {"num_features": 3}
    bad = {"num_features": NOT_POS_INT, "eps": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-1e6, 0)),
           "momentum": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9), st.floats(1.0001, 100)),
           "affine": st.sampled_from(["yes", 1, 0, None, "true", 2.5]),
           "dtype": st.sampled_from(["int32", "complex64", "nope"])}
    return cls, ok, bad


def _pool_cases(cls):
    ok = {"kernel_size": 2}
    bad = {"kernel_size": st.one_of(NOT_POS_INT, st.sampled_from([(2,), (2, 2, 2), (0, 2)])),
           "stride": st.one_of(st.sampled_from([0, -1, 1.5, "2", True, (0, 1), (2,)])),
           "padding": st.sampled_from([-1, (2, 2), 5, "x", (0,), None, 1.5])}
    return cls, ok, bad


CONSTRUCTORS = [_conv_cases(), _dense_cases(), _bn_cases(sc.BatchNorm1D), _bn_cases(sc.BatchNorm2D),
                _pool_cases(sc.MaxPool2D), _pool_cases(sc.AvgPool2D),
                (sc.LeakyReLU, {}, {"negative_slope": st.one_of(NOT_FINITE, NOT_NUMBER)}),
                (sc.Dropout, {}, {"p": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9), st.floats(1, 10))}),
                (sc.Softmax, {}, {"dim": st.sampled_from([1.5, "1", None, True, [1], NAN])})]


@settings(max_examples=400)
@given(data=st.data())
def test_layer_constructors(data):
    cls, ok, bad = data.draw(st.sampled_from(CONSTRUCTORS))
    name = data.draw(st.sampled_from(sorted(bad)))
    value = data.draw(bad[name])
    if cls is sc.MaxPool2D or cls is sc.AvgPool2D:
        if name == "padding" and value == 5:
            ok = {"kernel_size": 3}
    kwargs = dict(ok, **{name: value})
    api_error(ENTRY, f"{cls.__name__}({name}=...)", cls, **kwargs, match=rf"{cls.__name__}|{name}|memory|GiB")


# ---- layers: calls ---------------------------------------------------------------------------------------
def _layers():
    return {"Conv2D": (sc.Conv2D(1, 2, 3), (1, 6, 6)), "Dense": (sc.Dense(4, 3), (4,)),
            "BatchNorm1D": (sc.BatchNorm1D(3), (3,)), "BatchNorm2D": (sc.BatchNorm2D(2), (2, 4, 4)),
            "MaxPool2D": (sc.MaxPool2D(2), (2, 4, 4)), "AvgPool2D": (sc.AvgPool2D(2), (2, 4, 4)),
            "GlobalAvgPool2D": (sc.GlobalAvgPool2D(), (2, 4, 4)), "Flatten": (sc.Flatten(), (2, 3)),
            "ReLU": (sc.ReLU(), (3,)), "LeakyReLU": (sc.LeakyReLU(), (3,)), "Sigmoid": (sc.Sigmoid(), (3,)),
            "Tanh": (sc.Tanh(), (3,)), "Softmax": (sc.Softmax(), (3,)), "Dropout": (sc.Dropout(0.5), (3,)),
            "Sequential": (sc.Sequential(sc.Conv2D(1, 2, 3), sc.Flatten(), sc.Dense(2 * 4 * 4, 3),
                                         input_shape=(1, 6, 6)), (1, 6, 6))}


SHAPED = {"Conv2D", "Dense", "BatchNorm1D", "BatchNorm2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Sequential"}
ANY_CHANNELS = {"MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"}          # a window over each channel, any number


@pytest.fixture(scope="module")
def layers():
    return _layers()


@settings(max_examples=400)
@given(data=st.data())
def test_layer_calls_with_bad_inputs(data, layers):
    name = data.draw(st.sampled_from(sorted(layers)))
    layer, shape = layers[name]
    n = data.draw(st.integers(2, 4))
    kinds = ["NaN", "inf", "strings", "complex", "objects", "ragged", "None"]
    if name in SHAPED:
        kinds += ["wrong number of dimensions"] + ([] if name in ANY_CHANNELS else ["wrong size"])
    if name in ("Conv2D", "MaxPool2D", "AvgPool2D", "Sequential"):
        kinds.append("smaller than the window")
    if name == "Softmax":
        kinds.append("no axis 1")
    if name == "Flatten":
        kinds.append("a scalar")
    kind = data.draw(st.sampled_from(kinds))
    x = np.random.default_rng(0).random((n,) + shape)
    if kind in ("NaN", "inf"):
        index = data.draw(st.integers(0, n - 1))
        x[index].reshape(-1)[data.draw(st.integers(0, x[0].size - 1))] = np.nan if kind == "NaN" else -np.inf
        match = rf"example {index}"
    else:
        match = None
    if kind == "strings":
        x = np.full(x.shape, "a")
    elif kind == "complex":
        x = x + 1j
    elif kind == "objects":
        x = np.array([object()] * n, dtype=object)
    elif kind == "ragged":
        x = [[1.0, 2.0], [3.0]]
    elif kind == "None":
        x = None
    elif kind == "wrong number of dimensions":
        x = x.reshape(-1) if data.draw(st.booleans()) else x[..., None]
    elif kind == "wrong size":
        grown = list(x.shape)
        grown[1] += data.draw(st.integers(1, 3))
        x = np.zeros(grown)
    elif kind == "smaller than the window":
        x = np.zeros((n, shape[0], 1, 1))
    elif kind == "no axis 1":
        x = np.zeros(n)
    elif kind == "a scalar":
        x = np.float64(3.0)
    layer.train(data.draw(st.booleans()))
    api_error(ENTRY, f"{name}(x) ({kind})", layer, x, error=sc.ShapeError, match=match)


@settings(max_examples=60)
@given(layers_arg=st.sampled_from([[1], ["relu"], [None], [sc.ReLU, 5]]),
       shape=st.sampled_from([(1, 8, 8), (0, 8, 8), (-1, 8), ("a", 8, 8), (1.5, 8, 8), (3, 8, 8), (1, 2, 2)]))
def test_sequential_construction(layers_arg, shape):
    if data_is_layers := (layers_arg == [None]):
        del data_is_layers
    api_error(ENTRY, "Sequential(...)", sc.Sequential, *layers_arg, input_shape=shape)


@settings(max_examples=40)
@given(shape=st.sampled_from([(0, 8, 8), (-1, 8, 8), (3, 8, 8), (1, 2, 2), (1, 8), ("a", 8, 8), (1.5, 8, 8)]))
def test_sequential_with_a_bad_input_shape(shape):
    api_error(ENTRY, "Sequential(input_shape=...)", sc.Sequential, sc.Conv2D(1, 2, 3), sc.Flatten(),
              sc.Dense(2 * 6 * 6, 3), input_shape=shape)


# ---- losses ----------------------------------------------------------------------------------------------
@settings(max_examples=200)
@given(data=st.data())
def test_losses(data):
    n, k = 4, 3
    out = np.random.default_rng(1).standard_normal((n, k))
    loss = data.draw(st.sampled_from(["ce", "mse"]))
    kind = data.draw(st.sampled_from(["too few targets", "label out of range", "fractional label", "NaN target",
                                      "strings", "wrong shape", "probabilities out of [0, 1]", "bool labels",
                                      "outputs of 1 dimension", "outputs strings", "ragged targets",
                                      "backward first"]))
    if loss == "mse" and kind in ("label out of range", "fractional label", "probabilities out of [0, 1]",
                                  "bool labels"):
        kind = "wrong shape"
    y = np.array([0, 1, 2, 0]) if loss == "ce" else np.zeros((n, k))
    o = out
    if kind == "too few targets":
        y = y[:data.draw(st.integers(0, n - 1))]
    elif kind == "label out of range":
        y = y.copy()
        y[data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([-1, 3, 10**9, -10**9]))
    elif kind == "fractional label":
        y = y.astype(float) + 0.5
    elif kind == "NaN target":
        y = y.astype(float)
        y[data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([NAN, INF]))
    elif kind == "strings":
        y = np.array(["a"] * n)
    elif kind == "wrong shape":
        y = np.zeros((n, k + data.draw(st.integers(1, 3)))) if loss == "mse" else np.zeros((n, 1))
    elif kind == "probabilities out of [0, 1]":
        y = np.full((n, k), data.draw(st.sampled_from([-0.5, 1.5, 2.0])))
    elif kind == "bool labels":
        y = np.array([True, False, True, False])
    elif kind == "outputs of 1 dimension":
        o = out[:, 0]
        y = y if loss == "ce" else np.zeros((n, k))
    elif kind == "outputs strings":
        o = np.full((n, k), "x")
    elif kind == "ragged targets":
        y = [[1, 2], [3]]
    crit = sc.CrossEntropyLoss() if loss == "ce" else sc.MSELoss()
    if kind == "backward first":
        api_error(ENTRY, f"{type(crit).__name__} ({kind})", crit.backward)
    else:
        api_error(ENTRY, f"{type(crit).__name__} ({kind})", crit, o, y)


# ---- optimizers and schedules --------------------------------------------------------------------------
def _params():
    return sc.Dense(3, 2).parameters()


OPT_ARGS = {
    optim.SGD: {"lr": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, 0)),
                "momentum": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9), st.floats(1, 100)),
                "weight_decay": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9)),
                "nesterov": st.sampled_from(["yes", 1, None, 2.0])},
    optim.Adam: {"lr": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, 0)),
                 "betas": st.sampled_from([(0.9,), (1.0, 0.999), (0.9, -0.1), "x", (NAN, 0.9), (0.9, 0.999, 0.1), 0.9,
                                           None, ("0.9", 0.9)]),
                 "eps": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, 0)),
                 "weight_decay": st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9))},
}
OPT_ARGS[optim.AdamW] = dict(OPT_ARGS[optim.Adam], weight_decay=st.one_of(NOT_FINITE, st.floats(-10, -1e-9),
                                                                          st.floats(1e4, 1e8)))


@settings(max_examples=250)
@given(data=st.data())
def test_optimizer_hyper_parameters(data):
    cls = data.draw(st.sampled_from(list(OPT_ARGS)))
    name = data.draw(st.sampled_from(sorted(OPT_ARGS[cls])))
    value = data.draw(OPT_ARGS[cls][name])
    kwargs = {name: value}
    if cls is optim.SGD and name == "nesterov":
        kwargs["momentum"] = 0.9
    api_error(ENTRY, f"{cls.__name__}({name}=...)", cls, _params(), **kwargs, match=rf"{name.split('s')[0]}|nesterov")


@settings(max_examples=60)
@given(cls=st.sampled_from([optim.SGD, optim.Adam, optim.AdamW]),
       params=st.sampled_from([[], [1, 2], None, 5, "params", [np.zeros(3)], "dup"]))
def test_optimizer_parameter_lists(cls, params):
    if params == "dup":
        p = _params()
        params = p + p
    api_error(ENTRY, f"{cls.__name__}(params=...)", cls, params, lr=0.1)


@settings(max_examples=80)
@given(sd=st.sampled_from([None, [], "x", {"state": 5}, {"state": [{}]}, {"state": [{}, {}], "steps": -1},
                           {"state": [{}, {}], "steps": "x"}, {"state": [{}, {}], "initial_lr": NAN},
                           {"state": [{"momentum_buffer": np.zeros(7)}, {}]},
                           {"state": [{"momentum_buffer": np.full((2, 3), np.nan)}, {}]},
                           {"state": [{"momentum_buffer": np.zeros((2, 3), complex)}, {}]},
                           {"state": [{}, {}], "config": {"lr": -1}}, {"state": [{}, {}], "config": {"nope": 1}},
                           {"state": [{}, {}], "config": 5}, {"type": "Adam", "state": [{}, {}]},
                           {"state": [{}, {}], "config": {"momentum": 2.0}}]))
def test_optimizer_load_state_dict(sd):
    opt = optim.SGD(_params(), lr=0.1)
    api_error(ENTRY, "SGD.load_state_dict", opt.load_state_dict, sd)


@settings(max_examples=120)
@given(data=st.data())
def test_schedules(data):
    opt = optim.SGD(_params(), lr=0.1)
    which = data.draw(st.sampled_from(["StepLR step_size", "StepLR gamma", "Cosine T_max", "Cosine eta_min",
                                       "not an optimizer", "load_state_dict"]))
    if which == "StepLR step_size":
        api_error(ENTRY, which, optim.StepLR, opt, step_size=data.draw(NOT_POS_INT))
    elif which == "StepLR gamma":
        api_error(ENTRY, which, optim.StepLR, opt, step_size=2,
                  gamma=data.draw(st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, 0))))
    elif which == "Cosine T_max":
        api_error(ENTRY, which, optim.CosineAnnealingLR, opt, T_max=data.draw(NOT_POS_INT))
    elif which == "Cosine eta_min":
        api_error(ENTRY, which, optim.CosineAnnealingLR, opt, T_max=3,
                  eta_min=data.draw(st.one_of(NOT_FINITE, NOT_NUMBER, st.floats(-10, -1e-9), st.floats(0.2, 10))))
    elif which == "not an optimizer":
        api_error(ENTRY, which, data.draw(st.sampled_from([optim.StepLR, optim.CosineAnnealingLR])),
                  data.draw(st.sampled_from([None, 0.1, "sgd", _params()])), 3)
    else:
        sched = optim.StepLR(opt, 2)
        api_error(ENTRY, "StepLR.load_state_dict", sched.load_state_dict, data.draw(st.sampled_from(
            [None, {}, {"last_epoch": -1, "base_lr": 0.1}, {"last_epoch": 1, "base_lr": NAN},
             {"last_epoch": "x", "base_lr": 0.1}, [1, 2]])))


# ---- fit, evaluate, predict --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    sc.manual_seed(0)
    return sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.Flatten(), sc.Dense(2 * 4 * 4, 3),
                         input_shape=(1, 4, 4))


FIT_KINDS = ["NaN input", "inf input", "string inputs", "ragged inputs", "scalar input", "no examples",
             "wrong input shape", "too few targets", "label out of range", "fractional labels", "NaN targets",
             "string targets", "targets of the wrong shape", "no targets", "batch_size", "epochs", "initial_epoch",
             "validation_data", "callbacks", "augment", "optimizer", "foreign optimizer", "loss", "complex inputs",
             "workers"]


@settings(max_examples=300)
@given(data=st.data())
def test_fit_evaluate_predict(data, model):
    fn = data.draw(st.sampled_from(["fit", "evaluate", "predict", "predict_proba"]))
    kinds = [k for k in FIT_KINDS if fn == "fit" or k not in ("epochs", "initial_epoch", "validation_data",
                                                              "callbacks", "augment", "optimizer",
                                                              "foreign optimizer", "workers")]
    if fn.startswith("predict"):
        kinds = [k for k in kinds if "target" not in k and "label" not in k and k not in ("loss", "no examples")]
    kind = data.draw(st.sampled_from(kinds))
    n = data.draw(st.integers(2, 9))
    rng = np.random.default_rng(n)
    x, y = rng.random((n, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, n)
    kwargs = {"verbose": 0, "epochs": 1} if fn == "fit" else {}
    match = None
    if kind in ("NaN input", "inf input"):
        i = data.draw(st.integers(0, n - 1))
        x[i, 0, data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))] = np.nan if kind == "NaN input" else np.inf
        match = rf"example {i}\b"
    elif kind == "string inputs":
        x = np.full(x.shape, "x")
    elif kind == "complex inputs":
        x = x + 1j
    elif kind == "ragged inputs":
        x = [[1.0, 2.0], [1.0]]
    elif kind == "scalar input":
        x = np.float32(1.0)
    elif kind == "no examples":
        x, y = x[:0], y[:0]
    elif kind == "wrong input shape":
        x = rng.random(data.draw(st.sampled_from([(n, 1, 5, 5), (n, 2, 4, 4), (n, 16), (n, 1, 4)])))
    elif kind == "too few targets":
        y = y[:data.draw(st.integers(0, n - 1))]
    elif kind == "label out of range":
        i = data.draw(st.integers(0, n - 1))
        y[i] = data.draw(st.sampled_from([-1, 3, 99]))
        match = rf"example {i}\b"
    elif kind == "fractional labels":
        y = y + 0.5
    elif kind == "NaN targets":
        y = y.astype(float)
        i = data.draw(st.integers(0, n - 1))
        y[i] = np.nan
        match = rf"target {i}\b"
    elif kind == "string targets":
        y = np.array(["a"] * n)
    elif kind == "targets of the wrong shape":
        y = np.zeros(data.draw(st.sampled_from([(n, 2), (n, 4), (n, 3, 1)])))
    elif kind == "no targets":
        y = None
    elif kind == "batch_size":
        kwargs["batch_size"] = data.draw(st.sampled_from([0, -1, 1.5, "32", None, True]))
    elif kind == "epochs":
        kwargs["epochs"] = data.draw(st.sampled_from([-1, 1.5, "3", None, True]))
    elif kind == "initial_epoch":
        kwargs["initial_epoch"] = data.draw(st.sampled_from([-1, 5, 1.5, "0"]))
    elif kind == "workers":
        kwargs["workers"] = data.draw(st.sampled_from([0, -2, 1.5, "2", None, True, np.nan]))
    elif kind == "validation_data":
        kwargs["validation_data"] = data.draw(st.sampled_from([(x,), x, (x, y[:-1]), (x[:, :, :3], y), 5,
                                                               (np.full_like(x, np.nan), y)]))
    elif kind == "callbacks":
        kwargs["callbacks"] = data.draw(st.sampled_from([5, [5], ["early"], [None], sc.History()]))
    elif kind == "augment":
        kwargs["augment"] = data.draw(st.sampled_from(["flip", 5, [1]]))
    elif kind == "optimizer":
        kwargs["optimizer"] = data.draw(st.sampled_from(["adam", 0.1, object(), optim.SGD]))
    elif kind == "foreign optimizer":
        kwargs["optimizer"] = optim.SGD(_params(), lr=0.1)
    elif kind == "loss":
        kwargs["loss"] = data.draw(st.sampled_from(["nope", 5, object(), "CE"]))
    if fn == "fit":
        api_error(ENTRY, f"fit ({kind})", model.fit, x, y, **kwargs, match=match)
    elif fn == "evaluate":
        api_error(ENTRY, f"evaluate ({kind})", model.evaluate, x, y, **kwargs, match=match)
    else:
        api_error(ENTRY, f"{fn} ({kind})", getattr(model, fn), x, **({"batch_size": kwargs["batch_size"]}
                                                                     if "batch_size" in kwargs else {}),
                  match=match)


# ---- load_state_dict, callbacks, save ------------------------------------------------------------------
@settings(max_examples=150)
@given(data=st.data())
def test_load_state_dict(data, model):
    good = model.state_dict()
    kind = data.draw(st.sampled_from(["not a mapping", "non-str keys", "wrong shape", "complex", "object", "strings",
                                      "NaN", "missing key", "extra key", "integer parameter", "ragged"]))
    sd = dict(good)
    key = data.draw(st.sampled_from(sorted(good)))
    if kind == "not a mapping":
        sd = data.draw(st.sampled_from([[1, 2], None, "x", 5, [("0.weight", 1)], np.zeros(3)]))
    elif kind == "non-str keys":
        sd[data.draw(st.sampled_from([0, None, 1.5, ("a",)]))] = np.zeros(2)
    elif kind == "wrong shape":
        sd[key] = np.zeros(good[key].shape + (1,))
    elif kind == "complex":
        sd[key] = good[key] + 1j
    elif kind == "object":
        sd[key] = np.array([object()] * good[key].size, dtype=object).reshape(good[key].shape)
    elif kind == "strings":
        sd[key] = np.full(good[key].shape, "x")
    elif kind == "NaN":
        sd[key] = np.full(good[key].shape, data.draw(st.sampled_from([np.nan, np.inf])))
    elif kind == "missing key":
        del sd[key]
    elif kind == "extra key":
        sd["9.weight"] = np.zeros(3)
    elif kind == "integer parameter":
        sd[key] = good[key].astype(np.int64)
    else:
        sd[key] = [[1.0, 2.0], [3.0]]
    api_error(ENTRY, f"load_state_dict ({kind})", model.load_state_dict, sd, error=sc.ConfigError)


@settings(max_examples=80)
@given(which=st.sampled_from(["History", "History.from_dict", "EarlyStopping", "ModelCheckpoint", "TimeBudget"]),
       data=st.data())
def test_callbacks(which, data):
    if which == "History":
        api_error(ENTRY, which, sc.History, data.draw(st.sampled_from([5, [1], {"loss": 5}, {"loss": ["x"]},
                                                                      {1: [0.5]}, {"loss": [None]}])))
    elif which == "History.from_dict":
        api_error(ENTRY, which, sc.History.from_dict, data.draw(st.sampled_from(
            [5, [], "x", {"epoch": "x"}, {"epoch": [-1]}, {"epoch": [0.5]}, {"history": {"loss": "abc"}},
             {"history": 3}])))
    elif which == "EarlyStopping":
        name = data.draw(st.sampled_from(["patience", "min_delta", "mode", "monitor"]))
        value = {"patience": data.draw(st.sampled_from([-1, 1.5, "3", None])),
                 "min_delta": data.draw(st.sampled_from([-0.1, NAN, INF, "x"])),
                 "mode": data.draw(st.sampled_from(["up", "", None, 1])),
                 "monitor": data.draw(st.sampled_from(["", None, 5]))}[name]
        api_error(ENTRY, f"EarlyStopping({name}=...)", sc.EarlyStopping, **{name: value})
    elif which == "TimeBudget":
        name = data.draw(st.sampled_from(["seconds", "optimizer", "eta_min", "spent"]))
        kwargs = {"seconds": 10.0}
        kwargs[name] = {"seconds": data.draw(st.sampled_from([0, -1, NAN, INF, "60", None, True])),
                        "optimizer": data.draw(st.sampled_from(["adam", 0.1, object(), optim.SGD])),
                        "eta_min": data.draw(st.sampled_from([-0.1, NAN, "x", 1e3])),
                        "spent": data.draw(st.sampled_from([-1, NAN, INF, "5"]))}[name]
        if name == "eta_min":
            kwargs["optimizer"] = optim.SGD(_params(), lr=0.1)
        api_error(ENTRY, f"TimeBudget({name}=...)", sc.TimeBudget, **kwargs)
    else:
        name = data.draw(st.sampled_from(["path", "mode", "monitor"]))
        kwargs = {"path": "m.npz"}
        kwargs[name] = {"path": data.draw(st.sampled_from([None, 5, [], 1.5])),
                        "mode": data.draw(st.sampled_from(["up", None])),
                        "monitor": data.draw(st.sampled_from(["", None, 3]))}[name]
        api_error(ENTRY, f"ModelCheckpoint({name}=...)", sc.ModelCheckpoint, **kwargs)


@settings(max_examples=30)
@given(kind=st.sampled_from(["a directory", "metadata not JSON", "path not a path", "a folder that is a file"]))
def test_save(kind, model, tmp_path_factory):
    d = tmp_path_factory.mktemp("save")
    m = sc.Sequential(sc.Dense(2, 2), input_shape=(2,))
    path = d / "m.npz"
    if kind == "a directory":
        path.mkdir()
    elif kind == "metadata not JSON":
        m.metadata = {"x": {1, 2}} if len(str(d)) % 2 else {"x": object()}
    elif kind == "path not a path":
        path = None
    else:
        (d / "file").write_text("x")
        path = d / "file" / "m.npz"
    api_error(ENTRY, f"save ({kind})", sc.save, m, path)
    assert math.isfinite(1.0)
