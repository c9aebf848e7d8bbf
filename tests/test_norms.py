"""LayerNorm and GroupNorm (scratchcnn.nn.norm): against the naive loops (forward and backward), by
float64 central differences in small stacks, against PyTorch on seeded random configurations
(float64 tight, float32 loose), saved and loaded, and refusing bad arguments and inputs.

Run:  python -m pytest tests/test_norms.py -q
"""
import doctest
import importlib

import numpy as np
import pytest
from conftest import require_torch
from parity_helpers import check_layer_parity

import scratchcnn as sc
from scratchcnn.errors import ConfigError, ShapeError
from scratchcnn.nn import loops

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


def _randomize(layer, rng):
    """Weights far from the initial ones and zeros, so a mix-up of gamma and beta shows."""
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    return layer


# ---- the naive loops -----------------------------------------------------------------------
LN_LOOP_CASES = [((4, 7), 1, True), ((3, 5, 4), 1, False), ((2, 3, 4, 5), 2, True), ((2, 3, 4, 5), 3, True),
                 ((3, 2, 6), 2, False), ((5, 1), 1, True)]


@pytest.mark.parametrize("shape,k,affine", LN_LOOP_CASES)
def test_layernorm_matches_naive_loops(shape, k, affine, rng):
    layer = _randomize(sc.LayerNorm(shape[-k:], elementwise_affine=affine, dtype=np.float64), rng)
    x = rng.standard_normal(shape) * 3 + 2
    g = rng.standard_normal(shape)
    y, dx = layer(x), layer.backward(g)
    gamma, beta = (layer.weight.data, layer.bias.data) if affine else (None, None)
    y_ref, dx_ref, dgamma, dbeta = loops.layernorm_forward_backward(x, k, gamma, beta, layer.eps, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-11)
    if affine:
        np.testing.assert_allclose(layer.weight.grad, dgamma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, dbeta, rtol=1e-10, atol=1e-12)
    else:
        assert dgamma is None and layer.parameters() == []


GN_LOOP_CASES = [((3, 6, 4, 5), 3, True), ((2, 6, 3, 3), 1, True), ((2, 6, 3, 3), 6, False),
                 ((4, 8), 2, True), ((2, 4, 7), 2, False), ((2, 3, 1, 1), 3, True)]


@pytest.mark.parametrize("shape,groups,affine", GN_LOOP_CASES)
def test_groupnorm_matches_naive_loops(shape, groups, affine, rng):
    layer = _randomize(sc.GroupNorm(groups, shape[1], affine=affine, dtype=np.float64), rng)
    x = rng.standard_normal(shape) * 3 + 2
    g = rng.standard_normal(shape)
    y, dx = layer(x), layer.backward(g)
    gamma, beta = (layer.weight.data, layer.bias.data) if affine else (None, None)
    y_ref, dx_ref, dgamma, dbeta = loops.groupnorm_forward_backward(x, groups, gamma, beta, layer.eps, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-11)
    if affine:
        np.testing.assert_allclose(layer.weight.grad, dgamma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, dbeta, rtol=1e-10, atol=1e-12)


