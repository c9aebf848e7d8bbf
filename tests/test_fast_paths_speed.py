"""The fast paths of issue 15 equal the textbook path (and PyTorch) they stand beside.

* ``scratchcnn.nn.fast_plan``: Sequential's fast plan -- a ReLU before a MaxPool2D runs after it
  (they commute exactly, ties included), a ReLU after a Conv2D is applied by the convolution's
  kernel in cache (``fuse_relu_once``) and its derivative taken there too (``relu_mask_once``);
* ``scratchcnn.kernels.dense_blocks``: a wide Dense layer's backward products cut into blocks,
  the cut measured once per shape;
* ``scratchcnn.kernels.conv_one_channel.im2col_one_channel`` as one strided copy.

Each is compared in float64 with the same model under ``textbook()`` (1e-12), on real
Fashion-MNIST images where ties matter, and one small network against PyTorch.
"""
import numpy as np
import pytest
from parity_helpers import assert_close, assert_model_grads_match, fashion_mnist_images

import scratchcnn as sc
from scratchcnn.kernels import dense_blocks, textbook
from scratchcnn.kernels.conv_one_channel import OneChannelConv, im2col_one_channel
from scratchcnn.kernels.conv_channels_last import ChannelsLastConv
from scratchcnn.kernels.conv_winograd import WinogradConv
from scratchcnn.nn import fast_plan
from scratchcnn.nn.module import no_grad


def step(model, x, g, fast, first_grad=True):
    """Forward + backward of ``model`` (a Sequential) on the fast or the textbook path."""
    model.needs_input_grad_first = first_grad
    for i, m in enumerate(model.layers):
        m.needs_input_grad = i > 0 or first_grad
    model.zero_grad()
    with textbook(not fast):
        y = np.array(model(x))
        dx = model.backward(g)
    return y, (None if dx is None else np.array(dx)), {k: p.grad.copy() for k, p in model.named_parameters()}


def assert_same(a, b, tol=1e-12):
    (ya, dxa, ga), (yb, dxb, gb) = a, b
    np.testing.assert_allclose(ya, yb, rtol=tol, atol=tol)
    assert (dxa is None) == (dxb is None)
    if dxa is not None:
        np.testing.assert_allclose(dxa, dxb, rtol=tol, atol=tol)
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=10 * tol, atol=10 * tol, err_msg=k)


def fashion(n):
    x = fashion_mnist_images(n)
    if x is None:
        pytest.skip("Fashion-MNIST (Debian package dataset-fashion-mnist) is not installed")
    return x


def kinds(model):
    return [(i, type(layer).__name__ + ("+ReLU" if relu is not None else "")) for i, layer, relu in model.run_plan()]


# ------------------------------------------------------------------ the plan
def test_plan_swaps_relu_and_maxpool_and_fuses_conv_relu():
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.Conv2D(4, 4, 3, padding=1), sc.ReLU(),
                          sc.MaxPool2D(2), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(), sc.Dense(4 * 7 * 7, 5), sc.ReLU())
    assert kinds(model) == [(0, "Conv2D+ReLU"), (2, "Conv2D"), (4, "MaxPool2D"), (3, "ReLU"), (6, "MaxPool2D"),
                            (5, "ReLU"), (7, "Flatten"), (8, "Dense"), (9, "ReLU")]
    # a second ReLU bubbles past consecutive pools; a pool after a conv's ReLU takes that ReLU
    two = sc.Sequential(sc.Conv2D(1, 4, 3), sc.ReLU(), sc.MaxPool2D(2), sc.MaxPool2D(2))
    assert kinds(two) == [(0, "Conv2D"), (2, "MaxPool2D"), (3, "MaxPool2D"), (1, "ReLU")]
    with textbook():
        assert kinds(model) == [(i, type(m).__name__) for i, m in enumerate(model.layers)]
    assert model.run_plan() is model.run_plan()                  # kept while the layers stay
    model.add(sc.ReLU())
    assert kinds(model)[-1] == (10, "ReLU")


def test_other_activations_and_subclasses_are_left_in_place():
    class MyReLU(sc.ReLU):
        pass
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.LeakyReLU(0.1), sc.MaxPool2D(2), sc.Conv2D(2, 2, 1), MyReLU(),
                          sc.MaxPool2D(2), sc.Sigmoid())
    assert kinds(model) == [(i, type(m).__name__) for i, m in enumerate(model.layers)]


