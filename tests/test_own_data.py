"""Your own data: a folder of images, CSV, npz, IDX (torchvision raw/), seed A's mnist.pkl.gz and
seed D's HDF5, each written here from the same small Fashion-MNIST subset (no download) and
trained through ``scratchcnn train --data``; the allow-list unpickler; the folder cache; bad
input; predict / serve / evaluate with the user's class names and preparation."""
import gzip
import os
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

import scratchcnn as sc
from scratchcnn.app.cli import main
from scratchcnn.datasets import (cache_dir, describe, detect_format, load_data, read_hdf5, read_idx_dataset,
                                 read_image_folder, read_mnist_pickle, read_npz)
from scratchcnn.datasets.idx import read_idx_pair
from scratchcnn.errors import DatasetError
from scratchcnn.images import prepare_image

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = (0, 1, 7, 8)                     # well apart: T-shirt, Trouser, Sneaker, Bag
NAMES = ["T-shirt", "Trouser", "Sneaker", "Bag"]
N_TRAIN, N_TEST = 100, 40                  # per class
SPEC = "conv8x3-relu-maxpool2-flatten-dense4"
TRAIN_ARGS = ["--model", SPEC, "--optimizer", "adam", "--lr", "3e-3", "--epochs", "3", "--batch-size", "32",
              "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """A cache of this module's own (module scope: before the module's other fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCRATCHCNN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _subset():
    """(x_train, y_train, x_test, y_test): uint8 (N, 28, 28), labels 0..3, from Fashion-MNIST's
    test file (or, without it, the UCI digits upscaled to 16x16)."""
    rng = np.random.default_rng(0)
    images = os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(images):
        x, y = read_idx_pair(images, os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))
        x = x[:, 0]
    else:
        from sklearn.datasets import load_digits
        d = load_digits()
        x = np.kron(d.images, np.ones((2, 2))).clip(0, 16) * 255 / 16
        x, y = x.round().astype(np.uint8), d.target
    parts = [[], [], [], []]
    for k, c in enumerate(CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))[:N_TRAIN + N_TEST]
        parts[0].append(x[idx[:N_TRAIN]]), parts[1].append(np.full(N_TRAIN, k))
        parts[2].append(x[idx[N_TRAIN:]]), parts[3].append(np.full(N_TEST, k))
    return tuple(np.concatenate(p) for p in parts)


def _idx_bytes(arr):
    return bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes() + arr.astype(np.uint8).tobytes()


def _write_folder(root, x, y, mixed=True):
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if mixed and i % 3 == 1:          # twice the size: the box filter brings back the very pixels
            im = im.resize((2 * img.shape[1], 2 * img.shape[0]), Image.Resampling.NEAREST)
        if mixed and i % 5 == 2:          # an RGB file of a gray picture: still a gray data set
            im = im.convert("RGB")
        im.save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def fashion():
    return _subset()


@pytest.fixture(scope="module")
def sources(fashion, tmp_path_factory):
    """Every format, written from the same images: {format: (train argv, test argv)}."""
    x, y, xt, yt = fashion
    root = tmp_path_factory.mktemp("own")
    paths = {}
    # a folder of class folders, train/ and test/, mixed sizes, some RGB files
    _write_folder(root / "clothes" / "train", x, y)
    _write_folder(root / "clothes" / "test", xt, yt)
    paths["folder"] = [str(root / "clothes")]
    # Kaggle CSVs: the training file with a header, the test file without
    with open(root / "train.csv", "w") as f:
        f.write("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
        f.writelines(f"{c}," + ",".join(map(str, im.ravel())) + "\n" for im, c in zip(x, y))
    with open(root / "test.csv", "w") as f:
        f.writelines(f"{c}," + ",".join(map(str, im.ravel())) + "\n" for im, c in zip(xt, yt))
    paths["csv"] = [str(root / "train.csv"), "--test-data", str(root / "test.csv")]
    # npz, NHWC uint8 with class names
    np.savez(root / "clothes.npz", x_train=x[..., None], y_train=y, x_test=xt[..., None], y_test=yt,
             class_names=np.array(NAMES))
    paths["npz"] = [str(root / "clothes.npz")]
    # torchvision's raw/ layout: plain IDX files, and a .gz beside one of them
    raw = root / "torchvision" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, arr in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                      ("t10k-images-idx3-ubyte", xt), ("t10k-labels-idx1-ubyte", yt)):
        (raw / name).write_bytes(_idx_bytes(arr))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(x)))
    paths["idx"] = [str(root / "torchvision")]
    # seed A: mnist.pkl.gz, (train, valid, test) of (float32 (N, 784) in 0..1, int64 labels)
    flat = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
    flat_t = (xt.reshape(len(xt), -1) / np.float32(255)).astype(np.float32)
    with gzip.open(root / "mnist.pkl.gz", "wb") as f:
        pickle.dump(((flat[:-40], y[:-40].astype(np.int64)), (flat[-40:], y[-40:].astype(np.int64)),
                     (flat_t, yt.astype(np.int64))), f, protocol=2)
    paths["pickle"] = [str(root / "mnist.pkl.gz")]
    # seed D: MNISTdata.hdf5, x (N, 784) float in 0..1, y (N, 1)
    with h5py.File(root / "MNISTdata.hdf5", "w") as f:
        f["x_train"], f["y_train"] = flat.astype(np.float64), y[:, None]
        f["x_test"], f["y_test"] = flat_t.astype(np.float64), yt[:, None]
    paths["hdf5"] = [str(root / "MNISTdata.hdf5")]
    return root, paths


