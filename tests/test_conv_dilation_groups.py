"""Conv2D with ``dilation`` and ``groups`` (depthwise included), checked every way a layer is.

* the naive loops (``scratchcnn.nn.loops.conv2d_forward`` / ``conv2d_backward``) against the
  textbook path (``scratchcnn.textbook()``) and against every fast kernel that can compute the
  layer (the one it picks, and GroupedConv, which computes any geometry), on randomised
  configurations, float64;
* the kernels' contract (pieces of the batch, gradients not asked for, no bias, channels-last
  input) and which kernel a layer picks (never one that cannot do dilation or groups);
* float64 central differences through small stacks, on both paths;
* PyTorch (``torch.nn.Conv2d``) on randomised configurations, float64 (tight) and float32 (loose),
  on both paths: dilation 1-3, groups 1 / 2 / depthwise (with a channel multiplier), strides 1-2,
  paddings including "same", bias on and off, non-square kernels;
* save / load with dilation and groups, and a model file from before they existed;
* the constructor's errors, the memory checks and the size estimates from configs;
* a model with a dilated one-channel layer and a depthwise layer trains.
"""
import contextlib

import numpy as np
import pytest
from conftest import require_torch

import scratchcnn as sc
from scratchcnn.kernels import textbook
from scratchcnn.kernels.conv_channels_last import ChannelsLastConv
from scratchcnn.kernels.conv_depthwise import DepthwiseConv, DepthwiseSaved
from scratchcnn.kernels.conv_grouped import GroupedConv, GroupedSaved
from scratchcnn.kernels.conv_one_channel import OneChannelConv
from scratchcnn.kernels.conv_winograd import WinogradConv
from scratchcnn.nn import loops
from scratchcnn.nn.conv import TextbookSaved
from scratchcnn.nn.module import no_grad
from scratchcnn.nn.sizes import config_output_shape, config_parameters
from scratchcnn.serialization import build_module

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def random_configs(count, seed):
    """``dict(n, cin, cout, k, stride, padding, dilation, groups, hw, bias)``: groups 1, 2 or
    depthwise (``groups == cin``, some with a channel multiplier of 2), dilation 1-3 (some
    non-square), strides 1-2, paddings 0 / 1 / 2 / (1, 2) / "valid" / "same", non-square kernels,
    and inputs at least as large as the dilated kernel."""
    r = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = ("plain", "groups2", "depthwise", "depthwise-x2")[i % 4]
        cg, og = int(r.integers(1, 4)), int(r.integers(1, 4))
        if kind == "plain":
            groups, cin, cout = 1, cg, og
        elif kind == "groups2":
            groups, cin, cout = 2, 2 * cg, 2 * og
        else:
            groups = cin = int(r.integers(2, 6))
            cout = cin * (2 if kind == "depthwise-x2" else 1)
        k = (int(r.integers(1, 5)), int(r.integers(1, 5)))
        dilation = (int(r.integers(1, 4)), int(r.integers(1, 4))) if r.random() < 0.3 else int(r.integers(1, 4))
        stride = [1, 2, (1, 2), (2, 1)][int(r.integers(0, 4))]
        padding = [0, 1, 2, (1, 2), "valid", "same"][int(r.integers(0, 6))]
        if padding == "same":
            stride = 1
        d = (dilation, dilation) if isinstance(dilation, int) else dilation
        span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
        hw = (span[0] + int(r.integers(0, 6)), span[1] + int(r.integers(0, 6)))
        out.append(dict(n=int(r.integers(1, 4)), cin=cin, cout=cout, k=k, stride=stride, padding=padding,
                        dilation=dilation, groups=groups, hw=hw, bias=bool(r.random() < 0.7)))
    return out


def cfg_id(c):
    return (f"c{c['cin']}-{c['cout']}g{c['groups']}k{c['k'][0]}x{c['k'][1]}s{c['stride']}p{c['padding']}"
            f"d{c['dilation']}{'' if c['bias'] else '-nobias'}").replace(" ", "")


def make_layer(cfg, dtype=np.float64):
    return sc.Conv2D(cfg["cin"], cfg["cout"], cfg["k"], stride=cfg["stride"], padding=cfg["padding"],
                     dilation=cfg["dilation"], groups=cfg["groups"], bias=cfg["bias"], dtype=dtype)