def test_the_loop_comparison_sees_a_wrong_group(rng):
    """Groups are consecutive channels: normalising interleaved channels instead must not pass."""
    x = rng.standard_normal((2, 4, 3)) * np.array([1.0, 5.0, 1.0, 5.0])[:, None] + np.arange(4)[:, None]
    y = sc.GroupNorm(2, 4, dtype=np.float64)(x)
    y_ref = loops.groupnorm_forward_backward(x, 2, None, None, 1e-5, np.zeros_like(x))[0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    wrong = loops.groupnorm_forward_backward(x[:, [0, 2, 1, 3]], 2, None, None, 1e-5, np.zeros_like(x))[0]
    assert np.abs(y - wrong[:, [0, 2, 1, 3]]).max() > 0.1


# ---- central differences -------------------------------------------------------------------
STACKS = {
    "conv-groupnorm-relu-dense": (lambda: sc.Sequential(sc.Conv2D(2, 6, 3), sc.GroupNorm(3, 6), sc.ReLU(),
                                                        sc.Flatten(), sc.Dense(6 * 5 * 5, 4)), (2, 7, 7)),
    "conv-groupnorm-no-affine": (lambda: sc.Sequential(sc.Conv2D(2, 4, 3), sc.GroupNorm(2, 4, affine=False),
                                                       sc.Tanh(), sc.Conv2D(4, 3, 3), sc.GroupNorm(1, 3),
                                                       sc.Flatten(), sc.Dense(3 * 3 * 3, 4)), (2, 7, 7)),
    "dense-layernorm-dense": (lambda: sc.Sequential(sc.Flatten(), sc.Dense(2 * 4 * 4, 6), sc.LayerNorm(6),
                                                    sc.Tanh(), sc.Dense(6, 5), sc.LayerNorm(5, elementwise_affine=False),
                                                    sc.Dense(5, 4)), (2, 4, 4)),
    "conv-layernorm-chw": (lambda: sc.Sequential(sc.Conv2D(2, 3, 3), sc.LayerNorm((3, 5, 5)), sc.Sigmoid(),
                                                 sc.Conv2D(3, 2, 3), sc.LayerNorm((3, 3)), sc.Flatten(),
                                                 sc.Dense(2 * 3 * 3, 4)), (2, 7, 7)),
}


@pytest.mark.parametrize("name", list(STACKS))
def test_stack_gradients(name, rng):
    make, shape = STACKS[name]
    model = make()
    for m in model.modules():
        if isinstance(m, (sc.LayerNorm, sc.GroupNorm)):
            _randomize(m, rng)
    x, y = rng.standard_normal((4,) + shape), rng.integers(0, 4, 4)
    errors = sc.gradcheck(model, x, y, print_fn=None)
    assert len(errors) == len(model.parameters())
    assert max(errors.values()) < 1e-6, errors


# ---- PyTorch -------------------------------------------------------------------------------
def _layernorm_configs(count, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
        ndim = int(rng.integers(2, 5))                                  # with the batch axis
        shape = (int(rng.integers(1, 5)),) + tuple(int(rng.integers(1, 6)) for _ in range(ndim - 2))
        shape += (int(rng.integers(2, 6)),)      # >= 2 values a group (one value: xhat is 0 +- torch's rounding)
        k = int(rng.integers(1, ndim))
        yield shape, k, float(rng.choice([1e-5, 1e-3, 0.1])), bool(i % 3), i


def _groupnorm_configs(count, seed):
    """N >= 2: torch's GroupNorm refuses a training input with N * prod(*) == 1, a group of C / G values or not."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        groups = int(rng.integers(1, 5))
        c = groups * int(rng.integers(1, 4))
        shape = (int(rng.integers(2, 4)), c) + tuple(int(rng.integers(1, 6)) for _ in range(int(rng.integers(0, 3))))
        yield shape, groups, float(rng.choice([1e-5, 1e-3, 0.1])), bool(i % 3), i


@DTYPES
def test_layernorm_parity_on_random_configurations(dtype, one_torch_thread):
    torch = require_torch()
    for shape, k, eps, affine, i in _layernorm_configs(16, seed=7):
        tmod = torch.nn.LayerNorm(shape[-k:], eps=eps, elementwise_affine=affine)
        if affine:
            with torch.no_grad():
                tmod.weight.uniform_(-1.5, 1.5)
                tmod.bias.normal_()
        layer = sc.LayerNorm(shape[-k:], eps=eps, elementwise_affine=affine)
        x = np.random.default_rng(i).standard_normal(shape) * 2 + 1
        for train in (True, False):                     # no running statistics: eval computes the same
            check_layer_parity(torch, layer, tmod, x, dtype, train=train, seed=i)


@DTYPES
def test_groupnorm_parity_on_random_configurations(dtype, one_torch_thread):
    torch = require_torch()
    for shape, groups, eps, affine, i in _groupnorm_configs(16, seed=8):
        tmod = torch.nn.GroupNorm(groups, shape[1], eps=eps, affine=affine)
        if affine:
            with torch.no_grad():
                tmod.weight.uniform_(-1.5, 1.5)
                tmod.bias.normal_()
        layer = sc.GroupNorm(groups, shape[1], eps=eps, affine=affine)
        x = np.random.default_rng(i).standard_normal(shape) * 2 + 1
        for train in (True, False):
            check_layer_parity(torch, layer, tmod, x, dtype, train=train, seed=i)


def test_random_configurations_cover_the_cases():
    ln = list(_layernorm_configs(16, seed=7))
    gn = list(_groupnorm_configs(16, seed=8))
    assert {len(s) for s, *_ in ln} == {2, 3, 4} and {k for _, k, *_ in ln} >= {1, 2, 3}
    assert {a for *_, a, _ in ln} == {True, False} == {a for *_, a, _ in gn}
    assert {len(s) for s, *_ in gn} == {2, 3, 4}
    assert {g for _, g, *_ in gn} >= {1, 2, 3, 4} and any(g == s[1] for s, g, *_ in gn)
    assert any(g < s[1] for s, g, *_ in gn if g > 1)


# ---- the layer contract --------------------------------------------------------------------
def test_float32_by_default_float64_after_to(rng):
    x = rng.standard_normal((2, 4, 3, 3))
    for layer in (sc.LayerNorm((3, 3)), sc.GroupNorm(2, 4)):
        y = layer(x)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
        assert layer.weight.dtype == np.float32
        layer.to(np.float64)
        y = layer(x)
        assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64
    assert sc.GroupNorm(2, 4, dtype=np.float64).weight.dtype == np.float64


def test_output_shape_macs_config_and_names():
    ln, gn = sc.LayerNorm([3, 4], eps=1e-3), sc.GroupNorm(2, 6, affine=False)
    assert ln.normalized_shape == (3, 4) and sc.LayerNorm(5).normalized_shape == (5,)
    assert ln.output_shape((2, 3, 4)) == (2, 3, 4) and gn.output_shape((6, 5, 5)) == (6, 5, 5)
    assert ln.macs((2, 3, 4)) == 48 and gn.macs((6, 2)) == 24
    assert ln.config() == {"normalized_shape": [3, 4], "eps": 1e-3, "elementwise_affine": True}
    assert gn.config() == {"num_groups": 2, "num_channels": 6, "eps": 1e-5, "affine": False}
    assert list(ln.state_dict()) == ["weight", "bias"] and ln.weight.shape == (3, 4)
    assert list(gn.state_dict()) == [] and sc.GroupNorm(2, 6).bias.shape == (6,)
    assert repr(ln) == "LayerNorm((3, 4), eps=0.001, elementwise_affine=True)"
    assert repr(gn) == "GroupNorm(2, 6, eps=1e-05, affine=False)"


def test_no_grad_keeps_nothing_and_first_layer_skips_input_grad(rng):
    x = rng.standard_normal((3, 4, 5))
    for layer in (sc.LayerNorm(5), sc.GroupNorm(2, 4)):
        with sc.no_grad():
            layer(x)
        assert layer._saved is None
        layer.needs_input_grad = False
        y = layer(x)
        assert layer.backward(rng.standard_normal(y.shape)) is None
        assert np.abs(layer.weight.grad).sum() > 0


def test_save_and_load_round_trip(tmp_path, rng):
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.GroupNorm(2, 4, eps=1e-3), sc.ReLU(),
                          sc.LayerNorm((4, 6, 6), elementwise_affine=False), sc.Flatten(), sc.Dense(144, 8),
                          sc.LayerNorm(8), sc.Dense(8, 3), input_shape=(1, 6, 6))
    for m in model.modules():
        if isinstance(m, (sc.LayerNorm, sc.GroupNorm)):
            _randomize(m, rng)
    x = rng.standard_normal((5, 1, 6, 6)).astype(np.float32)
    sc.save(model, tmp_path / "m.npz")
    loaded = sc.load(tmp_path / "m.npz")
    assert [type(m) for m in loaded.layers] == [type(m) for m in model.layers]
    assert loaded[1].config() == model[1].config() and loaded[3].config() == model[3].config()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    table = model.summary(print_fn=None)
    assert "GroupNorm" in table and "LayerNorm" in table


def test_docstring_examples_hold():
    result = doctest.testmod(importlib.import_module("scratchcnn.nn.norm"))
    assert result.attempted > 0 and result.failed == 0


# ---- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: sc.GroupNorm(3, 8), r"GroupNorm: num_channels \(8\) must be divisible by num_groups \(3\)"),
    (lambda: sc.GroupNorm(0, 8), r"GroupNorm: num_groups must be a positive int"),
    (lambda: sc.GroupNorm(2, 4.0), r"GroupNorm: num_channels must be a positive int"),
    (lambda: sc.GroupNorm(2, 4, eps=0), r"GroupNorm: eps must be a finite number > 0"),
    (lambda: sc.GroupNorm(2, 4, affine="yes"), r"GroupNorm: affine must be True or False"),
    (lambda: sc.GroupNorm(2, 4, dtype=np.int32), r"GroupNorm: dtype must be a floating point type"),
    (lambda: sc.LayerNorm(0), r"LayerNorm: normalized_shape must be a positive int"),
    (lambda: sc.LayerNorm(()), r"LayerNorm: normalized_shape must be a positive int or a non-empty tuple"),
    (lambda: sc.LayerNorm("4"), r"LayerNorm: normalized_shape must be a positive int or a non-empty tuple"),
    (lambda: sc.LayerNorm((3, -1)), r"LayerNorm: normalized_shape must be a positive int, got -1"),
    (lambda: sc.LayerNorm(4, eps=float("nan")), r"LayerNorm: eps must be a finite number"),
    (lambda: sc.LayerNorm(4, elementwise_affine=1), r"LayerNorm: elementwise_affine must be True or False"),
])
def test_bad_arguments_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (sc.LayerNorm(5), (2, 4), r"LayerNorm\(\(5,\).*expects input \(N, \.\.\., 5\).*got \(N, 4\)"),
    (sc.LayerNorm((3, 4)), (2, 4, 3), r"LayerNorm\(\(3, 4\).*expects input \(N, \.\.\., 3, 4\).*got \(N, 4, 3\)"),
    (sc.LayerNorm((2, 3, 4)), (5, 3, 4), r"LayerNorm.*got \(N, 3, 4\)"),
    (sc.GroupNorm(2, 4), (2, 6, 3, 3), r"GroupNorm\(2, 4.*expects input \(N, 4, \*\).*got \(N, 6, 3, 3\)"),
    (sc.GroupNorm(2, 4), (4,), r"GroupNorm\(2, 4.*expects input \(N, 4, \*\), got shape \(4,\)"),
])
def test_wrong_input_shape_raises_shape_error(layer, shape, match):
    with pytest.raises(ShapeError, match=match):
        layer(np.zeros(shape))


def test_a_misfit_in_a_model_names_the_layer():
    with pytest.raises(ShapeError, match=r"layer 1 \(GroupNorm\(2, 4.*does not fit"):
        sc.Sequential(sc.Conv2D(1, 6, 3), sc.GroupNorm(2, 4), input_shape=(1, 5, 5))
