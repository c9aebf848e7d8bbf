"""Per-layer gradient norms and update ratios during training (``scratchcnn.diagnostics``): the
step the optimizer took, recovered from its state, is the real change of the weights; the
callback fills the History, which survives the model file; ``scratchcnn train`` records them
and draws them in its report."""
import json
import math
import os

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.diagnostics import GradientDiagnostics, diagnostics_of, gradient_stats, last_update


def small_model():
    sc.manual_seed(0)
    return sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                         sc.Dense(4 * 4 * 4, 3), input_shape=(1, 8, 8))


def data(n=64):
    r = np.random.default_rng(0)
    return r.standard_normal((n, 1, 8, 8)).astype(np.float32), r.integers(0, 3, n)


@pytest.mark.parametrize("make", [
    lambda p: sc.optim.SGD(p, lr=0.1),
    lambda p: sc.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda p: sc.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: sc.optim.SGD(p, lr=0.1, weight_decay=1e-2),
    lambda p: sc.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
    lambda p: sc.optim.AdamW(p, lr=1e-2),
])
def test_the_last_update_is_the_change_of_the_weights(make):
    model = small_model().to(np.float64)
    opt = make(model.parameters())
    x, y = data()
    crit = sc.CrossEntropyLoss()
    for step in range(3):
        opt.zero_grad()
        crit(model(x[step * 16:(step + 1) * 16]), y[step * 16:(step + 1) * 16])
        model.backward(crit.backward())
        before = [p.data.copy() for p in model.parameters()]
        opt.step()
        for p, b, s in zip(model.parameters(), before, opt.state):
            np.testing.assert_allclose(last_update(opt, p, s), b - p.data, rtol=1e-9, atol=1e-15)
    stats = gradient_stats(model, opt)
    assert set(stats) == {"0:Conv2D", "4:Dense"}
    dense = model[4]
    assert stats["4:Dense"]["grad_norm"] == pytest.approx(
        math.sqrt((dense.weight.grad ** 2).sum() + (dense.bias.grad ** 2).sum()))
    assert stats["4:Dense"]["update_ratio"] == pytest.approx(stats["4:Dense"]["update_norm"] /
                                                             stats["4:Dense"]["weight_norm"])


def test_the_callback_records_every_layer_every_epoch_and_survives_the_model_file(tmp_path):
    model = small_model()
    x, y = data()
    model[0].freeze()
    history = model.fit(x, y, epochs=3, batch_size=16, optimizer=sc.optim.Adam(model.parameters(), lr=1e-3),
                        callbacks=[GradientDiagnostics()], verbose=0)
    keys = sorted(k for k in history.history if "/" in k)
    assert keys == ["grad_norm/4:Dense", "update_ratio/4:Dense"]      # the frozen conv is left out
    assert all(len(history.history[k]) == 3 for k in keys)
    assert all(1e-5 < r < 1 for r in history.history["update_ratio/4:Dense"])
    sc.save(model, tmp_path / "m.npz")
    loaded = sc.load(tmp_path / "m.npz")
    assert loaded.history.history["grad_norm/4:Dense"] == history.history["grad_norm/4:Dense"]
    diag = diagnostics_of(loaded.history)
    assert list(diag["update_ratio"]) == ["4:Dense"] and len(diag["grad_norm"]["4:Dense"]) == 3
    # a run resumed without the callback's earlier epochs: the lists stay aligned with the epochs
    model[0].unfreeze()
    model.fit(x, y, epochs=4, batch_size=16, callbacks=[GradientDiagnostics()], verbose=0, initial_epoch=3)
    conv = model.history.history["grad_norm/0:Conv2D"]
    assert len(conv) == 4 and all(math.isnan(v) for v in conv[:3]) and conv[3] > 0


def test_plot_diagnostics_draws_the_recorded_values(tmp_path):
    from scratchcnn.app import plots
    h = sc.History({"loss": [1.0, 0.5], "grad_norm/0:Conv2D": [1.0, 0.5], "update_ratio/0:Conv2D": [1e-3, float("nan")]},
                   [0, 1])
    assert plots.plot_diagnostics(h, tmp_path / "d.png") == tmp_path / "d.png"
    assert (tmp_path / "d.png").stat().st_size > 5000
    assert plots.plot_diagnostics(sc.History({"loss": [1.0]}, [0]), tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    lr = {"lrs": [1e-4, 1e-3, 1e-2], "losses": [2.3, 2.0, None], "smoothed": [2.3, 2.1, None], "chosen": 1e-3,
          "suggested": 1e-4, "blow_up": 1e-2, "optimizer": "SGD", "batch_size": 16}
    assert (plots.plot_lr_range(lr, tmp_path / "lr.png")).stat().st_size > 5000


def test_train_records_the_diagnostics_and_the_report_shows_them(tmp_path):
    from scratchcnn.app.experiment import TrainConfig, train
    run_dir, _ = train(TrainConfig(dataset="digits", model="seed-b", epochs=2, out=str(tmp_path / "run")), verbose=0)
    with open(os.path.join(run_dir, "history.json")) as f:
        history = json.load(f)["history"]
    ratios = {k: v for k, v in history.items() if k.startswith("update_ratio/")}
    assert set(ratios) == {"update_ratio/0:Conv2D", "update_ratio/2:Conv2D", "update_ratio/6:Dense",
                           "update_ratio/8:Dense"}
    assert all(len(v) == 2 and all(0 < a < 1 for a in v) for v in ratios.values())
    assert os.path.getsize(os.path.join(run_dir, "diagnostics.png")) > 5000
    with open(os.path.join(run_dir, "report.md")) as f:
        assert "(diagnostics.png)" in f.read()