def expected_kernels(layer):
    """The fast kernels the layer may pick: the plain ones only without dilation and groups."""
    if layer.dilation == (1, 1) and layer.groups == 1:
        return (ChannelsLastConv, OneChannelConv, WinogradConv)
    return (DepthwiseConv,) if layer.groups == layer.in_channels > 1 else (GroupedConv,)


def run(layer, x, g, textbook_path):
    """Forward and backward once on the chosen path: (y, dx, dw, db or None)."""
    layer.zero_grad()
    layer._clear_cache()
    with textbook() if textbook_path else contextlib.nullcontext():
        y = np.array(layer(x))
        dx = np.array(layer.backward(g))
    return y, dx, layer.weight.grad.copy(), (layer.bias.grad.copy() if layer.use_bias else None)


def assert_all_close(got, want, what, tol=1e-11):
    for name, a, b in zip(("y", "dx", "dw", "db"), got, want):
        if b is None:
            assert a is None, f"{what}: {name}"
        else:
            assert a.shape == b.shape, f"{what}: {name} shape {a.shape} != {b.shape}"
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{what}: {name}")


# =====================================================================================
# loops vs the textbook path vs the fast kernels (float64)
# =====================================================================================
LOOP_CONFIGS = random_configs(16, seed=31)


@pytest.mark.parametrize("cfg", LOOP_CONFIGS, ids=[cfg_id(c) for c in LOOP_CONFIGS])
def test_loops_textbook_and_kernels_agree(cfg, rng):
    layer = make_layer(cfg)
    if cfg["bias"]:
        layer.bias.data = rng.standard_normal(cfg["cout"])
    x = rng.standard_normal((cfg["n"], cfg["cin"]) + cfg["hw"])
    w, b = layer.weight.data, (layer.bias.data if cfg["bias"] else None)
    assert w.shape == (cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["k"]
    y_ref = loops.conv2d_forward(x, w, b, layer.stride, layer.pads, layer.dilation, layer.groups)
    assert y_ref.shape[1:] == layer.output_shape(x.shape[1:])
    g = rng.standard_normal(y_ref.shape)
    dx_ref, dw_ref, db_ref = loops.conv2d_backward(x, w, g, layer.stride, layer.pads, layer.dilation, layer.groups)
    want = (y_ref, dx_ref, dw_ref, db_ref if cfg["bias"] else None)
    assert_all_close(run(layer, x, g, textbook_path=True), want, "textbook")
    assert layer.kernel_in_use is None and isinstance(layer._saved, TextbookSaved)
    assert_all_close(run(layer, x, g, textbook_path=False), want, "fast")
    assert type(layer.kernel_in_use) in expected_kernels(layer)
    # GroupedConv computes every geometry (the depthwise ones too): the same results
    kernel = GroupedConv(layer.kernel_size, layer.stride, layer.pads, cfg["cin"], cfg["cout"],
                         layer.dilation, layer.groups)
    y, saved = kernel.forward(x, w, b, keep_for_backward=True)
    dx, dw, db = kernel.backward(saved, g, w)
    assert_all_close((y, dx, dw, db), want, "GroupedConv")


def test_loops_with_dilation_and_groups_by_hand():
    """The loops themselves, on a case small enough to write out: a depthwise 2-tap kernel with
    dilation 2 reads x[i] and x[i + 2] of its own channel only."""
    x = np.arange(2 * 5, dtype=np.float64).reshape(1, 2, 1, 5)
    w = np.array([[[[1.0, 10.0]]], [[[2.0, 0.5]]]])                  # (2, 1, 1, 2): one filter per channel
    y = loops.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(y[0, 0, 0], [0 + 10 * 2, 1 + 10 * 3, 2 + 10 * 4])
    np.testing.assert_array_equal(y[0, 1, 0], [2 * 5 + 0.5 * 7, 2 * 6 + 0.5 * 8, 2 * 7 + 0.5 * 9])
    dx, dw, db = loops.conv2d_backward(x, w, np.ones_like(y), (1, 1), (0, 0, 0, 0), dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(dx[0, 0, 0], [1, 1, 11, 10, 10])
    np.testing.assert_array_equal(dw[0, 0, 0], [0 + 1 + 2, 2 + 3 + 4])
    np.testing.assert_array_equal(db, [3, 3])


# =====================================================================================
# which kernel, and the kernels' contract
# =====================================================================================
def test_fast_kernel_choice_never_takes_a_kernel_without_dilation_or_groups():
    plain = {sc.Conv2D(32, 32, 3, padding=1): WinogradConv, sc.Conv2D(1, 8, 3): OneChannelConv,
             sc.Conv2D(3, 8, 3, stride=2): ChannelsLastConv}
    for layer, kind in plain.items():                                 # unchanged for plain layers
        assert type(layer.fast_kernel()) is kind
    special = {sc.Conv2D(32, 32, 3, padding=2, dilation=2): GroupedConv,
               sc.Conv2D(32, 32, 3, padding=1, groups=2): GroupedConv,
               sc.Conv2D(1, 8, 3, dilation=2): GroupedConv,            # one channel, dilated
               sc.Conv2D(1, 8, 3, groups=1, dilation=(1, 2)): GroupedConv,
               sc.Conv2D(32, 32, 3, padding=1, groups=32): DepthwiseConv,
               sc.Conv2D(8, 16, 5, stride=2, groups=8, dilation=3): DepthwiseConv}
    for layer, kind in special.items():
        assert not layer.uses_winograd(), layer
        assert type(layer.fast_kernel()) is kind, layer
        assert layer.fast_kernel().geometry == (layer.kernel_size, layer.stride, layer.pads, layer.in_channels,
                                                layer.out_channels, layer.dilation, layer.groups)
    layer = sc.Conv2D(8, 8, 3, padding=1, groups=2)
    kernel = layer.fast_kernel()
    assert layer.fast_kernel() is kernel                               # built once, kept
    layer.dilation = (2, 2)                                            # a changed geometry: a new kernel
    assert layer.fast_kernel() is not kernel and layer.fast_kernel().dilation == (2, 2)


CONTRACT = [(GroupedConv, GroupedSaved, 6, 9, 3, 2, 1, 2), (GroupedConv, GroupedSaved, 4, 4, 1, 1, "same", 3),
            (DepthwiseConv, DepthwiseSaved, 5, 5, 5, 1, 2, 2), (DepthwiseConv, DepthwiseSaved, 3, 6, 3, 2, 1, 1)]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind, saved_type, cin, cout, groups, stride, padding, dilation", CONTRACT,
                         ids=[f"{c[0].__name__}-g{c[4]}-s{c[5]}-d{c[7]}" for c in CONTRACT])
def test_kernels_honour_the_contract(rng, monkeypatch, kind, saved_type, cin, cout, groups, stride, padding,
                                     dilation, bias):
    """(y, saved) from forward, saved a named type (None without keep_for_backward); backward's
    three gradients, None for those not asked for; pieces of the batch and channels-last input
    give the textbook path's results."""
    layer = sc.Conv2D(cin, cout, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=bias, dtype=np.float64)
    if bias:
        layer.bias.data = rng.standard_normal(cout)
    kernel = layer.fast_kernel()
    assert type(kernel) is kind
    x = rng.standard_normal((7, cin, 9, 8))
    g = rng.standard_normal((7,) + layer.output_shape(x.shape[1:]))
    want = run(layer, x, g, textbook_path=True)
    w, b = layer.weight.data, (layer.bias.data if bias else None)
    y, saved = kernel.forward(x, w, b, keep_for_backward=True)
    assert type(saved) is saved_type and saved.has_bias == bias
    y_infer, nothing = kernel.forward(x, w, b, keep_for_backward=False)
    assert nothing is None
    dx, dw, db = kernel.backward(saved, g, w)
    assert_all_close((y, dx, dw, db), want, "kernel")
    np.testing.assert_allclose(y_infer, want[0], rtol=1e-12, atol=1e-12)
    no_dx = kernel.backward(saved, g, w, need_input_grad=False)
    assert no_dx[0] is None and (no_dx[2] is None) == (not bias)
    np.testing.assert_allclose(no_dx[1], dw, rtol=1e-13, atol=1e-13)
    only_dx = kernel.backward(saved, g, w, need_weight_grad=False)
    assert only_dx[1] is None and only_dx[2] is None
    np.testing.assert_allclose(only_dx[0], dx, rtol=1e-13, atol=1e-13)
    # about two images a piece (7 -> 2, 2, 2, 1), with and without gradients; NHWC memory as input
    per_image = y.shape[2] * y.shape[3] * (9 * cin if kind is GroupedConv else cout)   # columns / outputs
    monkeypatch.setattr(kernel, "max_piece_elements", 2 * per_image)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g_nhwc = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert_all_close(run(layer, x_nhwc, g_nhwc, textbook_path=False), want, "pieces, NHWC input")
    assert type(layer._saved) is saved_type
    with no_grad():
        np.testing.assert_allclose(layer(x), want[0], rtol=1e-12, atol=1e-12)
    # buffers are reused, but outputs a caller holds never change
    y1 = layer(x)
    y1_copy = np.array(y1)
    dx1 = layer.backward(g)
    layer(2 * x)
    dx2 = layer.backward(g)
    np.testing.assert_array_equal(y1, y1_copy)
    assert not np.shares_memory(dx1, dx2)
    kernel.clear()
    assert kernel.workspace.nbytes() == 0


def test_first_layer_skips_input_gradient_and_empty_batch(rng):
    for layer in (sc.Conv2D(4, 4, 3, padding=2, dilation=2, groups=4, dtype=np.float64),
                  sc.Conv2D(4, 6, 3, padding=1, groups=2, dtype=np.float64)):
        layer.needs_input_grad = False
        x = rng.standard_normal((2, 4, 6, 6))
        g = rng.standard_normal((2,) + layer.output_shape(x.shape[1:]))
        layer(x)
        assert layer.backward(g) is None and np.abs(layer.weight.grad).sum() > 0
        layer.needs_input_grad = True
        for path in (True, False):                                     # a batch of zero images
            with textbook() if path else contextlib.nullcontext():
                y = layer(np.zeros((0, 4, 6, 6)))
                assert y.shape == (0,) + layer.output_shape((4, 6, 6))
                assert layer.backward(np.zeros(y.shape)).shape == (0, 4, 6, 6)


# =====================================================================================
# gradcheck (float64 central differences) in small stacks, both paths
# =====================================================================================
STACKS = {
    "dilated-grouped": lambda: sc.Sequential(sc.Conv2D(2, 4, 3, padding=2, dilation=2), sc.Tanh(),
                                             sc.Conv2D(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2),
                                             sc.Tanh(), sc.Flatten(), sc.Dense(6 * 4 * 8, 4)),
    "depthwise-separable": lambda: sc.Sequential(sc.Conv2D(2, 4, 3, padding="same", dilation=(1, 3), groups=2),
                                                 sc.Sigmoid(), sc.Conv2D(4, 4, 1), sc.Tanh(),
                                                 sc.Conv2D(4, 4, 3, stride=2, dilation=2, groups=4, bias=False),
                                                 sc.Flatten(), sc.Dense(4 * 2 * 2, 4)),
}


@pytest.mark.parametrize("path", ["fast", "textbook"])
@pytest.mark.parametrize("name", sorted(STACKS))
def test_gradcheck_stacks(name, path):
    model = STACKS[name]()
    r = np.random.default_rng(0)
    x, y = r.standard_normal((3, 2, 7, 7)), r.integers(0, 4, 3)
    with textbook() if path == "textbook" else contextlib.nullcontext():
        errors = sc.gradcheck(model, x, y, print_fn=None)
    assert len(errors) == len(model.parameters())
    assert max(errors.values()) < 1e-6, errors


# =====================================================================================
# PyTorch parity, float64 and float32, both paths
# =====================================================================================
PARITY_CONFIGS = random_configs(28, seed=2025) + [
    dict(n=2, cin=16, cout=16, k=(3, 3), stride=1, padding="same", dilation=2, groups=16, hw=(14, 14), bias=True),
    dict(n=2, cin=8, cout=12, k=(2, 4), stride=1, padding="same", dilation=(3, 1), groups=2, hw=(9, 9), bias=False),
    dict(n=1, cin=1, cout=6, k=(3, 3), stride=2, padding=3, dilation=3, groups=1, hw=(13, 12), bias=True),
]


@pytest.fixture(scope="module")
def torch():
    return require_torch()


@pytest.mark.parametrize("path", ["fast", "textbook"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", PARITY_CONFIGS, ids=[cfg_id(c) for c in PARITY_CONFIGS])
def test_torch_parity(cfg, dtype, path, torch, one_torch_thread):
    from parity_helpers import check_layer_parity
    seed = PARITY_CONFIGS.index(cfg)
    torch.manual_seed(seed)
    tconv = torch.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], stride=cfg["stride"], padding=cfg["padding"],
                            dilation=cfg["dilation"], groups=cfg["groups"], bias=cfg["bias"])
    conv = make_layer(cfg, dtype)
    x = np.random.default_rng(seed).standard_normal((cfg["n"], cfg["cin"]) + cfg["hw"])
    with textbook() if path == "textbook" else contextlib.nullcontext():
        y, _ = check_layer_parity(torch, conv, tconv, x, dtype, seed=seed + 1)
    assert y.shape[1:] == conv.output_shape(x.shape[1:])
    assert (conv.kernel_in_use is None) == (path == "textbook")


# =====================================================================================
# description, saving, sizes, initialisation
# =====================================================================================
def test_config_repr_macs_and_round_trip(tmp_path, rng):
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding="same", dilation=2), sc.ReLU(),
                          sc.Conv2D(4, 8, 3, padding=1, groups=4), sc.ReLU(),
                          sc.Conv2D(8, 8, (3, 1), stride=2, dilation=(2, 1), groups=2, bias=False),
                          sc.GlobalAvgPool2D(), sc.Dense(8, 3), input_shape=(1, 9, 9))
    conv = model.layers[2]
    assert conv.config()["dilation"] == [1, 1] and conv.config()["groups"] == 4
    assert model.layers[4].config()["dilation"] == [2, 1]
    assert "groups=4" in repr(conv) and "dilation=(2, 1)" in repr(model.layers[4]) and "groups" not in repr(model.layers[0])
    assert conv.macs((4, 9, 9)) == 8 * 9 * 9 * 1 * 3 * 3                 # C_in / groups per output
    x = rng.standard_normal((5, 1, 9, 9)).astype(np.float32)
    before = model.predict_logits(x)
    sc.save(model, tmp_path / "m.npz")
    loaded = sc.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    assert [(l.dilation, l.groups) for l in loaded.layers if isinstance(l, sc.Conv2D)] == \
        [((2, 2), 1), ((1, 1), 4), ((2, 1), 2)]
    np.testing.assert_array_equal(loaded.predict_logits(x), before)


