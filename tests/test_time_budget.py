"""TimeBudget: training for a number of seconds, with a cosine over the time (``fit`` callbacks,
``train --time-limit``). A fake clock advances by one second per batch, so every stop and every
learning rate is exact."""
import json
import math
import os

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app.experiment import TrainConfig, make_scheduler, make_time_budget, read_run_config, train
from scratchcnn.callbacks import TimeBudget


class FakeClock:
    """Seconds that advance by ``step`` each time a batch ends (read by TimeBudget and by the
    test callback below)."""

    def __init__(self, step=1.0):
        self.now, self.step = 100.0, step

    def __call__(self):
        return self.now


class Tick(sc.Callback):
    """Advances the fake clock after each batch, before TimeBudget reads it; records the lr each
    batch ran with."""

    def __init__(self, clock, optimizer=None):
        self.clock, self.optimizer, self.lrs = clock, optimizer, []

    def on_batch_end(self, batch, logs=None):
        self.clock.now += self.clock.step
        if self.optimizer is not None:
            self.lrs.append(self.optimizer.lr)


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(TimeBudget, "clock", staticmethod(c))
    return c


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, n)


def _model():
    sc.manual_seed(0)
    return sc.Sequential(sc.Conv2D(1, 2, 3, padding="same"), sc.ReLU(), sc.Flatten(), sc.Dense(32, 3),
                         input_shape=(1, 4, 4))


def test_stops_within_one_batch_mid_epoch_and_logs_the_partial_epoch(clock):
    x, y = _data(40)                               # 4 batches of 10 per epoch
    model = _model()
    budget = TimeBudget(5.5)
    seen = []

    class Count(sc.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    hist = model.fit(x, y, epochs=50, batch_size=10, optimizer=optim.SGD(model.parameters(), lr=0.1),
                     callbacks=[Tick(clock), budget, Count()], verbose=0)
    # the clock reads 1, 2, ..., 6 s after the batches: the 6th batch (the 2nd of epoch 2) crosses 5.5 s
    assert len(seen) == 6 and seen == [0, 1, 2, 3, 0, 1]
    assert budget.stopped and model.stop_training
    assert hist.epoch == [0, 1]                    # the cut epoch is logged, its loss over its two batches
    assert len(hist.history["loss"]) == 2 and all(math.isfinite(v) for v in hist.history["loss"])
    assert budget.elapsed() == pytest.approx(6.0)


def test_the_learning_rate_follows_a_cosine_over_the_time(clock):
    x, y = _data(40)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    budget = TimeBudget(8.0, optimizer=opt, eta_min=1e-4)
    tick = Tick(clock, opt)
    model.fit(x, y, epochs=10, batch_size=10, optimizer=opt, callbacks=[tick, budget], verbose=0)
    # batch k (k = 0..7) ran with the lr of t = k seconds; the budget is spent after 8 batches
    want = [1e-4 + (0.01 - 1e-4) * (1 + math.cos(math.pi * k / 8.0)) / 2 for k in range(8)]
    assert tick.lrs == pytest.approx(want, rel=1e-12)
    assert opt.lr == pytest.approx(1e-4)           # annealed fully at the budget
    assert len(model.history.epoch) == 2           # 8 batches: two whole epochs, then the stop


def test_without_an_optimizer_the_learning_rate_is_left_alone(clock):
    x, y = _data(20)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.05)
    model.fit(x, y, epochs=3, batch_size=10, optimizer=opt, callbacks=[Tick(clock), TimeBudget(100.0)], verbose=0)
    assert opt.lr == 0.05 and len(model.history.epoch) == 3    # epochs is the upper bound


