"""Helpers for the PyTorch parity tests (tests/test_torch_parity.py).

The central one, :func:`check_layer_parity`, takes a scratchcnn layer and the
equivalent ``torch.nn`` module, copies the torch weights into the scratchcnn layer
(their ``state_dict`` names and shapes must be the same), runs both forward on the same
input and backward with the same upstream gradient, and compares

* the outputs,
* the gradients with respect to the input,
* the gradient of every parameter (by name),
* every buffer (e.g. BatchNorm's running statistics) after the pass.

Tolerances: float64 is compared tightly (``rtol=1e-10``), float32 loosely
(``rtol=1e-4``); the absolute tolerance is scaled by the size of the values compared,
so that a sum of many terms is not held to an impossible standard.
"""
import gzip
import os

import numpy as np

TOL = {np.dtype(np.float64): (1e-10, 1e-10), np.dtype(np.float32): (1e-4, 1e-5)}

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def torch_dtype(torch, dtype):
    return {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]


def to_numpy(t):
    return t.detach().cpu().numpy()


def assert_close(actual, expected, dtype, what, scale=None):
    """``actual`` (a scratchcnn array) equals ``expected`` (a torch tensor or array) within the
    tolerance of ``dtype``; the dtype and shape must match exactly."""
    if hasattr(expected, "detach"):
        expected = to_numpy(expected)
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    dtype = np.dtype(dtype)
    if expected.dtype.kind == "f":
        assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
        rtol, atol = TOL[dtype]
        if scale is None:
            scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def copy_torch_weights(layer, tmod):
    """Load ``tmod``'s state_dict into ``layer``, checking that names and shapes agree."""
    t_state = {k: to_numpy(v) for k, v in tmod.state_dict().items()}
    s_state = layer.state_dict()
    assert set(s_state) == set(t_state), (
        f"state_dict keys differ: scratchcnn {sorted(s_state)} vs torch {sorted(t_state)}")
    for k, v in t_state.items():
        assert s_state[k].shape == v.shape, f"{k}: scratchcnn shape {s_state[k].shape} != torch {v.shape}"
    layer.load_state_dict(t_state)


def check_layer_parity(torch, layer, tmod, x, dtype, train=True, grad_out=None, seed=0, copy=True,
                       scale=None):
    """Forward and backward ``layer`` (scratchcnn) and ``tmod`` (torch) on the same data and
    compare outputs, input gradients, parameter gradients and buffers.

    x: an input array (any float dtype; converted to ``dtype``). ``grad_out`` (the upstream
    gradient, same shape as the output) is drawn at random from ``seed`` unless given.
    Returns ``(y, dx)`` from scratchcnn for further checks.
    """
    dtype = np.dtype(dtype)
    tdt = torch_dtype(torch, dtype)
    tmod = tmod.to(tdt)
    layer.to(dtype)
    if copy:
        copy_torch_weights(layer, tmod)
    layer.train(train)
    tmod.train(train)
    layer.needs_input_grad = True
    layer.zero_grad()
    tmod.zero_grad(set_to_none=True)

    x = np.asarray(x).astype(dtype, copy=False)     # keeps a non-contiguous layout
    x_before = x.copy()
    xt = torch.tensor(x, requires_grad=True)
    y = layer(x)
    yt = tmod(xt)
    assert_close(y, yt, dtype, f"{layer!r} forward", scale)

    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(y.shape)
    grad_out = np.asarray(grad_out).astype(dtype)
    dx = layer.backward(grad_out.copy())
    yt.backward(torch.tensor(grad_out))
    assert_close(dx, xt.grad, dtype, f"{layer!r} input gradient", scale)
    np.testing.assert_array_equal(x, x_before, err_msg=f"{layer!r} modified its input in place")

    t_params = dict(tmod.named_parameters())
    s_params = dict(layer.named_parameters())
    assert set(s_params) == set(t_params), f"parameters differ: {sorted(s_params)} vs {sorted(t_params)}"
    for name, p in s_params.items():
        tp = t_params[name]
        expected = tp.grad if tp.grad is not None else torch.zeros_like(tp)
        assert_close(p.grad, expected, dtype, f"{layer!r} grad of {name}", scale)

    t_bufs = dict(tmod.named_buffers())
    s_bufs = dict(layer.named_buffers())
    assert set(s_bufs) == set(t_bufs), f"buffers differ: {sorted(s_bufs)} vs {sorted(t_bufs)}"
    for name, b in s_bufs.items():
        assert_close(b, t_bufs[name], dtype, f"{layer!r} buffer {name}", scale)
    return y, dx


def assert_model_grads_match(model, tmodel, dtype, what="model"):
    """Every parameter gradient of a scratchcnn model equals the torch model's (same names)."""
    t_params = dict(tmodel.named_parameters())
    s_params = dict(model.named_parameters())
    assert set(s_params) == set(t_params)
    for name, p in s_params.items():
        assert_close(p.grad, t_params[name].grad, dtype, f"{what}: grad of {name}")


def assert_state_matches(model, tmodel, dtype, what="model"):
    """Every parameter and buffer of a scratchcnn model equals the torch model's."""
    t_state = tmodel.state_dict()
    s_state = model.state_dict()
    assert set(s_state) == set(t_state)
    for name, v in s_state.items():
        assert_close(v, t_state[name], dtype, f"{what}: {name}")


def fashion_mnist_images(n, split="t10k"):
    """The first ``n`` Fashion-MNIST images as floats in [0, 1], (n, 1, 28, 28) float64,
    read from the gzipped IDX file; None if the file is missing."""
    path = os.path.join(FASHION_DIR, f"{split}-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        return None
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">u4")
        assert header[0] == 2051, f"{path}: not an IDX image file (magic {header[0]})"
        rows, cols = int(header[2]), int(header[3])
        data = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return (data.reshape(n, 1, rows, cols) / 255.0).astype(np.float64)