# ------------------------------------------------------------------ ReLU / MaxPool commute
POOLS = [(2, None, 0), (3, 2, 0), (3, 2, 1), (2, 1, 0), ((2, 3), (2, 3), 0)]


@pytest.mark.parametrize("kernel,stride,padding", POOLS)
@pytest.mark.parametrize("first_grad", [True, False])
def test_relu_maxpool_commute_equals_textbook_with_ties(kernel, stride, padding, first_grad):
    """On a convolution of real images (zero backgrounds: every window there ties at the bias,
    many at values <= 0), max-pool then ReLU gives the textbook values and gradients."""
    x = fashion(4)
    sc.manual_seed(5)
    model = sc.Sequential(sc.Conv2D(1, 3, 3, padding=1), sc.ReLU(), sc.MaxPool2D(kernel, stride, padding),
                          input_shape=(1, 28, 28)).to(np.float64)
    model[0].bias.data[:] = [0.2, -0.3, 0.0]                     # ties above, below and at zero
    g = np.random.default_rng(1).standard_normal((4,) + model.output_shape((1, 28, 28)))
    fast = step(model, x, g, True, first_grad)
    assert kinds(model)[1:] == [(2, "MaxPool2D"), (1, "ReLU")]
    assert_same(fast, step(model, x, g, False, first_grad))


def test_relu_maxpool_commute_on_channels_last_maps():
    """Winograd's NHWC-memory output, ReLU, 2x2 pool: as the textbook path."""
    rng = np.random.default_rng(2)
    model = sc.Sequential(sc.Conv2D(4, 6, 3, padding=1), sc.ReLU(), sc.MaxPool2D(2), sc.Conv2D(6, 5, 3, padding=1),
                          sc.ReLU(), sc.MaxPool2D(2), input_shape=(4, 12, 10)).to(np.float64)
    x = np.round(rng.standard_normal((3, 4, 12, 10)))             # rounded: ties
    g = rng.standard_normal((3, 5, 3, 2))
    assert_same(step(model, x, g, True), step(model, x, g, False))


# ------------------------------------------------------------------ Conv2D + ReLU fused
FUSED = [  # conv arguments, input shape (C, H, W), the kernel the conv uses
    ((1, 8, 7, 1, 1), (1, 20, 18), OneChannelConv),               # seed D's layer
    ((1, 5, 3, 1, "same"), (1, 9, 9), OneChannelConv),
    ((1, 3, 3, 2, 1), (1, 9, 8), OneChannelConv),
    ((4, 6, 3, 1, 1), (4, 9, 7), WinogradConv),
    ((3, 4, 3, 2, 1), (3, 9, 8), ChannelsLastConv),
    ((3, 4, 5, 1, 2), (3, 8, 8), ChannelsLastConv),
]


@pytest.mark.parametrize("conv_args,in_shape,kind", FUSED, ids=[f"{k.__name__}-{a}" for a, _, k in FUSED])
@pytest.mark.parametrize("first_grad", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_relu_fused_equals_textbook(conv_args, in_shape, kind, first_grad, bias):
    cin, cout, k, s, p = conv_args
    rng = np.random.default_rng(3)
    model = sc.Sequential(sc.Conv2D(cin, cout, k, stride=s, padding=p, bias=bias), sc.ReLU(), sc.Flatten(),
                          input_shape=in_shape).to(np.float64)
    if bias:
        model[0].bias.data = rng.standard_normal(cout)
    assert type(model[0].fast_kernel()) is kind and kinds(model)[0] == (0, "Conv2D+ReLU")
    n = 5
    x = rng.standard_normal((n,) + in_shape)
    g = rng.standard_normal((n,) + model.output_shape(in_shape))
    model[0].fast_kernel().max_piece_elements = 2 * 9 * 9 * 9 * max(cin, 4)    # several pieces
    fast = step(model, x, g, True, first_grad)
    kernel = model[0].fast_kernel()
    assert not kernel.fuse_relu_once and getattr(kernel, "relu_mask_once", None) is None   # one-shot: cleared
    assert model[1].output is not None and (model[1].output >= 0).all()
    assert_same(fast, step(model, x, g, False, first_grad))
    with no_grad():                                               # inference: the fused output alone
        np.testing.assert_allclose(model(x), fast[0], rtol=1e-12, atol=1e-12)


def test_fused_relu_leaves_direct_conv_calls_alone(rng):
    """The request is one-shot: calling the convolution by itself afterwards gives its own output
    (negative values included), as Grad-CAM and the feature-map views read it."""
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), input_shape=(1, 6, 6)).to(np.float64)
    x = rng.standard_normal((2, 1, 6, 6))
    y = model(x)
    assert (y >= 0).all()
    conv_alone = model[0](x)
    assert (conv_alone < 0).any()
    np.testing.assert_allclose(np.maximum(conv_alone, 0), y, rtol=1e-13, atol=1e-13)