@pytest.fixture(scope="module")
def runs(sources):
    """Train on every format: {format: (run directory, test accuracy)}."""
    import json
    root, paths = sources
    out = {}
    for fmt, argv in paths.items():
        run = root / f"run-{fmt}"
        assert main(["train", "--data"] + argv + TRAIN_ARGS + ["--out", str(run)]) == 0, fmt
        out[fmt] = run, json.loads((run / "metrics.json").read_text())["accuracy"]
    return out


FORMATS = ["folder", "csv", "npz", "idx", "pickle", "hdf5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_train_on_every_format(runs, fmt):
    run, acc = runs[fmt]
    assert acc > 0.8, (fmt, acc)                        # chance is 0.25
    model = sc.load(run / "model.npz")
    assert model.input_shape == (1, 28, 28)
    names = model.metadata["class_names"]
    assert names == {"folder": sorted(NAMES), "npz": NAMES}.get(fmt, [str(c) for c in range(4)])
    prep = model.metadata["preprocessing"]
    assert prep["resize"] == "stretch" and prep["channels"] == 1 and prep["format"] == fmt
    assert model.metadata["data_source"]["format"] == fmt


def test_every_format_reaches_the_same_accuracy(runs):
    accs = {fmt: acc for fmt, (_, acc) in runs.items()}
    assert max(accs.values()) - min(accs.values()) <= 0.1, accs


def test_every_reader_gives_the_same_images(fashion, sources):
    """Each format's test split holds exactly the written images (in 0..1), in some order."""
    x, y, xt, yt = fashion
    root, paths = sources
    want = sorted(map(bytes, xt.reshape(len(xt), -1)))
    for fmt, argv in paths.items():
        data = load_data(argv[0], test_data=argv[2] if len(argv) > 2 else None, progress=False)
        assert data.source["format"] == fmt == detect_format(argv[0])
        assert data.x_train.shape == (4 * N_TRAIN, 1, 28, 28) and data.x_train.dtype == np.float32
        assert np.bincount(data.y_test).tolist() == [N_TEST] * 4
        got = sorted(map(bytes, (data.x_test.reshape(len(xt), -1) * 255).round().astype(np.uint8)))
        assert got == want, fmt
    raw = read_mnist_pickle(paths["pickle"][0])
    assert raw.info["validation images merged into training"] == 40 and raw.max_value == 1.0
    assert read_hdf5(paths["hdf5"][0]).x_train.shape == (400, 1, 28, 28)
    assert read_npz(paths["npz"][0]).class_names == NAMES
    assert read_idx_dataset(paths["idx"][0]).x_test.dtype == np.uint8


def test_the_same_options_as_every_loader(sources):
    _, paths = sources
    data = load_data(paths["npz"][0], classes=["Bag", "Trouser"], per_class=20, test_per_class=5, val_split=0.25,
                     normalize="standardize", seed=3)
    assert data.class_names == ["Bag", "Trouser"] and len(data.x_train) == 30 and len(data.x_val) == 10
    assert len(data.x_test) == 10 and abs(float(data.x_train.mean())) < 1e-4
    again = load_data(paths["npz"][0], classes=["Bag", "Trouser"], per_class=20, test_per_class=5,
                      val_split=0.25, normalize="standardize", seed=3)
    assert (again.x_val == data.x_val).all()


def test_malicious_pickles_are_refused_and_do_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class RunsACommand:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    class OpensAFile:
        def __reduce__(self):
            return open, (str(marker), "w")

    nested = ((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)), (RunsACommand(), np.zeros(2)))
    for i, payload in enumerate([RunsACommand(), OpensAFile(), nested]):   # nested: inside seed A's layout
        path = tmp_path / f"evil{i}.pkl.gz"
        with gzip.open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
        with pytest.raises(DatasetError, match=r"refused global (posix|os|nt)\.system|refused global (_?io|builtins)\.open"):
            read_mnist_pickle(path)
        assert not marker.exists()
    assert main(["train", "--data", str(tmp_path / "evil0.pkl.gz"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scratchcnn train: error:") and "evil0.pkl.gz" in err[0]
    assert not marker.exists()


def _count_opens(monkeypatch):
    calls = []
    real = Image.open

    def counting(*args, **kwargs):
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return calls


def test_a_folder_is_decoded_once(fashion, tmp_path, monkeypatch):
    x, y, _, _ = fashion
    folder = tmp_path / "pics"
    _write_folder(folder, x[::10], y[::10])
    opens = _count_opens(monkeypatch)
    first = read_image_folder(folder, progress=False)
    assert len(opens) >= len(first.x_train) == 40 and first.info["cache"] == "written"
    assert first.x_train.dtype == np.uint8 and first.x_train.shape == (40, 1, 28, 28)
    opens.clear()
    second = read_image_folder(folder, progress=False)
    assert opens == [] and second.info["cache"] == "hit"
    assert (second.x_train == first.x_train).all() and second.class_names == first.class_names
    data = load_data(folder, progress=False)          # the loader's path hits the cache too
    assert opens == [] and data.source["info"]["cache"] == "hit"
    touched = sorted((folder / "Bag").iterdir())[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    third = read_image_folder(folder, progress=False)
    assert len(opens) >= 40 and third.info["cache"] == "written"
    kept = os.listdir(os.path.join(cache_dir(), "image-folders"))
    assert sum(k.startswith("pics-") for k in kept) == 1          # the stale entry was removed
    opens.clear()
    read_image_folder(folder, image_size=14, progress=False)       # other options: another entry
    assert len(opens) >= 40


def test_a_photo_is_prepared_as_its_training_image(fashion, sources, tmp_path):
    """prepare_image on a training file gives back exactly its model input (resize, colour,
    normalisation), for stretch, crop and pad, scale and standardize."""
    root, _ = sources
    folder = root / "clothes" / "test"
    files = [f for name in sorted(NAMES) for f in sorted((folder / name).iterdir())]   # class folders sorted
    data = load_data(root / "clothes", normalize="standardize", progress=False)
    for i in (0, 1, 2, 50, 159):
        np.testing.assert_array_equal(prepare_image(files[i], data.preprocessing), data.x_test[i])
    # photos: non-square, colour, resized; every resize mode
    rng = np.random.default_rng(1)
    photos = tmp_path / "photos"
    for k, cls in enumerate(["red", "blue"]):
        (photos / cls).mkdir(parents=True)
        for j in range(6):
            a = rng.integers(0, 80, (30 + 7 * j, 50, 3), dtype=np.uint8)
            a[..., k * 2] += 150
            Image.fromarray(a).save(photos / cls / f"{j}.{'jpg' if j % 2 else 'png'}")
    files = [f for cls in ["blue", "red"] for f in sorted((photos / cls).iterdir())]
    for resize in ("stretch", "crop", "pad"):
        data = load_data(photos, image_size=(16, 20), resize=resize, test_split=0.5, progress=False)
        assert data.input_shape == (3, 16, 20) and data.preprocessing["resize"] == resize
        both = np.concatenate([data.x_train, data.x_test])
        for f in files:
            x = prepare_image(f, data.preprocessing)
            assert (np.abs(both - x).reshape(len(both), -1).max(axis=1) == 0).any(), (resize, f)


def test_colour_size_and_file_kinds(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "kinds"
    for k, cls in enumerate(["a", "b"]):
        (folder / cls / "deeper").mkdir(parents=True)
        for j, ext in enumerate(["png", "jpg", "bmp", "tif"]):
            Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)).save(folder / cls / f"{j}.{ext}")
        Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)).save(folder / cls / "deeper" / "x.png")
        (folder / cls / "notes.txt").write_text("not an image")
        (folder / cls / ".hidden.png").write_bytes(b"junk")
    raw = read_image_folder(folder, progress=False, cache=False)
    assert raw.x_train.shape == (10, 1, 28, 28)              # large gray photos: 28x28 by default
    assert raw.info["ignored"] == 2 and raw.class_names == ["a", "b"]
    for cls in ("a", "b"):          # GIF (palette; first frame) and WebP (RGB) files of gray pictures
        frames = [Image.fromarray(rng.integers(0, 255, (90, 120), dtype=np.uint8)) for _ in range(2)]
        frames[0].save(folder / cls / "anim.gif", save_all=True, append_images=frames[1:])
        frames[0].save(folder / cls / "w.webp", lossless=True)
    raw = read_image_folder(folder, progress=False, cache=False)
    assert raw.x_train.shape == (14, 1, 32, 32)              # gray content; files stored in colour modes: 32
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(folder / "a" / "colour.png")
    raw = read_image_folder(folder, progress=False, cache=False)
    assert raw.x_train.shape == (15, 3, 32, 32)              # one colour image: RGB, 32x32
    assert read_image_folder(folder, channels=1, progress=False, cache=False).x_train.shape[1] == 1
    assert read_image_folder(folder, image_size="20x24", progress=False, cache=False).x_train.shape == (15, 3, 20, 24)
    data = load_data(folder, grayscale=True, progress=False, cache=False)
    assert data.input_shape == (1, 28, 28)


def test_bad_images_name_the_file_or_are_skipped(fashion, tmp_path, capsys):
    x, y, _, _ = fashion
    folder = tmp_path / "bad"
    _write_folder(folder, x[::8], y[::8], mixed=False)
    victim = sorted((folder / "Trouser").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:70])                     # truncated
    with pytest.raises(DatasetError, match=victim.name):
        read_image_folder(folder, progress=False)
    (folder / "Bag" / "readme.md").write_text("hello")
    (folder / "Bag" / "fake.jpg").write_text("not a jpeg")           # not an image at all
    with pytest.raises(DatasetError, match="fake.jpg"):
        read_image_folder(folder, progress=False)
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--skip-bad", "--epochs", "1", "--model", SPEC,
                 "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 unreadable images" in out and victim.name in out and "ignored 1 non-image file" in out


