"""scratchcnn.app.plots (PNG files that open and are not blank) and scratchcnn.app.introspect."""
import os

import numpy as np
import pytest
from PIL import Image

import scratchcnn as sc
from scratchcnn.app import introspect, plots
from scratchcnn.errors import ConfigError, LabelError, ShapeError
from scratchcnn.metrics import confusion_matrix

K = 4


def _model(channels):
    return sc.Sequential(
        sc.Conv2D(channels, 6, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2),
        sc.Conv2D(6, 8, 3), sc.BatchNorm2D(8), sc.ReLU(),
        sc.Flatten(), sc.Dense(8 * 4 * 4, K), input_shape=(channels, 12, 12))


@pytest.fixture(scope="module", params=[1, 3], ids=["grey", "rgb"])
def trained(request):
    """A small model fitted for 2 epochs on random data: (model, history, x, y)."""
    sc.manual_seed(0)
    c = request.param
    rng = np.random.default_rng(c)
    x = rng.normal(size=(48, c, 12, 12)).astype(np.float32)
    y = rng.integers(0, K, 48)
    model = _model(c)
    history = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:16], y[:16]), verbose=0)
    return model, history, x, y


def _check_png(path):
    """The file is a PNG of non-zero size whose pixels are not all the same; returns (H, W, 3)."""
    assert os.path.getsize(path) > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width > 0 and im.height > 0
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert pixels.var() > 0
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]  # atomic write
    return pixels


def _has_colour(pixels):
    return np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0 or np.abs(pixels[..., 1] - pixels[..., 2]).max() > 0


# ---- plots -----------------------------------------------------------------
def test_plot_history_accepts_history_and_dicts(trained, tmp_path):
    _, history, _, _ = trained
    for i, h in enumerate((history, history.to_dict(), history.history)):
        path = str(tmp_path / f"history{i}.png")
        assert plots.plot_history(h, path) == path
        _check_png(path)


def test_plot_history_without_validation_or_accuracy(tmp_path):
    path = tmp_path / "loss_only.png"
    assert plots.plot_history({"loss": [2.0, 1.5, 1.2]}, path) == path
    _check_png(path)
    with pytest.raises(ConfigError):
        plots.plot_history([1.0, 2.0], tmp_path / "bad.png")


@pytest.mark.parametrize("normalize", [False, True])
def test_plot_confusion_matrix(trained, tmp_path, normalize):
    model, _, x, y = trained
    cm = confusion_matrix(y, model.predict(x), num_classes=K)
    path = str(tmp_path / "cm.png")
    assert plots.plot_confusion_matrix(cm, [f"class {i}" for i in range(K)], path, normalize=normalize) == path
    _check_png(path)


def test_plot_confusion_matrix_overwrites_and_checks_shapes(tmp_path):
    path = tmp_path / "cm.png"
    path.write_bytes(b"old")
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 5]])   # an empty row stays 0 when normalised
    plots.plot_confusion_matrix(cm, None, path, normalize=True)
    _check_png(path)
    with pytest.raises(ShapeError):
        plots.plot_confusion_matrix(np.ones((2, 3)), None, path)
    with pytest.raises(LabelError):
        plots.plot_confusion_matrix(cm, ["a", "b"], path)


def test_plot_filters_grey_or_colour(trained, tmp_path):
    model, _, _, _ = trained
    path = str(tmp_path / "filters.png")
    assert plots.plot_filters(model, path) == path
    pixels = _check_png(path)
    # C == 3 filters are shown in colour; C == 1 filters (and the black text) only in grey
    assert _has_colour(pixels) == (model.layers[0].in_channels == 3)


def test_plot_feature_maps(trained, tmp_path):
    model, _, x, _ = trained
    path = str(tmp_path / "maps.png")
    assert plots.plot_feature_maps(model, x[0], path) == path
    _check_png(path)
    path2 = str(tmp_path / "maps2.png")
    assert plots.plot_feature_maps(model, x[:1], path2, max_maps=2, layers=["MaxPool2D"]) == path2
    _check_png(path2)
    with pytest.raises(ShapeError):
        plots.plot_feature_maps(model, x[:2], path)


def test_nothing_to_draw_returns_none(tmp_path):
    dense = sc.Sequential(sc.Flatten(), sc.Dense(16, 3), input_shape=(1, 4, 4))
    assert plots.plot_filters(dense, tmp_path / "f.png") is None
    assert plots.plot_feature_maps(dense, np.zeros((1, 4, 4), np.float32), tmp_path / "m.png") is None
    x = np.random.default_rng(0).normal(size=(5, 1, 4, 4))
    y = np.arange(5) % 3
    assert plots.plot_misclassified(x, y, y, None, tmp_path / "w.png") is None
    assert os.listdir(tmp_path) == []