def test_fusion_falls_back_to_the_relu_for_an_empty_batch(rng):
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), input_shape=(1, 6, 6))
    y = model(np.zeros((0, 1, 6, 6), np.float32))
    assert y.shape == (0, 4, 6, 6)
    assert not model[0].fast_kernel().fuse_relu_once
    assert model.backward(np.zeros_like(y)) is None


def test_backward_retraces_the_forward_steps_across_a_textbook_switch(rng):
    """A forward pass on the fast path and backward under textbook() (or the other way round)
    still pair each layer's backward with its own forward."""
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.Conv2D(4, 4, 3, padding=1), sc.ReLU(),
                          sc.MaxPool2D(2), input_shape=(1, 8, 8)).to(np.float64)
    model.needs_input_grad_first = True
    model[0].needs_input_grad = True
    x, g = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((2, 4, 4, 4))
    ref = step(model, x, g, False)
    for fwd_fast in (True, False):
        model.zero_grad()
        with textbook(not fwd_fast):
            y = model(x)
        with textbook(fwd_fast):
            dx = model.backward(g)
        np.testing.assert_allclose(y, ref[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, ref[1], rtol=1e-12, atol=1e-12)


def test_seed_networks_fast_step_equals_textbook_on_fashion_mnist():
    from scratchcnn.app import presets
    x = fashion(6)
    labels = np.arange(6) % 10
    for build in (presets.seed_a_simple, presets.seed_d, presets.seed_a_complex):
        sc.manual_seed(0)
        model = build((1, 28, 28), 10).to(np.float64)
        out = []
        for fast in (True, False):
            model.zero_grad()
            crit = sc.CrossEntropyLoss()
            with textbook(not fast):
                loss = crit(model(x), labels)
                model.backward(crit.backward())
            out.append((loss, {k: p.grad.copy() for k, p in model.named_parameters()}))
        assert out[0][0] == pytest.approx(out[1][0], rel=1e-13)
        for k in out[0][1]:
            np.testing.assert_allclose(out[0][1][k], out[1][1][k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_fast_plan_network_matches_torch():
    """Every rewrite at once -- conv+ReLU fused on the one-channel, Winograd and channels-last
    kernels, ReLU/MaxPool swapped (tiled and overlapping pools), a wide Dense -- against PyTorch,
    float64 and float32, fast path and textbook path."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    x = fashion(4)
    labels = np.array([1, 4, 7, 9])
    for dtype in (np.float64, np.float32):
        torch.manual_seed(6)
        tmodel = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(),
                               nn.MaxPool2d(3, 1), nn.Flatten(), nn.Linear(8 * 5 * 5, 3000), nn.ReLU(),
                               nn.Linear(3000, 10)).to(torch.float64 if dtype == np.float64 else torch.float32)
        model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.Conv2D(4, 6, 3, padding=1), sc.ReLU(),
                              sc.Conv2D(6, 6, 3, padding=1), sc.ReLU(), sc.MaxPool2D(2),
                              sc.Conv2D(6, 8, 3, stride=2, padding=1), sc.ReLU(), sc.Conv2D(8, 8, 1), sc.ReLU(),
                              sc.MaxPool2D(3, 1), sc.Flatten(), sc.Dense(8 * 5 * 5, 3000), sc.ReLU(),
                              sc.Dense(3000, 10), input_shape=(1, 28, 28)).to(dtype)
        assert kinds(model)[:11] == [(0, "Conv2D+ReLU"), (2, "Conv2D+ReLU"), (4, "Conv2D"), (6, "MaxPool2D"),
                                     (5, "ReLU"), (7, "Conv2D+ReLU"), (9, "Conv2D"), (11, "MaxPool2D"), (10, "ReLU"),
                                     (12, "Flatten"), (13, "Dense")]
        assert [type(model[i].fast_kernel()) for i in (0, 2, 7)] == [OneChannelConv, WinogradConv, ChannelsLastConv]
        model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
        xt = torch.tensor(x.astype(dtype))
        tloss = nn.CrossEntropyLoss()(tmodel(xt), torch.tensor(labels))
        tloss.backward()
        for fast in (True, False):
            model.zero_grad()
            crit = sc.CrossEntropyLoss()
            with textbook(not fast):
                value = crit(model(x.astype(dtype)), labels)
                model.backward(crit.backward())
                with no_grad():
                    assert_close(model(x.astype(dtype)), tmodel(xt), dtype, f"output ({fast=})")
            assert value == pytest.approx(tloss.item(), rel=1e-10 if dtype == np.float64 else 1e-5)
            assert_model_grads_match(model, tmodel, dtype, f"{fast=}")


# ------------------------------------------------------------------ wide Dense
def test_dense_blocks_equal_the_textbook_products(rng, monkeypatch):
    monkeypatch.setattr(dense_blocks, "_best", {})
    layer = sc.Dense(2500, 7, dtype=np.float64)
    x, g = rng.standard_normal((9, 2500)), rng.standard_normal((9, 7))
    layer(x)
    assert dense_blocks.applies(x, layer.weight.data)
    dx = layer.backward(g)
    dw = layer.weight.grad.copy()
    assert {key[0] for key in dense_blocks._best} == {"dx", "dW"}           # measured once per shape
    assert dense_blocks._best[("dx", (9, 7), (7, 2500), "<f8")] in dense_blocks.INPUT_GRAD_ROWS
    for rows in dense_blocks.INPUT_GRAD_ROWS:                               # every cut, not only the winner
        out = dense_blocks._rows(g, layer.weight.data, rows, np.empty((9, 2500)))
        np.testing.assert_allclose(out, g @ layer.weight.data, rtol=1e-12, atol=1e-12)
    for cols in dense_blocks.WEIGHT_GRAD_COLUMNS:
        out = dense_blocks._columns(g, x, cols, np.empty((7, 2500)))
        np.testing.assert_allclose(out, g.T @ x, rtol=1e-12, atol=1e-12)
    layer.zero_grad()
    with textbook():
        layer(x)
        dx_ref = layer.backward(g)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, layer.weight.grad, rtol=1e-12, atol=1e-12)
    assert dx.flags.c_contiguous
    layer.zero_grad()                                                       # the cached cut, again
    layer(x)
    np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12, atol=1e-12)


def test_dense_blocks_apply_only_to_wide_contiguous_inputs(rng):
    w_narrow, w_wide = np.zeros((4, 100)), np.zeros((4, dense_blocks.MIN_IN_FEATURES))
    x = rng.standard_normal((3, dense_blocks.MIN_IN_FEATURES))
    assert dense_blocks.applies(x, w_wide)
    assert not dense_blocks.applies(x[:, :100], w_narrow)
    assert not dense_blocks.applies(np.asfortranarray(x), w_wide)


# ------------------------------------------------------------------ one-channel im2col
@pytest.mark.parametrize("kernel,stride", [((3, 3), (1, 1)), ((7, 7), (1, 1)), ((3, 2), (2, 3)), ((1, 1), (2, 2))])
def test_im2col_one_channel_is_the_loop(rng, kernel, stride):
    xp = rng.standard_normal((3, 11, 12))
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (11 - kh) // sh + 1, (12 - kw) // sw + 1
    buf = np.full((3, kh * kw + 2, oh * ow), np.nan)
    im2col_one_channel(xp, kernel, stride, (oh, ow), buf[:, :kh * kw])           # a slice, rows strided
    for di in range(kh):
        for dj in range(kw):
            want = xp[:, di:di + sh * (oh - 1) + 1:sh, dj:dj + sw * (ow - 1) + 1:sw].reshape(3, -1)
            np.testing.assert_array_equal(buf[:, di * kw + dj], want)
    assert np.isnan(buf[:, kh * kw:]).all()                                      # nothing written past it
