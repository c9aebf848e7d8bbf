"""Export to ONNX and PyTorch (scratchcnn.app.export): the exported files compute what scratchcnn
computes.

Every preset (built for the UCI digits' 1x8x8 and Fashion-MNIST's 1x28x28, random weights, its
BatchNorm layers given non-trivial scales, shifts and running statistics) and a seeded set of
small random models covering every layer kind ("same" padding with even kernels, so uneven;
int and (h, w) padding; strides 1 and 2; padded max and average pools; every activation;
BatchNorm1D/2D; Dropout; GlobalAvgPool2D; nested Sequentials) are exported; the ONNX file is
run in onnxruntime and the generated PyTorch module (loaded strictly from the .pt file with
weights_only=True) in torch, on real images, and both outputs are compared with scratchcnn's
in eval mode (float32, 1e-5 relative to the output's scale).

Run:  python -m pytest tests/test_export.py -q
"""
import argparse
import json
import sys

import numpy as np
import pytest
from conftest import require_torch
from parity_helpers import fashion_mnist_images

import scratchcnn as sc
from scratchcnn.app import export
from scratchcnn.errors import ExportError, ScratchCNNError

from scratchcnn.app.presets import PRESETS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = require_torch()

@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every test here runs torch on one thread (conftest.one_torch_thread)."""


# ---- helpers -----------------------------------------------------------------------------
def digits_images(n):
    from sklearn.datasets import load_digits
    return (load_digits().images[:n, None] / 16.0).astype(np.float32)


def fashion_images(n):
    x = fashion_mnist_images(n)
    if x is None:
        pytest.skip("Fashion-MNIST is not in /usr/share/datasets/fashion-mnist")
    return x.astype(np.float32)


IMAGES = {"digits": (digits_images, 48), "fashion": (fashion_images, 24)}


def settle_batchnorm(model, x, rng, passes=4):
    """Random BatchNorm scales and shifts, then a few train-mode passes over ``x`` so the running
    statistics are the data's, far from the initial (0, 1); the model is left in eval mode."""
    for m in model.modules():
        if isinstance(m, (sc.BatchNorm1D, sc.BatchNorm2D)) and m.affine:
            m.weight.data = rng.uniform(0.5, 1.5, m.num_features).astype(m.weight.data.dtype)
            m.bias.data = rng.uniform(-0.5, 0.5, m.num_features).astype(m.bias.data.dtype)
    model.train()
    with sc.no_grad():
        for _ in range(passes):
            model(x)
    model.eval()


def reference(model, x):
    model.eval()
    with sc.no_grad():
        return np.asarray(model(x))


def assert_matches(got, ref, what):
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, scratchcnn's {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= 1e-5 * scale, f"{what}: max difference {err:.3g} (output scale {scale:.3g})"


def export_both(model, tmp_path, name="model"):
    """Export ``model`` both ways; returns (onnx path, torch module loaded strictly from the .pt)."""
    onnx_path = export.export_onnx(model, tmp_path / f"{name}.onnx")
    pt, py = export.export_torch(model, tmp_path / f"{name}.pt")
    assert str(py) == str(tmp_path / f"{name}.py")
    state = torch.load(pt, weights_only=True)
    assert list(state) == list(model.state_dict())
    net = export.load_torch(py)               # load_state_dict(strict=True)
    assert list(net.state_dict()) == list(model.state_dict())
    return onnx_path, net


def check_everywhere(model, x, tmp_path, name="model"):
    ref = reference(model, x)
    onnx_path, net = export_both(model, tmp_path, name)
    assert_matches(export.run_onnx(onnx_path, x, threads=1), ref, f"{name} in onnxruntime")
    assert_matches(export.run_torch(net, x.astype(ref.dtype)), ref, f"{name} in torch")
    return onnx_path, net


# ---- every preset on real images ---------------------------------------------------------
@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("images", list(IMAGES))
def test_preset_exports_compute_the_same(preset, images, tmp_path):
    load_images, n = IMAGES[images]
    x = load_images(n)
    model = PRESETS[preset].build(x.shape[1:], 10)
    settle_batchnorm(model, x, np.random.default_rng(1))
    check_everywhere(model, x, tmp_path, preset)


# ---- seeded random models: every layer ---------------------------------------------------
def _activation(rng, i):
    kind = (i + int(rng.integers(4))) % 4
    if kind == 0:
        return sc.ReLU()
    if kind == 1:
        return sc.LeakyReLU(round(float(rng.uniform(0.01, 0.3)), 3))
    return sc.Sigmoid() if kind == 2 else sc.Tanh()


