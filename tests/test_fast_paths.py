"""Every fast kernel gives its layer's textbook-path results (float64, tight tolerances).

Fast kernels: channels-last Conv2D (kernels.conv_channels_last) with reused workspaces,
processed in cache-sized pieces with and without gradients, the one-channel Conv2D
(kernels.conv_one_channel), Winograd F(2x2, 3x3) Conv2D (kernels.conv_winograd), tiled MaxPool2D
(kernels.pool_tiled), BatchNorm on rows / planes (kernels.batchnorm_views), ReLU keeping its
output. Each is compared with the same layer under ``textbook()`` and, on small inputs, with
the loops of ``scratchcnn.nn.loops``.
"""
import gzip
import os

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.nn import loops
from scratchcnn.kernels import Workspace, textbook_enabled, textbook
from scratchcnn.kernels.conv_channels_last import ChannelsLastConv, ChannelsLastSaved
from scratchcnn.kernels.conv_one_channel import OneChannelConv, OneChannelSaved
from scratchcnn.kernels.conv_winograd import WinogradConv, WinogradSaved
from scratchcnn.nn.conv import TextbookSaved
from scratchcnn.nn.module import no_grad

FASHION = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fashion_images(n):
    """The first ``n`` Fashion-MNIST test images, (n, 1, 28, 28) float64 in [0, 1]."""
    if not os.path.exists(FASHION):
        pytest.skip("Fashion-MNIST (Debian package dataset-fashion-mnist) is not installed")
    with gzip.open(FASHION, "rb") as f:
        raw = f.read()
    x = np.frombuffer(raw, dtype=np.uint8, offset=16)[:n * 784]
    return (x.reshape(n, 1, 28, 28) / 255.0).astype(np.float64)


def run_layer(layer, x, g, fast):
    """Forward and backward once; returns (y, dx, {param name: grad})."""
    layer.zero_grad()
    layer._clear_cache()
    if fast:
        y = layer(x)
        dx = layer.backward(g)
    else:
        with textbook():
            y = layer(x)
            dx = layer.backward(g)
    grads = {k: p.grad.copy() for k, p in layer.named_parameters()}
    return np.array(y), (None if dx is None else np.array(dx)), grads


def assert_same(a, b):
    ya, dxa, ga = a
    yb, dxb, gb = b
    np.testing.assert_allclose(ya, yb, rtol=1e-12, atol=1e-12)
    if dxa is None or dxb is None:
        assert dxa is None and dxb is None
    else:
        np.testing.assert_allclose(dxa, dxb, rtol=1e-12, atol=1e-12)
    assert ga.keys() == gb.keys()
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=1e-11, atol=1e-11, err_msg=k)


def test_fast_paths_are_the_default():
    assert not textbook_enabled()
    with textbook():
        assert textbook_enabled()
        with textbook(False):
            assert not textbook_enabled()
        assert textbook_enabled()
    assert not textbook_enabled()


CONV_CASES = [  # in, out, kernel, stride, padding, (H, W)
    (1, 8, 3, 1, "same", (28, 28)),
    (3, 5, 3, 1, "same", (9, 7)),
    (4, 6, 4, 1, "same", (8, 8)),          # even kernel: asymmetric 'same' padding
    (2, 3, (2, 3), (2, 1), (1, 2), (9, 10)),
    (5, 4, 3, 2, 0, (11, 11)),
    (3, 2, 7, 1, 1, (12, 12)),             # seed D's kernel and padding
    (6, 7, 1, 1, 0, (5, 4)),
    (1, 3, 3, 2, 1, (9, 8)),               # one channel (window-view im2col), strided
    (2, 3, 2, 1, 2, (5, 5)),               # padding >= kernel: col2im instead of full convolution
    (1, 2, (3, 2), (1, 3), (0, 1), (6, 7)),
]


