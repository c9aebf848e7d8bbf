"""Data set loading: local files, cache, downloads from a local HTTP server, checksums,
class subsets, validation splits, normalisation, CIFAR-10 and the UCI digits.

Nothing here reaches the internet: the "mirrors" are an http.server on 127.0.0.1 serving
small files the tests write themselves.
"""
import functools
import gzip
import hashlib
import io
import os
import pickle
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from scratchcnn.datasets import available_datasets, load_dataset, sources
from scratchcnn.datasets.cifar import read_cifar10
from scratchcnn.datasets.idx import read_idx
from scratchcnn.errors import ConfigError, DatasetError, ScratchCNNError

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------- file writers
def idx_bytes(arr):
    """An uncompressed IDX file holding uint8 ``arr``."""
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_mnist(folder, seed, n_train=8, n_test=4):
    """Write a small MNIST in IDX.gz: n_train / n_test images of each of the 10 classes.
    Returns the arrays and each file's SHA-256."""
    rng = np.random.default_rng(seed)
    y_train = np.repeat(np.arange(10), n_train)
    y_test = np.repeat(np.arange(10), n_test)
    rng.shuffle(y_train)
    x_train = rng.integers(0, 256, size=(len(y_train), 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(len(y_test), 28, 28), dtype=np.uint8)
    os.makedirs(folder, exist_ok=True)
    digests = {}
    for name, arr in zip(MNIST_FILES, (x_train, y_train, x_test, y_test)):
        data = gzip.compress(idx_bytes(arr.astype(np.uint8)), mtime=0)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, digests


def cifar_batch(x, y, protocol=2):
    # the real batches are Python 2 pickles whose keys are byte strings
    return pickle.dumps({b"batch_label": b"test", b"labels": [int(v) for v in y], b"data": x.reshape(len(x), -1),
                         b"filenames": [b"img.png"] * len(x)}, protocol=protocol)


def write_cifar(folder, seed, per_batch=12, batches=None):
    rng = np.random.default_rng(seed)
    xs, ys, members = [], [], {}
    for i in range(6):
        y = rng.integers(0, 10, size=per_batch)
        x = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        members[name] = cifar_batch(x, y)
        xs.append(x)
        ys.append(y)
    members.update(batches or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "cifar-10-python.tar.gz")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]), hashlib.sha256(buf.getvalue()).hexdigest()


def write_optdigits(folder, seed, rows=None):
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("optdigits.tra", 3823), ("optdigits.tes", 1797)):
        n = rows if rows is not None else n
        table = np.concatenate([rng.integers(0, 17, size=(n, 64)), rng.integers(0, 10, size=(n, 1))], axis=1)
        with open(os.path.join(folder, name), "w", newline="") as f:
            f.write("".join(",".join(map(str, r)) + "\r\n" for r in table))
        out[name] = table
    return out


