"""Residual(body, shortcut) and basic_block: against the two branches computed apart, float64 central
differences, PyTorch (a module holding ``self.body`` / ``self.shortcut``), and everywhere a layer
works: Sequential's fast path, summary, save / load, spec strings, introspection, explain, doctor, serve."""
import copy
import inspect
import json

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import nn as scnn
from scratchcnn.app import introspect
from scratchcnn.app.explain import explain, last_conv_index
from scratchcnn.app.spec import build_from_spec
from scratchcnn.gradcheck import jitter_biases
from scratchcnn.kernels import textbook

PATHS = pytest.mark.parametrize("path", ["fast", "textbook"])
DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])


def _conv_has(arg):
    return arg in inspect.signature(sc.Conv2D).parameters


def small_resnet(cin=3, classes=5, side=8):
    """conv stem - identity block - projection block (stride 2) - GAP - dense."""
    return sc.Sequential(sc.Conv2D(cin, 8, 3, padding=1), sc.BatchNorm2D(8), sc.ReLU(),
                         sc.basic_block(8, 8), sc.ReLU(), sc.basic_block(8, 16, stride=2), sc.ReLU(),
                         sc.GlobalAvgPool2D(), sc.Dense(16, classes), input_shape=(cin, side, side))


def _randomize_bn(model, seed=0):
    r = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, sc.BatchNorm2D):
            c = m.num_features
            m.weight.data[...] = r.uniform(0.5, 1.5, c)
            m.bias.data[...] = r.normal(0, 0.2, c)
            m._buffers["running_mean"] = r.normal(0, 0.3, c).astype(m.running_mean.dtype)
            m._buffers["running_var"] = r.uniform(0.5, 2.0, c).astype(m.running_var.dtype)


# ---- the maths: the two branches computed apart -------------------------------------------------
BLOCKS = {
    "identity": lambda: sc.basic_block(4, 4),
    "projection-stride2": lambda: sc.basic_block(4, 6, stride=2),
    "projection-channels": lambda: sc.basic_block(4, 6),
    "body-ends-in-relu": lambda: sc.Residual(scnn.Sequential(sc.Conv2D(4, 4, 3, padding=1), sc.ReLU())),
    "bare-layers": lambda: sc.Residual(sc.Conv2D(4, 4, 3, padding=1), sc.Conv2D(4, 4, 1)),
    "nested": lambda: sc.Residual(scnn.Sequential(sc.basic_block(4, 4), sc.ReLU(), sc.BatchNorm2D(4))),
    "ends-in-bn-without-weights": lambda: sc.Residual(scnn.Sequential(sc.Conv2D(4, 4, 3, padding=1),
                                                                      sc.BatchNorm2D(4, affine=False))),
    "conv-5x5-channels-last": lambda: sc.Residual(sc.Conv2D(4, 4, 5, padding=2)),
    "one-channel-conv": lambda: sc.Residual(sc.Conv2D(1, 1, 3, padding=1)),
    "dense": lambda: sc.Residual(scnn.Sequential(sc.Flatten(), sc.Dense(4 * 6 * 6, 4 * 6 * 6)), sc.Flatten()),
}