def test_plot_misclassified(trained, tmp_path):
    model, _, x, y = trained
    probs = model.predict_proba(x)
    pred = probs.argmax(axis=1)
    assert (pred != y).any()
    names = ["zero", "one", "two", "three"]
    for i, p in enumerate((probs, None)):
        path = str(tmp_path / f"wrong{i}.png")
        assert plots.plot_misclassified(x, y, pred, names, path, probs=p, max_images=6) == path
        pixels = _check_png(path)
        assert _has_colour(pixels) == (x.shape[1] == 3)
    with pytest.raises(ShapeError):
        plots.plot_misclassified(x, y[:-1], pred, names, str(tmp_path / "bad.png"))


def test_worst_misclassified_order():
    y_true = np.array([0, 1, 2, 0, 1, 2])
    y_pred = np.array([1, 1, 0, 2, 0, 2])          # wrong: 0, 2, 3, 4
    probs = np.full((6, 3), 0.1)
    probs[0, 1], probs[2, 0], probs[3, 2], probs[4, 0] = 0.6, 0.9, 0.6, 0.7
    np.testing.assert_array_equal(plots.worst_misclassified(y_true, y_pred, probs), [2, 4, 0, 3])
    np.testing.assert_array_equal(plots.worst_misclassified(y_true, y_pred, probs, max_images=2), [2, 4])
    np.testing.assert_array_equal(plots.worst_misclassified(y_true, y_pred), [0, 2, 3, 4])


# ---- introspection -----------------------------------------------------------
def _by_hand(model, x):
    """Every layer's output, running the layers one at a time in eval mode."""
    outs, h = [], x
    model.eval()
    try:
        for layer in model.layers:
            h = layer(h)
            outs.append(h)
    finally:
        model.train()
    return outs


def test_activations_match_layers_run_by_hand(trained):
    model, _, x, _ = trained
    model.train()
    batch = x[:5]
    acts = introspect.activations(model, batch)
    assert [(i, name) for i, name, _ in acts] == [(0, "Conv2D"), (2, "MaxPool2D"), (3, "Conv2D"),
                                                   (4, "BatchNorm2D")]
    assert model.training                          # the mode is restored
    shapes = model.build(x.shape[1:])
    expected = _by_hand(model, batch)
    for i, name, a in acts:
        assert a.shape == (5,) + tuple(shapes[i])
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, expected[i])
    # BatchNorm used its running statistics: the whole model in eval mode gives the same logits
    everything = introspect.activations(model, batch, layers="all")
    assert len(everything) == len(model)
    model.eval()
    np.testing.assert_allclose(everything[-1][2], model(batch), rtol=1e-6, atol=1e-6)
    model.train()


def test_activations_layer_selection(trained):
    model, _, x, _ = trained
    sel = introspect.activations(model, x[:2], layers=[-1, "ReLU", sc.MaxPool2D, 0])
    assert [i for i, _, _ in sel] == [0, 1, 2, 5, 7]
    assert sel[-1][2].shape == (2, K)
    assert introspect.activations(model, x[:2], layers=[]) == []
    with pytest.raises(ConfigError):
        introspect.activations(model, x[:2], layers=[99])
    with pytest.raises(ConfigError):
        introspect.activations(model, x[:2], layers=["Dropout"])
    with pytest.raises(ShapeError):
        introspect.activations(model, x[0])        # no batch axis


def test_activations_keep_no_gradient_caches():
    model = _model(1)
    introspect.activations(model, np.zeros((2, 1, 12, 12), np.float32))
    assert model.layers[0]._saved is None


def test_first_conv_filters(trained):
    model, _, _, _ = trained
    w = introspect.first_conv_filters(model)
    conv = model.layers[0]
    assert w.shape == (6, conv.in_channels, 3, 3)
    np.testing.assert_array_equal(w, conv.weight.data)
    w[...] = 0                                     # a copy: the model is untouched
    assert np.abs(conv.weight.data).sum() > 0
    assert introspect.first_conv_filters(sc.Sequential(sc.Flatten(), sc.Dense(4, 2))) is None
    with pytest.raises(ConfigError):
        introspect.first_conv_filters(conv)
