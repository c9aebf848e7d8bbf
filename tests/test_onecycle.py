"""OneCycleLR: the lr and momentum of every step against PyTorch's OneCycleLR (SGD, Adam,
RMSprop; two and three phases; cosine and linear), against the formulas written out, stepped
per batch by fit, resumed, on the command line, and its errors."""
import json
import math

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn import optim
from scratchcnn.app.cli import main
from scratchcnn.app.experiment import TrainConfig, make_scheduler

from conftest import require_torch


def make(kind, lib, param):
    if lib == "np":
        return {"sgd": lambda: optim.SGD([param], lr=0.1, momentum=0.9, nesterov=True),
                "adam": lambda: optim.Adam([param], lr=0.1),
                "rmsprop": lambda: optim.RMSprop([param], lr=0.1, momentum=0.5)}[kind]()
    torch = lib
    return {"sgd": lambda: torch.optim.SGD([param], lr=0.1, momentum=0.9, nesterov=True),
            "adam": lambda: torch.optim.Adam([param], lr=0.1),
            "rmsprop": lambda: torch.optim.RMSprop([param], lr=0.1, momentum=0.5)}[kind]()


def momentum_of(opt):
    return opt.betas[0] if hasattr(opt, "betas") else opt.momentum


@pytest.mark.parametrize("kind", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("kw", [dict(), dict(three_phase=True), dict(anneal_strategy="linear", pct_start=0.25),
                                dict(cycle_momentum=False, div_factor=10.0, final_div_factor=100.0),
                                dict(base_momentum=0.7, max_momentum=0.9, pct_start=0.5)])
def test_lr_and_momentum_match_torch_at_every_step(one_torch_thread, kind, kw):
    torch = require_torch()
    total = 23
    opt = make(kind, "np", sc.Parameter(np.zeros(2, np.float32)))
    sched = optim.OneCycleLR(opt, max_lr=0.4, total_steps=total, **kw)
    topt = make(kind, torch, torch.nn.Parameter(torch.zeros(2)))
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.4, total_steps=total, **kw)
    key = "betas" if kind == "adam" else "momentum"
    for step in range(total):
        group = topt.param_groups[0]
        tm = group[key][0] if kind == "adam" else group[key]
        assert opt.lr == pytest.approx(group["lr"], rel=1e-12, abs=1e-15), step
        assert momentum_of(opt) == pytest.approx(tm, rel=1e-12), step
        topt.step()
        tsched.step()
        sched.step()


def test_the_phases_written_out():
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=101, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    lrs, moms = [opt.lr], [opt.momentum]
    for _ in range(100):
        lrs.append(sched.step())
        moms.append(opt.momentum)
    peak = 0.3 * 101 - 1                                        # the rise ends at step 29.3
    def cos_between(a, b, t):
        return b + (a - b) * (1 + math.cos(math.pi * t)) / 2
    for s in (0, 10, 29, 30, 60, 100):
        if s <= peak:
            lr, m = cos_between(1 / 25, 1.0, s / peak), cos_between(0.95, 0.85, s / peak)
        else:
            t = (s - peak) / (100 - peak)
            lr, m = cos_between(1.0, 1 / 25 / 1e4, t), cos_between(0.85, 0.95, t)
        assert lrs[s] == pytest.approx(lr, rel=1e-12) and moms[s] == pytest.approx(m, rel=1e-12)
    assert max(lrs) <= 1.0 and np.argmax(lrs) in (29, 30)
    assert lrs[-1] == pytest.approx(4e-6) and moms[-1] == pytest.approx(0.95)
    # three phases: back to the starting lr at 2 * peak, then down to the minimum
    opt3 = optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0, momentum=0.9)
    s3 = optim.OneCycleLR(opt3, max_lr=1.0, total_steps=101, pct_start=0.3, three_phase=True, anneal_strategy="linear")
    lrs3 = [opt3.lr] + [s3.step() for _ in range(100)]
    assert lrs3[58] == pytest.approx(1.0 + (1 / 25 - 1.0) * (58 - peak) / peak)
    assert lrs3[100] == pytest.approx(4e-6) and min(lrs3[:59]) == pytest.approx(1 / 25)