@PATHS
@pytest.mark.parametrize("name", list(BLOCKS))
def test_forward_and_backward_are_the_two_branches_added(name, path):
    block = BLOCKS[name]()
    block.needs_input_grad = True
    body, shortcut = copy.deepcopy(block.body), copy.deepcopy(block.shortcut)
    for branch in (body, shortcut):
        if branch is not None:
            for m in branch.modules():
                m.needs_input_grad = True
            if isinstance(branch, scnn.Sequential):
                branch.needs_input_grad_first = True
    r = np.random.default_rng(1)
    x = r.standard_normal((3, 1 if name == "one-channel-conv" else 4, 6, 6)).astype(np.float32)
    x_before = x.copy()
    with textbook(path == "textbook"):
        y = block(x)
        expected = body(x) + (x if shortcut is None else shortcut(x))
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(x, x_before)                    # the input is not touched
        g = r.standard_normal(y.shape).astype(np.float32)
        g_before = g.copy()
        dx = block.backward(g)
        dx_expected = body.backward(g.copy()) + (g if shortcut is None else shortcut.backward(g.copy()))
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(g, g_before)                        # nor the upstream gradient
    got = dict(block.named_parameters())
    for prefix, branch in (("body.", body), ("shortcut.", shortcut)):
        for k, p in (branch.named_parameters(prefix) if branch is not None else []):
            np.testing.assert_allclose(got[k].grad, p.grad, rtol=1e-5, atol=1e-5, err_msg=k)


