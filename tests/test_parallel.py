"""fit(..., workers=N): data-parallel threads (scratchcnn.parallel).

Checked: without BatchNorm and dropout N workers take the one-worker steps (float64, to
rounding), for mean and sum losses, uneven and tiny batches; with BatchNorm one step's
gradient is the size-weighted mean of each shard's own gradient (ghost batch norm) and the
running estimates the mean of the shards' updates; dropout in workers is repeatable and
leaves the run's shuffling as it was; errors in a worker reach the caller as they are; the
replicas share the weights and nothing else; the thread-local scratch and generator; the
command line's --workers, recorded in config.json and resumable; a real training run.
"""
import copy
import json
import threading

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app.cli import main
from scratchcnn.kernels.workspace import shared_workspace
from scratchcnn.losses import CrossEntropyLoss, MSELoss
from scratchcnn.parallel import DataParallel, replicate
from scratchcnn.random import get_rng, thread_rng


def data(n=64, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 1, 8, 8)), r.integers(0, 3, n)


def plain_model():
    sc.manual_seed(1)
    return sc.Sequential(sc.Conv2D(1, 4, 3, padding=1), sc.ReLU(), sc.MaxPool2D(2), sc.Flatten(),
                         sc.Dense(64, 3), input_shape=(1, 8, 8)).to(np.float64)


def bn_model(dropout=0.0):
    sc.manual_seed(2)
    layers = [sc.Conv2D(1, 4, 3, padding=1, bias=False), sc.BatchNorm2D(4), sc.ReLU(), sc.MaxPool2D(2),
              sc.Flatten()]
    layers += [sc.Dropout(dropout)] if dropout else []
    layers += [sc.Dense(64, 3)]
    return sc.Sequential(*layers, input_shape=(1, 8, 8)).to(np.float64)


def trained(make, workers, loss=None, batch_size=10, n=64, epochs=2, **kw):
    x, y = data(n)
    model = make()
    sc.manual_seed(5)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, loss=loss, verbose=0, workers=workers,
              optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9), **kw)
    return model


@pytest.mark.parametrize("workers", [2, 3, 5])
@pytest.mark.parametrize("loss, batch_size", [(None, 10), (None, 7), (CrossEntropyLoss(reduction="sum"), 9),
                                              (CrossEntropyLoss(label_smoothing=0.2), 16)])
def test_without_batchnorm_workers_take_the_one_worker_steps(workers, loss, batch_size):
    one = trained(plain_model, 1, loss=copy.deepcopy(loss), batch_size=batch_size)
    many = trained(plain_model, workers, loss=copy.deepcopy(loss), batch_size=batch_size)
    for (name, p), q in zip(one.named_parameters(), many.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-11, atol=1e-12, err_msg=name)
    assert many.history.history["loss"] == pytest.approx(one.history.history["loss"], rel=1e-11)
    assert many.history.history["accuracy"] == one.history.history["accuracy"]


def test_mse_targets_and_a_last_batch_too_small_to_split():
    r = np.random.default_rng(4)
    x, t = r.standard_normal((21, 5)), r.standard_normal((21, 2))       # 21 = 2 * 10 + 1: last batch of one
    def make():
        sc.manual_seed(3)
        return sc.Sequential(sc.Dense(5, 6), sc.ReLU(), sc.Dense(6, 2), input_shape=(5,)).to(np.float64)
    models = []
    for workers in (1, 4):
        m = make()
        sc.manual_seed(0)
        m.fit(x, t, epochs=3, batch_size=10, loss=MSELoss(), verbose=0, workers=workers,
              optimizer=optim.Adam(m.parameters(), lr=0.01))
        models.append(m)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-10, atol=1e-12)


def shard_gradients(model, x, y, cuts):
    """Each shard's own gradient and BatchNorm update, on fresh copies of ``model``."""
    grads, running = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        m = copy.deepcopy(model)
        crit = CrossEntropyLoss()
        m.zero_grad()
        crit(m(x[a:b]), y[a:b])
        m.backward(crit.backward())
        grads.append([p.grad.copy() for p in m.parameters()])
        running.append((m.layers[1].running_mean.copy(), m.layers[1].running_var.copy()))
    return grads, running


