"""PyTorch parity: every layer, loss, optimizer and scheduler against its torch namesake.

Each test builds the scratchcnn object and the equivalent torch one, copies the torch
weights across (the state_dict names and shapes are the same), feeds both the same random
data and compares forward outputs, input gradients, parameter gradients, running statistics
and parameters after optimizer steps -- in float64 with a tight tolerance (rtol 1e-10) and
in float32 (rtol 1e-4). Conv2D is checked on 120 seeded random configurations.

Run:  python -m pytest tests/test_torch_parity.py -q
"""
import math
import os

import numpy as np
import pytest
from conftest import require_torch
from parity_helpers import (assert_close, assert_model_grads_match, assert_state_matches,
                            check_layer_parity, copy_torch_weights, fashion_mnist_images, to_numpy,
                            torch_dtype)

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.kernels import textbook

torch = require_torch()
nn = torch.nn

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every test here runs torch on one thread (conftest.one_torch_thread)."""


@pytest.fixture(params=["fast", "textbook"])
def paths(request):
    """Run a test on the layers' fast kernels (the default) and again on their textbook
    paths (``scratchcnn.kernels.textbook``): both must match torch."""
    if request.param == "textbook":
        with textbook():
            yield request.param
    else:
        yield request.param


class TorchFn(nn.Module):
    """A parameter-free torch module computing ``fn(x)`` (for layers torch has no class for)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# =====================================================================================