def test_an_identity_body_is_not_added_into_its_input():
    """A body returning its input itself (Dropout in eval mode) gives 2x, the input untouched."""
    block = sc.Residual(sc.Dropout(0.5)).eval()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(block(x), 2 * np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(x, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(block.backward(np.ones((2, 3), np.float32)), np.full((2, 3), 2.0))


def test_state_dict_keys_and_needs_input_grad():
    model = small_resnet()
    keys = list(model.state_dict())
    assert "3.body.0.weight" in keys and "3.body.4.running_var" in keys and not any(k.startswith("3.shortcut")
                                                                                    for k in keys)
    assert "5.shortcut.0.weight" in keys and "5.shortcut.1.num_batches_tracked" in keys
    assert model[3].shortcut is None and model[5].shortcut is not None
    # inside a model both branches' first layers compute d input; a first-layer block may skip it
    for block in (model[3], model[5]):
        assert block.needs_input_grad and block.body[0].needs_input_grad
    assert model[5].shortcut[0].needs_input_grad
    first = sc.Sequential(sc.basic_block(3, 8, 2), sc.GlobalAvgPool2D(), input_shape=(3, 8, 8))
    assert not first[0].needs_input_grad and not first[0].body[0].needs_input_grad
    assert not first[0].shortcut[0].needs_input_grad
    x, g = np.ones((2, 3, 8, 8), np.float32), np.ones((2, 8), np.float32)
    first(x)
    assert first.backward(g) is None and np.abs(first[0].body[0].weight.grad).sum() > 0
    first[0].needs_input_grad = True
    assert first[0].body[0].needs_input_grad and first[0].shortcut[0].needs_input_grad
    first(x)
    assert first.backward(g).shape == (2, 3, 8, 8)


def test_shapes_and_errors():
    assert sc.basic_block(4, 8, 2).output_shape((4, 9, 9)) == (8, 5, 5)
    with pytest.raises(sc.ShapeError, match=r"body gives \(N, 8, 5, 5\).*\(N, 4, 9, 9\)"):
        sc.Residual(scnn.Sequential(sc.Conv2D(4, 8, 3, 2, padding=1))).output_shape((4, 9, 9))
    with pytest.raises(sc.ShapeError, match="Residual body does not fit"):
        sc.basic_block(4, 4)(np.zeros((1, 3, 5, 5)))
    with pytest.raises(sc.ShapeError, match=r"layer 1 \(Residual\(body=Conv2D, shortcut=Conv2D\)\) does not fit.*shortcut gives"):
        sc.Sequential(sc.Conv2D(3, 4, 1), sc.Residual(sc.Conv2D(4, 4, 3, padding=1), sc.Conv2D(4, 4, 3)),
                      input_shape=(3, 6, 6))
    with pytest.raises(sc.ConfigError, match="body must be a layer"):
        sc.Residual("conv")
    with pytest.raises(sc.ConfigError, match="shortcut must be"):
        sc.Residual(sc.ReLU(), 3)
    with pytest.raises(sc.ConfigError, match="stride must be a positive int"):
        sc.basic_block(4, 4, stride=0)
    assert sc.basic_block(4, 4).macs((4, 5, 5)) == 2 * (4 * 5 * 5 * 4 * 9) + 2 * 2 * 4 * 5 * 5
    assert "shortcut=Conv2D-BatchNorm2D" in repr(sc.basic_block(4, 8)) and "\n" not in repr(sc.basic_block(4, 8))


def test_the_branches_run_their_fast_path(monkeypatch):
    """Inside a built model a block runs its branches' layers directly: the input is checked (NaN /
    infinity scan, dtype) once per batch, by the model, not again by every layer of every branch."""
    from scratchcnn.nn import module
    calls = []
    real = module.check_finite
    monkeypatch.setattr(module, "check_finite", lambda x, what="input": calls.append(1) or real(x, what))
    model = small_resnet()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    model(x)
    calls.clear()
    for _ in range(3):
        model(x)
        model.backward(np.ones((2, 5), np.float32))
    assert len(calls) == 3


def test_eval_and_train_reach_the_branches():
    model = small_resnet().eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# ---- central differences ----------------------------------------------------------------------
def test_gradcheck_of_a_small_resnet():
    model = jitter_biases(small_resnet(cin=2, classes=3, side=6))
    for m in model.modules():               # BatchNorm weights away from 1 and biases from 0
        if isinstance(m, sc.BatchNorm2D):
            m.bias.data += np.float32(0.1)
    r = np.random.default_rng(3)
    x, y = r.standard_normal((4, 2, 6, 6)), r.integers(0, 3, 4)
    errors = sc.gradcheck(model, x, y, samples=6, print_fn=None)
    assert len(errors) == len(model.parameters())
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_of_bare_layer_branches_and_a_wrong_backward_is_caught(capsys):
    model = jitter_biases(sc.Sequential(sc.Conv2D(2, 3, 3, padding=1), sc.Tanh(),
                                        sc.Residual(sc.Conv2D(3, 3, 3, padding=1), sc.Conv2D(3, 3, 1)), sc.Tanh(),
                                        sc.Flatten(), sc.Dense(3 * 5 * 5, 3)))
    r = np.random.default_rng(4)
    x, y = r.standard_normal((3, 2, 5, 5)), r.integers(0, 3, 3)
    errors = sc.gradcheck(model, x, y, samples=8)
    assert max(errors.values()) < 1e-6, errors
    assert "2.shortcut.weight  Conv2D(3, 3, kernel_size=(1, 1))" in capsys.readouterr().out

    class Forgetful(sc.Residual):            # forgets the shortcut's gradient: the stem's gradients go wrong
        def backward(self, grad_out):
            self.shortcut.backward(grad_out)
            return self.body.backward(grad_out)

    bad = copy.deepcopy(model)
    bad._modules["2"] = Forgetful(bad[2].body, bad[2].shortcut)
    errors = sc.gradcheck(bad, x, y, samples=8, print_fn=None)
    assert errors["0.weight"] > 1e-3 and errors["5.weight"] < 1e-6


# ---- PyTorch ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    """torch (a skip without it, a failure in CI: conftest.require_torch), on one thread."""
    from conftest import require_torch
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def torch_modules(torch):
    """The torch twins: a module holding ``self.body`` / ``self.shortcut``, the basic block, the network."""
    tnn = torch.nn

    class TorchResidual(tnn.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    class TorchMean(tnn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    def block(cin, cout, stride=1):
        body = tnn.Sequential(tnn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), tnn.BatchNorm2d(cout),
                              tnn.ReLU(), tnn.Conv2d(cout, cout, 3, 1, padding=1, bias=False), tnn.BatchNorm2d(cout))
        shortcut = None
        if stride != 1 or cin != cout:
            shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))
        return TorchResidual(body, shortcut)

    def network(cin=3, classes=5):
        return tnn.Sequential(tnn.Conv2d(cin, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), block(8, 8),
                              tnn.ReLU(), block(8, 16, 2), tnn.ReLU(), TorchMean(), tnn.Linear(16, classes))

    return block, network


def _randomize_torch_bn(torch, module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, 0, 0.2)
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)


