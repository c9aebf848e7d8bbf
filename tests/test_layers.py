"""Every layer against its loop (scratchcnn.nn.loops, the naive loops), on randomised shapes."""
import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.nn import loops as ref
from scratchcnn.kernels import normalize_padding


def _conv_configs(count=30):
    r = np.random.default_rng(7)
    out = []
    for _ in range(count):
        kh, kw = int(r.integers(1, 6)), int(r.integers(1, 6))
        stride = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        padding = [0, 1, 2, (1, 2), "valid"][int(r.integers(0, 5))]
        if r.random() < 0.2:
            stride, padding = (1, 1), "same"
        h, w = int(r.integers(kh + 1, kh + 9)), int(r.integers(kw + 1, kw + 9))
        out.append(dict(n=int(r.integers(1, 4)), c=int(r.integers(1, 4)), o=int(r.integers(1, 5)),
                        k=(kh, kw), stride=stride, padding=padding, h=h, w=w, bias=bool(r.random() < 0.7)))
    return out


@pytest.mark.parametrize("cfg", _conv_configs(), ids=lambda c: f"k{c['k']}s{c['stride']}p{c['padding']}")
def test_conv2d_matches_naive_loops(cfg, rng):
    layer = sc.Conv2D(cfg["c"], cfg["o"], cfg["k"], stride=cfg["stride"], padding=cfg["padding"],
                      bias=cfg["bias"]).to(np.float64)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    y = layer(x)
    pads = normalize_padding(cfg["padding"], cfg["k"], cfg["stride"])
    b = layer.bias.data if cfg["bias"] else None
    y_ref = ref.conv2d_forward(x, layer.weight.data, b, cfg["stride"], pads)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(x, layer.weight.data, g, cfg["stride"], pads)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, dw_ref, rtol=1e-10, atol=1e-12)
    if cfg["bias"]:
        np.testing.assert_allclose(layer.bias.grad, db_ref, rtol=1e-10, atol=1e-12)