# Conv2D: 120 seeded random configurations
# =====================================================================================
def _pads(padding, kh, kw):
    """(top, bottom, left, right) as PyTorch pads (extra 'same' row/col at bottom/right)."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ph, ph, pw, pw


def _conv_configs(count=120, seed=2024):
    """Hand-picked corner cases, then random ones, until ``count`` configurations."""
    configs = [
        # (N, C_in, C_out, kernel, stride, padding, (H, W), bias)
        (2, 1, 8, 3, 1, "same", (28, 28), True),         # seed network A's layer
        (1, 1, 4, 7, 1, 1, (28, 28), True),              # seed network D's layer (smaller C_out)
        (2, 3, 2, (2, 5), 1, "same", (7, 9), True),      # even and non-square kernel, 'same'
        (1, 2, 3, 4, 1, "same", (6, 5), False),          # even square kernel, 'same'
        (1, 2, 2, 1, 1, 0, (5, 5), True),                # 1x1 kernel
        (2, 2, 3, 3, 2, 0, (8, 8), True),                # stride does not divide: floor rule
        (1, 3, 2, 3, (1, 3), (0, 2), (9, 10), False),    # stride and padding pairs
        (1, 1, 1, 7, 3, 3, (1, 1), True),                # 1x1 input entirely padded
        (1, 2, 2, (1, 7), (3, 1), "valid", (4, 11), True),
        (3, 5, 5, 5, 2, 2, (11, 13), True),
    ]
    rng = np.random.default_rng(seed)
    while len(configs) < count:
        kh = int(rng.integers(1, 8))
        if rng.random() < 0.5:
            kernel, kw = kh, kh
        else:
            kw = int(rng.integers(1, 8))
            kernel = (kh, kw)
        mode = rng.choice(["int", "pair", "same", "valid"], p=[0.4, 0.3, 0.2, 0.1])
        if mode == "same":
            stride, padding = 1, "same"
        else:
            stride = int(rng.integers(1, 4)) if rng.random() < 0.6 else \
                (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            padding = {"int": lambda: int(rng.integers(0, 4)),
                       "pair": lambda: (int(rng.integers(0, 4)), int(rng.integers(0, 4))),
                       "valid": lambda: "valid"}[str(mode)]()
        t, b, l, r = _pads(padding, kh, kw)
        hmin, wmin = max(1, kh - t - b), max(1, kw - l - r)
        size = (int(rng.integers(hmin, hmin + 9)), int(rng.integers(wmin, wmin + 9)))
        configs.append((int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6)),
                        kernel, stride, padding, size, bool(rng.random() < 0.7)))
    return configs


def _conv_id(cfg):
    n, cin, cout, k, s, p, (h, w), bias = cfg
    fmt = lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v)  # noqa: E731
    return f"n{n}-c{cin}o{cout}-k{fmt(k)}-s{fmt(s)}-p{fmt(p)}-in{h}x{w}-{'b' if bias else 'nb'}"


CONV_CONFIGS = _conv_configs()


def test_conv_configs_cover_the_issue():
    """The random configurations cover what the parity issue asks for (guards the generator)."""
    assert len(CONV_CONFIGS) >= 100
    ks = [(k, k) if isinstance(k, int) else k for _, _, _, k, _, _, _, _ in CONV_CONFIGS]
    ss = [(s, s) if isinstance(s, int) else s for _, _, _, _, s, _, _, _ in CONV_CONFIGS]
    ps = [p for _, _, _, _, _, p, _, _ in CONV_CONFIGS]
    assert {v for k in ks for v in k} == set(range(1, 8))
    assert any(kh != kw for kh, kw in ks) and any(kh == kw for kh, kw in ks)
    assert {v for s in ss for v in s} == {1, 2, 3} and any(sh != sw for sh, sw in ss)
    assert {p for p in ps if isinstance(p, int)} == {0, 1, 2, 3}
    assert "same" in ps and "valid" in ps and any(isinstance(p, tuple) and p[0] != p[1] for p in ps)
    assert any(p == "same" and (k[0] % 2 == 0 or k[1] % 2 == 0) for p, k in zip(ps, ks))
    assert {c[1] for c in CONV_CONFIGS} >= set(range(1, 6)) and {c[2] for c in CONV_CONFIGS} >= set(range(1, 6))
    assert {c[7] for c in CONV_CONFIGS} == {True, False}
    assert any(h % 2 and w % 2 for *_, (h, w), _ in CONV_CONFIGS)
    assert any(h != w for *_, (h, w), _ in CONV_CONFIGS)
    uneven = 0
    for (_, _, _, _, _, p, (h, w), _), (kh, kw), (sh, sw) in zip(CONV_CONFIGS, ks, ss):
        t, b, l, r = _pads(p, kh, kw)
        uneven += (h + t + b - kh) % sh != 0 or (w + l + r - kw) % sw != 0
    assert uneven >= 20


@DTYPES
@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=[_conv_id(c) for c in CONV_CONFIGS])
def test_conv2d_parity(cfg, dtype, paths):
    n, cin, cout, kernel, stride, padding, (h, w), bias = cfg
    seed = CONV_CONFIGS.index(cfg)
    torch.manual_seed(seed)
    tconv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias)
    conv = sc.Conv2D(cin, cout, kernel, stride=stride, padding=padding, bias=bias, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((n, cin, h, w))
    y, _ = check_layer_parity(torch, conv, tconv, x, dtype, seed=seed + 1)
    assert y.shape[1:] == conv.output_shape((cin, h, w))


def _winograd_configs(count=16, seed=77):
    """3x3 stride-1 convolutions that the fast kernels compute with Winograd F(2x2, 3x3)."""
    configs = [(2, 32, 32, "same", (28, 28), True), (1, 4, 4, 0, (5, 5), False), (2, 5, 7, (2, 0), (7, 4), True),
               (1, 6, 4, (0, 2), (3, 8), True), (3, 8, 16, 2, (1, 1), False)]
    rng = np.random.default_rng(seed)
    while len(configs) < count:
        padding = [0, 1, 2, "same", (int(rng.integers(0, 3)), int(rng.integers(0, 3)))][int(rng.integers(0, 5))]
        configs.append((int(rng.integers(1, 4)), int(rng.integers(4, 13)), int(rng.integers(4, 13)), padding,
                        (int(rng.integers(3, 12)), int(rng.integers(3, 12))), bool(rng.random() < 0.6)))
    return configs


WINOGRAD_CONFIGS = _winograd_configs()


@DTYPES
@pytest.mark.parametrize("cfg", WINOGRAD_CONFIGS, ids=[_conv_id(c[:3] + (3, 1) + c[3:]) for c in WINOGRAD_CONFIGS])
def test_conv2d_winograd_parity(cfg, dtype, paths):
    """Forward, input and parameter gradients of the Winograd path (odd sizes, every padding it
    takes, pieces of several images) against torch; on the textbook path, the same configs."""
    n, cin, cout, padding, (h, w), bias = cfg
    seed = 500 + WINOGRAD_CONFIGS.index(cfg)
    torch.manual_seed(seed)
    tconv = nn.Conv2d(cin, cout, 3, padding=padding, bias=bias)
    conv = sc.Conv2D(cin, cout, 3, padding=padding, bias=bias, dtype=dtype)
    assert conv.uses_winograd()
    conv.fast_kernel().max_piece_elements = 16 * 36 * cin      # pieces of about one image of up to 12x12
    x = np.random.default_rng(seed).standard_normal((n, cin, h, w))
    check_layer_parity(torch, conv, tconv, x, dtype, seed=seed + 1)


@DTYPES
@pytest.mark.parametrize("order", ["transposed", "fortran", "strided"])
def test_conv2d_and_maxpool_non_contiguous_input(order, dtype, paths):
    """Views that are not C-contiguous (a transpose, Fortran order, a strided slice) give the
    same results as torch on the same values."""
    rng = np.random.default_rng(12)
    base = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    x = {"transposed": base.transpose(0, 1, 3, 2), "fortran": np.asfortranarray(base),
         "strided": base[:, :, ::2, 1::2]}[order]
    assert not x.flags.c_contiguous
    torch.manual_seed(3)
    check_layer_parity(torch, sc.Conv2D(3, 4, (3, 2), stride=(2, 1), padding=1, dtype=dtype),
                       nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1), x, dtype)
    check_layer_parity(torch, sc.MaxPool2D(3, 2, 1), nn.MaxPool2d(3, 2, 1), x, dtype)


# =====================================================================================
# Pooling
# =====================================================================================
def _pool_configs(count, seed):
    """(N, C, kernel, stride, padding, (H, W)) with padding <= kernel/2 and uneven sizes."""
    rng = np.random.default_rng(seed)
    configs = [(2, 3, 2, None, 0, (7, 9)), (1, 2, 3, 1, 1, (5, 6)), (2, 1, 3, 2, 1, (9, 8)),
               (1, 2, (2, 3), (1, 2), (1, 1), (6, 7)), (1, 1, 4, 3, 2, (5, 5))]
    while len(configs) < count:
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        kernel = kh if rng.random() < 0.4 else (kh, kw)
        kw = kh if isinstance(kernel, int) else kw
        stride = None if rng.random() < 0.2 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
        size = (int(rng.integers(max(kh, 2), 12)), int(rng.integers(max(kw, 2), 12)))
        configs.append((int(rng.integers(1, 3)), int(rng.integers(1, 4)), kernel, stride, padding, size))
    return configs


def _pool_id(cfg):
    n, c, k, s, p, (h, w) = cfg
    return f"n{n}c{c}-k{k}-s{s}-p{p}-in{h}x{w}".replace(" ", "").replace(",", "x")


MAXPOOL_CONFIGS = _pool_configs(30, seed=7)
AVGPOOL_CONFIGS = _pool_configs(20, seed=8)


def test_pool_configs_cover_the_issue():
    """Overlapping windows, padding up to half the window, uneven sizes, non-square windows."""
    for configs in (MAXPOOL_CONFIGS, AVGPOOL_CONFIGS):
        overlap = uneven = pad_half = nonsquare = 0
        for _, _, k, s, p, (h, w) in configs:
            kh, kw = (k, k) if isinstance(k, int) else k
            sh, sw = (kh, kw) if s is None else ((s, s) if isinstance(s, int) else s)
            ph, pw = (p, p) if isinstance(p, int) else p
            overlap += sh < kh or sw < kw
            uneven += (h + 2 * ph - kh) % sh != 0 or (w + 2 * pw - kw) % sw != 0
            pad_half += (ph > 0 and 2 * ph == kh) or (pw > 0 and 2 * pw == kw)
            nonsquare += kh != kw
        assert min(overlap, uneven, pad_half, nonsquare) >= 3, (overlap, uneven, pad_half, nonsquare)


@DTYPES
@pytest.mark.parametrize("cfg", MAXPOOL_CONFIGS, ids=[_pool_id(c) for c in MAXPOOL_CONFIGS])
def test_maxpool2d_parity(cfg, dtype, paths):
    n, c, kernel, stride, padding, (h, w) = cfg
    x = np.random.default_rng(1).standard_normal((n, c, h, w))
    check_layer_parity(torch, sc.MaxPool2D(kernel, stride, padding), nn.MaxPool2d(kernel, stride, padding),
                       x, dtype)


@DTYPES
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0), ((3, 2), 1, (1, 0))])
def test_maxpool2d_ties_match_torch_exactly(kernel, stride, padding, dtype, paths):
    """Integer-valued inputs tie in almost every window; torch and scratchcnn must pick the
    same (first) maximum, so the input gradients are equal, not just close. (The upstream
    gradient is integer-valued too, so overlapping windows' sums are exact in any order.)"""
    x = np.random.default_rng(3).integers(0, 3, size=(2, 3, 9, 8)).astype(dtype)
    pool, tpool = sc.MaxPool2D(kernel, stride, padding), nn.MaxPool2d(kernel, stride, padding)
    g = np.random.default_rng(4).integers(-50, 50, (2,) + pool.output_shape(x.shape[1:])).astype(dtype)
    _, dx = check_layer_parity(torch, pool, tpool, x, dtype, grad_out=g)
    xt = torch.tensor(x, requires_grad=True)
    tpool.to(torch_dtype(torch, dtype))(xt).backward(torch.tensor(g))
    np.testing.assert_array_equal(dx, to_numpy(xt.grad))


@DTYPES
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1)])
def test_maxpool2d_on_fashion_mnist_conv_relu(kernel, stride, padding, dtype, paths):
    """Real images (zero background) through conv + ReLU give windows full of exact ties.
    Each window's gradient must go to exactly one element, the one torch picks."""
    import os
    images = fashion_mnist_images(16)
    if images is None:
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST files missing in /usr/share/datasets/fashion-mnist")
        pytest.skip("Fashion-MNIST files not installed")
    tdt = torch_dtype(torch, dtype)
    torch.manual_seed(0)
    tconv = nn.Conv2d(1, 4, 3, padding=1).to(tdt)
    # The pooled activations are computed once (by torch) and fed to both poolings, so the
    # tie pattern is bit-identical for both.
    with torch.no_grad():
        act = to_numpy(torch.relu(tconv(torch.tensor(images.astype(dtype)))))
    pool, tpool = sc.MaxPool2D(kernel, stride, padding), nn.MaxPool2d(kernel, stride, padding)
    ones = np.ones((16, 4) + pool.output_shape(act.shape[1:])[1:], dtype=dtype)
    _, dx = check_layer_parity(torch, pool, tpool, act, dtype, grad_out=ones)
    xt = torch.tensor(act, requires_grad=True)
    tpool.to(tdt)(xt).backward(torch.tensor(ones))
    np.testing.assert_array_equal(dx, to_numpy(xt.grad))
    # With dy = 1 every window hands out exactly 1 in total, to a single element.
    assert dx.sum() == ones.size and np.all(dx == np.round(dx))
    if stride == kernel:     # non-overlapping windows: no element gets two windows' gradient
        assert dx.max() == 1 and np.count_nonzero(dx) == ones.size
    # ... and the ties were really there: many windows hold their maximum more than once.
    win = np.lib.stride_tricks.sliding_window_view(np.pad(act, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2),
                                                          constant_values=-np.inf), (kernel, kernel), axis=(2, 3))
    win = win[:, :, ::stride, ::stride].reshape(*ones.shape, -1)
    ties = ((win == win.max(-1, keepdims=True)).sum(-1) > 1).sum()
    assert ties > ones.size // 10


