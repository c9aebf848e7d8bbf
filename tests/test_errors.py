"""Errors a user can cause get a scratchcnn exception that names the layer and what was expected."""
import numpy as np
import pytest

import scratchcnn as sc


def _model():
    return sc.Sequential(sc.Conv2D(1, 4, 3), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(), sc.Dense(4 * 3 * 3, 10))


def test_wrong_number_of_channels_names_the_layer():
    with pytest.raises(sc.ShapeError, match=r"Conv2D\(1, 4.*expects input \(N, 1, H, W\)"):
        _model()(np.zeros((2, 3, 8, 8)))


def test_missing_batch_axis():
    with pytest.raises(sc.ShapeError, match=r"layer 0 .*expects input \(N, 1, H, W\), got \(N, 8, 8\)"):
        _model()(np.zeros((1, 8, 8)))


def test_mismatched_layer_sizes_are_found_before_computing():
    model = sc.Sequential(sc.Conv2D(1, 4, 3), sc.Flatten(), sc.Dense(100, 10))
    with pytest.raises(sc.ShapeError, match=r"layer 2 \(Dense\(100, 10\)\).*expects input \(N, 100\), got \(N, 144\)"):
        model(np.zeros((2, 1, 8, 8)))
    with pytest.raises(sc.ShapeError, match="layer 2"):
        sc.Sequential(sc.Conv2D(1, 4, 3), sc.Flatten(), sc.Dense(100, 10), input_shape=(1, 8, 8))
    with pytest.raises(sc.ShapeError, match="Flatten"):
        sc.Sequential(sc.Conv2D(1, 4, 3), sc.Dense(144, 10), input_shape=(1, 8, 8))


def test_input_smaller_than_kernel():
    with pytest.raises(sc.ShapeError, match="smaller than the kernel"):
        sc.Conv2D(1, 2, 5)(np.zeros((1, 1, 3, 3)))


def test_wrong_input_shape_for_trained_model():
    model = _model()
    model(np.zeros((2, 1, 8, 8)))
    with pytest.raises(sc.ShapeError, match=r"model expects input \(N, 1, 8, 8\)"):
        model(np.zeros((2, 1, 9, 9)))


def test_bad_dtype():
    with pytest.raises(sc.ShapeError, match="real numbers"):
        _model()(np.array([["a"]]))


def test_label_out_of_range_and_length_mismatch():
    model = _model()
    x = np.zeros((4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(sc.LabelError, match="label 10 is out of range for 10 classes"):
        model.fit(x, np.array([1, 2, 3, 10]), epochs=1, verbose=0)
    with pytest.raises(sc.LabelError, match="4 inputs but 3 targets"):
        model.fit(x, np.array([1, 2, 3]), epochs=1, verbose=0)
    with pytest.raises(sc.LabelError, match="out of range"):
        model.evaluate(x, np.array([-1, 0, 0, 0]))


def test_bad_layer_arguments():
    with pytest.raises(sc.ConfigError, match="same"):
        sc.Conv2D(1, 2, 3, stride=2, padding="same")
    with pytest.raises(sc.ConfigError, match="padding"):
        sc.Conv2D(1, 2, 3, padding="full")
    with pytest.raises(sc.ConfigError, match="in_channels"):
        sc.Conv2D(0, 2, 3)
    with pytest.raises(sc.ConfigError, match="at most half"):
        sc.MaxPool2D(2, padding=2)
    with pytest.raises(sc.ConfigError, match="Dropout"):
        sc.Dropout(1.5)
    with pytest.raises(sc.ConfigError, match="lr"):
        sc.optim.SGD(_model().parameters(), lr=0)


def test_all_errors_share_one_base():
    for cls in (sc.ShapeError, sc.ConfigError, sc.LabelError, sc.ModelFileError, sc.DatasetError,
                sc.TrainingDivergedError):
        assert issubclass(cls, sc.ScratchCNNError)


def test_sequential_forward_checks_shapes_and_dtypes_like_layer_calls():
    """Sequential.forward skips per-layer shape checks only for an input shape build() has
    checked; dtypes are still converted per layer, and other inputs take the checked path."""
    model = sc.Sequential(sc.Conv2D(1, 2, 3), sc.ReLU(), sc.Flatten(), sc.Dense(2 * 4 * 4, 3), input_shape=(1, 6, 6))
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))          # float64 input
    y = model(x)
    assert y.dtype == np.float32                                          # computed in the params' dtype
    model[3].to(np.float64)                                               # one layer in float64
    assert model.forward(x).dtype == np.float64
    assert model.forward(x.tolist()).shape == (2, 3)                      # not an array: checked path
    with pytest.raises(sc.ShapeError, match="layer 3.*expects input"):
        model.forward(np.zeros((2, 1, 5, 5)))                            # unchecked shape: checked path


def test_errors_raised_inside_a_layer_still_name_it_on_the_checked_path():
    """BatchNorm refuses one value per channel in training; after build() the error still names
    the layer's index."""
    model = sc.Sequential(sc.Dense(4, 3), sc.BatchNorm1D(3), input_shape=(4,))
    model(np.zeros((5, 4), np.float32))                                  # shape now checked
    with pytest.raises(sc.ShapeError, match="layer 1.*more than one value"):
        model(np.zeros((1, 4), np.float32))


def test_a_probability_target_row_with_one_nan_is_named():
    """(N, K) targets: a row holding NaN beside finite values is named by its index (it once
    raised a raw IndexError from fit / evaluate's own copy of the target check)."""
    model = sc.Sequential(sc.Flatten(), sc.Dense(4, 2), input_shape=(1, 2, 2))
    x = np.zeros((3, 1, 2, 2), np.float32)
    y = np.array([[0.5, 0.5], [np.nan, 1.0], [1.0, 0.0]])
    for call in (lambda: model.evaluate(x, y), lambda: model.fit(x, y, epochs=1, verbose=0),
                 lambda: sc.CrossEntropyLoss()(np.zeros((3, 2)), y)):
        with pytest.raises(sc.LabelError, match="target 1 is not a finite number"):
            call()


def test_an_int_too_large_for_a_float_is_a_config_error():
    """math.isfinite raises OverflowError on such an int: the number checks catch it."""
    with pytest.raises(sc.ConfigError, match="Dropout: p"):
        sc.Dropout(10 ** 400)
    with pytest.raises(sc.ConfigError, match="SGD: lr"):
        sc.optim.SGD(sc.Dense(2, 2).parameters(), lr=10 ** 400)
