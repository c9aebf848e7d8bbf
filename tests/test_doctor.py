"""``sc.doctor`` / ``scratchcnn doctor``: each bug of the reference projects, reproduced, is caught
by its check's id; the healthy presets pass; the user's model, optimizer and random state are
left alone; the command line prints the table, JSON and the range test's plot.

The bugs: seed C divided its inputs by 255 twice (``input-scale``) and its max-pool backward
returned inside the loop, passing a gradient through the first window only (``gradcheck``);
seed B initialised every weight U(-1, 1), first loss 22.6 instead of ln 10 (``initial-loss``);
plus a learning rate 100x too large (``learning-rate``), every ReLU dead from a large negative
bias (``activations``) and labels 1..10 for a 10-class model (``labels``).

Small budgets keep it quick: the UCI digits (8x8), 256 examples, 100 steps.
"""
import json
import os

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.app.cli import main
from scratchcnn.app.experiment import TrainConfig, build_model, make_optimizer
from scratchcnn.datasets import load_dataset
from scratchcnn.doctor import CHECKS, DoctorReport

FASHION = "/usr/share/datasets/fashion-mnist/"
BUDGET = dict(examples=256, steps=100)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits", val_split=0.1, seed=0)
    return d.x_train, d.y_train


def preset(name, shape=(1, 8, 8), lr=None, dataset="digits"):
    """(model, optimizer, batch size) of a preset, as ``scratchcnn train`` builds them."""
    cfg = TrainConfig(dataset=dataset, model=name, lr=lr).resolved()
    sc.manual_seed(0)
    model = build_model(name, shape, 10)
    return model, make_optimizer(cfg, model.parameters()), cfg.batch_size


def run(name, x, y, checks=None, lr=None, change=None, **kw):
    model, opt, batch = preset(name, tuple(x.shape[1:]), lr)
    if change is not None:
        change(model)
    return sc.doctor(model, x, y, optimizer=opt, batch_size=batch, checks=checks, **{**BUDGET, **kw})


class FirstWindowMaxPool2D(sc.MaxPool2D, register=False):
    """Seed C's max-pool: its backward returned inside the loop over windows, so only the first
    window (top-left) passes its gradient on."""

    def backward(self, grad_out):
        dx = super().backward(grad_out)
        kh, kw = self.kernel_size
        dx[:, :, kh:, :] = 0
        dx[:, :, :, kw:] = 0
        return dx


# ---- the reproduced bugs, each caught by its id -----------------------------------
def test_inputs_divided_by_255_twice_fail_input_scale(digits):
    x, y = digits
    report = run("seed-c", x / 255, y, checks=["input-scale"])
    f = report["input-scale"]
    assert f.status == "fail" and "twice" in f.message
    assert f.evidence["max"] == pytest.approx(1 / 255, rel=1e-3)
    assert run("seed-c", x, y, checks=["input-scale"])["input-scale"].status == "ok"
    assert run("seed-c", x, y, checks="input-scale")["input-scale"].status == "ok"      # one name as a string
    assert run("seed-c", x * 255, y, checks=["input-scale"])["input-scale"].status == "warn"      # raw 0..255
    blank = run("seed-c", np.zeros_like(x), y, checks=["input-scale"])["input-scale"]
    assert blank.status == "fail" and "zero" in blank.message


def test_uniform_minus_one_one_initialisation_fails_initial_loss(digits):
    x, y = digits

    def seed_b_init(model):          # seed B: every weight U(-1, 1)
        r = np.random.default_rng(0)
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.data[...] = r.uniform(-1, 1, p.shape)

    f = run("seed-b", x, y, checks=["initial-loss"], change=seed_b_init)["initial-loss"]
    assert f.status == "fail" and f.evidence["loss"] > 3 * np.log(10)
    assert "U(-1, 1)" in f.fix and max(f.evidence["init_scale_vs_he"].values()) > 2
    healthy = run("seed-b", x, y, checks=["initial-loss"])["initial-loss"]
    assert healthy.status == "ok" and healthy.evidence["ratio"] < 1.5