@pytest.mark.parametrize("cin, cout, k, s, p, hw", CONV_CASES)
@pytest.mark.parametrize("channels_last_input", [False, True])
def test_conv_kernels_equal_textbook(rng, cin, cout, k, s, p, hw, channels_last_input):
    layer = sc.Conv2D(cin, cout, k, stride=s, padding=p, dtype=np.float64)
    layer.bias.data = rng.standard_normal(cout)
    x = rng.standard_normal((3, cin) + hw)
    if channels_last_input:   # an NCHW view of NHWC memory, as the fast layers pass on
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    shape = layer.output_shape(x.shape[1:])
    g = rng.standard_normal((3,) + shape)
    assert_same(run_layer(layer, x, g, fast=True), run_layer(layer, x, g, fast=False))


def test_conv_fast_equals_naive_loops(rng):
    layer = sc.Conv2D(2, 3, 3, stride=(1, 2), padding=1, dtype=np.float64)
    layer.bias.data = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 6, 7))
    g = rng.standard_normal((2,) + layer.output_shape(x.shape[1:]))
    y, dx, grads = run_layer(layer, x, g, fast=True)
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(y, loops.conv2d_forward(x, w, b, layer.stride, layer.pads), atol=1e-12)
    rdx, rdw, rdb = loops.conv2d_backward(x, w, g, layer.stride, layer.pads)
    np.testing.assert_allclose(dx, rdx, atol=1e-12)
    np.testing.assert_allclose(grads["weight"], rdw, atol=1e-12)
    np.testing.assert_allclose(grads["bias"], rdb, atol=1e-12)


def test_conv_first_layer_skips_input_grad(rng):
    layer = sc.Conv2D(2, 4, 3, padding="same", dtype=np.float64)
    layer.needs_input_grad = False
    x = rng.standard_normal((2, 2, 6, 6))
    g = rng.standard_normal((2, 4, 6, 6))
    fast, ref = run_layer(layer, x, g, fast=True), run_layer(layer, x, g, fast=False)
    assert fast[1] is None
    assert_same(fast, ref)


@pytest.mark.parametrize("cin", [1, 3])       # the one-channel NCHW path and the NHWC path
def test_conv_inference_in_chunks_equals_whole_batch(rng, monkeypatch, cin):
    layer = sc.Conv2D(cin, 4, 3, padding=1, dtype=np.float64)
    x = rng.standard_normal((7, cin, 6, 5))
    whole = layer(x)
    # at most two images' im2col rows at a time: 7 images -> chunks of 2, 2, 2, 1
    monkeypatch.setattr(layer.fast_kernel(), "max_piece_elements", 2 * 6 * 5 * 9 * cin)
    layer._clear_cache()
    with no_grad():
        chunked = layer(x)
    assert layer._saved is None                      # no_grad keeps nothing for backward
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)
    with textbook(), no_grad():
        np.testing.assert_allclose(layer(x), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,stride,padding", [(1, 1, 1), (3, 1, 1), (3, 1, "same"), (3, 2, 1), (1, 2, 0)])
def test_conv_training_in_pieces_equals_textbook(rng, monkeypatch, cin, stride, padding):
    """With gradients the batch is also processed in cache-sized pieces (forward columns
    written piece by piece, the stride-1 input gradient computed piece by piece): forward,
    input gradient and parameter gradients equal the textbook path's on the whole batch."""
    layer = sc.Conv2D(cin, 4, 3, stride=stride, padding=padding, dtype=np.float64)
    x = rng.standard_normal((7, cin, 9, 8))
    g = rng.standard_normal((7, 4) + layer.output_shape(x.shape[1:])[1:])
    monkeypatch.setattr(layer.fast_kernel(), "max_piece_elements", 2 * 9 * 8 * 9 * max(cin, 4))  # ~2 images a piece
    assert_same(run_layer(layer, x, g, fast=True), run_layer(layer, x, g, fast=False))
    # and once more, reusing the piece-sized workspaces of the first call
    assert_same(run_layer(layer, 2 * x, g, fast=True), run_layer(layer, 2 * x, g, fast=False))


def test_conv_outputs_are_not_workspace_views(rng):
    """Buffers are reused between calls, but an output a caller holds never changes."""
    layer = sc.Conv2D(2, 3, 3, padding="same", dtype=np.float64)
    x1, x2 = rng.standard_normal((2, 2, 2, 5, 5))
    y1 = layer(x1)
    y1_copy = y1.copy()
    assert isinstance(layer.kernel_in_use, ChannelsLastConv)
    cols_before = layer._saved.cols
    y2 = layer(x2)
    assert layer._saved.cols is cols_before          # the im2col workspace was reused
    np.testing.assert_array_equal(y1, y1_copy)
    assert not np.shares_memory(y1, y2)
    dx1 = layer.backward(np.ones_like(y2))
    dx2 = layer.backward(np.ones_like(y2))
    assert not np.shares_memory(dx1, dx2)


# (kernel, its saved type, C_in, stride, padding): the layer picks each kernel for these
CONV_KERNELS = [(ChannelsLastConv, ChannelsLastSaved, 3, 2, 1), (ChannelsLastConv, ChannelsLastSaved, 3, 1, 1),
                (OneChannelConv, OneChannelSaved, 1, 1, 1), (WinogradConv, WinogradSaved, 4, 1, 1)]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind, saved_type, cin, stride, padding", CONV_KERNELS,
                         ids=[f"{k.__name__}-stride{s}" for k, _, _, s, _ in CONV_KERNELS])