def test_old_configs_without_dilation_or_groups_still_build():
    old = {"class": "Conv2D", "config": {"in_channels": 3, "out_channels": 4, "kernel_size": [3, 3],
                                         "stride": [1, 1], "padding": [1, 1], "bias": True, "init": "he"}}
    layer = build_module(old)
    assert layer.dilation == (1, 1) and layer.groups == 1 and layer.weight.shape == (4, 3, 3, 3)


def test_sizes_from_configs_match_the_layers():
    for cfg in random_configs(24, seed=5):
        layer = make_layer(cfg)
        params = sum(p.size for p in layer.parameters())
        assert config_parameters("Conv2D", layer.config()) == (params, 0), cfg
        shape = (cfg["cin"],) + cfg["hw"]
        assert config_output_shape("Conv2D", layer.config(), shape) == layer.output_shape(shape), cfg
    dilated = sc.Conv2D(1, 2, 3, dilation=4).config()
    assert config_output_shape("Conv2D", dilated, (1, 8, 8)) is None        # 9x9 span: no output


def test_memory_check_counts_channels_per_group(monkeypatch):
    monkeypatch.setenv("SCRATCHCNN_MEMORY_LIMIT", "1G")
    with pytest.raises(sc.ConfigError, match="parameters"):
        sc.Conv2D(4096, 4096, 3)                                          # 151M weights
    layer = sc.Conv2D(4096, 4096, 3, groups=4096)                         # depthwise: 36,864
    assert layer.weight.shape == (4096, 1, 3, 3)