def test_a_max_pool_passing_only_the_first_window_fails_gradcheck(digits):
    x, y = digits

    def break_pool(model):
        i = next(i for i, layer in enumerate(model.layers) if isinstance(layer, sc.MaxPool2D))
        model._modules[str(i)] = FirstWindowMaxPool2D(2)

    report = run("seed-c", x, y, checks=["gradcheck", "overfit-batch"], change=break_pool)
    f = report["gradcheck"]
    assert f.status == "fail" and "0:Conv2D" in f.message
    assert f.evidence["suspects"] == ["0:Conv2D", "1:FirstWindowMaxPool2D", "2:Flatten"]
    assert f.evidence["relative_error"]["0:Conv2D"] > 1e-2 and f.evidence["relative_error"]["3:Dense"] < 1e-4
    assert run("seed-c", x, y, checks=["gradcheck"])["gradcheck"].status == "ok"


@pytest.mark.parametrize("name", ["seed-b", "small"])
def test_a_learning_rate_100x_too_large_fails_learning_rate(digits, name):
    x, y = digits
    lr = preset(name)[1].lr
    report = run(name, x, y, checks=["learning-rate"], lr=100 * lr)
    f = report["learning-rate"]
    assert f.status == "fail", f
    assert f.evidence["chosen"] == pytest.approx(100 * lr) and f.evidence["suggested"] < 10 * lr
    assert report.lr_range and len(report.lr_range["lrs"]) == len(report.lr_range["losses"])
    assert run(name, x, y, checks=["learning-rate"])["learning-rate"].status == "ok"


def test_relus_killed_by_a_large_negative_bias_fail_activations(digits):
    x, y = digits

    def kill(model):
        model[0].bias.data[...] = -100          # seed-a-simple: Conv2D -> ReLU

    report = run("seed-a-simple", x, y, checks=["activations", "gradient-flow"], change=kill)
    f = report["activations"]
    assert f.status == "fail" and f.evidence["dead_relu"]["1:ReLU"] == 1.0 and "-100" in f.message
    assert report["gradient-flow"].status == "fail" and "0:Conv2D" in report["gradient-flow"].message


def test_labels_counted_from_one_fail_labels_and_the_rest_still_runs(digits):
    x, y = digits
    report = run("small", x, y + 1, checks=["labels", "initial-loss"])
    f = report["labels"]
    assert f.status == "fail" and "1..10" in f.message and "subtract 1" in f.fix
    assert f.evidence["min"] == 1 and f.evidence["max"] == 10 and f.evidence["outputs"] == 10
    assert report["initial-loss"].status == "ok"          # on the examples whose labels fit
    imbalanced = run("small", x[(y > 0) | (np.arange(len(y)) % 10 == 0)], y[(y > 0) | (np.arange(len(y)) % 10 == 0)],
                     checks=["labels"])["labels"]
    assert imbalanced.status == "warn"


# ---- healthy models pass -------------------------------------------------------------
def test_the_small_preset_on_the_digits_has_no_failure(digits):
    x, y = digits
    report = run("small", x, y)
    assert [f.id for f in report.findings] == list(CHECKS)
    assert all(f.status != "fail" for f in report.findings), str(report)
    assert report["gradcheck"].status == "ok" and report["overfit-batch"].status == "ok"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST is not installed")
def test_strong_light_on_fashion_mnist_has_no_failure():
    d = load_dataset("fashion-mnist", data_dir=FASHION, per_class=40, test_per_class=1, val_split=0.0, seed=0)
    model, opt, _ = preset("strong-light", (1, 28, 28), dataset="fashion-mnist")
    threads = sc.get_num_threads()
    sc.set_num_threads(1)            # as the command line runs it: two BLAS threads fight on a busy machine
    try:
        report = sc.doctor(model, d.x_train, d.y_train, optimizer=opt, batch_size=32, examples=200, steps=80)
    finally:
        sc.set_num_threads(threads)
    assert all(f.status != "fail" for f in report.findings), str(report)