def _pool_configs(count=20):
    r = np.random.default_rng(11)
    out = []
    for _ in range(count):
        k = (int(r.integers(1, 5)), int(r.integers(1, 5)))
        stride = None if r.random() < 0.3 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
        padding = (int(r.integers(0, k[0] // 2 + 1)), int(r.integers(0, k[1] // 2 + 1)))
        out.append(dict(k=k, stride=stride, padding=padding, h=int(r.integers(k[0], k[0] + 8)),
                        w=int(r.integers(k[1], k[1] + 8))))
    return out


@pytest.mark.parametrize("cls,fn", [(sc.MaxPool2D, ref.maxpool2d_forward_backward),
                                    (sc.AvgPool2D, ref.avgpool2d_forward_backward)])
@pytest.mark.parametrize("cfg", _pool_configs(), ids=lambda c: f"k{c['k']}s{c['stride']}p{c['padding']}")
def test_pooling_matches_naive_loops(cls, fn, cfg, rng):
    layer = cls(cfg["k"], stride=cfg["stride"], padding=cfg["padding"])
    x = rng.standard_normal((2, 3, cfg["h"], cfg["w"]))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref = fn(x, layer.kernel_size, layer.stride, layer.pads, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12, atol=1e-12)


def test_maxpool_ties_send_gradient_to_one_element():
    """A window of equal values (zero background) passes its gradient to the first element only."""
    x = np.zeros((1, 1, 4, 4))
    layer = sc.MaxPool2D(2)
    layer(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx.sum() == 4
    np.testing.assert_array_equal(dx[0, 0, ::2, ::2], np.ones((2, 2)))
    _, dx_ref = ref.maxpool2d_forward_backward(x, (2, 2), (2, 2), (0, 0, 0, 0), np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("n,din,dout", [(1, 1, 1), (3, 5, 4), (7, 2, 9)])
def test_dense_matches_naive_loops(n, din, dout, rng):
    layer = sc.Dense(din, dout).to(np.float64)
    layer.bias.data[:] = rng.standard_normal(dout)
    x = rng.standard_normal((n, din))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    y_ref, dx_ref, dw_ref, db_ref = ref.dense_forward_backward(x, layer.weight.data, layer.bias.data, g)
    for a, b in [(y, y_ref), (dx, dx_ref), (layer.weight.grad, dw_ref), (layer.bias.grad, db_ref)]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("textbook", [False, True], ids=["kernel", "textbook"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 4)])
def test_batchnorm_train_matches_naive_loops(shape, textbook, rng):
    """Both of BatchNorm's training-mode closed forms (the fast kernel's, the textbook path's) against
    the loop's chain rule through mean and variance."""
    cls = sc.BatchNorm2D if len(shape) == 4 else sc.BatchNorm1D
    layer = cls(shape[1]).to(np.float64)
    layer.weight.data[:] = rng.standard_normal(shape[1])
    layer.bias.data[:] = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 3 + 1
    g = rng.standard_normal(shape)
    with sc.kernels.textbook(textbook):
        y = layer(x)
        dx = layer.backward(g)
    y_ref, dx_ref, dgamma, dbeta = ref.batchnorm_train_forward_backward(x, layer.weight.data, layer.bias.data,
                                                                        layer.eps, g)
    for a, b in [(y, y_ref), (dx, dx_ref), (layer.weight.grad, dgamma), (layer.bias.grad, dbeta)]:
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("textbook", [False, True], ids=["kernel", "textbook"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 4)])
def test_batchnorm_eval_matches_naive_loops(shape, textbook, rng):
    cls = sc.BatchNorm2D if len(shape) == 4 else sc.BatchNorm1D
    layer = cls(shape[1]).to(np.float64)
    c = shape[1]
    layer.load_state_dict({"weight": rng.standard_normal(c), "bias": rng.standard_normal(c),
                           "running_mean": rng.standard_normal(c), "running_var": rng.random(c) + 0.5,
                           "num_batches_tracked": np.array(3)})
    layer.eval()
    x, g = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    with sc.kernels.textbook(textbook):
        y = layer(x)
        dx = layer.backward(g)
    y_ref, dx_ref, dgamma, dbeta = ref.batchnorm_eval_forward_backward(
        x, layer.weight.data, layer.bias.data, layer.running_mean, layer.running_var, layer.eps, g)
    for a, b in [(y, y_ref), (dx, dx_ref), (layer.weight.grad, dgamma), (layer.bias.grad, dbeta)]:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert int(layer.num_batches_tracked) == 3             # eval leaves the running statistics alone


def test_batchnorm_eval_uses_running_statistics(rng):
    layer = sc.BatchNorm2D(3).to(np.float64)
    for _ in range(5):
        layer(rng.standard_normal((8, 3, 4, 4)) * 2 + 5)
    layer.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    expected = (x - layer.running_mean[None, :, None, None]) / np.sqrt(layer.running_var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    assert int(layer.num_batches_tracked) == 5


@pytest.mark.parametrize("name,layer", [("relu", sc.ReLU()), ("leaky_relu", sc.LeakyReLU(0.1)),
                                        ("sigmoid", sc.Sigmoid()), ("tanh", sc.Tanh())])
def test_activations_match_naive_loops(name, layer, rng):
    x = rng.standard_normal((3, 4, 5)) * 4
    g = rng.standard_normal(x.shape)
    y = layer(x)
    dx = layer.backward(g)
    y_ref, dx_ref = ref.elementwise_forward_backward(name, x, g, negative_slope=0.1)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-15)


def test_sigmoid_is_stable_for_large_inputs():
    y = sc.Sigmoid()(np.array([[-1000.0, 0.0, 1000.0]]))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


def test_softmax_matches_naive_loops(rng):
    x = rng.standard_normal((3, 5)) * 10
    layer = sc.Softmax()
    y = layer(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref = ref.softmax_forward_backward(x, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-10, atol=1e-14)


def test_softmax_layer_and_its_jacobian(rng):
    x = rng.standard_normal((4, 6)) * 10
    layer = sc.Softmax()
    y = layer(x)
    np.testing.assert_allclose(y.sum(axis=1), 1)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    for n in range(4):
        jac = np.diag(y[n]) - np.outer(y[n], y[n])
        np.testing.assert_allclose(dx[n], jac.T @ g[n], rtol=1e-10, atol=1e-12)


def test_cross_entropy_matches_loops(rng):
    logits = rng.standard_normal((5, 4)) * 30
    labels = rng.integers(0, 4, 5)
    crit = sc.CrossEntropyLoss()
    value = crit(logits, labels)
    ref_value, ref_grad = ref.softmax_cross_entropy(logits, labels)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(crit.backward(), ref_grad, rtol=1e-10, atol=1e-14)
    onehot = np.eye(4)[labels]
    assert crit(logits, onehot) == pytest.approx(ref_value, rel=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    crit = sc.CrossEntropyLoss()
    assert np.isfinite(crit(np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32), np.array([0, 1])))


def test_mse_loss_and_gradient(rng):
    y, t = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    crit = sc.MSELoss()
    assert crit(y, t) == pytest.approx(np.mean((y - t) ** 2))
    np.testing.assert_allclose(crit.backward(), 2 * (y - t) / 6)


def test_dropout_inverted_scaling_and_eval_identity(rng):
    layer = sc.Dropout(0.25)
    x = np.ones((200, 100), dtype=np.float32)
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(g), g * y, rtol=1e-6)
    layer.eval()
    assert layer(x) is x


def test_global_avg_pool_matches_naive_loops(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    gap = sc.GlobalAvgPool2D()
    y = gap(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref = ref.global_avgpool2d_forward_backward(x, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gap.backward(g), dx_ref, rtol=1e-12, atol=1e-15)


def test_global_avg_pool_and_flatten(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    gap = sc.GlobalAvgPool2D()
    np.testing.assert_allclose(gap(x), x.mean(axis=(2, 3)))
    g = rng.standard_normal((2, 3))
    np.testing.assert_allclose(gap.backward(g), np.broadcast_to(g[:, :, None, None] / 20, x.shape))
    fl = sc.Flatten()
    assert fl(x).shape == (2, 60)
    np.testing.assert_array_equal(fl.backward(fl(x)), x)


@pytest.mark.parametrize("textbook", [False, True], ids=["kernel", "textbook"])
def test_no_grad_keeps_nothing_for_backward(textbook):
    """Under no_grad the layers keep no arrays for backward (and training BatchNorm still updates
    its running statistics)."""
    x4, x2 = np.random.rand(4, 3, 6, 6), np.random.rand(4, 3)
    layers = [(sc.BatchNorm2D(3), x4, "_saved"), (sc.BatchNorm1D(3), x2, "_saved"), (sc.MaxPool2D(2), x4, "_saved"),
              (sc.MaxPool2D(3, 2), x4, "_saved"), (sc.AvgPool2D(2), x4, "_saved"), (sc.Dense(3, 2), x2, "_x"),
              (sc.ReLU(), x4, "_y"), (sc.LeakyReLU(), x4, "_mask"), (sc.Sigmoid(), x4, "_y"), (sc.Tanh(), x4, "_y"),
              (sc.Softmax(), x2, "_y")]
    for layer, x, attr in layers:
        with sc.no_grad(), sc.kernels.textbook(textbook):
            layer(x)
        assert getattr(layer, attr) is None, layer
        if isinstance(layer, (sc.BatchNorm1D, sc.BatchNorm2D)):
            assert int(layer.num_batches_tracked) == 1


@pytest.mark.parametrize("module", ["batchnorm", "pool", "linear", "activations", "dropout", "init"])
def test_layer_docstring_examples_hold(module):
    """The Example sections of the layers' docstrings run and print what they say."""
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(f"scratchcnn.nn.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_float32_by_default_and_to_float64():
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.BatchNorm2D(2), sc.ReLU(), sc.Flatten(), sc.Dense(18, 3))
    x = np.random.rand(2, 1, 5, 5)
    assert model(x).dtype == np.float32
    model.to(np.float64)
    assert model(x).dtype == np.float64
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64


def test_first_layer_skips_input_gradient():
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.ReLU(), sc.Flatten(), sc.Dense(18, 3))
    out = model(np.random.rand(2, 1, 5, 5))
    assert model.backward(np.ones_like(out)) is None
    assert np.abs(model[0].weight.grad).sum() > 0


def test_no_grad_keeps_no_caches():
    layer = sc.Conv2D(1, 2, 3)
    with sc.no_grad():
        layer(np.random.rand(1, 1, 5, 5))
    assert layer._saved is None