@PATHS
@DTYPES
@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2), (4, 6, 1), (3, 3, 2)])
def test_block_parity_with_torch(cin, cout, stride, dtype, path, torch):
    from parity_helpers import check_layer_parity
    torch.manual_seed(cin * 10 + cout + stride)
    tblock = torch_modules(torch)[0](cin, cout, stride)
    _randomize_torch_bn(torch, tblock)
    block = sc.basic_block(cin, cout, stride)
    assert (block.shortcut is None) == (tblock.shortcut is None)
    x = np.random.default_rng(stride).standard_normal((3, cin, 7, 6))
    with textbook(path == "textbook"):
        check_layer_parity(torch, block, tblock, x, dtype, train=True)
        check_layer_parity(torch, block, tblock, x, dtype, train=False, copy=False, seed=1)


@PATHS
@DTYPES
def test_small_resnet_parity_with_torch(dtype, path, torch):
    """conv stem, identity block, stride-2 projection block, GAP, dense: a state_dict loaded from
    torch as is; eval outputs, one training step's gradients and buffers, one SGD step."""
    from parity_helpers import assert_close, assert_model_grads_match, assert_state_matches, torch_dtype
    torch.manual_seed(7)
    tmodel = torch_modules(torch)[1]().to(torch_dtype(torch, dtype))
    _randomize_torch_bn(torch, tmodel)
    model = small_resnet().to(dtype)
    assert list(model.state_dict()) == list(tmodel.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    r = np.random.default_rng(5)
    x, labels = r.standard_normal((6, 3, 8, 8)).astype(dtype), r.integers(0, 5, 6)
    xt = torch.tensor(x)
    with textbook(path == "textbook"):
        model.eval(), tmodel.eval()
        with torch.no_grad():
            assert_close(model(x), tmodel(xt), dtype, "eval output")
        model.train(), tmodel.train()
        loss = sc.CrossEntropyLoss()
        value = loss(model(x), labels)
        model.backward(loss.backward())
        tloss = torch.nn.CrossEntropyLoss()(tmodel(xt), torch.tensor(labels))
        tloss.backward()
        assert value == pytest.approx(tloss.item(), rel=1e-10 if dtype == np.float64 else 1e-5)
        assert_model_grads_match(model, tmodel, dtype, "train step")
        assert_state_matches(model, tmodel, dtype, "after the train forward")
        kw = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}
        sc.optim.SGD(model.parameters(), **kw).step()
        torch.optim.SGD(tmodel.parameters(), **kw).step()
        assert_state_matches(model, tmodel, dtype, "after one SGD step")


# ---- summary, save / load ---------------------------------------------------------------------
def test_summary_has_nested_rows_and_unchanged_totals():
    model = small_resnet()
    text = model.summary(print_fn=None)
    lines = text.splitlines()
    row = lambda name: next(l for l in lines if l.lstrip().startswith(name + ":"))
    assert row("3").startswith("3: Residual(identity)") and row("5").startswith("5: Residual(projection)")
    assert row("5.shortcut.0").startswith("    5.shortcut.0: Conv2D(8, 16, kernel_size=(1, 1), stride=(2, 2)")
    assert row("3.body").startswith("  3.body: Sequential(5 layers)") and "(None, 8, 8, 8)" in row("3.body.4")
    assert "(None, 16, 4, 4)" in row("5.body.0") and not any("3.shortcut" in l for l in lines)
    assert f"Total params: {model.num_parameters():,}" in text
    macs = sum(layer.macs(s) for layer, s in zip(model.layers, [(3, 8, 8)] + model.build((3, 8, 8))[:-1]))
    assert f"Multiply-adds per example: {macs:,}" in text
    assert f"{model[5].num_parameters():,}" in row("5") and f"{8 * 16:,}" in row("5.shortcut.0")