# ---------------------------------------------------------------- local HTTP mirror
class CountingHandler(SimpleHTTPRequestHandler):
    requests = None     # list shared with the test, one entry per GET
    short = False       # announce the full Content-Length but send only half the body

    def do_GET(self):
        self.requests.append(self.path)
        if not self.short:
            return super().do_GET()
        path = self.translate_path(self.path)
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, requests, handler)."""
    root = tmp_path / "www"
    root.mkdir()
    requests = []
    handler = type("Handler", (CountingHandler,), {"requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", requests, handler, root
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user data folder, an empty cache, no system copies of MNIST, no real mirrors."""
    monkeypatch.delenv("SCRATCHCNN_DATA", raising=False)
    monkeypatch.delenv("SCRATCHCNN_MIRROR", raising=False)
    monkeypatch.setenv("SCRATCHCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sources.SYSTEM_DIRS, "mnist", [])
    for name in ("mnist", "cifar10", "optdigits"):
        monkeypatch.setitem(sources.MIRRORS, name, [])
    monkeypatch.setattr(sources, "TIMEOUT", 5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mnist_mirror(server, monkeypatch):
    base, requests, handler, root = server
    arrays, digests = write_mnist(root, seed=1)
    monkeypatch.setitem(sources.MIRRORS, "mnist", [base])
    monkeypatch.setitem(sources.CHECKSUMS, "mnist", {k: [v] for k, v in digests.items()})
    return arrays, digests, requests, root


def cache_files(tmp_path, name):
    folder = tmp_path / "cache" / name
    return sorted(os.listdir(folder)) if folder.exists() else []


# ---------------------------------------------------------------- sources
def test_available_and_unknown_name():
    assert set(available_datasets()) == {"mnist", "fashion-mnist", "cifar10", "digits", "optdigits"}
    with pytest.raises(DatasetError, match="known: .*mnist.*cifar10") as e:
        load_dataset("imagenet")
    assert "imagenet" in str(e.value)


def test_download_verifies_and_caches(mnist_mirror, tmp_path):
    arrays, _, requests, _ = mnist_mirror
    data = load_dataset("mnist", normalize=None, progress=True)
    assert sorted(os.path.basename(r) for r in requests) == sorted(MNIST_FILES)
    assert cache_files(tmp_path, "mnist") == sorted(MNIST_FILES)  # no temporary files left over
    assert data.x_train.shape == (80, 1, 28, 28) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    again = load_dataset("mnist", normalize=None)
    assert len(requests) == 4, "the second load must come from the cache"
    np.testing.assert_array_equal(again.x_test, data.x_test)


def test_mirror_from_environment_and_damaged_cache(mnist_mirror, monkeypatch, tmp_path):
    arrays, _, requests, _ = mnist_mirror
    base = sources.MIRRORS["mnist"][0]
    monkeypatch.setitem(sources.MIRRORS, "mnist", [])
    monkeypatch.setenv("SCRATCHCNN_MIRROR", base)
    load_dataset("mnist", progress=False)
    assert len(requests) == 4
    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", download=False)
    data = load_dataset("mnist", progress=False)  # the damaged copy is fetched again
    assert len(requests) == 5 and requests[-1].endswith("t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])


def test_checksum_mismatch_on_download(mnist_mirror, monkeypatch, tmp_path):
    _, digests, _, _ = mnist_mirror
    bad = dict(sources.CHECKSUMS["mnist"])
    bad["train-labels-idx1-ubyte.gz"] = ["0" * 64]
    monkeypatch.setitem(sources.CHECKSUMS, "mnist", bad)
    with pytest.raises(DatasetError, match="checksum mismatch") as e:
        load_dataset("mnist", progress=False)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)
    assert "train-labels-idx1-ubyte.gz" not in cache_files(tmp_path, "mnist")
    assert not [f for f in cache_files(tmp_path, "mnist") if f.endswith(".tmp")]


def test_truncated_file_on_the_mirror(mnist_mirror, tmp_path):
    _, _, _, root = mnist_mirror
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", progress=False)
    assert "train-images-idx3-ubyte.gz" not in cache_files(tmp_path, "mnist")


def test_transfer_cut_short(server, monkeypatch, tmp_path):
    base, requests, handler, root = server
    handler.short = True
    write_optdigits(root, seed=0)
    monkeypatch.setitem(sources.MIRRORS, "optdigits", [base])
    with pytest.raises(DatasetError, match="cut short"):
        load_dataset("optdigits", progress=False)
    assert cache_files(tmp_path, "optdigits") == []


def test_corrupted_local_file_is_an_error(mnist_mirror, tmp_path):
    """A file in the user's own folder is not refused for its checksum: it is read, and its
    format checks (here the gzip stream's) find what is wrong."""
    local = tmp_path / "mine"
    write_mnist(local, seed=1)
    path = local / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated") as e:
        load_dataset("mnist", data_dir=local)
    assert str(path) in str(e.value)


def test_own_mnist_format_files_are_used_with_a_note(tmp_path, caplog):
    """Valid MNIST-format files that are not the official ones (another data set in the same
    format) load from --data-dir, with a one-line note instead of a checksum refusal."""
    local = tmp_path / "mine"
    arrays, _ = write_mnist(local, seed=5)
    with caplog.at_level("WARNING", logger="scratchcnn.datasets"):
        data = load_dataset("mnist", data_dir=local, normalize=None, download=False)
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    notes = [r.getMessage() for r in caplog.records if "not the official mnist files" in r.getMessage()]
    assert len(notes) == 1 and "using them as given" in notes[0] and "\n" not in notes[0]


def test_idx_format_errors(tmp_path):
    good = idx_bytes(np.zeros((3, 4, 5), np.uint8))
    (tmp_path / "ok").write_bytes(good)
    assert read_idx(tmp_path / "ok").shape == (3, 4, 5)
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "short.gz").write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(DatasetError, match="short.gz"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "junk")


def test_data_dir_precedence(mnist_mirror, monkeypatch, tmp_path):
    served, digests, requests, _ = mnist_mirror
    mine, my_digests = write_mnist(tmp_path / "mine", seed=2)
    env, env_digests = write_mnist(tmp_path / "env" / "mnist", seed=3)  # the <dir>/<name>/ layout
    monkeypatch.setitem(sources.CHECKSUMS, "mnist",
                        {k: [digests[k], my_digests[k], env_digests[k]] for k in MNIST_FILES})
    monkeypatch.setenv("SCRATCHCNN_DATA", str(tmp_path / "env"))
    data = load_dataset("mnist", data_dir=tmp_path / "mine", normalize=None)
    np.testing.assert_array_equal(data.x_train[:, 0], mine["x_train"])
    data = load_dataset("mnist", normalize=None)
    np.testing.assert_array_equal(data.x_train[:, 0], env["x_train"])
    assert requests == []
    monkeypatch.delenv("SCRATCHCNN_DATA")
    data = load_dataset("mnist", normalize=None, progress=False)
    np.testing.assert_array_equal(data.x_train[:, 0], served["x_train"])
    assert len(requests) == 4


def test_offline_error_names_files_places_and_remedy(monkeypatch, tmp_path):
    monkeypatch.setitem(sources.MIRRORS, "mnist", [f"http://127.0.0.1:{free_port()}/"])
    with pytest.raises(DatasetError, match="no such folder"):          # a folder that is not there
        load_dataset("mnist", data_dir=tmp_path / "nothing", progress=False)
    (tmp_path / "nothing").mkdir()                                     # one without the files
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", data_dir=tmp_path / "nothing", progress=False)
    msg = str(e.value)
    for name in MNIST_FILES:
        assert name in msg
    assert str(tmp_path / "nothing") in msg and str(tmp_path / "cache" / "mnist") in msg
    assert "127.0.0.1" in msg and "data_dir" in msg and "SCRATCHCNN_DATA" in msg
    with pytest.raises(DatasetError, match="download=False"):
        load_dataset("mnist", download=False)
    assert isinstance(e.value, ScratchCNNError)


# ---------------------------------------------------------------- options
def test_classes_and_per_class(mnist_mirror):
    arrays, _, _, _ = mnist_mirror
    data = load_dataset("mnist", classes=(7, 2, 5), per_class=3, test_per_class=2, normalize=None, seed=4)
    assert data.class_names == ["7", "2", "5"]
    assert data.x_train.shape == (9, 1, 28, 28) and data.x_test.shape == (6, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [3, 3, 3] and np.bincount(data.y_test).tolist() == [2, 2, 2]
    original = {7: 0, 2: 1, 5: 2}
    for x, y in zip(data.x_train[:, 0], data.y_train):  # every image is a real one of its class
        matches = np.flatnonzero((arrays["x_train"] == x).all(axis=(1, 2)))
        assert len(matches) == 1 and original[int(arrays["y_train"][matches[0]])] == y
    same = load_dataset("mnist", classes=(7, 2, 5), per_class=3, test_per_class=2, normalize=None, seed=4)
    other = load_dataset("mnist", classes=(7, 2, 5), per_class=3, test_per_class=2, normalize=None, seed=5)
    np.testing.assert_array_equal(same.x_train, data.x_train)
    assert not np.array_equal(other.x_train, data.x_train)
    with pytest.raises(ConfigError, match="only 8"):
        load_dataset("mnist", per_class=9)
    with pytest.raises(ConfigError, match="out of range"):
        load_dataset("mnist", classes=(0, 10))


def test_val_split(mnist_mirror):
    full = load_dataset("mnist", normalize=None)
    data = load_dataset("mnist", val_split=0.25, normalize=None, seed=1)
    assert np.bincount(data.y_val).tolist() == [2] * 10 and np.bincount(data.y_train).tolist() == [6] * 10
    both = np.concatenate([data.x_train, data.x_val]).reshape(80, -1).astype(np.uint8)
    assert sorted(map(bytes, both)) == sorted(map(bytes, full.x_train.reshape(80, -1).astype(np.uint8)))
    rand = load_dataset("mnist", val_split=0.3, stratify=False, normalize=None, seed=1)
    assert len(rand.x_val) == 24 and len(rand.x_train) == 56
    again = load_dataset("mnist", val_split=0.25, normalize=None, seed=1)
    np.testing.assert_array_equal(again.y_val, data.y_val)
    assert full.x_val.shape == (0, 1, 28, 28)
    with pytest.raises(ConfigError):
        load_dataset("mnist", val_split=1.0)


def test_normalisation(mnist_mirror):
    arrays, _, _, _ = mnist_mirror
    raw = load_dataset("mnist", normalize=None)
    scaled = load_dataset("mnist")
    np.testing.assert_allclose(scaled.x_train, raw.x_train / 255.0, rtol=1e-6)
    assert scaled.preprocessing["max_value"] == 255 and scaled.preprocessing["mean"] is None
    std = load_dataset("mnist", normalize="standardize", val_split=0.2)
    assert abs(float(std.x_train.mean())) < 1e-5 and abs(float(std.x_train.std()) - 1) < 1e-4
    mean, sd = std.preprocessing["mean"][0], std.preprocessing["std"][0]
    raw_train = load_dataset("mnist", normalize=None, val_split=0.2)
    np.testing.assert_allclose(std.x_test, (raw.x_test / 255.0 - mean) / sd, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean, raw_train.x_train.mean() / 255.0, rtol=1e-5)  # training split only
    for p in (scaled.preprocessing, std.preprocessing):
        assert p["channels"] == 1 and p["height"] == p["width"] == 28 and p["white_on_black"] is True
    with pytest.raises(ConfigError, match="normalize"):
        load_dataset("mnist", normalize="minmax")


# ---------------------------------------------------------------- CIFAR-10
@pytest.fixture
def cifar_mirror(server, monkeypatch):
    base, requests, handler, root = server
    arrays, digest = write_cifar(root, seed=0)
    monkeypatch.setitem(sources.MIRRORS, "cifar10", [base])
    monkeypatch.setitem(sources.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": [digest]})
    return arrays


def test_cifar10_rgb_and_grayscale(cifar_mirror):
    x_train, y_train, x_test, y_test = cifar_mirror
    data = load_dataset("cifar10", normalize=None, progress=False)
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_test.shape == (12, 3, 32, 32)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    assert data.preprocessing["white_on_black"] is False and data.preprocessing["grayscale"] is False
    gray = load_dataset("cifar10", grayscale=True)
    assert gray.x_train.shape == (60, 1, 32, 32) and gray.preprocessing["channels"] == 1
    assert gray.preprocessing["grayscale"] is True
    luma = (0.299 * x_train[:, 0] + 0.587 * x_train[:, 1] + 0.114 * x_train[:, 2]) / 255.0
    np.testing.assert_allclose(gray.x_train[:, 0], luma, atol=1e-5)
    std = load_dataset("cifar10", normalize="standardize")
    assert len(std.preprocessing["mean"]) == 3
    np.testing.assert_allclose(std.preprocessing["mean"], (x_train / 255.0).mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std.x_train.std(axis=(0, 2, 3)), 1.0, rtol=1e-4)


def test_cifar_unpickler_refuses_other_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    _, _ = write_cifar(tmp_path, seed=0, batches={"data_batch_3": pickle.dumps({b"data": Evil()})})
    with pytest.raises(DatasetError, match="data_batch_3"):
        read_cifar10(tmp_path / "cifar-10-python.tar.gz")
    assert not (tmp_path / "pwned").exists()


def test_cifar_bad_archive(tmp_path):
    _, _ = write_cifar(tmp_path, seed=0)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz"):
        read_cifar10(path)
    x = np.zeros((4, 3072), np.uint8)
    _, _ = write_cifar(tmp_path, seed=0, batches={"test_batch": cifar_batch(x, [1, 2, 3, 11])})
    with pytest.raises(DatasetError, match="labels"):
        read_cifar10(path)


# ---------------------------------------------------------------- UCI digits
def test_optdigits_download_and_format(server, monkeypatch, tmp_path):
    base, requests, handler, root = server
    tables = write_optdigits(root, seed=0)
    monkeypatch.setitem(sources.MIRRORS, "optdigits", [base])
    data = load_dataset("optdigits", normalize=None, progress=False)
    assert data.x_train.shape == (3823, 1, 8, 8) and data.x_test.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(data.x_test.reshape(1797, 64), tables["optdigits.tes"][:, :64])
    np.testing.assert_array_equal(data.y_train, tables["optdigits.tra"][:, 64])
    assert data.preprocessing["max_value"] == 16
    assert load_dataset("optdigits").x_train.max() <= 1.0 and len(requests) == 2
    short = tmp_path / "short"
    short.mkdir()
    write_optdigits(short, seed=0, rows=100)
    with pytest.raises(DatasetError, match="expected 3823 rows"):
        load_dataset("optdigits", data_dir=short)


def test_sklearn_digits():
    raw = load_dataset("digits", normalize=None)
    assert len(raw.x_train) + len(raw.x_test) == 1797
    assert raw.x_train.shape[1:] == (1, 8, 8) and raw.x_train.max() == 16 and raw.x_train.min() == 0
    assert set(np.unique(raw.x_train)) <= set(range(17))
    assert raw.class_names == [str(i) for i in range(10)]
    counts = np.bincount(raw.y_test)
    assert counts.min() >= 30  # the fixed 20% test split is stratified
    scaled = load_dataset("digits", seed=7)
    np.testing.assert_allclose(scaled.x_train, raw.x_train / 16.0)  # test split does not depend on seed
    seed_e = load_dataset("digits", classes=(0, 1, 2), per_class=25, test_per_class=10)
    assert seed_e.x_train.shape == (75, 1, 8, 8) and seed_e.x_test.shape == (30, 1, 8, 8)


# ---------------------------------------------------------------- the real Fashion-MNIST (Debian package)
@pytest.mark.skipif(not os.path.isdir(FASHION_DIR) and not os.environ.get("CI"),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package():
    data = load_dataset("fashion-mnist", download=False, normalize=None)
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6000] * 10 and np.bincount(data.y_test).tolist() == [1000] * 10
    assert data.x_train.min() == 0 and data.x_train.max() == 255
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    # the system copy's digests are in the table (so it was verified, not merely read)
    for name in MNIST_FILES:
        assert sources.sha256_of(os.path.join(FASHION_DIR, name)) in sources.CHECKSUMS["fashion-mnist"][name]


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR) and not os.environ.get("CI"),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_upstream_fashion_mnist_digests_match_the_debian_files():
    """Debian's copies differ from the upstream downloads only in the gzip header (no file
    name, another mtime); restoring the upstream header must give the upstream digests."""
    mtimes = {"train": 1504176606, "t10k": 1504176627}  # 2017-08-31, found once by search
    for name in MNIST_FILES:
        data = open(os.path.join(FASHION_DIR, name), "rb").read()
        assert data[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME
        stem = name[:-len(".gz")].encode()
        header = b"\x1f\x8b\x08\x08" + mtimes[name.split("-")[0]].to_bytes(4, "little") + data[8:10] + stem + b"\x00"
        upstream = hashlib.sha256(header + data[10:]).hexdigest()
        assert upstream == sources.CHECKSUMS["fashion-mnist"][name][0]