def test_a_spent_budget_trains_nothing(clock):
    x, y = _data(20)
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    opt = optim.SGD(model.parameters(), lr=0.1)
    budget = TimeBudget(10.0, optimizer=opt, spent=12.0)
    hist = model.fit(x, y, epochs=3, batch_size=10, optimizer=opt, callbacks=[budget], verbose=0)
    assert hist.epoch == [] and budget.stopped
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    # spent counts towards the cosine: a resumed run continues where the clock was
    half = TimeBudget(10.0, optimizer=opt, spent=5.0)
    half.set_model(model)
    half.on_train_begin()
    assert opt.lr == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs, match", [
    ({"seconds": 0}, "seconds must be a finite number > 0"),
    ({"seconds": float("nan")}, "seconds"),
    ({"seconds": "60"}, "seconds"),
    ({"seconds": 10, "optimizer": "adam"}, "optimizer must be a scratchcnn optimizer"),
    ({"seconds": 10, "spent": -1}, "spent must be"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(sc.ConfigError, match=match):
        TimeBudget(**kwargs)


def test_eta_min_above_the_lr_is_refused():
    model = _model()
    with pytest.raises(sc.ConfigError, match="eta_min .* must not exceed"):
        TimeBudget(10, optimizer=optim.SGD(model.parameters(), lr=0.01), eta_min=0.1)


def test_a_batch_callback_that_sets_stop_training_ends_the_epoch_there():
    """Keras' contract: ``model.stop_training = True`` in on_batch_end stops after that batch."""
    x, y = _data(40)
    model = _model()

    class StopAt(sc.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    ran = []

    class Count(sc.Callback):
        def on_batch_end(self, batch, logs=None):
            ran.append(batch)

    model.fit(x, y, epochs=4, batch_size=10, callbacks=[StopAt(), Count()], verbose=0)
    assert ran == [0, 1, 2] and model.history.epoch == [0]


# ---- the command line / TrainConfig ---------------------------------------------------------------------
def test_time_limit_with_cosine_replaces_the_epoch_cosine():
    cfg = TrainConfig(model="small", epochs=30, schedule="cosine", time_limit=60.0).resolved()
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    assert make_scheduler(cfg, opt) is None
    budget = make_time_budget(cfg, opt)
    assert isinstance(budget, TimeBudget) and budget.optimizer is opt and budget.seconds == 60.0
    step = TrainConfig(model="small", epochs=30, schedule="step5", time_limit=60.0).resolved()
    assert isinstance(make_scheduler(step, opt), optim.StepLR)
    assert make_time_budget(step, opt).optimizer is None        # stops only; the StepLR schedules
    assert make_time_budget(TrainConfig(model="small").resolved(), opt) is None
    hist = sc.History({"time": [10.0, 11.5, 12.0]}, [0, 1, 2])
    assert make_time_budget(cfg, opt, start_epoch=2, history=hist).spent == pytest.approx(21.5)


def test_train_stops_at_the_time_limit_and_resumes_with_the_time_spent(tmp_path, clock, monkeypatch):
    out = str(tmp_path / "run")
    cfg = TrainConfig(dataset="digits", model="small", epochs=50, batch_size=64, schedule="cosine", per_class=20,
                      test_per_class=5, val_split=0.0, time_limit=5.0, out=out)
    # each batch takes one fake second: 200 images / 64 = 4 batches per epoch; the 5th batch spends the budget
    real = TimeBudget.on_batch_end

    def tick(self, batch, logs=None):
        clock.now += 1.0
        real(self, batch, logs)

    monkeypatch.setattr(TimeBudget, "on_batch_end", tick)
    run_dir, metrics = train(cfg, verbose=0)
    assert os.path.exists(os.path.join(run_dir, "model.npz"))
    saved = read_run_config(run_dir)
    assert saved.time_limit == 5.0
    model = sc.load(os.path.join(run_dir, "last.npz"))
    assert len(model.history.epoch) == 2                        # one whole epoch and one batch of the second
    assert model.optimizer.lr == pytest.approx(0.0, abs=1e-12)  # the cosine reached its end at the limit
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["config"]["time_limit"] == 5.0
    assert metrics["stopped_by_time_limit"] is True and metrics["epochs_run"] == 2
    with open(os.path.join(run_dir, "report.md")) as f:
        assert "Stopped by the time limit** (5 s) in epoch 2" in f.read()


def test_the_command_line_takes_time_limit(tmp_path):
    from scratchcnn.app.cli import main
    out = tmp_path / "cli"
    rc = main(["train", "--model", "small", "--epochs", "500", "--time-limit", "0.5", "--schedule", "cosine",
               "--per-class", "10", "--test-per-class", "5", "--val-split", "0", "--quiet", "--out", str(out)])
    assert rc == 0
    model = sc.load(str(out / "last.npz"))
    assert 1 <= len(model.history.epoch) < 500                 # stopped by the half second, not the epochs
    assert main(["train", "--time-limit", "0", "--quiet", "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()


def test_an_optimizer_annealed_to_lr_0_saves_and_loads(tmp_path):
    """A cosine with eta_min 0 ends at lr 0 (epoch CosineAnnealingLR with T_max < epochs did too):
    the model file must load, its current lr 0 and its initial lr kept; a negative lr is refused."""
    x, y = _data(20)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    ckpt = sc.ModelCheckpoint(str(tmp_path / "m.npz"))
    model.fit(x, y, epochs=3, batch_size=10, optimizer=opt,
              callbacks=[optim.CosineAnnealingLR(opt, T_max=1), ckpt], verbose=0)
    back = sc.load(str(tmp_path / "m.npz"))
    assert back.optimizer.lr == pytest.approx(opt.lr) and back.optimizer.initial_lr == 0.01
    opt.lr = 0.0
    model.save(str(tmp_path / "zero.npz"))
    back = sc.load(str(tmp_path / "zero.npz"))
    assert back.optimizer.lr == 0.0 and back.optimizer.initial_lr == 0.01
    sd = opt.state_dict()
    sd["config"]["lr"] = -0.1
    with pytest.raises(sc.ConfigError, match="lr must be a finite number >= 0"):
        optim.Adam(model.parameters(), lr=0.01).load_state_dict(sd)
    with pytest.raises(sc.ConfigError, match="lr must be a finite number > 0"):
        optim.Adam(model.parameters(), lr=0.0)          # a new optimizer still needs a learning rate