@pytest.mark.parametrize("workers, n", [(2, 12), (3, 14)])
def test_with_batchnorm_each_shard_normalises_itself(workers, n):
    x, y = data(n, seed=7)
    model = bn_model()
    cuts = [n * i // workers for i in range(workers + 1)]
    grads, running = shard_gradients(model, x, y, cuts)
    dp = DataParallel(model, CrossEntropyLoss(), workers)
    try:
        model.zero_grad()
        out, loss = dp.forward_backward(x, y)
    finally:
        dp.close()
    sizes = np.diff(cuts) / n
    for i, p in enumerate(model.parameters()):
        expected = sum(w * g[i] for w, g in zip(sizes, grads))
        np.testing.assert_allclose(p.grad, expected, rtol=1e-11, atol=1e-13)
    bn = model.layers[1]
    np.testing.assert_allclose(bn.running_mean, np.mean([r[0] for r in running], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, np.mean([r[1] for r in running], axis=0), rtol=1e-12)
    for rep in dp.replicas[1:]:                     # every replica holds the same estimates after the step
        np.testing.assert_array_equal(rep.layers[1].running_mean, bn.running_mean)
        assert rep.layers[1].running_mean is not bn.running_mean
    assert out.shape == (n, 3)
    # the outputs in batch order: shard by shard, the train-mode forward of each shard alone
    for a, b in zip(cuts[:-1], cuts[1:]):
        np.testing.assert_allclose(out[a:b], copy.deepcopy(bn_model())(x[a:b]), rtol=1e-12)


def test_replicas_share_the_weights_and_nothing_else():
    model = bn_model()
    model.metadata["note"] = "kept"
    model.optimizer = optim.SGD(model.parameters(), lr=0.1)
    model(np.zeros((2, 1, 8, 8)))                                   # a forward cache to leave behind
    rep = replicate(model)
    for p, q in zip(model.parameters(), rep.parameters()):
        assert q.data is p.data and q.grad is not p.grad and not np.shares_memory(q.grad, p.grad)
    assert rep.layers[1].running_mean is not model.layers[1].running_mean
    assert rep.optimizer is None and rep.metadata is None and model.metadata == {"note": "kept"}
    model.parameters()[0].data[...] += 1.0                          # an in-place step reaches the replica
    assert np.array_equal(rep.parameters()[0].data, model.parameters()[0].data)


def test_dropout_in_workers_is_repeatable_and_keeps_the_run_order():
    a = trained(lambda: bn_model(0.3), 2)
    b = trained(lambda: bn_model(0.3), 2)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    c = trained(lambda: bn_model(0.3), 1)
    assert not all(np.allclose(p.data, q.data) for p, q in zip(a.parameters(), c.parameters()))
    # the shared generator's stream (shuffling, augmentation) is the same with or without workers
    x, y = data(40)
    states = []
    for workers in (1, 3):
        m = plain_model()
        sc.manual_seed(9)
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, workers=workers)
        states.append(get_rng().random())
    assert states[0] == states[1]


def test_a_layer_error_in_a_worker_reaches_the_caller():
    model = plain_model()
    x, y = data(20)
    y = y.copy()
    y[15] = 7                                   # a label out of range, in the second worker's shard
    with pytest.raises(sc.LabelError):
        model.fit(x, y, epochs=1, batch_size=20, verbose=0, workers=2)
    for name, bad in [("workers", 0), ("workers", 1.5), ("workers", True), ("workers", "2")]:
        with pytest.raises(sc.ConfigError, match="workers must be an integer >= 1"):
            model.fit(x[:4], y[:4] % 3, epochs=1, verbose=0, **{name: bad})


def test_diverging_with_workers_is_the_usual_error():
    model = plain_model()
    x, y = data(20)
    x = x * 1e3
    with pytest.raises(sc.TrainingDivergedError):
        model.fit(x, y, epochs=20, batch_size=10, verbose=0, workers=2,
                  optimizer=optim.SGD(model.parameters(), lr=1e6))


def test_freezing_and_train_mode_follow_the_model():
    model = bn_model()
    model.layers[0].weight.requires_grad = False
    before = model.layers[0].weight.data.copy()
    x, y = data(32)
    model.eval()                                   # fit trains in train mode whatever the model was in
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, workers=2)
    np.testing.assert_array_equal(model.layers[0].weight.data, before)
    assert model.training and model.layers[1].num_batches_tracked == 2


def test_scratch_buffers_and_generators_are_per_thread():
    mine = shared_workspace.flat("test-parallel", (4,), np.float32)
    theirs, drawn = [], []
    gen = np.random.default_rng(0)

    def other():
        theirs.append(shared_workspace.flat("test-parallel", (4,), np.float32))
        with thread_rng(gen):
            drawn.append(get_rng() is gen)
        drawn.append(get_rng() is gen)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert not np.shares_memory(mine, theirs[0])
    assert drawn == [True, False] and get_rng() is not gen


def test_a_real_run_with_two_workers_learns_as_one_does():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target
    accs = []
    for workers in (1, 2):
        sc.manual_seed(0)
        m = sc.Sequential(sc.Conv2D(1, 8, 3, padding=1, bias=False), sc.BatchNorm2D(8), sc.ReLU(), sc.MaxPool2D(2),
                          sc.Flatten(), sc.Dropout(0.2), sc.Dense(128, 10), input_shape=(1, 8, 8))
        m.fit(x[:1400], y[:1400], epochs=10, batch_size=32, verbose=0, workers=workers,
              optimizer=optim.Adam(m.parameters(), lr=3e-3))
        accs.append(m.evaluate(x[1400:], y[1400:])["accuracy"])
    assert accs[1] > 0.9 and abs(accs[0] - accs[1]) < 0.04, accs


def test_cli_workers_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "w2"
    args = ["train", "--dataset", "digits", "--model", "conv4x3-bn-relu-maxpool2-flatten-dense10", "--workers", "2",
            "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["workers"] == 2
    assert "| workers | 2 |" in (out / "report.md").read_text()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert len(json.loads((out / "history.json").read_text())["epoch"]) == 2
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.5
    capsys.readouterr()
    assert main(["train", "--dataset", "digits", "--workers", "0", "--out", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err
    assert "workers" in err and len(err.strip().splitlines()) == 1
