"""End to end: a CNN learns the UCI 8x8 digits; the fit / evaluate / predict API."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app import presets


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    idx = np.random.default_rng(0).permutation(len(x))
    test, train = idx[:360], idx[360:]
    return x[train], d.target[train], x[test], d.target[test]


def _train(digits, seed):
    xtr, ytr, xte, yte = digits
    sc.manual_seed(seed)
    model = presets.small_cnn((1, 8, 8), 10)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    history = model.fit(xtr, ytr, epochs=15, batch_size=32, optimizer=opt,
                        callbacks=[optim.CosineAnnealingLR(opt, T_max=15)], validation_data=(xte, yte),
                        verbose=0)
    return model, history


def test_cnn_learns_digits_to_97_percent_deterministically(digits):
    xtr, ytr, xte, yte = digits
    model, history = _train(digits, seed=0)
    result = model.evaluate(xte, yte)
    assert result["accuracy"] >= 0.97, result
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    assert len(history.history["val_accuracy"]) == 15
    # the lr logged for an epoch is the one used during it: cosine schedule, epoch 14 of 15
    assert history.history["lr"][-1] == pytest.approx(2e-3 * (1 + np.cos(np.pi * 14 / 15)) / 2)
    # same seed, same run
    model2, history2 = _train(digits, seed=0)
    np.testing.assert_array_equal(model.predict_logits(xte), model2.predict_logits(xte))
    assert history.history["loss"] == history2.history["loss"]


def test_predict_predict_proba_and_batches(digits):
    xtr, ytr, xte, yte = digits
    model = presets.seed_b((1, 8, 8), 10)
    model.fit(xtr, ytr, epochs=2, batch_size=64, optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)
    p_small = model.predict_proba(xte, batch_size=7)
    p_big = model.predict_proba(xte, batch_size=1000)
    np.testing.assert_allclose(p_small, p_big, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p_small.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(xte), p_big.argmax(axis=1))
    ev = model.evaluate(xte, yte, batch_size=50)
    assert ev["accuracy"] == pytest.approx(np.mean(model.predict(xte) == yte))


def test_fit_progress_bar_shows_loss_accuracy_and_speed(digits, capsys):
    xtr, ytr, _, _ = digits
    model = presets.seed_b((1, 8, 8), 10)
    model.fit(xtr[:200], ytr[:200], epochs=1, batch_size=50, optimizer=optim.SGD(model.parameters(), lr=0.1),
              verbose=1)
    err = capsys.readouterr().err
    assert "loss=" in err and "acc=" in err and "img/s=" in err


def test_nan_loss_stops_with_epoch_and_batch(digits):
    xtr, ytr, _, _ = digits
    model = presets.seed_b((1, 8, 8), 10)
    x = xtr[:64].copy()
    x[40] = np.nan
    with pytest.raises(sc.ShapeError, match="example 40"):           # refused before training
        model.fit(x, ytr[:64], epochs=1, batch_size=16, shuffle=False, verbose=0)
    x[40] = 3e38                        # finite, but the first convolution overflows on it
    with pytest.raises(sc.TrainingDivergedError) as info, np.errstate(all="ignore"):
        model.fit(x, ytr[:64], epochs=1, batch_size=16, shuffle=False,
                  optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)
    assert info.value.epoch == 1 and info.value.batch == 3
    assert "epoch 1, batch 3" in str(info.value)
    assert "first layer whose output is not finite is layer 0 (Conv2D" in str(info.value)


def test_early_stopping_and_callbacks(digits):
    xtr, ytr, xte, yte = digits
    seen = []

    class Recorder(sc.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    model = presets.seed_b((1, 8, 8), 10)
    stopper = sc.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)
    h = model.fit(xtr, ytr, epochs=10, batch_size=64, optimizer=optim.SGD(model.parameters(), lr=0.1),
                  validation_data=(xte, yte), callbacks=[stopper, Recorder()], verbose=0)
    assert len(h.epoch) == 2 and len(seen) == 2
    assert seen[0][1] == ["accuracy", "loss", "lr", "time", "val_accuracy", "val_loss"]


def test_summary_table_counts_parameters_and_macs(capsys):
    model = presets.seed_a_simple((1, 28, 28), 10)
    text = model.summary()
    assert "Conv2D(1, 8" in text and "(None, 8, 28, 28)" in text and "(None, 1568)" in text
    assert "Total params: 15,770" in text
    assert f"{8 * 28 * 28 * 9 + 8 * 14 * 14 * 4 + 1568 * 10:,}" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_state_dict_names_follow_pytorch():
    model = sc.Sequential(sc.Conv2D(1, 4, 3), sc.BatchNorm2D(4), sc.ReLU(), sc.Flatten(), sc.Dense(4 * 6 * 6, 3))
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "4.weight", "4.bias"]
    assert sd["0.weight"].shape == (4, 1, 3, 3) and sd["4.weight"].shape == (3, 144)
    other = sc.Sequential(sc.Conv2D(1, 4, 3), sc.BatchNorm2D(4), sc.ReLU(), sc.Flatten(), sc.Dense(4 * 6 * 6, 3))
    other.load_state_dict(sd)
    x = np.random.rand(2, 1, 8, 8)
    np.testing.assert_array_equal(model(x), other(x))
    with pytest.raises(sc.ConfigError, match="4.weight"):
        other.load_state_dict({**sd, "4.weight": np.zeros((3, 5))})
    with pytest.raises(sc.ConfigError, match="missing key"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "0.bias"})


def test_freeze_keeps_parameters_fixed(digits):
    xtr, ytr, _, _ = digits
    model = presets.seed_b((1, 8, 8), 10)
    model[0].freeze()
    before = model[0].weight.data.copy()
    model.fit(xtr[:128], ytr[:128], epochs=1, batch_size=32, optimizer=optim.SGD(model.parameters(), lr=0.1),
              verbose=0)
    np.testing.assert_array_equal(model[0].weight.data, before)
    assert model.num_parameters(trainable_only=True) == model.num_parameters() - model[0].num_parameters()


def test_fit_checks_the_validation_data_once_not_every_epoch(monkeypatch):
    """The validation set is checked (finite, labels in range, memory) before the first epoch;
    each epoch's validation pass then runs evaluate's loop without checking it again."""
    import scratchcnn.training as tr
    calls = []
    real = tr._check_xy

    def counting(model, x, y, what="x"):
        calls.append(what)
        return real(model, x, y, what)

    monkeypatch.setattr(tr, "_check_xy", counting)
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 24)
    sc.manual_seed(0)
    model = sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.Flatten(), sc.Dense(32, 3),
                          input_shape=(1, 4, 4))
    hist = model.fit(x[:16], y[:16], epochs=3, batch_size=8, validation_data=(x[16:], y[16:]), verbose=0)
    assert calls.count("fit: validation_data") == 1 and "evaluate" not in calls
    assert len(hist.history["val_loss"]) == 3
    assert hist.history["val_loss"][-1] == pytest.approx(model.evaluate(x[16:], y[16:])["loss"], rel=1e-6)