# ---- what the doctor promises -----------------------------------------------------
def test_the_users_model_optimizer_and_random_state_are_untouched_and_runs_repeat(digits):
    x, y = digits
    model, opt, batch = preset("seed-b")
    r = np.random.default_rng(3)
    for p in model.parameters():          # a trained-looking state: non-zero grads, optimizer buffers
        p.grad[...] = r.standard_normal(p.shape)
    opt.step()
    weights, grads = model.state_dict(), [p.grad.copy() for p in model.parameters()]
    opt_state = opt.state_dict()
    rng = sc.random.get_state()
    kw = dict(optimizer=opt, batch_size=batch, examples=128, steps=40, checks=["gradient-flow", "learning-rate"])
    first = sc.doctor(model, x, y, **kw)
    assert sc.random.get_state() == rng
    assert all(np.array_equal(a, model.state_dict()[k]) for k, a in weights.items())
    assert all(np.array_equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    after = opt.state_dict()
    assert after["steps"] == opt_state["steps"] and after["config"] == opt_state["config"]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(opt_state["state"], after["state"]) for k in a)
    second = sc.doctor(model, x, y, **kw)
    assert first.to_list() == second.to_list()            # deterministic for a seed
    assert sc.doctor(model, x, y, seed=1, **kw).to_list() != first.to_list()


def test_the_report_has_stable_fields_and_a_readable_table(digits):
    x, y = digits
    report = run("seed-c", x / 255, y, checks=["input-scale", "labels", "initial-loss"])
    assert isinstance(report, DoctorReport) and report.status == "fail" and len(report) == 3
    for f in report.to_list():
        assert {"id", "status", "message", "evidence"} <= set(f) and f["status"] in ("ok", "warn", "fail")
        json.dumps(f, allow_nan=False)
    text = str(report)
    assert "input-scale" in text and "FAIL" in text and "fix:" in text and "evidence:" in text
    with pytest.raises(sc.ConfigError, match="unknown check"):
        sc.doctor(preset("seed-c")[0], x, y, checks=["vibes"])
    with pytest.raises(sc.ShapeError):
        sc.doctor(preset("seed-c", (1, 28, 28))[0], x, y)


# ---- the command line -------------------------------------------------------------
def test_cli_doctor_prints_json_writes_the_plot_and_exits_1_on_a_failure(tmp_path, capsys):
    out = tmp_path / "doctor"
    code = main(["doctor", "--model", "seed-c", "--dataset", "digits", "--input-scale", "1/255", "--json",
                 "--steps", "40", "--examples", "128", "--out", str(out)])
    findings = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [f["id"] for f in findings] == list(CHECKS)
    assert all({"id", "status", "message", "evidence"} <= set(f) for f in findings)
    assert {f["id"]: f["status"] for f in findings}["input-scale"] == "fail"
    assert (out / "lr_range.png").stat().st_size > 5000
    saved = json.loads((out / "doctor.json").read_text())
    assert saved["findings"] == findings and saved["lr_range"]["lrs"]


def test_cli_doctor_table_and_usage_errors(capsys):
    code = main(["doctor", "--model", "seed-c", "--dataset", "digits", "--steps", "20", "--examples", "64",
                 "--checks", "input-scale,labels"])
    text = capsys.readouterr().out
    assert code == 0 and "scratchcnn doctor: 2 checks" in text and "input-scale" in text and "OK" in text
    assert main(["doctor", "--checks", "vibes", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown check 'vibes'" in err
    assert main(["doctor", "--input-scale", "0", "--dataset", "digits"]) == 2
    assert "--input-scale" in capsys.readouterr().err
