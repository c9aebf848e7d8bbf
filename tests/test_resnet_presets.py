"""The ResNet presets: built for their inputs, listed by ``scratchcnn experiments``, and trained
from one command on generated files in MNIST's and CIFAR-10's own formats (neither can be
downloaded here), learning a pattern that only a working network picks up."""
import gzip
import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest

import scratchcnn as sc
from scratchcnn.app.cli import main
from scratchcnn.app.experiment import build_model
from scratchcnn.datasets import sources
from scratchcnn.nn.residual import Residual

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No downloads, no user data folders, an empty cache."""
    monkeypatch.delenv("SCRATCHCNN_DATA", raising=False)
    monkeypatch.setenv("SCRATCHCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sources.SYSTEM_DIRS, "mnist", [])
    for name in ("mnist", "cifar10"):
        monkeypatch.setitem(sources.MIRRORS, name, [])


def patterned(rng, n, shape):
    """``n`` uint8 images of ``shape`` (C, H, W) whose class (0..9) is where a bright 6x6 square
    sits on a noisy background, two rows of five places; labels (n,)."""
    c, h, w = shape
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = rng.integers(0, 90, size=(n, c, h, w)).astype(np.uint8)
    for k in range(10):
        top, left = 3 + (k // 5) * (h // 2), 1 + (k % 5) * (w // 5)
        x[y == k, :, top:top + 6, left:left + 5] = 250
    return x, y


def idx(arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return gzip.compress(header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes(), mtime=0)


def write_mnist(folder, n_train, n_test, seed=0):
    rng = np.random.default_rng(seed)
    xtr, ytr = patterned(rng, n_train, (1, 28, 28))
    xte, yte = patterned(rng, n_test, (1, 28, 28))
    os.makedirs(folder, exist_ok=True)
    for name, arr in zip(MNIST_FILES, (xtr[:, 0], ytr, xte[:, 0], yte)):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(idx(arr))


def write_cifar(folder, per_batch, seed=0):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(6):
            x, y = patterned(rng, per_batch, (3, 32, 32))
            data = pickle.dumps({b"batch_label": b"b", b"labels": [int(v) for v in y],
                                 b"data": x.reshape(len(x), -1), b"filenames": [b"i.png"] * len(x)}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{'test_batch' if i == 5 else f'data_batch_{i + 1}'}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cifar-10-python.tar.gz"), "wb") as f:
        f.write(buf.getvalue())


@pytest.mark.parametrize("name, shape, blocks, params", [
    ("resnet-small", (1, 28, 28), 3, (550_000, 620_000)),
    ("resnet-small-mnist", (1, 28, 28), 3, (550_000, 620_000)),
    ("resnet20-cifar", (3, 32, 32), 9, (260_000, 280_000)),
])
def test_resnet_presets_build(name, shape, blocks, params):
    model = build_model(name, shape, 10)
    res = [m for m in model.layers if isinstance(m, Residual)]
    assert len(res) == blocks
    projections = [m for m in res if m.shortcut is not None]
    assert len(projections) == 2 if name.startswith("resnet20") else 1      # one per change of stride
    assert params[0] <= model.num_parameters() <= params[1]
    assert model.output_shape(shape) == (10,)
    keys = model.state_dict().keys()
    first = model.layers.index(res[0])
    assert f"{first}.body.0.weight" in keys and f"{first}.body.1.running_mean" in keys
    proj = model.layers.index(projections[0])
    assert f"{proj}.shortcut.0.weight" in keys


def test_experiments_lists_the_resnets(capsys):
    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    for name in ("resnet-small", "resnet-small-mnist", "resnet20-cifar"):
        assert name in out


def _train(tmp_path, dataset, model, data_dir, epochs, *extra):
    out = tmp_path / "run"
    sc.manual_seed(0)
    assert main(["train", "--dataset", dataset, "--data-dir", str(data_dir), "--model", model,
                 "--epochs", str(epochs), "--batch-size", "32", "--lr", "0.05", "--val-split", "0",
                 "--out", str(out), "--quiet", *extra]) == 0
    return json.loads((out / "metrics.json").read_text()), out


def test_resnet_small_trains_on_mnist_format_files(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=400, n_test=100)
    metrics, out = _train(tmp_path, "mnist", "resnet-small-mnist", tmp_path / "mnist", epochs=3)
    assert metrics["accuracy"] >= 0.6, metrics["accuracy"]          # chance: 0.1
    model = sc.load(str(out / "model.npz"))
    assert sum(isinstance(m, Residual) for m in model.layers) == 3


def test_resnet20_trains_on_cifar_format_files(tmp_path):
    write_cifar(tmp_path / "cifar", per_batch=80)
    # the pattern's class is where the square sits: a mirrored image would show another class
    metrics, out = _train(tmp_path, "cifar10", "resnet20-cifar", tmp_path / "cifar", 3, "--augment", "crop2")
    assert metrics["accuracy"] >= 0.6, metrics["accuracy"]
    assert (out / "report.md").exists()


def test_preset_training_settings_reach_the_optimizer():
    """The preset's Nesterov momentum and weight decay are the run's unless the command line says
    otherwise; Nesterov is dropped for an optimizer that has no such setting."""
    from scratchcnn.app.experiment import TrainConfig, make_optimizer
    params = build_model("resnet-small", (1, 28, 28), 10).parameters()
    cfg = TrainConfig(dataset="fashion-mnist", model="resnet-small").resolved()
    opt = make_optimizer(cfg, params)
    assert isinstance(opt, sc.optim.SGD) and opt.nesterov and opt.momentum == 0.9 and opt.weight_decay == 5e-4
    cfg = TrainConfig(model="resnet-small", weight_decay=0.0, nesterov=False).resolved()
    opt = make_optimizer(cfg, params)
    assert not opt.nesterov and opt.weight_decay == 0.0
    cfg = TrainConfig(model="resnet-small", optimizer="adam").resolved()
    assert cfg.nesterov is False and isinstance(make_optimizer(cfg, params), sc.optim.Adam)
    with pytest.raises(sc.ConfigError, match="nesterov"):
        from scratchcnn.app.experiment import check_config
        check_config(TrainConfig(model="small", optimizer="adam", nesterov=True).resolved())


def test_flip_tta_is_reported_beside_the_plain_accuracy(tmp_path):
    """--tta flip adds the accuracy of each test image averaged with its mirror image; the plain
    accuracy is unchanged. On images whose class is where the square sits left or right, mirroring
    mixes classes up, so the TTA figure differs: it is computed, not copied."""
    from scratchcnn.app.report import flip_tta_accuracy
    write_mnist(tmp_path / "mnist", n_train=300, n_test=100)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--model", "small",
                 "--epochs", "2", "--val-split", "0", "--tta", "flip", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip" and 0 <= metrics["tta_accuracy"] <= 1
    assert metrics["tta_accuracy"] < metrics["accuracy"]
    assert "flip test-time augmentation" in (out / "report.md").read_text()
    model = sc.load(str(out / "model.npz"))
    x = np.random.default_rng(0).random((6, 1, 28, 28)).astype(np.float32)
    y = model.predict(x)
    symmetric = (x + x[..., ::-1]) / 2                       # a mirror-symmetric image: TTA agrees
    assert flip_tta_accuracy(model, symmetric, model.predict(symmetric)) == 1.0
    assert 0 <= flip_tta_accuracy(model, x, y) <= 1
