"""Export of the layers added since the first exporters (scratchcnn.app.export): LayerNorm, GroupNorm,
Residual (and basic_block) and Conv2D's dilation and groups, to ONNX and to PyTorch.

Each model is exported both ways; the ONNX file is run in onnxruntime and the generated PyTorch
module (loaded strictly from the .pt file with weights_only=True) in torch, and both outputs are
compared with scratchcnn's in eval mode (float32, 1e-5 relative to the output's scale), as
tests/test_export.py does for the first layers. A seeded set of random models mixes every new
piece; the command line exports a saved model holding Residual blocks.

Run:  python -m pytest tests/test_export_new.py -q
"""
import argparse
import inspect

import numpy as np
import pytest
from conftest import require_torch

import scratchcnn as sc
from scratchcnn.app import export
from scratchcnn.errors import ExportError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = require_torch()

Residual = getattr(sc.nn, "Residual", None)
basic_block = getattr(sc.nn, "basic_block", None)
needs_residual = pytest.mark.skipif(Residual is None, reason="scratchcnn.nn.Residual is not in the tree yet")
CONV_ARGS = inspect.signature(sc.Conv2D).parameters
needs_dilation_groups = pytest.mark.skipif(not {"dilation", "groups"} <= set(CONV_ARGS),
                                           reason="Conv2D has no dilation / groups arguments yet")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every test here runs torch on one thread (conftest.one_torch_thread)."""


# ---- helpers -----------------------------------------------------------------------------
def randomize(model, rng, passes=3, x=None):
    """Non-trivial norm weights (LayerNorm, GroupNorm, BatchNorm) and, with ``x``, a few train-mode
    passes so BatchNorm's running statistics are the data's; the model is left in eval mode."""
    for m in model.modules():
        if isinstance(m, (sc.LayerNorm, sc.GroupNorm, sc.BatchNorm1D, sc.BatchNorm2D)):
            for name, p in m.named_parameters():
                p.data[...] = (rng.uniform(0.5, 1.5, p.shape) if name == "weight" else
                               rng.uniform(-0.5, 0.5, p.shape)).astype(p.dtype)
    if x is not None:
        model.train()
        with sc.no_grad():
            for _ in range(passes):
                model(x)
    model.eval()
    return model


def reference(model, x):
    model.eval()
    with sc.no_grad():
        return np.asarray(model(x))


def assert_matches(got, ref, what, rel=1e-5):
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, scratchcnn's {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= rel * scale, f"{what}: max difference {err:.3g} (output scale {scale:.3g})"


def check_everywhere(model, x, tmp_path, name="model", input_shape=None):
    """Export ``model`` both ways, run both files, compare with scratchcnn; returns (proto, torch source)."""
    ref = reference(model, x)
    onnx_path = export.export_onnx(model, tmp_path / f"{name}.onnx", input_shape=input_shape)
    pt, py = export.export_torch(model, tmp_path / f"{name}.pt", input_shape=input_shape)
    assert list(torch.load(pt, weights_only=True)) == list(model.state_dict())
    net = export.load_torch(py)                                   # load_state_dict(strict=True)
    assert list(net.state_dict()) == list(model.state_dict())
    assert_matches(export.run_onnx(onnx_path, x, threads=1), ref, f"{name} in onnxruntime")
    assert_matches(export.run_torch(net, x.astype(ref.dtype)), ref, f"{name} in torch")
    return onnx.load(onnx_path), open(py).read()


def ops(proto):
    return [n.op_type for n in proto.graph.node]


# ---- LayerNorm and GroupNorm -------------------------------------------------------------
def test_layernorm_exports_over_one_two_and_three_trailing_axes(tmp_path, rng):
    model = sc.Sequential(sc.Conv2D(2, 4, 3, padding=1), sc.LayerNorm((4, 6, 5)), sc.ReLU(),
                          sc.LayerNorm((6, 5), eps=1e-3, elementwise_affine=False), sc.LayerNorm(5, eps=0.1),
                          sc.Flatten(), sc.Dense(120, 7), sc.LayerNorm(7), sc.Tanh(), sc.Dense(7, 3),
                          input_shape=(2, 6, 5))
    randomize(model, rng)
    x = (rng.standard_normal((6, 2, 6, 5)) * 2 + 1).astype(np.float32)
    proto, source = check_everywhere(model, x, tmp_path, "layernorm")
    assert ops(proto).count("LayerNormalization") == 4
    axes = [a.i for n in proto.graph.node if n.op_type == "LayerNormalization" for a in n.attribute
            if a.name == "axis"]
    assert axes == [-3, -2, -1, -1]
    assert {"1.weight", "1.bias", "4.weight", "7.weight"} <= {t.name for t in proto.graph.initializer}
    assert "nn.LayerNorm((4, 6, 5))" in source and "nn.LayerNorm((6, 5), eps=0.001, elementwise_affine=False)" \
        in source and "nn.LayerNorm(5, eps=0.1)" in source


@pytest.mark.parametrize("groups, affine, eps", [(1, True, 1e-5), (2, True, 1e-3), (6, False, 1e-5), (3, True, 0.1)])
def test_groupnorm_exports(groups, affine, eps, tmp_path, rng):
    model = sc.Sequential(sc.Conv2D(1, 6, 3), sc.GroupNorm(groups, 6, eps=eps, affine=affine), sc.ReLU(),
                          sc.MaxPool2D(2), sc.Flatten(), sc.Dense(6 * 3 * 3, 6), sc.GroupNorm(2, 6),
                          sc.Dense(6, 4), input_shape=(1, 8, 8))
    randomize(model, rng)
    x = (rng.standard_normal((5, 1, 8, 8)) * 3 + 2).astype(np.float32)
    proto, source = check_everywhere(model, x, tmp_path, f"groupnorm{groups}")
    assert "GroupNormalization" not in ops(proto)                    # opset 17: the primitives
    assert ops(proto).count("InstanceNormalization") == 2
    kw = ("" if eps == 1e-5 else f", eps={eps}") + ("" if affine else ", affine=False")
    assert f"nn.GroupNorm({groups}, 6{kw})" in source and "nn.GroupNorm(2, 6)" in source


def test_groupnorm_on_a_3d_input(tmp_path, rng):
    """(N, C, L): a model whose input is a sequence of C channels."""
    model = randomize(sc.Sequential(sc.GroupNorm(2, 4), sc.LayerNorm((4, 9)), sc.Flatten(), sc.Dense(36, 3),
                                    input_shape=(4, 9)), rng)
    x = (rng.standard_normal((3, 4, 9)) * 2).astype(np.float32)
    check_everywhere(model, x, tmp_path, "groupnorm3d")


# ---- Conv2D dilation and groups ----------------------------------------------------------
@needs_dilation_groups
@pytest.mark.parametrize("kw", [{"dilation": 2, "padding": "same"}, {"groups": 2, "padding": 1},
                                {"groups": 4, "dilation": (2, 1), "stride": 2, "padding": (2, 1)},
                                {"groups": 4, "dilation": 3, "padding": (2, 0), "bias": False}],
                         ids=["dilated-same", "grouped", "depthwise-dilated-pair", "depthwise-padded"])
def test_conv_dilation_and_groups_export(kw, tmp_path, rng):
    first = sc.Conv2D(2, 4, 3, padding=1)
    conv = sc.Conv2D(4, 8, 3, **kw)
    model = sc.Sequential(first, sc.ReLU(), conv, sc.Tanh(), sc.GlobalAvgPool2D(), sc.Dense(8, 3),
                          input_shape=(2, 11, 10))
    x = rng.standard_normal((4, 2, 11, 10)).astype(np.float32)
    proto, source = check_everywhere(model, x, tmp_path, "conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.graph.node[2].attribute}
    assert attrs["dilations"] == list(conv.dilation) and attrs["group"] == conv.groups
    if conv.groups != 1:
        assert f"groups={conv.groups}" in source
    if tuple(conv.dilation) != (1, 1):
        assert "dilation=" in source


# ---- Residual ----------------------------------------------------------------------------
@needs_residual
def test_basic_blocks_export(tmp_path, rng):
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), basic_block(4, 4), sc.ReLU(),
                          basic_block(4, 8, stride=2), sc.ReLU(), sc.GlobalAvgPool2D(), sc.Dense(8, 5),
                          input_shape=(1, 10, 10))
    x = rng.standard_normal((8, 1, 10, 10)).astype(np.float32)
    randomize(model, rng, x=x)
    proto, source = check_everywhere(model, x, tmp_path, "resnet")
    assert ops(proto).count("Add") == 2
    names = {t.name for t in proto.graph.initializer}
    assert {"2.body.0.weight", "2.body.1.running_mean", "4.shortcut.0.weight", "4.shortcut.1.bias"} <= names
    assert not any(k.startswith("2.shortcut") for k in names)                  # the identity
    assert "class Residual(nn.Module):" in source and "body=nn.Sequential(" in source
    assert "shortcut=nn.Sequential(" in source


@needs_residual
def test_residual_with_single_layer_branches_nested_and_norms(tmp_path, rng):
    inner = Residual(sc.nn.Sequential(sc.Conv2D(4, 4, 3, padding="same"), sc.GroupNorm(2, 4), sc.Tanh()))
    block = Residual(sc.nn.Sequential(inner, sc.Conv2D(4, 6, 2, padding="same")),
                     sc.Conv2D(4, 6, 1, bias=False))
    model = sc.Sequential(sc.Conv2D(3, 4, 3), block, sc.LayerNorm((6, 7, 7)), sc.ReLU(),
                          Residual(sc.LayerNorm((6, 7, 7))), sc.Flatten(), sc.Dense(6 * 49, 4),
                          input_shape=(3, 9, 9))
    randomize(model, rng)
    x = rng.standard_normal((3, 3, 9, 9)).astype(np.float32)
    proto, source = check_everywhere(model, x, tmp_path, "nested")
    assert ops(proto).count("Add") >= 3
    assert "1.body.0.body.1.weight" in model.state_dict() and "4.body.weight" in model.state_dict()
    assert "shortcut=nn.Conv2d(4, 6, kernel_size=1, bias=False)" in source


@needs_residual
def test_a_model_that_is_one_residual(tmp_path, rng):
    model = randomize(Residual(sc.nn.Sequential(sc.Conv2D(2, 2, 3, padding=1), sc.LayerNorm((2, 5, 5)))), rng)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    proto, source = check_everywhere(model, x, tmp_path, "one", input_shape=(2, 5, 5))
    assert "class Net(Residual):" in source and proto.graph.node[-1].op_type == "Add"


@needs_residual
def test_layer_that_cannot_be_exported_in_a_branch_is_named(tmp_path):
    class Square(sc.Module):
        def forward(self, x):
            return x * x

    model = sc.Sequential(sc.Conv2D(1, 2, 3), Residual(sc.ReLU(), sc.nn.Sequential(Square())),
                          input_shape=(1, 5, 5))
    with pytest.raises(ExportError, match=r"cannot export layer 1\.shortcut\.0 \(Square"):
        export.export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=r"layer 1\.shortcut\.0"):
        export.export_torch(model, tmp_path / "m.pt")


# ---- seeded random models mixing every new piece ------------------------------------------
def random_model(rng, i):
    """A small random model on (C, H, W) with norms, Residual blocks, and dilated / grouped convs."""
    c, h = int(rng.choice([2, 4])), int(rng.integers(7, 11))
    layers, shape = [sc.Conv2D(c, 4, 3, padding=1)], (4, h, h)
    for block in range(int(rng.integers(2, 4))):
        kind = (i + block) % 4
        ch = shape[0]
        conv_kw = {}
        if {"dilation", "groups"} <= set(CONV_ARGS):
            conv_kw = {"dilation": int(rng.integers(1, 3)), "groups": int(rng.choice([1, 2, ch]))}
        if kind == 0:
            layers.append(sc.GroupNorm(int(rng.choice([1, 2, ch])), ch, affine=bool(rng.random() < 0.7)))
        elif kind == 1:
            layers.append(sc.LayerNorm(shape[-int(rng.integers(1, 4)):], elementwise_affine=bool(rng.random() < 0.7)))
        elif kind == 2 and Residual is not None:
            body = sc.nn.Sequential(sc.Conv2D(ch, ch, 3, padding="same", **conv_kw), sc.GroupNorm(2, ch), sc.ReLU())
            layers.append(Residual(body, None if rng.random() < 0.5 else sc.Conv2D(ch, ch, 1)))
        else:
            layers.append(sc.Conv2D(ch, 2 * ch, 3, padding="same", **conv_kw))
            shape = (2 * ch,) + shape[1:]
        layers.append([sc.ReLU(), sc.Tanh(), sc.LeakyReLU(0.2)][int(rng.integers(3))])
    layers += [sc.Flatten(), sc.Dense(int(np.prod(shape)), 6), sc.LayerNorm(6), sc.Dense(6, 3)]
    return sc.Sequential(*layers, input_shape=(c, h, h))


def test_random_models_mix_every_new_piece(tmp_path):
    rng = np.random.default_rng(14)
    seen, dilated, grouped = set(), False, False
    for i in range(6):
        model = randomize(random_model(rng, i), rng)
        x = rng.standard_normal((4,) + model.input_shape).astype(np.float32)
        check_everywhere(model, x, tmp_path, f"random{i}")
        for m in model.modules():
            seen.add(type(m))
            if isinstance(m, sc.Conv2D):
                dilated |= tuple(getattr(m, "dilation", (1, 1))) != (1, 1)
                grouped |= getattr(m, "groups", 1) != 1
    assert set(export.NORMS) <= seen
    if Residual is not None:
        assert Residual in seen
    if {"dilation", "groups"} <= set(CONV_ARGS):
        assert dilated and grouped


def test_float64_model_with_norms_exports(tmp_path, rng):
    model = randomize(sc.Sequential(sc.Conv2D(1, 4, 3), sc.GroupNorm(2, 4), sc.LayerNorm((4, 4, 4)), sc.Flatten(),
                                    sc.Dense(64, 3), input_shape=(1, 6, 6)), rng).to(np.float64)
    x = rng.standard_normal((3, 1, 6, 6))
    ref = reference(model, x)
    onnx_path = export.export_onnx(model, tmp_path / "m.onnx")
    assert_matches(export.run_onnx(onnx_path, x), ref, "float64 model in onnxruntime (float32)")
    pt, py = export.export_torch(model, tmp_path / "m.pt")
    got = export.run_torch(export.load_torch(py), x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_dynamic_batch_with_norms(tmp_path, rng):
    model = randomize(sc.Sequential(sc.Conv2D(1, 4, 3), sc.GroupNorm(2, 4), sc.Flatten(), sc.Dense(36, 5),
                                    sc.LayerNorm(5), input_shape=(1, 5, 5)), rng)
    path = export.export_onnx(model, tmp_path / "m.onnx")
    x = rng.standard_normal((7, 1, 5, 5)).astype(np.float32)
    for n in (1, 7):
        assert_matches(export.run_onnx(path, x[:n]), reference(model, x[:n]), f"batch {n}")


# ---- command line ------------------------------------------------------------------------
def _cli(argv):
    parser = argparse.ArgumentParser(prog="scratchcnn")
    export.add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@needs_residual
def test_cli_exports_a_saved_model_with_residual_blocks(tmp_path, capsys, rng):
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.GroupNorm(2, 4), sc.ReLU(), basic_block(4, 4),
                          basic_block(4, 6, stride=2), sc.ReLU(), sc.GlobalAvgPool2D(), sc.Dense(6, 10),
                          sc.LayerNorm(10), input_shape=(1, 8, 8))
    randomize(model, rng, x=rng.standard_normal((6, 1, 8, 8)).astype(np.float32))
    sc.save(model, tmp_path / "model.npz")
    assert _cli(["export", str(tmp_path / "model.npz"), "--format", "onnx", "--out", str(tmp_path / "a.onnx")]) == 0
    assert "checked: onnxruntime" in capsys.readouterr().out
    assert _cli(["export", str(tmp_path / "model.npz"), "--out", str(tmp_path / "b.pt")]) == 0
    assert "checked: torch" in capsys.readouterr().out
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    assert_matches(export.run_onnx(tmp_path / "a.onnx", x), reference(model, x), "CLI's ONNX file")
    net = export.load_torch(tmp_path / "b.py")
    assert_matches(export.run_torch(net, x), reference(model, x), "CLI's PyTorch file")
