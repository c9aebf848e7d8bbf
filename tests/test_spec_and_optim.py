"""Model spec strings, presets, optimizer state and schedules (PyTorch parity of the update rules
is in test_torch_parity.py)."""
import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app.presets import PRESETS
from scratchcnn.app.spec import build_from_spec


def test_spec_builds_the_layers_it_names():
    model = build_from_spec("conv8x3same-bn-relu-maxpool2-conv16x3s2p1-leakyrelu-avgpool2-flatten-dropout0.25-"
                            "dense32-bn-tanh-dense10-softmax", (3, 32, 32))
    names = [type(l).__name__ for l in model]
    assert names == ["Conv2D", "BatchNorm2D", "ReLU", "MaxPool2D", "Conv2D", "LeakyReLU", "AvgPool2D", "Flatten",
                     "Dropout", "Dense", "BatchNorm1D", "Tanh", "Dense", "Softmax"]
    assert model[4].stride == (2, 2) and model[4].padding == (1, 1)
    assert model[9].in_features == 16 * 4 * 4
    assert model(np.zeros((2, 3, 32, 32))).shape == (2, 10)


@pytest.mark.parametrize("spec,token", [("conv8x3-relu-convx3", "convx3"), ("conv8-relu", "conv8"),
                                        ("conv8x3-dense10", "dense10"), ("conv8x30", "conv8x30"),
                                        ("conv8x3-maxpool2-wat", "wat")])
def test_spec_errors_point_at_the_token(spec, token):
    with pytest.raises(sc.ConfigError) as info:
        build_from_spec(spec, (1, 28, 28))
    msg = str(info.value)
    assert repr(token) in msg
    line, pointer = msg.splitlines()[1:3]
    start = pointer.index("^")
    assert line.strip()[start - 2:start - 2 + len(token)] == token


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_for_its_data(name):
    shape = {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}.get(PRESETS[name].dataset, (1, 28, 28))
    model = PRESETS[name].build(shape, 10)
    with sc.no_grad():
        assert model(np.zeros((2,) + shape, np.float32)).shape == (2, 10)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda p: optim.Adam(p, lr=0.01), lambda p: optim.AdamW(p, lr=0.01)])
def test_optimizer_state_dict_round_trip(make):
    r = np.random.default_rng(0)
    params_a = [sc.Parameter(r.standard_normal((3, 4))), sc.Parameter(r.standard_normal(5))]
    params_b = [sc.Parameter(p.data.copy()) for p in params_a]
    opt_a = make(params_a)
    grads = [[r.standard_normal(p.shape) for p in params_a] for _ in range(6)]
    for g in grads[:3]:
        for p, gi in zip(params_a, g):
            p.grad[...] = gi
        opt_a.step()
    for pb, pa in zip(params_b, params_a):
        pb.data[...] = pa.data
    opt_b = make(params_b).load_state_dict(opt_a.state_dict())
    for g in grads[3:]:
        for opt, params in ((opt_a, params_a), (opt_b, params_b)):
            for p, gi in zip(params, g):
                p.grad[...] = gi
            opt.step()
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_frozen_parameters_are_not_updated():
    p, q = sc.Parameter(np.ones(3)), sc.Parameter(np.ones(3))
    q.requires_grad = False
    opt = optim.SGD([p, q], lr=0.5)
    p.grad[...] = 1
    q.grad[...] = 1
    opt.step()
    np.testing.assert_array_equal(p.data, 0.5)
    np.testing.assert_array_equal(q.data, 1.0)


def test_schedules():
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    assert [step.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0)
    cos = optim.CosineAnnealingLR(opt, T_max=4)
    lrs = [cos.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [(1 + np.cos(np.pi * t / 4)) / 2 for t in range(1, 5)], atol=1e-15)
