"""backward() without a forward pass with gradients on is a ConfigError naming the layer, for
every layer (the base class notes each forward), not a TypeError from a missing cache; after
a proper forward every layer's backward runs as before, the fast plan's fused ReLU included."""
import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.nn import LAYER_REGISTRY, basic_block


def every_layer():
    return [sc.Conv2D(1, 2, 3), sc.Dense(3, 2), sc.ReLU(), sc.MaxPool2D(2), sc.AvgPool2D(2), sc.BatchNorm2D(2),
            sc.BatchNorm1D(2), sc.Dropout(0.5), sc.Flatten(), sc.GlobalAvgPool2D(), sc.LayerNorm(4),
            sc.GroupNorm(1, 2), basic_block(2, 2), sc.Sequential(sc.Dense(3, 2), input_shape=(3,))]


@pytest.mark.parametrize("layer", every_layer(), ids=lambda l: type(l).__name__)
def test_backward_before_forward_names_the_layer(layer):
    with pytest.raises(sc.ConfigError, match=r"\.backward: there is no forward pass with gradients on"):
        layer.backward(np.ones((2, 2, 4, 4), np.float32))


def test_every_registered_layer_class_is_guarded():
    unguarded = [name for name, cls in LAYER_REGISTRY.items()
                 if "backward" in cls.__dict__ and not hasattr(cls.__dict__["backward"], "__wrapped__")]
    assert unguarded == []


def test_a_no_grad_forward_is_not_enough_and_a_real_one_is():
    model = sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                          sc.Dense(4 * 4 * 4, 3), input_shape=(1, 8, 8))
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    with sc.no_grad():
        out = model(x)
    with pytest.raises(sc.ConfigError, match="outside no_grad"):
        model.backward(np.ones_like(out))
    out = model(x)                                  # the fast plan fuses the ReLU into the convolution
    model.layers[0].weight.grad[...] = 0
    model.backward(np.ones_like(out))
    assert np.abs(model.layers[0].weight.grad).sum() > 0
    with sc.textbook():
        out = model(x)
        model.backward(np.ones_like(out))