def test_save_and_load_round_trip_bit_identical(tmp_path):
    model = small_resnet()
    r = np.random.default_rng(0)
    x, y = r.standard_normal((8, 3, 8, 8)).astype(np.float32), r.integers(0, 5, 8)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.eval()
    path = tmp_path / "resnet.npz"
    model.save(path)
    loaded = sc.load(path)
    loaded.eval()
    assert repr(loaded) == repr(model) and loaded[3].shortcut is None
    np.testing.assert_array_equal(loaded(x), model(x))
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer is not None
    loaded.train().fit(x, y, epochs=1, batch_size=4, verbose=0)      # and it trains on


def _rewrite(path, out, change):
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays["__scratchcnn__"]))
    change(meta["architecture"]["config"]["layers"])
    arrays["__scratchcnn__"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("change,message", [
    (lambda L: L[5]["config"]["shortcut"]["config"]["layers"][0]["config"].update(kernel_size=[0, 1]),
     r"layer 5\.shortcut\.0 \(Conv2D\): invalid config"),
    (lambda L: L[5]["config"].update(shortcut={"class": "Nope"}), r"layer 5\.shortcut: unknown layer type 'Nope'"),
    (lambda L: L[3]["config"].update(body=7), r"layer 3\.body must be an object"),
    (lambda L: L[3]["config"].pop("body"), r"layer 3 \(Residual\): the config lacks its \"body\""),
    (lambda L: L[3]["config"].update(extra=1), r"layer 3 \(Residual\): unexpected config keys \['extra'\]"),
    (lambda L: L[5]["config"].update(shortcut=None), r"the body gives \(N, 16, 4, 4\) but the identity shortcut"),
    (lambda L: L[3]["config"]["body"]["config"]["layers"][0]["config"].update(out_channels=9),
     r"layer 3\.body: the layers do not fit together"),
])
def test_a_corrupted_nested_config_is_a_model_file_error(tmp_path, change, message):
    model = small_resnet()
    model.save(tmp_path / "m.npz")
    bad = _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", change)
    with pytest.raises(sc.ModelFileError, match=message):
        sc.load(bad)


def test_a_huge_nested_layer_is_refused_before_it_is_built(tmp_path, monkeypatch):
    model = small_resnet()
    model.save(tmp_path / "m.npz")
    monkeypatch.setenv("SCRATCHCNN_MEMORY_LIMIT", "20M")
    bad = _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", lambda L: L[5]["config"]["shortcut"]["config"]["layers"][0]
                   ["config"].update(out_channels=300_000))
    with pytest.raises(sc.ModelFileError, match="parameters and need about"):
        sc.load(bad)


# ---- spec strings ------------------------------------------------------------------------------
def test_res_tokens_build_basic_blocks_with_a_projection_exactly_when_needed():
    model = build_from_spec("conv16x3p1-bn-relu-res16-res16s2-res32-res32-gap-dense10", (3, 16, 16))
    blocks = [m for m in model.layers if isinstance(m, sc.Residual)]
    assert [b.shortcut is None for b in blocks] == [True, False, False, True]
    after = [type(model[model.layers.index(b) + 1]).__name__ for b in blocks]
    assert after == ["ReLU"] * 4
    assert model.output_shape((3, 16, 16)) == (10,)
    assert model.build((3, 16, 16))[model.layers.index(blocks[1])] == (16, 8, 8)
    ref = sc.basic_block(16, 32)
    assert blocks[2].num_parameters() == ref.num_parameters() and len(blocks[2].state_dict()) == len(ref.state_dict())
    assert blocks[2].body[0].stride == (1, 1) and blocks[1].body[0].stride == (2, 2)