def test_initialisation_uses_fan_in_per_group():
    sc.manual_seed(0)
    w = sc.Conv2D(64, 256, 3, groups=64).weight.data                      # fan_in = 1*3*3 (not 64*3*3)
    assert abs(w.std() / np.sqrt(2 / 9) - 1) < 0.06
    a = 1 / np.sqrt(4 * 2 * 2)
    w = sc.Conv2D(8, 4, 2, groups=2, init="torch").weight.data            # torch: U(-1/sqrt(fan_in), ...)
    assert w.min() >= -a and w.max() <= a and w.max() > 0.8 * a


# =====================================================================================
# errors
# =====================================================================================
@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=6, out_channels=4, groups=4), r"Conv2D: groups=4 must divide in_channels \(6\)"),
    (dict(in_channels=4, out_channels=6, groups=4), r"groups=4 must divide .*out_channels \(6\)"),
    (dict(groups=0), "Conv2D: groups must be a positive int"),
    (dict(groups=1.5), "groups must be a positive int"),
    (dict(groups=True), "groups must be a positive int"),
    (dict(dilation=0), "Conv2D: dilation must be >= 1"),
    (dict(dilation=(2, -1)), "dilation must be >= 1"),
    (dict(dilation="2"), "Conv2D dilation must be an int or a pair"),
    (dict(dilation=(1,)), "Conv2D dilation must be an int or a pair"),
    (dict(dilation=2, stride=2, padding="same"), "padding='same' needs stride 1"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    args = dict(in_channels=4, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(sc.ConfigError, match=match):
        sc.Conv2D(**args)


def test_input_smaller_than_the_dilated_kernel():
    with pytest.raises(sc.ShapeError, match=r"smaller than the kernel 3x3 \(dilated: 7x7\)"):
        sc.Conv2D(2, 2, 3, dilation=3)(np.zeros((1, 2, 6, 6), np.float32))
    with pytest.raises(sc.ShapeError, match=r"expects input \(N, 4, H, W\)"):
        sc.Conv2D(4, 4, 3, groups=4)(np.zeros((1, 1, 6, 6), np.float32))


# =====================================================================================
# training
# =====================================================================================
@pytest.mark.parametrize("path", ["fast", "textbook"])
def test_dilated_one_channel_and_depthwise_layers_train(path):
    """Bright blob top-left vs bottom-right: a model with a dilated one-channel layer, a depthwise
    layer (with a channel multiplier) and a grouped layer learns it in a few steps."""
    sc.manual_seed(3)
    r = np.random.default_rng(3)
    y = r.integers(0, 2, 64)
    x = 0.1 * r.standard_normal((64, 1, 10, 10)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 1:5, 1:5] += 1.0 if label == 0 else 0.0
        x[i, 0, 5:9, 5:9] += 1.0 if label == 1 else 0.0
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding="same", dilation=2), sc.ReLU(),
                          sc.Conv2D(4, 8, 3, padding=1, groups=4), sc.ReLU(),
                          sc.Conv2D(8, 8, 3, stride=2, padding=2, dilation=2, groups=2), sc.ReLU(),
                          sc.Flatten(), sc.Dense(8 * 5 * 5, 2), input_shape=(1, 10, 10))
    with textbook() if path == "textbook" else contextlib.nullcontext():
        first = model.evaluate(x, y)
        model.fit(x, y, epochs=6, batch_size=16, optimizer=sc.optim.Adam(model.parameters(), lr=3e-3), verbose=0)
        last = model.evaluate(x, y)
    assert last["loss"] < 0.5 * first["loss"] and last["accuracy"] > 0.9, (first, last)
    kinds = {type(layer.kernel_in_use) for layer in model.layers if isinstance(layer, sc.Conv2D)}
    assert kinds == ({type(None)} if path == "textbook" else {GroupedConv, DepthwiseConv})