def test_fit_steps_it_once_per_batch_and_logs_the_epoch_end_lr():
    sc.manual_seed(0)
    r = np.random.default_rng(3)
    x, y = r.standard_normal((50, 4)).astype(np.float32), r.integers(0, 3, 50)
    model = sc.Sequential(sc.Dense(4, 3), input_shape=(4,))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    spe = math.ceil(50 / 16)                                         # 4 batches per epoch
    sched = optim.OneCycleLR(opt, max_lr=0.2, epochs=3, steps_per_epoch=spe)
    history = model.fit(x, y, epochs=3, batch_size=16, optimizer=opt, callbacks=[sched], verbose=0)
    assert sched.last_epoch == 12
    ref = optim.OneCycleLR(optim.SGD([sc.Parameter(np.zeros(1))], lr=1.0, momentum=0.9), max_lr=0.2, total_steps=12)
    # fit logs the lr used by the epoch's last batch, stepped after it
    assert history.history["lr"] == pytest.approx([ref.values(4 * (e + 1))[0] for e in range(3)], rel=1e-12)
    # the last lr is the formula one step past the cycle's end (as PyTorch's 12th step gives): near 0
    assert opt.lr == pytest.approx(ref.values(12)[0], rel=1e-12) and opt.lr < 0.2 / 25
    # one more epoch is a step past the schedule: refused, not silently continued
    with pytest.raises(sc.ConfigError, match="past its total_steps"):
        model.fit(x, y, epochs=1, batch_size=16, optimizer=opt, callbacks=[sched], verbose=0)


def test_state_dict_resumes_at_the_same_step():
    def fresh():
        opt = optim.Adam([sc.Parameter(np.zeros(1))], lr=0.01)
        return opt, optim.OneCycleLR(opt, max_lr=0.01, total_steps=40)
    opt, sched = fresh()
    for _ in range(17):
        sched.step()
    opt2, sched2 = fresh()
    sched2.load_state_dict(sched.state_dict())
    assert (opt2.lr, opt2.betas) == (opt.lr, opt.betas) and sched2.last_epoch == 17
    assert sched2.step() == sched.step()
    with pytest.raises(sc.ConfigError, match="last_epoch"):
        sched2.load_state_dict({"last_epoch": 41})
    with pytest.raises(sc.ConfigError, match="last_epoch"):
        sched2.load_state_dict({"steps": 3})


def test_make_scheduler_resumes_a_run_at_its_epoch():
    cfg = TrainConfig(schedule="onecycle25", epochs=5, lr=0.3).resolved()
    def opt():
        return optim.SGD([sc.Parameter(np.zeros(1))], lr=0.3, momentum=0.9)
    whole = make_scheduler(cfg, opt(), steps_per_epoch=7)
    assert isinstance(whole, optim.OneCycleLR) and whole.total_steps == 35 and whole.pct_start == 0.25
    for _ in range(14):
        whole.step()
    o = opt()
    resumed = make_scheduler(cfg, o, start_epoch=2, steps_per_epoch=7)
    assert resumed.last_epoch == 14 and o.lr == whole.optimizer.lr and o.momentum == whole.optimizer.momentum


@pytest.mark.parametrize("bad, match", [
    (dict(), "total_steps, or both"),
    (dict(epochs=3), "total_steps, or both"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=10, pct_start=0.0), "pct_start"),
    (dict(total_steps=10, pct_start=1.0), "pct_start"),
    (dict(total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
    (dict(total_steps=10, max_lr=-1), "max_lr"),
    (dict(total_steps=10, three_phase="yes"), "three_phase"),
    (dict(total_steps=10, max_momentum=1.0), "max_momentum"),
    (dict(total_steps=2, pct_start=0.1, three_phase=True), "phase without steps"),
])
def test_bad_arguments_are_config_errors(bad, match):
    opt = optim.SGD([sc.Parameter(np.zeros(1))], lr=0.1)
    kw = {"max_lr": 0.1, **bad}
    with pytest.raises(sc.ConfigError, match=match):
        optim.OneCycleLR(opt, **kw)


@pytest.mark.parametrize("schedule", ["onecycle0", "onecycle100", "onecyclex"])
def test_cli_refuses_a_bad_onecycle(tmp_path, capsys, schedule):
    assert main(["train", "--dataset", "digits", "--schedule", schedule, "--epochs", "1",
                 "--out", str(tmp_path / "r"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "onecycle[P]" in err and len(err.strip().splitlines()) == 1


def test_cli_onecycle_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "oc"
    args = ["train", "--dataset", "digits", "--model", "conv4x3-relu-maxpool2-flatten-dense10",
            "--optimizer", "sgd", "--lr", "0.1", "--schedule", "onecycle40", "--epochs", "2", "--batch-size", "25",
            "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0, capsys.readouterr().err
    history = json.loads((out / "history.json").read_text())["history"]
    n_train = json.loads((out / "config.json").read_text())["train_size"]
    spe = math.ceil(n_train / 25)
    two = optim.OneCycleLR(optim.SGD([sc.Parameter(np.zeros(1))], lr=0.1, momentum=0.9), max_lr=0.1,
                           total_steps=2 * spe, pct_start=0.4)
    three = optim.OneCycleLR(optim.SGD([sc.Parameter(np.zeros(1))], lr=0.1, momentum=0.9), max_lr=0.1,
                             total_steps=3 * spe, pct_start=0.4)
    # the first two epochs ran a two-epoch cycle; the resumed run continues a three-epoch cycle at step 2 * spe
    expected = [two.values(spe)[0], two.values(2 * spe)[0], three.values(3 * spe)[0]]
    assert history["lr"] == pytest.approx(expected, rel=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.6