@DTYPES
@pytest.mark.parametrize("cfg", AVGPOOL_CONFIGS, ids=[_pool_id(c) for c in AVGPOOL_CONFIGS])
def test_avgpool2d_parity(cfg, dtype, paths):
    n, c, kernel, stride, padding, (h, w) = cfg
    x = np.random.default_rng(2).standard_normal((n, c, h, w))
    tpool = nn.AvgPool2d(kernel, stride, padding)           # count_include_pad=True by default
    check_layer_parity(torch, sc.AvgPool2D(kernel, stride, padding), tpool, x, dtype)


@DTYPES
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 4, 4, 4)])
def test_global_avgpool2d_parity(shape, dtype):
    x = np.random.default_rng(5).standard_normal(shape)
    check_layer_parity(torch, sc.GlobalAvgPool2D(), TorchFn(lambda t: t.mean((2, 3))), x, dtype)


# =====================================================================================
# Dense, Flatten, activations, Dropout
# =====================================================================================
@DTYPES
@pytest.mark.parametrize("n,fin,fout,bias", [(4, 6, 3, True), (1, 1, 1, True), (5, 17, 9, False),
                                             (3, 40, 10, True)])
def test_dense_parity(n, fin, fout, bias, dtype):
    torch.manual_seed(fin)
    x = np.random.default_rng(fin).standard_normal((n, fin))
    check_layer_parity(torch, sc.Dense(fin, fout, bias=bias, dtype=dtype), nn.Linear(fin, fout, bias=bias),
                       x, dtype)