def test_model_fast_path_equals_textbook_path(rng):
    """Inside a Sequential (whose fast path may hand a following ReLU to the kernel), a model of
    dilated, grouped and depthwise layers gives the textbook path's outputs and gradients."""
    model = sc.Sequential(sc.Conv2D(2, 4, 3, padding="same", dilation=2), sc.ReLU(),
                          sc.Conv2D(4, 8, 3, padding=1, groups=4), sc.ReLU(),
                          sc.Conv2D(8, 6, 3, stride=2, dilation=2, groups=2), sc.ReLU(),
                          sc.Flatten(), sc.Dense(6 * 3 * 3, 3), input_shape=(2, 10, 10)).to(np.float64)
    x = rng.standard_normal((4, 2, 10, 10))
    g = rng.standard_normal((4, 3))
    results = []
    for path in ("fast", "textbook"):
        with textbook() if path == "textbook" else contextlib.nullcontext():
            model.zero_grad()
            y = np.array(model(x))
            model.backward(g)
            results.append((y, {k: p.grad.copy() for k, p in model.named_parameters()}))
    (y_fast, g_fast), (y_ref, g_ref) = results
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-12, atol=1e-12)
    for k in g_ref:
        np.testing.assert_allclose(g_fast[k], g_ref[k], rtol=1e-11, atol=1e-12, err_msg=k)
    for kernel in (layer.fast_kernel() for layer in model.layers if isinstance(layer, sc.Conv2D)):
        assert kernel.fuse_relu_once is False                    # a one-shot request, never left set