@pytest.mark.parametrize("spec,token,why", [
    ("flatten-res8", "res8", "needs \\(C, H, W\\) input"),
    ("conv8x3-res8s0", "res8s0", "stride must be a positive int"),
    ("conv8x3-res99999", "res99999", "parameters and need about"),
    ("conv8x3-res8x", "res8x", "unknown token"),
    ("flatten-dwconv3", "dwconv3", "needs \\(C, H, W\\) input"),
])
def test_bad_res_tokens_name_the_token(spec, token, why, monkeypatch):
    monkeypatch.setenv("SCRATCHCNN_MEMORY_LIMIT", "1G")
    with pytest.raises(sc.ConfigError, match=why) as info:
        build_from_spec(spec, (3, 8, 8))
    assert repr(token) in str(info.value)


@pytest.mark.skipif(not (_conv_has("dilation") and _conv_has("groups")), reason="Conv2D has no dilation / groups yet")
def test_dilation_groups_and_depthwise_tokens():
    model = build_from_spec("conv32x3d2same-conv32x3g32p1-dwconv3s2p1-dwconv5same-conv8x1g4", (4, 12, 12))
    a, b, c, d, e = model.layers
    assert a.dilation == (2, 2) and a.padding == "same" and a.groups == 1
    assert b.groups == 32 and b.weight.shape == (32, 1, 3, 3)
    assert c.groups == c.in_channels == c.out_channels == 32 and c.stride == (2, 2)
    assert d.groups == 32 and d.kernel_size == (5, 5) and e.groups == 4 and e.weight.shape == (8, 8, 1, 1)
    assert model.output_shape((4, 12, 12)) == (8, 6, 6)
    with pytest.raises(sc.ConfigError, match="conv6x3g4"):
        build_from_spec("conv6x3g4", (4, 8, 8))          # 4 input channels, 6 outputs: not in 4 groups


@pytest.mark.skipif(not hasattr(scnn, "LayerNorm") or not hasattr(scnn, "GroupNorm"), reason="no LayerNorm / GroupNorm yet")
def test_layernorm_and_groupnorm_tokens():
    model = build_from_spec("conv8x3-gn4-relu-ln-flatten-dense6-ln", (2, 6, 6))
    gn, ln, ln2 = model[1], model[3], model[6]
    assert (gn.num_groups, gn.num_channels) == (4, 8)
    assert ln.normalized_shape == (8, 4, 4) and ln2.normalized_shape == (6,)
    with pytest.raises(sc.ConfigError, match="gn3"):
        build_from_spec("conv8x3-gn3", (2, 6, 6))


def test_spec_docs_and_help_name_the_new_tokens():
    from scratchcnn.app import spec
    for token in ("res<C>", "dwconv<K>", "gn<G>", "``ln``", "d<D>", "g<G>"):
        assert token in spec.__doc__, token
    for token in ("res<C>[s<S>]", "dwconv<K>", "gn<G>", "ln", "[d<D>][g<G>]"):
        assert token in spec.HELP, token


# ---- training, introspection, explain, doctor, serve -----------------------------------------
def test_a_few_training_steps_reduce_the_loss():
    sc.manual_seed(0)
    model = build_from_spec("conv8x3p1-bn-relu-res8-res16s2-gap-dense3", (1, 8, 8))
    r = np.random.default_rng(0)
    x = r.standard_normal((32, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, :, :4].mean(axis=(1, 2)) > 0)
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=15, batch_size=8, optimizer=sc.optim.Adam(model.parameters(), lr=1e-2), verbose=0)
    assert model.evaluate(x, y)["loss"] < 0.7 * before