def test_conv_kernels_honour_one_contract(rng, kind, saved_type, cin, stride, padding, bias):
    """Every Conv2D kernel: built once per layer from its geometry; ``forward(x, weight, bias,
    keep_for_backward)`` returns ``(y, saved)`` with ``saved`` a named type of the kernel's own
    (None when nothing is kept); ``backward(saved, grad_y, weight, need_input_grad,
    need_weight_grad)`` returns ``(grad_x, grad_weight, grad_bias)``, None for what was not asked
    for (grad_bias: None without a bias); the results are the textbook path's."""
    layer = sc.Conv2D(cin, 5, 3, stride=stride, padding=padding, bias=bias, dtype=np.float64)
    kernel = layer.fast_kernel()
    assert type(kernel) is kind and layer.fast_kernel() is kernel        # built once, kept
    assert kernel.geometry == (layer.kernel_size, layer.stride, layer.pads, cin, 5)
    x = rng.standard_normal((3, cin, 7, 6))
    w, b = layer.weight.data, (layer.bias.data if bias else None)
    y, saved = kernel.forward(x, w, b, keep_for_backward=True)
    assert type(saved) is saved_type and saved_type._fields[0] != "path"   # a named type, no tag
    assert not any(isinstance(v, str) for v in saved) and saved.has_bias == bias
    y_infer, nothing = kernel.forward(x, w, b, keep_for_backward=False)
    assert nothing is None
    g = rng.standard_normal(y.shape)
    grads = kernel.backward(saved, g, w)
    assert isinstance(grads, tuple) and len(grads) == 3
    dx, dw, db = grads
    assert (db is None) == (not bias)
    layer.zero_grad()
    with textbook():
        y_ref = layer(x)
        dx_ref = layer.backward(g)
    assert layer.kernel_in_use is None and isinstance(layer._saved, TextbookSaved)
    for got, want in ((y, y_ref), (y_infer, y_ref), (dx, dx_ref), (dw, layer.weight.grad)) + \
            (((db, layer.bias.grad),) if bias else ()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    no_dx = kernel.backward(saved, g, w, need_input_grad=False)
    assert len(no_dx) == 3 and no_dx[0] is None
    np.testing.assert_allclose(no_dx[1], dw, rtol=1e-13, atol=1e-13)
    only_dx = kernel.backward(saved, g, w, need_weight_grad=False)
    assert len(only_dx) == 3 and only_dx[1] is None and only_dx[2] is None
    np.testing.assert_allclose(only_dx[0], dx, rtol=1e-13, atol=1e-13)
    # the layer hands the same contract through: its saved state is the kernel's named type
    layer(x)
    assert layer.kernel_in_use is kernel and type(layer._saved) is saved_type
    kernel.clear()
    assert kernel.workspace.nbytes() == 0


def test_conv_kernels_are_kept_per_layer_and_rebuilt_for_a_new_geometry(rng):
    layer = sc.Conv2D(8, 8, 3, padding=1)
    wino = layer.fast_kernel()
    layer.winograd_min_channels = None                 # the pick follows the public rule
    assert isinstance(layer.fast_kernel(), ChannelsLastConv)
    layer.winograd_min_channels = 4
    assert layer.fast_kernel() is wino
    layer.pads = (0, 0, 0, 0)                          # a changed geometry: a new kernel
    assert layer.fast_kernel() is not wino and layer.fast_kernel().pads == (0, 0, 0, 0)
    with pytest.raises(sc.ConfigError):
        WinogradConv((5, 5), (1, 1), (2, 2, 2, 2), 8, 8)


def test_conv_kernel_modules_import_only_kernels_and_errors():
    """Kernels never import the layers (scratchcnn.nn): only other kernels and scratchcnn.errors."""
    import ast
    import pathlib
    import scratchcnn.kernels as kernels
    for path in pathlib.Path(kernels.__file__).parent.glob("conv_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 or node.module == "errors", (path.name, node.module)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(n.startswith("scratchcnn") for n in names), (path.name, names)


def test_workspace_reuses_and_bounds_buffers():
    ws = Workspace()
    a = ws.get("a", (4, 5), np.float32, zero=True)
    assert not a.any()
    assert ws.get("a", (4, 5), np.float32) is a
    assert ws.get("a", (4, 6), np.float32) is not a   # new shape: new buffer, old one dropped
    f1 = ws.flat("f", (10, 3), np.float64)
    f2 = ws.flat("f", (2, 5), np.float64)
    assert np.shares_memory(f1, f2) and f2.shape == (2, 5)
    assert ws.nbytes() == 4 * 6 * 4 + 30 * 8


POOL_CASES = [((2, 2), None, (28, 28)), ((2, 2), None, (7, 9)), ((3, 3), None, (9, 10)),
              ((2, 3), (2, 3), (8, 9))]


@pytest.mark.parametrize("k, s, hw", POOL_CASES)
@pytest.mark.parametrize("channels_last_input", [False, True])
def test_maxpool_tiled_kernel_equals_textbook_with_ties(rng, k, s, hw, channels_last_input):
    from scratchcnn.kernels.pool_tiled import TiledMaxPoolSaved
    from scratchcnn.nn.pool import MaxPoolTextbookSaved
    pool = sc.MaxPool2D(k, s)
    assert pool._tiles()
    x = rng.integers(0, 3, size=(4, 3) + hw).astype(np.float64)   # many ties
    if channels_last_input:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = rng.standard_normal((4,) + pool.output_shape(x.shape[1:]))
    fast = run_layer(pool, x, g, fast=True)
    assert type(pool._saved) is TiledMaxPoolSaved
    ref = run_layer(pool, x, g, fast=False)
    assert type(pool._saved) is MaxPoolTextbookSaved
    assert_same(fast, ref)
    ry, rdx = loops.maxpool2d_forward_backward(x, pool.kernel_size, pool.stride, pool.pads, g)
    np.testing.assert_array_equal(fast[0], ry)
    np.testing.assert_allclose(fast[1], rdx, atol=1e-15)


def test_maxpool_sends_gradient_to_first_maximum_on_fashion_mnist():
    """Real images have large zero backgrounds: most 2x2 windows tie. Each window's gradient
    must reach exactly one element, the first maximum in row-major order (as PyTorch)."""
    x = fashion_images(16)
    pool = sc.MaxPool2D(2)
    conv = sc.Conv2D(1, 4, 3, padding="same", dtype=np.float64)
    relu = sc.ReLU()
    for inp in (x, relu(conv(x))):                     # NCHW images, and NHWC-memory maps
        g = np.ones((len(inp),) + pool.output_shape(inp.shape[1:]))
        y, dx, _ = run_layer(pool, inp, g, fast=True)
        assert (inp == 0).mean() > 0.3                 # there really are ties
        per_window = dx.reshape(dx.shape[0], dx.shape[1], 14, 2, 14, 2)
        assert ((per_window != 0).sum(axis=(3, 5)) == 1).all()   # exactly one element per window
        np.testing.assert_array_equal(per_window.sum(axis=(3, 5)), g)
        ry, rdx = loops.maxpool2d_forward_backward(inp, (2, 2), (2, 2), (0, 0, 0, 0), g)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(dx, rdx)


def test_maxpool_overlapping_windows_use_textbook_path(rng):
    from scratchcnn.nn.pool import MaxPoolTextbookSaved
    pool = sc.MaxPool2D(3, 2)
    assert not pool._tiles()
    x = rng.standard_normal((2, 2, 7, 7))
    g = rng.standard_normal((2, 2, 3, 3))
    fast = run_layer(pool, x, g, fast=True)
    assert type(pool._saved) is MaxPoolTextbookSaved
    assert_same(fast, run_layer(pool, x, g, fast=False))


def test_relu_keeps_memory_order_and_gradient(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    x[0, 0, 0, :3] = 0.0
    xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    relu = sc.ReLU()
    y = relu(xv)
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0.0))
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous          # still NHWC memory
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(relu.backward(g), g * (x > 0))
    with no_grad():
        relu2 = sc.ReLU()
        relu2(x)
        assert relu2._y is None


def a_complex_like():
    return sc.Sequential(sc.Conv2D(1, 4, 3, padding="same"), sc.ReLU(), sc.Conv2D(4, 4, 3, padding="same"),
                         sc.ReLU(), sc.MaxPool2D(2), sc.Conv2D(4, 6, 3, padding="same"), sc.ReLU(),
                         sc.MaxPool2D(2), sc.Flatten(), sc.Dense(6 * 7 * 7, 8), sc.ReLU(), sc.Dense(8, 10),
                         input_shape=(1, 28, 28)).to(np.float64)


def test_whole_network_step_fast_kernels_equal_textbook():
    x = fashion_images(6)
    labels = np.arange(6) % 10
    model = a_complex_like()
    results = []
    for fast in (True, False):
        model.zero_grad()
        crit = sc.CrossEntropyLoss()
        if fast:
            loss = crit(model(x), labels)
            model.backward(crit.backward())
        else:
            with textbook():
                loss = crit(model(x), labels)
                model.backward(crit.backward())
        results.append((loss, {k: p.grad.copy() for k, p in model.named_parameters()}))
    (lf, gf), (lr_, gr) = results
    assert lf == pytest.approx(lr_, rel=1e-13)
    for k in gf:
        np.testing.assert_allclose(gf[k], gr[k], rtol=1e-10, atol=1e-13, err_msg=k)
    with no_grad():
        fast_out = model(x)
        with textbook():
            ref_out = model(x)
    np.testing.assert_allclose(fast_out, ref_out, rtol=1e-12, atol=1e-12)


def test_float32_training_matches_textbook_closely():
    x = fashion_images(8).astype(np.float32)
    labels = np.arange(8) % 10
    sc.manual_seed(3)
    model = a_complex_like().to(np.float32)
    state = model.state_dict()
    losses = {}
    for fast in (True, False):
        model.load_state_dict(state)
        opt = sc.optim.SGD(model.parameters(), lr=0.05)
        crit = sc.CrossEntropyLoss()
        seq = []
        for _ in range(3):
            opt.zero_grad()
            if fast:
                seq.append(crit(model(x), labels))
                model.backward(crit.backward())
            else:
                with textbook():
                    seq.append(crit(model(x), labels))
                    model.backward(crit.backward())
            opt.step()
        losses[fast] = seq
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


@pytest.mark.parametrize("layout", ["nchw-view-of-nhwc", "nchw", "2d"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("grad_layout", ["same", "nchw"])
def test_batchnorm_views_kernel_equals_textbook(rng, layout, training, grad_layout):
    """BatchNorm's fast kernel (kernels.batchnorm_views) on (M, C) rows (conv NHWC memory,
    BatchNorm1D input) and on (N, C, H*W) planes (NCHW memory) == the textbook path: outputs,
    input and parameter gradients, running statistics, in float64; gradients in another memory
    order included."""
    from scratchcnn.kernels.batchnorm_views import BatchNormSaved
    from scratchcnn.nn.batchnorm import TextbookSaved as BatchNormTextbookSaved
    if layout == "2d":
        bn, x = sc.BatchNorm1D(5, momentum=0.3, dtype=np.float64), rng.standard_normal((7, 5)) * 3 + 1
    else:
        bn = sc.BatchNorm2D(5, momentum=0.3, dtype=np.float64)
        x = rng.standard_normal((3, 5, 4, 6)) * 3 + 1
        if layout == "nchw-view-of-nhwc":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    bn.weight.data = rng.standard_normal(5)
    bn.bias.data = rng.standard_normal(5)
    g = rng.standard_normal(x.shape)
    if grad_layout == "same":
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if layout == "nchw-view-of-nhwc" else g
    elif x.ndim == 2:
        g = np.asfortranarray(g)                     # not C-contiguous: the copy branch
    elif layout == "nchw":
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # NHWC gradient
    results = []
    for fast in (True, False):
        layer = sc.BatchNorm1D(5, momentum=0.3, dtype=np.float64) if x.ndim == 2 else \
            sc.BatchNorm2D(5, momentum=0.3, dtype=np.float64)
        layer.load_state_dict(bn.state_dict())
        layer.train(training)
        layer.needs_input_grad = True
        out = run_layer(layer, x, g, fast=fast)
        results.append((out, layer.running_mean.copy(), layer.running_var.copy()))
        assert type(layer._saved) is (BatchNormSaved if fast else BatchNormTextbookSaved)
    assert_same(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-12)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("layout", ["rows", "planes", "2d"])
def test_batchnorm_kernel_honours_the_contract(rng, layout, training, affine):
    """``batchnorm_views.forward(x, weight, bias, keep_for_backward, eps, mean=None, var=None)``
    returns ``(y, saved, stats)``: ``saved`` a BatchNormSaved (a named type, no string tag; None
    when nothing is kept), ``stats`` the batch's BatchStats (None in eval); ``backward(saved,
    grad_y, weight, need_input_grad, need_weight_grad)`` returns ``(grad_x, grad_weight,
    grad_bias)``, None for what was not asked for or without a weight; all the textbook path's."""
    from scratchcnn.kernels import batchnorm_views as kernel
    from scratchcnn.kernels.batchnorm_views import BatchNormSaved, BatchStats
    x = rng.standard_normal((7, 5) if layout == "2d" else (3, 5, 4, 6)) * 3 + 1
    if layout == "rows" and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    layer = (sc.BatchNorm1D if x.ndim == 2 else sc.BatchNorm2D)(5, affine=affine, dtype=np.float64)
    layer.train(training)
    if affine:
        layer.weight.data, layer.bias.data = rng.standard_normal(5), rng.standard_normal(5)
    if not training:
        layer._buffers["running_mean"], layer._buffers["running_var"] = rng.standard_normal(5), rng.random(5) + 0.5
    w, b = (layer.weight.data, layer.bias.data) if affine else (None, None)
    running = () if training else (layer.running_mean, layer.running_var)
    assert kernel.applies(x) and not kernel.applies(x[::2]) and not kernel.applies(x[:0])   # strided, empty
    y, saved, stats = kernel.forward(x, w, b, True, layer.eps, *running)
    assert type(saved) is BatchNormSaved and saved.training == training
    assert not any(isinstance(v, str) for v in saved)
    y_infer, nothing, stats_infer = kernel.forward(x, w, b, False, layer.eps, *running)
    assert nothing is None
    if training:
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        assert type(stats) is BatchStats and type(stats_infer) is BatchStats
        np.testing.assert_allclose(stats.mean, x.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(stats.var, x.var(axis=axes), rtol=1e-12)
    else:
        assert stats is None and stats_infer is None
    g = rng.standard_normal(x.shape)
    grads = kernel.backward(saved, g, w)
    assert isinstance(grads, tuple) and len(grads) == 3
    dx, dw, db = grads
    with textbook():
        y_ref = layer(x)
        dx_ref = layer.backward(g)
    for got, want in [(y, y_ref), (y_infer, y_ref), (dx, dx_ref)]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if affine:
        np.testing.assert_allclose(dw, layer.weight.grad, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(db, layer.bias.grad, rtol=1e-11, atol=1e-11)
    else:
        assert dw is None and db is None
    no_dx = kernel.backward(saved, g, w, need_input_grad=False)
    assert len(no_dx) == 3 and no_dx[0] is None
    only_dx = kernel.backward(saved, g, w, need_weight_grad=False)
    assert len(only_dx) == 3 and only_dx[1] is None and only_dx[2] is None
    np.testing.assert_allclose(only_dx[0], dx, rtol=1e-13, atol=1e-13)
    # the layer hands the kernel's named type through; no_grad keeps nothing
    layer(x)
    assert type(layer._saved) is BatchNormSaved
    layer._clear_cache()
    with no_grad():
        layer(x)
    assert layer._saved is None


@pytest.mark.parametrize("channels_last_input", [False, True])
def test_maxpool_tiled_kernel_honours_the_contract(rng, channels_last_input):
    """``pool_tiled.forward(x, kernel_size, keep_for_backward)`` returns ``(y, saved)``, ``saved`` a
    TiledMaxPoolSaved (None when nothing is kept); ``backward(saved, grad_y)`` returns grad_x alone
    (pooling has no weights); both the textbook path's."""
    from scratchcnn.kernels import pool_tiled as kernel
    from scratchcnn.kernels.pool_tiled import TiledMaxPoolSaved
    x = rng.standard_normal((2, 3, 7, 8))
    if channels_last_input:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y, saved = kernel.forward(x, (2, 2), keep_for_backward=True)
    assert type(saved) is TiledMaxPoolSaved and saved.kernel_size == (2, 2)
    assert not any(isinstance(v, str) for v in saved)
    assert (y.transpose(0, 2, 3, 1) if channels_last_input else y).flags.c_contiguous     # x's memory order
    y_infer, nothing = kernel.forward(x, (2, 2), keep_for_backward=False)
    assert nothing is None
    g = rng.standard_normal(y.shape)
    dx = kernel.backward(saved, g)
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape and dx.strides == x.strides
    pool = sc.MaxPool2D(2)
    with textbook():
        y_ref = pool(x)
        dx_ref = pool.backward(g)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(y_infer, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    pool(x)
    assert type(pool._saved) is TiledMaxPoolSaved
    pool._clear_cache()
    with no_grad():
        pool(x)
    assert pool._saved is None


# ---- Winograd F(2x2, 3x3) ---------------------------------------------------------------

@pytest.mark.parametrize("cin,cout,padding,hw,bias", [
    (4, 4, 1, (8, 8), True), (5, 6, 0, (7, 9), False), (8, 4, "same", (5, 4), True),
    (4, 7, 2, (3, 3), True), (6, 5, (2, 0), (6, 7), False), (4, 4, (0, 1), (9, 3), True)])
@pytest.mark.parametrize("pieces", [False, True])
@pytest.mark.parametrize("order", ["nchw", "nhwc"])
def test_winograd_equals_textbook(rng, monkeypatch, cin, cout, padding, hw, bias, pieces, order):
    """The Winograd kernel gives the textbook im2col path's forward, input gradient and
    parameter gradients (float64, 1e-12), whole batch or piece by piece, for NCHW input and
    for NCHW-shaped views of NHWC memory (what a channels-last layer hands on); the input
    gradient comes back in the input's memory order."""
    layer = sc.Conv2D(cin, cout, 3, padding=padding, bias=bias, dtype=np.float64)
    assert layer.uses_winograd()
    if pieces:
        monkeypatch.setattr(layer.fast_kernel(), "max_piece_elements", 16 * 25 * max(cin, cout))   # ~1-2 images a piece
    x = rng.standard_normal((5, cin) + hw)
    if order == "nhwc":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = rng.standard_normal((5,) + layer.output_shape(x.shape[1:]))
    layer.zero_grad()
    dx = layer.backward(g) if layer(x) is not None else None
    assert isinstance(layer.kernel_in_use, WinogradConv)
    assert isinstance(layer._saved, WinogradSaved)
    assert dx.strides == x.strides
    fast = run_layer(layer, x, g, fast=True)
    assert_same(fast, run_layer(layer, x, g, fast=False))
    # again with the workspaces of the first call reused (their zero borders must have survived)
    assert_same(run_layer(layer, -x, g, fast=True), run_layer(layer, -x, g, fast=False))


def test_winograd_first_layer_and_inference(rng):
    layer = sc.Conv2D(4, 6, 3, padding=1, dtype=np.float64)
    layer.needs_input_grad = False
    x = rng.standard_normal((3, 4, 7, 6))
    g = rng.standard_normal((3, 6, 7, 6))
    fast = run_layer(layer, x, g, fast=True)
    assert fast[1] is None
    assert_same(fast, run_layer(layer, x, g, fast=False))
    layer._clear_cache()
    with no_grad():
        y = layer(x)
    assert layer._saved is None
    np.testing.assert_allclose(y, fast[0], rtol=1e-13, atol=1e-13)


def test_winograd_float32_is_close_to_im2col(rng):
    """In float32 Winograd and im2col differ by rounding only."""
    layer = sc.Conv2D(32, 32, 3, padding="same")
    x = rng.standard_normal((4, 32, 28, 28)).astype(np.float32)
    g = rng.standard_normal((4, 32, 28, 28)).astype(np.float32)
    wino = run_layer(layer, x, g, fast=True)
    layer.winograd_min_channels = None
    assert not layer.uses_winograd()
    im2col = run_layer(layer, x, g, fast=True)
    for a, b in zip(wino[:2], im2col[:2]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    np.testing.assert_allclose(wino[2]["weight"], im2col[2]["weight"], rtol=1e-4,
                               atol=1e-4 * np.abs(im2col[2]["weight"]).max())


def test_winograd_is_chosen_only_where_it_applies():
    assert sc.Conv2D(32, 32, 3, padding="same").uses_winograd()
    assert sc.Conv2D(4, 4, 3).uses_winograd()
    assert not sc.Conv2D(3, 32, 3, padding=1).uses_winograd()          # too few input channels
    assert not sc.Conv2D(32, 2, 3, padding=1).uses_winograd()          # too few output channels
    assert not sc.Conv2D(32, 32, 3, stride=2, padding=1).uses_winograd()
    assert not sc.Conv2D(32, 32, 5, padding=2).uses_winograd()
    assert not sc.Conv2D(32, 32, (3, 1), padding=1).uses_winograd()
    assert not sc.Conv2D(32, 32, 3, padding=3).uses_winograd()
    with textbook():
        layer = sc.Conv2D(8, 8, 3, padding=1)
        layer(np.zeros((1, 8, 5, 5), np.float32))
        assert layer.kernel_in_use is None and isinstance(layer._saved, TextbookSaved)


def test_winograd_transforms_are_adjoint(rng):
    """<U(w), dU> == <w, U^T(dU)> and <tiles(y), dy> == <y, untile(dy)>: the backward maps are the
    exact adjoints of the forward ones (float64)."""
    from scratchcnn.kernels import winograd as wg
    w = rng.standard_normal((5, 3, 3, 3))
    du = rng.standard_normal((16, 3, 5))
    lhs = np.sum(wg.winograd_weight(w) * du)
    rhs = np.sum(w * wg.winograd_weight_grad(du, w.shape))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)
    # a 3x3 convolution of one 4x4 patch equals the Winograd formula
    d = rng.standard_normal((4, 4))
    k = rng.standard_normal((3, 3))
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * k) for j in range(2)] for i in range(2)])
    wino = wg.AT @ ((wg.G @ k @ wg.G.T) * (wg.BT @ d @ wg.BT.T)) @ wg.AT.T
    np.testing.assert_allclose(wino, direct, rtol=1e-12, atol=1e-12)


def test_winograd_input_transform_is_the_kronecker_product(rng):
    """The 8 additions / subtractions of input_transform are exactly BB @ d."""
    from scratchcnn.kernels import winograd as wg
    d = rng.standard_normal((16, 37))
    v = wg.input_transform(d, np.empty_like(d), np.empty_like(d))
    np.testing.assert_allclose(v, wg.BB @ d, rtol=1e-14, atol=1e-14)