def _expect_error(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"scratchcnn {argv[0]}: error:"), err
    for n in needles:
        assert n in err[0], (n, err[0])


def test_bad_input_is_one_clear_line(fashion, tmp_path, capsys):
    x, y, _, _ = fashion
    folder = tmp_path / "pics"
    _write_folder(folder, x[:8], y[:8] * 0, mixed=False)               # one class only
    _expect_error(["train", "--data", str(folder)], capsys, "only one class folder", "T-shirt")
    (folder / "Bag").mkdir()
    _expect_error(["train", "--data", str(folder)], capsys, "empty class folder", str(folder / "Bag"))
    # CSV: a short row, a label that is not an integer
    rows = [f"{c}," + ",".join(map(str, im.ravel())) for im, c in zip(x[:6], y[:6])]
    bad = tmp_path / "short.csv"
    bad.write_text("\n".join(rows[:3] + [rows[3].rsplit(",", 1)[0]] + rows[4:]) + "\n")
    _expect_error(["train", "--data", str(bad)], capsys, "short.csv", "line 4", "785")
    bad.write_text("\n".join(rows[:2] + ["1.5" + rows[2][1:]] + rows[3:]) + "\n")
    _expect_error(["train", "--data", str(bad)], capsys, "line 3", "not an integer")
    bad.write_text("\n".join(rows[:2] + ["cat" + rows[2][1:]] + rows[3:]) + "\n")
    _expect_error(["train", "--data", str(bad)], capsys, "line 3", "'cat' is not a number")
    # npz: counts that do not match; labels that are not integers
    npz = tmp_path / "counts.npz"
    np.savez(npz, x_train=x[:10], y_train=y[:9])
    _expect_error(["train", "--data", str(npz)], capsys, "counts.npz", "10 images but 9 labels")
    np.savez(npz, x_train=x[:10], y_train=y[:10] + 0.5)
    _expect_error(["train", "--data", str(npz)], capsys, "must be integers")
    np.savez(npz, x_train=x[:10], y_train=np.array(["a"] * 10))
    _expect_error(["train", "--data", str(npz)], capsys, "must be integers")
    # HDF5 without the expected datasets; then named with --hdf5-keys
    h5 = tmp_path / "other.h5"
    with h5py.File(h5, "w") as f:
        f["images"], f["targets"] = x[::10], y[::10]
    _expect_error(["train", "--data", str(h5)], capsys, "other.h5", "x_train", "--hdf5-keys", "images")
    data = load_data(h5, hdf5_keys="images,targets", progress=False)
    assert data.num_classes == 4 and len(data.x_test) == 8          # no test set: a 0.2 split
    # nothing at the path, an unknown format, both --dataset and --data
    _expect_error(["train", "--data", str(tmp_path / "nowhere")], capsys, "nowhere", "no such file")
    (tmp_path / "blob.bin").write_bytes(b"\x01\x02\x03" * 20)
    _expect_error(["train", "--data", str(tmp_path / "blob.bin")], capsys, "--data-format")
    _expect_error(["train", "--data", str(h5), "--dataset", "digits"], capsys, "--dataset", "--data")
    _expect_error(["train", "--image-size", "28"], capsys, "--image-size", "--data")