@DTYPES
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7), (2, 1, 1, 1), (2, 3, 4)])
def test_flatten_parity(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape)
    check_layer_parity(torch, sc.Flatten(), nn.Flatten(), x, dtype)


ACTIVATIONS = [
    ("relu", sc.ReLU, nn.ReLU),
    ("leaky_relu_default", sc.LeakyReLU, nn.LeakyReLU),
    ("leaky_relu_0.2", lambda: sc.LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2)),
    ("sigmoid", sc.Sigmoid, nn.Sigmoid),
    ("tanh", sc.Tanh, nn.Tanh),
    ("softmax_dim1", lambda: sc.Softmax(dim=1), lambda: nn.Softmax(dim=1)),
]


@DTYPES
@pytest.mark.parametrize("name,make,tmake", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("shape", [(4, 10), (2, 3, 5, 6)])
def test_activation_parity(name, make, tmake, shape, dtype, paths):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 3
    x.flat[:4] = [40.0, -40.0, 0.5, -0.5]     # saturated values: exp must not overflow
    check_layer_parity(torch, make(), tmake(), x, dtype)


@DTYPES
@pytest.mark.parametrize("dim", [-1, 2, 0])
def test_softmax_other_dims_parity(dim, dtype):
    x = np.random.default_rng(7).standard_normal((3, 4, 5, 2)) * 2
    check_layer_parity(torch, sc.Softmax(dim=dim), nn.Softmax(dim=dim), x, dtype)


@DTYPES
def test_softmax_large_logits_parity(dtype):
    x = np.array([[1000.0, 999.0, -1000.0], [-50.0, -51.0, -52.0]])
    check_layer_parity(torch, sc.Softmax(dim=1), nn.Softmax(dim=1), x, dtype)


@DTYPES
def test_dropout_eval_is_identity_like_torch(dtype):
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    y, dx = check_layer_parity(torch, sc.Dropout(0.5), nn.Dropout(0.5), x, dtype, train=False)
    np.testing.assert_array_equal(y, x.astype(dtype))


@DTYPES
@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_train_scaling_and_mask(p, dtype):
    """Train mode: survivors are scaled by 1/(1-p) exactly; the drop rate is p (binomial
    bound); backward uses the forward's mask -- the same function torch computes for that mask."""
    rng = np.random.default_rng(1)
    x = (rng.random((64, 8, 10, 10)) + 0.5).astype(dtype)     # never 0, so a 0 output means dropped
    drop = sc.Dropout(p).train()
    y = drop(x)
    assert y.dtype == dtype
    keep = y != 0
    scale = dtype(1.0 / (1.0 - p))
    np.testing.assert_array_equal(y[keep], x[keep] * scale)
    n = x.size
    assert abs((~keep).mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert abs(y.mean() - x.mean()) < 5 * x.std() * math.sqrt(p / (1 - p) / n) + 5 * math.sqrt(p / n)
    g = rng.standard_normal(x.shape).astype(dtype)
    dx = drop.backward(g)
    np.testing.assert_array_equal(dx, np.where(keep, g * scale, 0))
    # torch's dropout for the same mask (mask * x / (1 - p)) gives the same output and gradient
    xt = torch.tensor(x, requires_grad=True)
    yt = xt * torch.tensor(keep.astype(dtype)) / (1 - p)
    yt.backward(torch.tensor(g))
    assert_close(y, yt, dtype, "dropout output")
    assert_close(dx, xt.grad, dtype, "dropout input gradient")
    # statistically, torch's own dropout drops the same fraction
    tkeep = to_numpy(nn.Dropout(p).train()(torch.tensor(x))) != 0
    assert abs(tkeep.mean() - keep.mean()) < 10 * math.sqrt(p * (1 - p) / n)
    # a new forward draws a new mask
    assert not np.array_equal(drop(x) != 0, keep)


# =====================================================================================
# BatchNorm
# =====================================================================================
def _randomize_bn(tbn, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if tbn.affine:
            tbn.weight.copy_(torch.rand(tbn.weight.shape, generator=g) + 0.5)
            tbn.bias.copy_(torch.randn(tbn.bias.shape, generator=g))
        tbn.running_mean.copy_(torch.randn(tbn.running_mean.shape, generator=g))
        tbn.running_var.copy_(torch.rand(tbn.running_var.shape, generator=g) + 0.5)


BN_CASES = [
    ("2d", sc.BatchNorm2D, nn.BatchNorm2d, (4, 3, 5, 6), {}),
    ("2d_momentum0.3_eps1e-3", sc.BatchNorm2D, nn.BatchNorm2d, (2, 5, 3, 3), {"momentum": 0.3, "eps": 1e-3}),
    ("2d_no_affine", sc.BatchNorm2D, nn.BatchNorm2d, (3, 2, 4, 4), {"affine": False}),
    ("1d", sc.BatchNorm1D, nn.BatchNorm1d, (8, 6), {}),
    ("1d_two_samples", sc.BatchNorm1D, nn.BatchNorm1d, (2, 4), {"momentum": 0.5}),
    ("1d_no_affine", sc.BatchNorm1D, nn.BatchNorm1d, (5, 3), {"affine": False}),
]


@DTYPES
@pytest.mark.parametrize("name,make,tmake,shape,kw", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batchnorm_train_then_eval_parity(name, make, tmake, shape, kw, dtype):
    """Four training batches (outputs, grads, running_mean/var, num_batches_tracked after
    each), then eval mode with the accumulated statistics."""
    c = shape[1]
    tbn = tmake(c, **kw)
    _randomize_bn(tbn, seed=c)
    bn = make(c, dtype=dtype, **kw)
    rng = np.random.default_rng(11)
    for step in range(4):
        x = rng.standard_normal(shape) * (1 + step) + step     # shifting statistics
        check_layer_parity(torch, bn, tbn, x, dtype, train=True, copy=(step == 0), seed=step)
    assert int(bn.num_batches_tracked) == 4 == int(tbn.num_batches_tracked)
    x = rng.standard_normal(shape) * 2 + 1
    check_layer_parity(torch, bn, tbn, x, dtype, train=False, copy=False, seed=9)
    assert int(bn.num_batches_tracked) == 4   # eval mode leaves the statistics alone


# =====================================================================================
# Losses
# =====================================================================================
def _loss_parity(loss, tloss, z, target, ttarget, dtype):
    z = z.astype(dtype)
    zt = torch.tensor(z, requires_grad=True)
    value = loss(z.copy(), target)
    tvalue = tloss(zt, ttarget)
    tvalue.backward()
    assert isinstance(value, float)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert value == pytest.approx(tvalue.item(), rel=rtol, abs=rtol)
    assert_close(loss.backward(), zt.grad, dtype, f"{loss!r} gradient")


@DTYPES
@pytest.mark.parametrize("n,k", [(5, 3), (1, 10), (16, 10)])
def test_cross_entropy_int_labels_parity(n, k, dtype):
    rng = np.random.default_rng(n * k)
    z = rng.standard_normal((n, k)) * 4
    z[0, 0] = 300.0                          # large logit: log-sum-exp must stay finite
    labels = rng.integers(0, k, n)
    _loss_parity(sc.CrossEntropyLoss(), nn.CrossEntropyLoss(), z, labels, torch.tensor(labels), dtype)


@DTYPES
@pytest.mark.parametrize("n,k", [(5, 3), (8, 10)])
def test_cross_entropy_probability_targets_parity(n, k, dtype):
    rng = np.random.default_rng(n + k)
    z = rng.standard_normal((n, k)) * 3
    t = rng.random((n, k)) ** 3
    t /= t.sum(1, keepdims=True)
    t = t.astype(dtype)
    _loss_parity(sc.CrossEntropyLoss(), nn.CrossEntropyLoss(), z, t, torch.tensor(t), dtype)
    onehot = np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    _loss_parity(sc.CrossEntropyLoss(), nn.CrossEntropyLoss(), z, onehot, torch.tensor(onehot), dtype)


@DTYPES
@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4, 5), (1, 1)])
def test_mse_parity(shape, dtype):
    rng = np.random.default_rng(len(shape))
    z, t = rng.standard_normal(shape), rng.standard_normal(shape).astype(dtype)
    _loss_parity(sc.MSELoss(), nn.MSELoss(), z, t, torch.tensor(t), dtype)


# =====================================================================================
# Optimizers and schedulers
# =====================================================================================
OPTIMIZERS = [
    ("sgd", optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    ("sgd_momentum", optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    ("sgd_nesterov", optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("sgd_weight_decay", optim.SGD, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    ("sgd_momentum_wd", optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.05}),
    ("adam", optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    ("adam_betas_eps", optim.Adam, torch.optim.Adam, {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("adam_weight_decay", optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    ("adamw", optim.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    ("adamw_wd0.1", optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
]
PARAM_SHAPES = [(3, 4), (5,), (2, 3, 2, 2), (1,)]


@DTYPES
@pytest.mark.parametrize("name,make,tmake,kw", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_parity(name, make, tmake, kw, dtype):
    """Six steps with fixed random gradients on several parameters; every parameter is
    compared with torch's after every step."""
    rng = np.random.default_rng(42)
    init = [rng.standard_normal(s).astype(dtype) for s in PARAM_SHAPES]
    params = [sc.Parameter(a.copy()) for a in init]
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, topt = make(params, **kw), tmake(tparams, **kw)
    for step in range(6):
        for p, tp in zip(params, tparams):
            g = (rng.standard_normal(p.shape) * (step + 1)).astype(dtype)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            assert_close(p.data, tp, dtype, f"{name}: parameter {i} after step {step + 1}")
        opt.zero_grad()
    assert opt.steps == 6


@DTYPES
@pytest.mark.parametrize("make,tmake", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW),
                                        (optim.SGD, torch.optim.SGD)], ids=["adam", "adamw", "sgd"])
def test_optimizer_with_scheduler_parity(make, tmake, dtype):
    """A scheduler changing the rate between steps: the optimizers must use the current rate
    (also in AdamW's decoupled decay), as torch's do."""
    rng = np.random.default_rng(5)
    init = rng.standard_normal((4, 3)).astype(dtype)
    p, tp = sc.Parameter(init.copy()), torch.tensor(init.copy(), requires_grad=True)
    kw = {"lr": 0.1, "weight_decay": 0.05}
    opt, topt = make([p], **kw), tmake([tp], **kw)
    sched = optim.StepLR(opt, step_size=2, gamma=0.3)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.3)
    for step in range(7):
        g = rng.standard_normal(init.shape).astype(dtype)
        p.grad[...] = g
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert_close(p.data, tp, dtype, f"parameter after step {step + 1}")


@pytest.mark.parametrize("name,make,tmake,kw", [
    ("steplr", optim.StepLR, torch.optim.lr_scheduler.StepLR, {"step_size": 3, "gamma": 0.5}),
    ("steplr_1", optim.StepLR, torch.optim.lr_scheduler.StepLR, {"step_size": 1, "gamma": 0.9}),
    ("cosine", optim.CosineAnnealingLR, torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": 5}),
    ("cosine_eta_min", optim.CosineAnnealingLR, torch.optim.lr_scheduler.CosineAnnealingLR,
     {"T_max": 4, "eta_min": 0.01}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_scheduler_parity(name, make, tmake, kw):
    """The learning rate of every epoch, including past T_max (torch's cosine comes back up)."""
    p = sc.Parameter(np.zeros(2))
    tp = torch.zeros(2, requires_grad=True)
    opt, topt = optim.SGD([p], lr=0.1), torch.optim.SGD([tp], lr=0.1)
    sched, tsched = make(opt, **kw), tmake(topt, **kw)
    lrs, tlrs = [opt.lr], [topt.param_groups[0]["lr"]]
    for _ in range(14):
        opt.step()
        topt.step()
        lrs.append(sched.step())
        tsched.step()
        tlrs.append(topt.param_groups[0]["lr"])
        assert opt.lr == lrs[-1]
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12, atol=1e-15)
    assert len(set(np.round(lrs, 12))) > 2      # the schedule does change the rate


# =====================================================================================
# Whole models: torch state_dict -> scratchcnn Sequential
# =====================================================================================
def _model_parity(model, tmodel, x, labels, dtype, opt_kw=None):
    """Eval-mode outputs, then one train-mode step (loss, every parameter gradient, running
    statistics) and the parameters after an SGD-with-momentum step."""
    tdt = torch_dtype(torch, dtype)
    tmodel = tmodel.to(tdt)
    model.to(dtype)
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = x.astype(dtype)
    xt = torch.tensor(x)

    model.eval()
    tmodel.eval()
    with torch.no_grad():
        expected = tmodel(xt)
    assert_close(model(x), expected, dtype, "eval output")
    with sc.no_grad():
        assert_close(model(x), expected, dtype, "eval output under no_grad")

    model.train()
    tmodel.train()
    model.zero_grad()
    loss = sc.CrossEntropyLoss()
    value = loss(model(x), labels)
    model.backward(loss.backward())
    tloss = nn.CrossEntropyLoss()(tmodel(xt), torch.tensor(labels))
    tloss.backward()
    assert value == pytest.approx(tloss.item(), rel=1e-10 if dtype == np.float64 else 1e-5)
    assert_model_grads_match(model, tmodel, dtype, "train step")
    assert_state_matches(model, tmodel, dtype, "after the train forward")

    kw = opt_kw or {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}
    opt, topt = optim.SGD(model.parameters(), **kw), torch.optim.SGD(tmodel.parameters(), **kw)
    opt.step()
    topt.step()
    assert_state_matches(model, tmodel, dtype, "after one SGD step")
    model.eval()
    tmodel.eval()
    with torch.no_grad():
        assert_close(model(x), tmodel(xt), dtype, "eval output after the step")


@DTYPES
def test_small_cnn_with_batchnorm_loaded_from_torch(dtype, paths):
    torch.manual_seed(0)
    tmodel = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(4 * 5 * 6, 7))
    _randomize_bn(tmodel[1], seed=3)
    model = sc.Sequential(sc.Conv2D(2, 4, 3, padding=1), sc.BatchNorm2D(4), sc.ReLU(), sc.MaxPool2D(2),
                          sc.Flatten(), sc.Dense(4 * 5 * 6, 7), input_shape=(2, 10, 12))
    rng = np.random.default_rng(0)
    _model_parity(model, tmodel, rng.standard_normal((6, 2, 10, 12)), rng.integers(0, 7, 6), dtype)


@DTYPES
def test_seed_network_a_loaded_from_torch(dtype, paths):
    """A simple: Conv(1,8,3,same) ReLU MaxPool2 Flatten Dense(1568,10)."""
    torch.manual_seed(1)
    tmodel = nn.Sequential(nn.Conv2d(1, 8, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Linear(1568, 10))
    model = sc.Sequential(sc.Conv2D(1, 8, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                          sc.Dense(1568, 10), input_shape=(1, 28, 28))
    x = np.random.default_rng(2).standard_normal((4, 1, 28, 28))
    _model_parity(model, tmodel, x, np.array([0, 3, 9, 3]), dtype)


@DTYPES
def test_seed_network_d_loaded_from_torch(dtype, paths):
    """D: Conv(1,32,7,pad 1) ReLU Flatten Dense(32*24*24,10)."""
    torch.manual_seed(2)
    tmodel = nn.Sequential(nn.Conv2d(1, 32, 7, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 24 * 24, 10))
    model = sc.Sequential(sc.Conv2D(1, 32, 7, padding=1), sc.ReLU(), sc.Flatten(), sc.Dense(32 * 24 * 24, 10),
                          input_shape=(1, 28, 28))
    x = np.random.default_rng(3).standard_normal((3, 1, 28, 28))
    _model_parity(model, tmodel, x, np.array([1, 5, 7]), dtype)


EMPTY_BATCH_LAYERS = [
    ("conv", lambda: sc.Conv2D(2, 3, 3, padding=1), lambda: nn.Conv2d(2, 3, 3, padding=1), (0, 2, 5, 5)),
    ("maxpool", lambda: sc.MaxPool2D(2), lambda: nn.MaxPool2d(2), (0, 2, 5, 5)),
    ("avgpool", lambda: sc.AvgPool2D(3, 2, 1), lambda: nn.AvgPool2d(3, 2, 1), (0, 2, 5, 5)),
    ("gap", sc.GlobalAvgPool2D, lambda: TorchFn(lambda t: t.mean((2, 3))), (0, 2, 5, 5)),
    ("flatten", sc.Flatten, nn.Flatten, (0, 2, 5, 5)),
    ("relu", sc.ReLU, nn.ReLU, (0, 2, 5, 5)),
    ("dense", lambda: sc.Dense(4, 3), lambda: nn.Linear(4, 3), (0, 4)),
    ("softmax", sc.Softmax, lambda: nn.Softmax(dim=1), (0, 4)),
]


@pytest.mark.parametrize("name,make,tmake,shape", EMPTY_BATCH_LAYERS, ids=[e[0] for e in EMPTY_BATCH_LAYERS])
def test_empty_batch_like_torch(name, make, tmake, shape, paths):
    """A batch of zero examples gives empty outputs and gradients of the right shapes, as in torch."""
    torch.manual_seed(0)
    check_layer_parity(torch, make(), tmake(), np.zeros(shape), np.float32)


@DTYPES
def test_layers_called_repeatedly_with_changing_shapes(dtype, paths):
    """Layers that reuse working buffers between calls must not leak stale values: the same
    layers on batches of changing shapes (with gradient-free calls in between) still match torch."""
    torch.manual_seed(4)
    conv, tconv = sc.Conv2D(3, 4, 3, padding=2, dtype=dtype), nn.Conv2d(3, 4, 3, padding=2)
    pool, tpool = sc.MaxPool2D(2), nn.MaxPool2d(2)
    rng = np.random.default_rng(8)
    for i, shape in enumerate([(2, 3, 8, 10), (3, 3, 5, 7), (2, 3, 8, 10), (1, 3, 6, 6)]):
        x = rng.standard_normal(shape) + i
        with sc.no_grad():
            conv(rng.standard_normal((5, 3, 9, 4)).astype(dtype) * 100)
            pool(rng.standard_normal((4, 2, 7, 6)).astype(dtype) * 100)
        check_layer_parity(torch, conv, tconv, x, dtype, copy=(i == 0), seed=i)
        check_layer_parity(torch, pool, tpool, x, dtype, seed=i)


@DTYPES
def test_conv2d_inference_in_chunks(dtype, paths):
    """Without gradients a convolution may process a large batch in pieces; the result is the
    same as torch's on the whole batch."""
    torch.manual_seed(5)
    conv, tconv = sc.Conv2D(2, 3, 3, padding=1, dtype=dtype), nn.Conv2d(2, 3, 3, padding=1)
    tconv = tconv.to(torch_dtype(torch, dtype))
    copy_torch_weights(conv, tconv)
    conv.fast_kernel().max_piece_elements = 2 * 6 * 7 * 9 * 2      # about two examples per piece
    x = np.random.default_rng(9).standard_normal((7, 2, 6, 7)).astype(dtype)
    with sc.no_grad(), torch.no_grad():
        assert_close(conv(x), tconv(torch.tensor(x)), dtype, "chunked inference")


def test_weight_names_and_shapes_match_torch():
    """copy_torch_weights refuses a mismatch (so the helper cannot silently skip a tensor)."""
    with pytest.raises(AssertionError):
        copy_torch_weights(sc.Dense(3, 2, bias=False), nn.Linear(3, 2))
    with pytest.raises(AssertionError):
        copy_torch_weights(sc.Conv2D(2, 3, (3, 2)), nn.Conv2d(2, 3, (2, 3)))
    conv, tconv = sc.Conv2D(2, 3, (3, 2)), nn.Conv2d(2, 3, (3, 2))
    copy_torch_weights(conv, tconv)
    np.testing.assert_array_equal(conv.weight.data, to_numpy(tconv.weight))
