"""Float64 central differences through small stacks of layers and through the seed networks."""
import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.gradcheck import jitter_biases
from scratchcnn.app import presets

TOL = 1e-6


def _data(shape, classes, n=3, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n,) + shape), r.integers(0, classes, n)


STACKS = {
    "conv-stride2-pad1": lambda: sc.Sequential(sc.Conv2D(2, 3, 3, stride=2, padding=1), sc.Tanh(),
                                               sc.Conv2D(3, 2, (2, 3), stride=(1, 2)), sc.Flatten(),
                                               sc.Dense(2 * 3 * 1, 4)),
    "conv-same-even-kernel": lambda: sc.Sequential(sc.Conv2D(2, 3, 4, padding="same"), sc.Sigmoid(),
                                                   sc.Conv2D(3, 2, 3), sc.Flatten(), sc.Dense(2 * 5 * 5, 4)),
    "maxpool-overlap": lambda: sc.Sequential(sc.Conv2D(2, 3, 3, padding=1), sc.Tanh(),
                                             sc.MaxPool2D(3, stride=2, padding=1), sc.Conv2D(3, 2, 2),
                                             sc.Flatten(), sc.Dense(2 * 3 * 3, 4)),
    "avgpool-pad": lambda: sc.Sequential(sc.Conv2D(2, 3, 3), sc.LeakyReLU(0.1), sc.AvgPool2D(3, 2, 1),
                                         sc.Conv2D(3, 2, 1), sc.Flatten(), sc.Dense(2 * 3 * 3, 4)),
    "batchnorm2d": lambda: sc.Sequential(sc.Conv2D(2, 3, 3), sc.BatchNorm2D(3), sc.Tanh(), sc.Conv2D(3, 2, 3),
                                         sc.BatchNorm2D(2), sc.Flatten(), sc.Dense(2 * 3 * 3, 4)),
    "batchnorm1d-dropout": lambda: sc.Sequential(sc.Conv2D(2, 3, 3), sc.GlobalAvgPool2D(), sc.Dense(3, 5),
                                                 sc.BatchNorm1D(5), sc.Sigmoid(), sc.Dropout(0.3),
                                                 sc.Dense(5, 4)),
    "winograd-3x3": lambda: sc.Sequential(sc.Conv2D(2, 4, 3, padding=1), sc.Tanh(),
                                          sc.Conv2D(4, 5, 3, padding=(2, 0)), sc.Tanh(),   # Winograd path
                                          sc.Conv2D(5, 4, 3), sc.Flatten(), sc.Dense(4 * 7 * 3, 4)),
    "softmax-mse": None,  # handled separately below
}


@pytest.mark.parametrize("name", [k for k, v in STACKS.items() if v is not None])
def test_stack_gradients(name):
    model = STACKS[name]()
    x, y = _data((2, 7, 7), 4, n=4)
    errors = sc.gradcheck(model, x, y, print_fn=None)
    assert len(errors) == len(model.parameters())
    assert max(errors.values()) < TOL, errors


def test_softmax_layer_with_mse_loss():
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.ReLU(), sc.Flatten(), sc.Dense(2 * 4 * 4, 3), sc.Softmax())
    x = np.random.default_rng(1).standard_normal((3, 1, 6, 6))
    target = np.eye(3)[[0, 2, 1]]
    errors = sc.gradcheck(model, x, target, loss=sc.MSELoss(), print_fn=None)
    assert max(errors.values()) < TOL, errors


SEEDS = [("seed-a-simple", (1, 28, 28), 10), ("seed-a-complex", (1, 12, 12), 10), ("seed-b", (1, 8, 8), 10),
         ("seed-c", (1, 28, 28), 10), ("seed-d", (1, 14, 14), 10), ("seed-e", (1, 28, 28), 3),
         ("strong", (1, 12, 12), 10), ("small", (1, 8, 8), 10)]


@pytest.mark.parametrize("name,shape,classes", SEEDS)
def test_seed_networks_gradients(name, shape, classes):
    model = jitter_biases(presets.get_preset(name).build(shape, classes))
    x, y = _data(shape, classes, n=3)
    errors = sc.gradcheck(model, x, y, samples=8, print_fn=None)
    assert max(errors.values()) < TOL, errors


def test_gradcheck_catches_a_wrong_backward(capsys):
    """The checker itself must be able to fail: break Dense's weight gradient and see it."""
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.ReLU(), sc.Flatten(), sc.Dense(2 * 3 * 3, 3))
    dense = model[3]
    original = type(dense).backward

    def broken(self, g):
        out = original(self, g)
        self.weight.grad *= 1.01
        return out

    dense.backward = broken.__get__(dense)
    x, y = _data((1, 5, 5), 3)
    errors = sc.gradcheck(model, x, y)
    assert errors["3.weight"] > 1e-3
    assert errors["0.weight"] < TOL
    assert "CHECK THIS" in capsys.readouterr().out