def random_model(rng, i):
    """A small random model for input (C, H, W); ``i`` steers the choices that must all occur."""
    shape = (int(rng.choice([1, 3])), int(rng.integers(8, 13)), int(rng.integers(8, 13)))
    input_shape, layers = shape, []

    def add(layer):
        nonlocal shape
        try:
            new = tuple(layer.output_shape(shape))
        except sc.ShapeError:
            return False
        layers.append(layer)
        shape = new
        return True

    for block in range(int(rng.integers(1, 4))):
        k = int(rng.integers(1, 5))
        stride = int(rng.integers(1, 3))
        mode = ["same", "int", "pair", "valid"][(i + block) % 4]
        if mode == "same":
            stride, k = 1, (2, 4)[block % 2] if block < 2 else k      # even kernels: uneven padding
        padding = {"same": "same", "valid": "valid", "int": int(rng.integers(0, 3)),
                   "pair": (int(rng.integers(0, 3)), int(rng.integers(0, 3)))}[mode]
        add(sc.Conv2D(shape[0], int(rng.integers(2, 7)), k, stride=stride, padding=padding,
                      bias=bool(rng.random() < 0.8)))
        if rng.random() < 0.6:
            add(sc.BatchNorm2D(shape[0], eps=float(rng.choice([1e-5, 1e-3])), momentum=0.3,
                               affine=bool(rng.random() < 0.8)))
        add(_activation(rng, i + block))
        if (i + block) % 3 == 2:
            add(sc.Softmax(dim=1))            # over channels, mid-network
        kp = int(rng.integers(2, 4))
        pool = (sc.MaxPool2D, sc.AvgPool2D)[(i + block) % 2]
        add(pool(kp, int(rng.integers(1, 3)), padding=int(rng.integers(0, kp // 2 + 1))))
    add(sc.GlobalAvgPool2D() if i % 2 else sc.Flatten())
    add(sc.Dropout(0.25))
    add(sc.Dense(shape[0], int(rng.integers(4, 9)), bias=bool(rng.random() < 0.8)))
    add(sc.BatchNorm1D(shape[0], momentum=0.5))
    add(_activation(rng, i))
    add(sc.Dense(shape[0], 5))
    if i % 2 == 0:
        add(sc.Softmax(dim=-1 if i % 4 else 1))
    a = int(rng.integers(0, len(layers) - 2))            # a slice of the layers as a nested Sequential
    b = int(rng.integers(a + 2, len(layers) + 1))
    inner = layers[a:b]
    if i % 3 == 0 and len(inner) > 2:                     # sometimes nested twice
        inner = [inner[0], sc.nn.Sequential(*inner[1:])]
    layers[a:b] = [sc.Sequential(*inner)]
    return sc.Sequential(*layers, input_shape=input_shape)


def _leaves(model):
    for m in model.modules():
        if not isinstance(m, sc.nn.Sequential):
            yield m


def test_random_models_cover_every_layer_and_compute_the_same(tmp_path):
    rng = np.random.default_rng(2024)
    seen, uneven, pool_pads, strides = set(), False, set(), set()
    for i in range(8):
        model = random_model(rng, i)
        x = rng.standard_normal((12,) + model.input_shape).astype(np.float32)
        settle_batchnorm(model, x, rng)
        check_everywhere(model, x, tmp_path, f"random{i}")
        for m in _leaves(model):
            seen.add(type(m))
            if isinstance(m, sc.Conv2D):
                t, b, l, r = m.pads
                uneven |= t != b or l != r
                strides.add(m.stride[0])
            if isinstance(m, (sc.MaxPool2D, sc.AvgPool2D)) and max(m.pads):
                pool_pads.add(type(m))
    assert seen == set(export.EXPORTABLE), f"not covered: {set(export.EXPORTABLE) - seen}"
    assert uneven and strides == {1, 2} and pool_pads == {sc.MaxPool2D, sc.AvgPool2D}


def test_float64_model_exports(tmp_path):
    model = random_model(np.random.default_rng(7), 1).to(np.float64)
    x = np.random.default_rng(0).standard_normal((6,) + model.input_shape)
    settle_batchnorm(model, x, np.random.default_rng(1))
    ref = reference(model, x)
    onnx_path, net = export_both(model, tmp_path)
    assert_matches(export.run_onnx(onnx_path, x), ref, "float64 model in onnxruntime (float32)")
    got = export.run_torch(net, x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


# ---- the files ---------------------------------------------------------------------------
def _small_model():
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding="same"), sc.BatchNorm2D(4), sc.ReLU(), sc.MaxPool2D(2),
                          sc.Flatten(), sc.Dense(4 * 4 * 4, 10), input_shape=(1, 8, 8))
    model.metadata.update({"dataset": "digits", "class_names": [str(k) for k in range(10)],
                           "preprocessing": {"channels": 1, "height": 8, "width": 8, "max_value": 16.0}})
    return model


def test_dynamic_batch(tmp_path):
    model = _small_model()
    x = digits_images(9)
    settle_batchnorm(model, x, np.random.default_rng(3))
    onnx_path, net = export_both(model, tmp_path)
    dims = onnx.load(onnx_path).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    for n in (1, 9):
        ref = reference(model, x[:n])
        assert_matches(export.run_onnx(onnx_path, x[:n]), ref, f"onnxruntime, batch {n}")
        assert_matches(export.run_torch(net, x[:n]), ref, f"torch, batch {n}")


def test_onnx_file_names_opset_metadata_and_checker(tmp_path):
    model = _small_model()
    path = export.export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert out_dims[0].dim_param == "batch" and out_dims[1].dim_value == 10
    assert proto.opset_import[0].version == export.OPSET >= 17
    assert [n.op_type for n in proto.graph.node] == ["Conv", "BatchNormalization", "Relu", "MaxPool",
                                                      "Flatten", "Gemm"]
    gemm = proto.graph.node[-1]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}["transB"] == 1
    assert {t.name for t in proto.graph.initializer} == set(model.state_dict()) - {"1.num_batches_tracked"}
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["class_names"] == [str(k) for k in range(10)]
    assert props["preprocessing"]["max_value"] == 16.0
    assert props["input_shape"] == [1, 8, 8] and props["dataset"] == "digits"


def test_generated_torch_file_is_readable_python(tmp_path):
    model = sc.Sequential(sc.Conv2D(1, 2, 4, padding="same"), sc.ReLU(), sc.GlobalAvgPool2D(),
                          sc.Dense(2, 3), input_shape=(1, 6, 6))
    _, py = export.export_torch(model, tmp_path / "net.pt", class_name="Digits")
    source = open(py).read()
    compile(source, py, "exec")
    assert "class Digits(nn.Sequential):" in source
    assert "PaddedConv2d(1, 2, kernel_size=4, pads=(1, 2, 1, 2))" in source and "nn.ZeroPad2d" in source
    assert "GlobalAvgPool2d()" in source and "nn.Linear(2, 3)" in source
    net = export.load_torch(py, class_name="Digits")
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6)).astype(np.float32)
    assert_matches(export.run_torch(net, x), reference(model, x), "generated Digits")