def test_activations_show_block_outputs_and_nested_layers():
    model = small_resnet().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    acts = introspect.activations(model, x)
    assert [(i, n) for i, n, _ in acts] == [(0, "Conv2D"), (1, "BatchNorm2D"), (3, "Residual"), (5, "Residual")]
    h = x
    for i, layer in enumerate(model.layers[:6]):
        h = layer(h)
        if i == 5:
            np.testing.assert_allclose(acts[-1][2], h, rtol=1e-6, atol=1e-6)
    nested = introspect.activations(model, x, layers=["5.body.0", "5.shortcut", 3, "5"])
    assert [(i, n) for i, n, _ in nested] == [(3, "Residual"), ("5.body.0", "Conv2D"), ("5.shortcut", "Sequential"),
                                             (5, "Residual")]
    np.testing.assert_allclose(nested[-1][2], acts[-1][2], rtol=1e-6, atol=1e-6)   # run by parts: the same sum
    assert nested[1][2].shape == (2, 16, 4, 4)
    everything = introspect.activations(model, x, layers="nested")
    names = [i for i, _, _ in everything]
    assert names.index("3.body.0") < names.index("3.body") < names.index(3) and len(names) == len(
        introspect.named_layers(model))
    assert len(introspect.activations(model, x, layers="all")) == len(model)
    with pytest.raises(sc.ConfigError, match="no layer named '3.shortcut'"):
        introspect.activations(model, x, layers=["3.shortcut"])
    assert ("5.shortcut.0", model[5].shortcut[0], 2) in introspect.named_layers(model)
    assert model.training is False
    w = introspect.first_conv_filters(sc.Sequential(sc.basic_block(1, 4), input_shape=(1, 5, 5)))
    assert w.shape == (4, 1, 3, 3)


def test_explain_uses_the_last_residual_block_for_grad_cam():
    model = small_resnet()
    x = np.random.default_rng(1).standard_normal((3, 8, 8)).astype(np.float32)
    assert last_conv_index(model) == 5
    e = explain(model, x)
    assert e["layer"] == 5 and e["grad_cam_low"].shape == (4, 4) and e["grad_cam"].shape == (8, 8)
    assert e["input_grad"].shape == (3, 8, 8) and np.abs(e["input_grad"]).sum() > 0
    assert explain(model, x, layer=3)["grad_cam_low"].shape == (8, 8)
    with pytest.raises(sc.ConfigError, match="not the index of a Conv2D layer"):
        explain(model, x, layer=4)
    assert not model[0].needs_input_grad and model[3].body[0].needs_input_grad       # flags restored


def test_doctor_runs_on_a_resnet():
    model = build_from_spec("conv8x3p1-bn-relu-res8-res16s2-gap-dense3", (1, 8, 8))
    r = np.random.default_rng(0)
    x, y = r.random((64, 1, 8, 8)).astype(np.float32), r.integers(0, 3, 64)
    report = sc.doctor(model, x, y, checks=["initial-loss", "activations", "gradient-flow", "gradcheck"])
    found = {f.id: f for f in report.findings}
    assert found["gradcheck"].status == "ok", found["gradcheck"].message
    assert "3.body.0:Conv2D" in found["initial-loss"].evidence.get("init_scale_vs_he", {})
    assert "3:Residual" in found["activations"].evidence["rms"]
    assert "5:Residual" in found["gradient-flow"].evidence["grad_norm"]


def test_serve_summary_and_feature_maps_of_a_resnet():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient
    from PIL import Image
    import io
    from scratchcnn.app.serve import create_app
    model = build_from_spec("conv4x3p1-relu-res4-res8s2-gap-dense3", (1, 8, 8))
    with TestClient(create_app(model)) as client:
        s = client.get("/api/summary").json()
        rows = {r["name"]: r for r in s["layers"]}
        assert rows["2"]["type"] == "Residual" and rows["2"]["depth"] == 0
        assert rows["4.shortcut.0"]["depth"] == 2 and rows["4.shortcut.0"]["index"] == 4
        assert rows["4.body.0"]["output_shape"] == [8, 4, 4]
        assert s["total_params"] == model.num_parameters() and s["macs"] == sum(
            r["macs"] for r in s["layers"] if r["depth"] == 0)
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, "PNG")
        a = client.post("/api/activations", files={"file": ("x.png", buf.getvalue(), "image/png")}).json()
        assert [(l["index"], l["shape"]) for l in a["layers"]] == [(0, [4, 8, 8]), (2, [4, 8, 8]), (4, [8, 4, 4]),
                                                                 (6, [8])]