def test_idx_files_by_name(fashion, tmp_path, capsys):
    x, y, xt, yt = fashion
    folder = tmp_path / "emnist"
    folder.mkdir()
    for subset in ("letters", "digits"):
        for name, arr in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y + 1),
                          ("test-images-idx3-ubyte", xt), ("test-labels-idx1-ubyte", yt + 1)):
            (folder / f"emnist-{subset}-{name}.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    _expect_error(["train", "--data", str(folder)], capsys, "several IDX data sets", "emnist-letters")
    raw = read_idx_dataset(folder / "emnist-letters-train-images-idx3-ubyte.gz")
    assert raw.class_names == ["1", "2", "3", "4"] and raw.y_train.max() == 3 and len(raw.x_test) == len(xt)
    (folder / "emnist-digits-test-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(yt[:-1])))
    with pytest.raises(DatasetError, match="labels for the"):
        read_idx_dataset(folder / "emnist-digits-train-images-idx3-ubyte.gz")


def test_predict_serve_and_evaluate_use_the_users_classes(runs, sources, capsys):
    run, _ = runs["folder"]
    root, _ = sources
    model_path = str(run / "model.npz")
    bag = sorted((root / "clothes" / "test" / "Bag").iterdir())[0]
    assert main(["predict", model_path, str(bag)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{bag}: ") and any(n in line for n in NAMES)
    assert line.split(": ")[1].split(" ")[0] == "Bag"
    from scratchcnn.app.serve.service import ModelService
    service = ModelService.from_path(model_path)
    assert service.class_names == sorted(NAMES)
    with Image.open(bag) as im:
        x = service.prepare(im)
    np.testing.assert_array_equal(x, prepare_image(bag, service.preprocessing))
    assert service.predict(x)["class_names"] == sorted(NAMES)
    # evaluate: on the files the model was trained on (recorded), or on --data
    assert main(["evaluate", model_path]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "Sneaker" in out and "160 test images" in out
    assert main(["evaluate", model_path, "--data", str(root / "clothes")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    _expect_error(["evaluate", model_path, "--data", sources[1]["csv"][0]], capsys, "expected the same classes")


def test_describe_and_experiments_mention_data(sources, capsys):
    _, paths = sources
    text = describe(load_data(paths["csv"][0], progress=False))
    assert "csv" in text and "stratified 0.2 held out" in text
    renamed = os.path.join(os.path.dirname(paths["npz"][0]), "pixels.dat")       # a name that tells nothing
    with open(paths["csv"][0], "rb") as src, open(renamed, "wb") as dst:
        dst.write(src.read())
    assert load_data(renamed, format="csv", test_split=0.5, progress=False).x_test.shape == (200, 1, 28, 28)
    assert main(["experiments"]) == 0
    assert "--data" in capsys.readouterr().out.strip().splitlines()[-1]