# ---- errors ------------------------------------------------------------------------------
class Square(sc.Module):
    """A custom layer: no exporter knows it."""

    def forward(self, x):
        return x * x


def test_layer_that_cannot_be_exported_is_named(tmp_path):
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.Sequential(sc.ReLU(), Square()), sc.Flatten(),
                          input_shape=(1, 5, 5))
    with pytest.raises(ExportError, match=r"cannot export layer 1\.1 \(Square\(\).*Square"):
        export.export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=r"layer 1\.1 .*Square"):
        export.export_torch(model, tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())         # nothing half-written


@pytest.mark.parametrize("package, call", [
    ("onnx", lambda tmp: export.export_onnx(_small_model(), tmp / "m.onnx")),
    ("onnxruntime", lambda tmp: export.run_onnx(tmp / "m.onnx", np.zeros((1, 1, 8, 8)))),
    ("torch", lambda tmp: export.export_torch(_small_model(), tmp / "m.pt")),
])
def test_missing_package_gives_the_pip_line(package, call, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)      # `import package` now raises ImportError
    with pytest.raises(ScratchCNNError) as info:
        call(tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ExportError) and "\n" not in message
    assert f"pip install {package}" in message


# ---- command line ------------------------------------------------------------------------
def _cli(argv):
    parser = argparse.ArgumentParser(prog="scratchcnn")
    export.add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_export_both_formats(tmp_path, capsys):
    model = _small_model()
    settle_batchnorm(model, digits_images(16), np.random.default_rng(5))
    sc.save(model, tmp_path / "model.npz")
    assert _cli(["export", str(tmp_path / "model.npz"), "--format", "onnx", "--out", str(tmp_path / "a.onnx")]) == 0
    assert "checked: onnxruntime" in capsys.readouterr().out
    assert _cli(["export", str(tmp_path / "model.npz"), "--out", str(tmp_path / "b.pt")]) == 0
    assert "checked: torch" in capsys.readouterr().out
    assert (tmp_path / "a.onnx").exists() and (tmp_path / "b.pt").exists() and (tmp_path / "b.py").exists()
    x = digits_images(5)
    assert_matches(export.run_onnx(tmp_path / "a.onnx", x), reference(model, x), "CLI's ONNX file")
    assert _cli(["export", str(tmp_path / "model.npz"), "--out", str(tmp_path / "c.bin")]) == 2
    assert "--format" in capsys.readouterr().err


def test_the_scratchcnn_command_exports(tmp_path, capsys):
    """`scratchcnn export` through the real command line (scratchcnn.app.cli.main)."""
    from scratchcnn.app.cli import main
    model = _small_model()
    sc.save(model, tmp_path / "model.npz")
    assert main(["export", str(tmp_path / "model.npz"), "--format", "torch", "--out", str(tmp_path / "m.pt")]) == 0
    assert "checked: torch" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.npz"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchcnn export: error:") and "missing.npz" in err and len(err.splitlines()) == 1