def test_nested_plain_sequential_passes_the_gradient_on():
    """A Sequential inside a Sequential (not first) computes d input, so the layers before it
    get their gradients: the same as the flat chain."""
    from scratchcnn.nn import Sequential as Chain
    sc.manual_seed(0)
    flat = sc.Sequential(sc.Conv2D(1, 2, 3), sc.ReLU(), sc.Conv2D(2, 2, 3), sc.Flatten(), sc.Dense(2 * 4 * 4, 3),
                         input_shape=(1, 8, 8))
    nested = sc.Sequential(sc.Conv2D(1, 2, 3), Chain(sc.ReLU(), Chain(sc.Conv2D(2, 2, 3), sc.Flatten())),
                           sc.Dense(2 * 4 * 4, 3), input_shape=(1, 8, 8))
    nested.load_state_dict({k.replace("2.", "1.1.0.", 1) if k.startswith("2.") else k.replace("4.", "2.", 1)
                            if k.startswith("4.") else k: v for k, v in flat.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    for m in (flat, nested):
        m.zero_grad()
        out = m.forward(x)
        m.backward(np.ones_like(out))
    np.testing.assert_allclose(nested[0].weight.grad, flat[0].weight.grad, rtol=1e-5, atol=1e-6)
    assert np.abs(flat[0].weight.grad).sum() > 0


def test_memory_estimates_open_residual_blocks():
    """nn/sizes counts a block's parameters and the outputs inside it from its config, as from the
    built block: the checks before building (spec, model files) and before training agree."""
    from scratchcnn.nn import basic_block
    from scratchcnn.nn.sizes import activation_elements, config_output_shape, config_parameters
    block = basic_block(64, 128, 2)
    params, buffers = config_parameters("Residual", block.config())
    assert params == block.num_parameters() and buffers == sum(b.size for _, b in block.named_buffers())
    assert config_output_shape("Residual", block.config(), (64, 14, 14)) == (128, 7, 7)
    inside = 5 + 2                                 # body: conv, bn, relu, conv, bn; shortcut: conv, bn
    expected = 64 * 14 * 14 + 128 * 7 * 7 * (inside + 1)
    assert activation_elements([block], (64, 14, 14)) == expected
    assert activation_elements([{"class": "Residual", "config": block.config()}], (64, 14, 14)) == expected
    # a hand-written Conv2D config without a stride has stride 1 (pools default to their kernel size)
    assert config_output_shape("Conv2D", {"in_channels": 1, "out_channels": 4, "kernel_size": 3}, (1, 28, 28)) \
        == (4, 26, 26)
    assert config_output_shape("MaxPool2D", {"kernel_size": 2}, (4, 28, 28)) == (4, 14, 14)


def test_named_children_are_the_state_dict_prefixes_in_forward_order():
    """Module.named_children (PyTorch's name), the one walk that export and introspection share."""
    ident, proj = sc.basic_block(4, 4), sc.basic_block(4, 8, stride=2)
    assert [n for n, _ in ident.named_children()] == ["body"]                 # the identity is not a module
    assert [n for n, _ in proj.named_children()] == ["body", "shortcut"]
    assert proj.named_children()[1][1] is proj.shortcut
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), ident, proj, input_shape=(1, 8, 8))
    assert [n for n, _ in model.named_children()] == ["0", "1", "2"]
    assert sc.ReLU().named_children() == []
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] for k in model.state_dict() if k.startswith("2.")}
    assert prefixes == {"2." + n for n, _ in proj.named_children()}
