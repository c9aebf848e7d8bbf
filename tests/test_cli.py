"""The command line, end to end: train writes a run directory; evaluate, predict, summary,
gradcheck, experiments; resume; Ctrl-C; clear errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import scratchcnn as sc
from scratchcnn.app.cli import main

RUN_FILES = ["model.npz", "last.npz", "config.json", "history.csv", "history.json", "metrics.json",
             "report.md", "history.png", "confusion.png", "filters.png", "feature_maps.png", "misclassified.png"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits-seed-b"
    assert main(["train", "--dataset", "digits", "--model", "seed-b", "--epochs", "3", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_train_writes_the_run_directory(digits_run, capsys):
    for name in RUN_FILES:
        assert (digits_run / name).stat().st_size > 0, name
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert 0.1 < metrics["accuracy"] <= 1.0
    report = (digits_run / "report.md").read_text()
    assert "confusion.png" in report and "seed-b" in report and "Test metrics" in report
    history = json.loads((digits_run / "history.json").read_text())
    assert len(history["epoch"]) == 3
    config = json.loads((digits_run / "config.json").read_text())
    assert config["config"]["lr"] == 0.1 and config["config"]["batch_size"] == 128   # seed B's settings
    model = sc.load(digits_run / "model.npz")
    assert model.metadata["class_names"] == [str(i) for i in range(10)]


def test_evaluate_summary_gradcheck_experiments(digits_run, capsys):
    assert main(["evaluate", str(digits_run / "model.npz")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["summary", str(digits_run / "model.npz")]) == 0
    assert "Total params: 2,506" in capsys.readouterr().out
    assert main(["summary", "conv8x3-relu-maxpool2-flatten-dense10"]) == 0
    assert "Dense(1352, 10)" in capsys.readouterr().out
    assert main(["gradcheck", "seed-e", "--classes", "3", "--batch", "2"]) == 0
    assert "worst relative error" in capsys.readouterr().out
    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    for name in ["seed-a-simple", "seed-a-complex", "seed-b", "seed-c", "seed-d", "seed-e", "strong"]:
        assert name in out


def test_predict_a_drawn_png(digits_run, tmp_path, capsys):
    """Draw a '1' (a vertical bar) and a '0' (a ring) as large RGB PNGs and classify them."""
    one = np.zeros((64, 64, 3), np.uint8)
    one[8:56, 28:36] = 255
    yy, xx = np.mgrid[:64, :64]
    ring = np.abs(np.hypot(yy - 32, xx - 32) - 20) < 4
    zero = np.zeros((64, 64, 3), np.uint8)
    zero[ring] = 255
    Image.fromarray(one).save(tmp_path / "one.png")
    Image.fromarray(zero).convert("L").save(tmp_path / "zero.jpg")
    assert main(["predict", str(digits_run / "model.npz"), str(tmp_path / "one.png"), str(tmp_path / "zero.jpg")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        probs = [float(tok) for tok in line.split(":")[-1].replace(",", " ").split()[1::2]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 <= probs[0] <= 1


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert main(["summary", "conv8x3-relu-convx3-flatten-dense10"]) == 2
    err = capsys.readouterr().err
    assert "convx3" in err and "^^^^^^" in err
    assert main(["train", "--dataset", "nosuchdata", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "nosuchdata" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    assert main(["evaluate", str(tmp_path / "bad.npz"), "--dataset", "digits"]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert main(["train", "--model", "conv4x3-flatten-dense7", "--epochs", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "dense10" in capsys.readouterr().err


def test_resume_continues_the_history(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model", "seed-b", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [0, 1, 2, 3]
    train_size = json.loads((out / "config.json").read_text())["train_size"]
    assert sc.load(out / "last.npz").optimizer.steps == 4 * int(np.ceil(train_size / 128))


def test_ctrl_c_finishes_the_epoch_and_keeps_the_models(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "scratchcnn", "train", "--model", "seed-b", "--epochs", "500",
                             "--batch-size", "8", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 60
    while not (out / "last.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "Ctrl-C" in output
    assert (out / "model.npz").exists() and (out / "last.npz").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs_run"] < 500


def test_train_textbook_runs_the_plain_layer_code_with_the_same_results(tmp_path):
    """--textbook: every layer on its own forward/backward (no fast kernels); the same network
    trained both ways ends with the same losses to rounding, and the report says which ran."""
    spec = "conv8x3same-relu-conv8x3same-bn-relu-maxpool2-flatten-dense10"    # 1-channel, Winograd, BN, tiled pool
    runs = {}
    for name, extra in (("fast", []), ("textbook", ["--textbook"])):
        out = tmp_path / name
        assert main(["train", "--model", spec, "--epochs", "2", "--per-class", "40", "--out", str(out),
                     "--quiet"] + extra) == 0
        runs[name] = out
    assert not sc.textbook_enabled()                    # the switch is back off after the run
    metrics = {k: json.loads((v / "metrics.json").read_text()) for k, v in runs.items()}
    assert metrics["textbook"]["code_path"] == "textbook" and metrics["fast"]["code_path"] == "fast kernels"
    assert "Trained on the **textbook** path" in (runs["textbook"] / "report.md").read_text()
    assert "Trained on the **fast kernels** path" in (runs["fast"] / "report.md").read_text()
    assert json.loads((runs["textbook"] / "config.json").read_text())["config"]["textbook"] is True
    hist = {k: json.loads((v / "history.json").read_text())["history"] for k, v in runs.items()}
    np.testing.assert_allclose(hist["textbook"]["loss"], hist["fast"]["loss"], rtol=1e-3)
    assert abs(metrics["textbook"]["accuracy"] - metrics["fast"]["accuracy"]) <= 0.02
