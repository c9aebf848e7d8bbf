"""Fuzz data files in a folder the user names (``--data-dir``): MNIST-format IDX files (gzipped or
not), CIFAR-10's python archive, the UCI optdigits files; each mutated into something its format
does not allow. ``load_dataset(name, data_dir=..., download=False)`` must raise DatasetError
(checksums are not the check here: files of the user's own are read as given, after a note).
"""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchcnn.datasets import load_dataset
from .fuzzlib import api_error, cli_error

ENTRY = "data files"
MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def idx_bytes(arr, type_code=0x08, dtype=">u1"):
    header = bytes([0, 0, type_code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr).astype(dtype).tobytes()


def mnist_arrays(rng, n=3):
    y_train, y_test = np.repeat(np.arange(10), n), np.repeat(np.arange(10), 2)
    return {MNIST_FILES[0]: rng.integers(0, 256, (len(y_train), 28, 28)), MNIST_FILES[1]: y_train,
            MNIST_FILES[2]: rng.integers(0, 256, (len(y_test), 28, 28)), MNIST_FILES[3]: y_test}


def write_files(folder, files, gz=True):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        if data is None:
            continue
        if isinstance(data, np.ndarray):
            data = idx_bytes(data)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(gzip.compress(data, mtime=0) if gz and not getattr(data, "raw", False) else bytes(data))


class Raw(bytes):
    """Bytes written as they are (not gzipped again)."""
    raw = True


IDX_KINDS = ["bad magic", "bad type code", "images of 2 dimensions", "images of 4 dimensions", "labels of 2 dimensions",
             "a size of zero", "header larger than the data", "header smaller than the data", "0 dimensions",
             "fewer labels than images", "more labels than images", "label out of range", "float labels",
             "int16 images", "float images", "truncated gzip", "corrupted gzip", "gzip with trailing garbage",
             "empty file", "random bytes", "only a header", "a folder instead of the file"]


@settings(max_examples=260)
@given(kind=st.sampled_from(IDX_KINDS), which=st.integers(0, 3), gz=st.booleans(), seed=st.integers(0, 2**16))
def test_idx_files(kind, which, gz, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    arrays = mnist_arrays(rng)
    files = {name: a for name, a in arrays.items()}
    images_name = MNIST_FILES[0] if which < 2 else MNIST_FILES[2]
    labels_name = MNIST_FILES[1] if which < 2 else MNIST_FILES[3]
    target = images_name if which % 2 == 0 else labels_name
    x, y = arrays[images_name], arrays[labels_name]
    if kind == "bad magic":
        data = bytearray(idx_bytes(files[target]))
        data[int(rng.integers(0, 2))] = int(rng.integers(1, 256))
        files[target] = bytes(data)
    elif kind == "bad type code":
        code = int(rng.choice([b for b in range(256) if b not in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)]))
        files[target] = idx_bytes(files[target], type_code=code)
    elif kind == "images of 2 dimensions":
        files[images_name] = x.reshape(len(x), -1)
    elif kind == "images of 4 dimensions":
        files[images_name] = x.reshape(len(x), 1, 28, 28)
    elif kind == "labels of 2 dimensions":
        files[labels_name] = np.stack([y, y], axis=1)
    elif kind == "a size of zero":
        axis = int(rng.integers(0, x.ndim if target == images_name else 1))
        shape = list(files[target].shape)
        shape[axis] = 0
        files[target] = np.zeros(shape, np.uint8)
    elif kind in ("header larger than the data", "header smaller than the data", "only a header"):
        data = idx_bytes(files[target])
        header = 4 + 4 * files[target].ndim
        if kind == "only a header":
            data = data[:header + int(rng.integers(0, 3))]
        elif kind == "header larger than the data":
            data = data[:-int(rng.integers(1, min(len(data) - header, 500)))]
        else:
            data = data + bytes(int(rng.integers(1, 50)))
        files[target] = data
    elif kind == "0 dimensions":
        files[target] = bytes([0, 0, 0x08, 0]) + bytes(int(rng.integers(0, 4)))
    elif kind == "fewer labels than images":
        files[labels_name] = y[:-int(rng.integers(1, len(y)))]
    elif kind == "more labels than images":
        files[labels_name] = np.concatenate([y, y[:int(rng.integers(1, 5))]])
    elif kind == "label out of range":
        bad = y.copy()
        bad[int(rng.integers(0, len(bad)))] = int(rng.integers(10, 256))
        files[labels_name] = bad
    elif kind == "float labels":
        files[labels_name] = idx_bytes(y.astype(np.float32), 0x0D, ">f4")
    elif kind == "int16 images":
        files[images_name] = idx_bytes(x.astype(np.int16), 0x0B, ">i2")
    elif kind == "float images":
        files[images_name] = idx_bytes(x.astype(np.float32), 0x0D, ">f4")
    elif kind in ("truncated gzip", "corrupted gzip", "gzip with trailing garbage"):
        data = gzip.compress(idx_bytes(files[target]), mtime=0)
        if kind == "truncated gzip":
            data = data[:int(rng.integers(2, len(data) - 1))]
        elif kind == "corrupted gzip":
            body = bytearray(data)
            pos = int(rng.integers(10, 10 + (len(data) - 18) // 2))
            body[pos] ^= 0xFF
            data = bytes(body)
        else:
            data = data + b"garbage" + bytes(rng.integers(1, 256, 5, dtype=np.uint8))
        files[target] = Raw(data)
    elif kind == "empty file":
        files[target] = Raw(b"")
    elif kind == "random bytes":
        files[target] = Raw(rng.integers(1, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes())
    folder = tmp_path_factory.mktemp("idx")
    write_files(folder, files, gz=gz)
    if kind == "a folder instead of the file":
        os.remove(folder / target)
        os.mkdir(folder / target)
    api_error(ENTRY, f"IDX: {kind}", load_dataset, "mnist", data_dir=folder, download=False, match=r"mnist|idx|ubyte")


def cifar_batch(x, y):
    return pickle.dumps({b"batch_label": b"b", b"labels": list(y), b"data": x, b"filenames": []}, protocol=2)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/scratchcnn-fuzz-pwned",))


CIFAR_KINDS = ["missing batch", "batch not a dict", "data int16", "data float", "data of 3071 columns", "data 3-D",
               "labels strings", "labels floats", "labels out of range", "negative labels", "labels too few",
               "no labels", "no data", "a forbidden global", "empty batch", "pickle garbage", "truncated archive",
               "not gzip", "random bytes", "labels a dict"]


def _archive(members, mode="w:gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@settings(max_examples=120)
@given(kind=st.sampled_from(CIFAR_KINDS), seed=st.integers(0, 2**16))
def test_cifar_archives(kind, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    n = 4
    members = {name: cifar_batch(rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n))
               for name in names}
    victim = names[int(rng.integers(0, 6))]
    x, y = rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)
    d = {b"labels": list(y), b"data": x}
    if kind == "missing batch":
        del members[victim]
    elif kind == "batch not a dict":
        members[victim] = pickle.dumps([x, list(y)], protocol=2)
    elif kind == "data int16":
        d[b"data"] = x.astype(np.int16)
    elif kind == "data float":
        d[b"data"] = x.astype(np.float32)
    elif kind == "data of 3071 columns":
        d[b"data"] = x[:, :3071]
    elif kind == "data 3-D":
        d[b"data"] = x.reshape(n, 3, 1024)
    elif kind == "labels strings":
        d[b"labels"] = [str(v) for v in y]
    elif kind == "labels floats":
        d[b"labels"] = [float(v) + 0.5 for v in y]
    elif kind == "labels out of range":
        d[b"labels"] = list(y[:-1]) + [int(rng.integers(10, 1000))]
    elif kind == "negative labels":
        d[b"labels"] = [-1] + list(y[1:])
    elif kind == "labels too few":
        d[b"labels"] = list(y[:-1])
    elif kind == "no labels":
        del d[b"labels"]
    elif kind == "no data":
        del d[b"data"]
    elif kind == "labels a dict":
        d[b"labels"] = {1: 2}
    elif kind == "empty batch":
        d = {b"labels": [], b"data": np.zeros((0, 3072), np.uint8)}
    if kind in ("a forbidden global",):
        members[victim] = pickle.dumps({b"data": x, b"labels": Evil()}, protocol=2)
    elif kind == "pickle garbage":
        members[victim] = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    elif kind not in ("missing batch", "batch not a dict"):
        members[victim] = pickle.dumps(d, protocol=2)
    data = _archive(members)
    if kind == "truncated archive":
        data = data[:int(rng.integers(0, len(data) - 1))]
    elif kind == "not gzip":
        data = _archive(members, mode="w")
    elif kind == "random bytes":
        data = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    folder = tmp_path_factory.mktemp("cifar")
    (folder / "cifar-10-python.tar.gz").write_bytes(data)
    api_error(ENTRY, f"CIFAR-10: {kind}", load_dataset, "cifar10", data_dir=folder, download=False,
              match=r"cifar")
    assert not os.path.exists("/tmp/scratchcnn-fuzz-pwned")


OPT_KINDS = ["a row of 64 values", "a row of 66 values", "pixel 17", "negative pixel", "label 10", "a letter",
             "a float", "empty file", "too few rows", "a huge number", "binary junk", "semicolons"]


@pytest.fixture(scope="module")
def optdigits_rows():
    rng = np.random.default_rng(0)
    return {name: np.concatenate([rng.integers(0, 17, (n, 64)), rng.integers(0, 10, (n, 1))], axis=1)
            for name, n in (("optdigits.tra", 3823), ("optdigits.tes", 1797))}


@settings(max_examples=40)
@given(kind=st.sampled_from(OPT_KINDS), which=st.sampled_from(["optdigits.tra", "optdigits.tes"]),
       row=st.integers(0, 1796), seed=st.integers(0, 2**16))
def test_optdigits_files(kind, which, row, seed, optdigits_rows, tmp_path_factory):
    rows = {k: [",".join(map(str, r)) for r in v] for k, v in optdigits_rows.items()}
    lines = rows[which]
    values = lines[row].split(",")
    if kind == "a row of 64 values":
        lines[row] = ",".join(values[:64])
    elif kind == "a row of 66 values":
        lines[row] = ",".join(values + ["1"])
    elif kind == "pixel 17":
        values[seed % 64] = "17"
        lines[row] = ",".join(values)
    elif kind == "negative pixel":
        values[seed % 64] = "-1"
        lines[row] = ",".join(values)
    elif kind == "label 10":
        values[64] = str(10 + seed % 90)
        lines[row] = ",".join(values)
    elif kind == "a letter":
        values[seed % 65] = "x"
        lines[row] = ",".join(values)
    elif kind == "a float":
        values[seed % 65] = "1.5"
        lines[row] = ",".join(values)
    elif kind == "empty file":
        lines.clear()
    elif kind == "too few rows":
        del lines[row:]
    elif kind == "a huge number":
        values[seed % 65] = "9" * 30
        lines[row] = ",".join(values)
    elif kind == "binary junk":
        lines[row] = "\xff\xfe\x00"
    else:
        lines[row] = ";".join(values)
    folder = tmp_path_factory.mktemp("optdigits")
    for name, ls in rows.items():
        (folder / name).write_bytes(("\r\n".join(ls) + "\r\n").encode("latin1") if ls else b"")
    api_error(ENTRY, f"optdigits: {kind}", load_dataset, "optdigits", data_dir=folder, download=False,
              match=r"optdigits")


@settings(max_examples=25)
@given(kind=st.sampled_from(["label out of range", "fewer labels than images", "a size of zero", "truncated gzip",
                             "bad magic"]), seed=st.integers(0, 2**16))
def test_bad_idx_files_on_the_command_line(kind, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    files = mnist_arrays(rng)
    if kind == "label out of range":
        files[MNIST_FILES[1]] = files[MNIST_FILES[1]] + 10
    elif kind == "fewer labels than images":
        files[MNIST_FILES[3]] = files[MNIST_FILES[3]][:-1]
    elif kind == "a size of zero":
        files[MNIST_FILES[0]] = np.zeros((30, 0, 28), np.uint8)
    elif kind == "truncated gzip":
        files[MNIST_FILES[2]] = Raw(gzip.compress(idx_bytes(files[MNIST_FILES[2]]))[:40])
    else:
        files[MNIST_FILES[1]] = b"\x01\x02" + idx_bytes(files[MNIST_FILES[1]])[2:]
    folder = tmp_path_factory.mktemp("cli-idx")
    write_files(folder, files)
    out = tmp_path_factory.mktemp("cli-idx-run")
    cli_error("cli", f"train --data-dir IDX ({kind})", ["train", "--dataset", "mnist", "--data-dir", str(folder),
                                                        "--epochs", "1", "--quiet", "--out", str(out / "r")])


def test_own_valid_files_are_used_with_a_note_not_refused(tmp_path):
    """Valid MNIST-format files that are not the official ones: loaded, with a one-line note."""
    import contextlib
    files = mnist_arrays(np.random.default_rng(1))
    write_files(tmp_path, files)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        data = load_dataset("mnist", data_dir=tmp_path, download=False, normalize=None)
    np.testing.assert_array_equal(data.y_train, files[MNIST_FILES[1]])


OWN_KINDS = ["random bytes", "empty file", "text", "truncated", "an empty folder", "a folder of junk files"]
OWN_FORMATS = {"csv": ".csv", "npz": ".npz", "idx": "-idx3-ubyte", "pickle": ".pkl.gz", "hdf5": ".h5",
               "folder": ""}


@settings(max_examples=60)
@given(kind=st.sampled_from(OWN_KINDS), fmt=st.sampled_from(sorted(OWN_FORMATS)), named=st.booleans(),
       seed=st.integers(0, 2**16))
def test_own_data_files_given_with_data(kind, fmt, named, seed, tmp_path_factory):
    """``train --data PATH`` (the user's own files, every format) on files that are not data."""
    rng = np.random.default_rng(seed)
    d = tmp_path_factory.mktemp("own")
    path = d / ("data" + OWN_FORMATS[fmt])
    if fmt == "folder" or kind in ("an empty folder", "a folder of junk files"):
        path = d / "images"
        path.mkdir()
        if kind != "an empty folder":
            for c in ("cat", "dog"):
                (path / c).mkdir()
                for i in range(2):
                    (path / c / f"{i}.png").write_bytes(rng.integers(0, 256, 50, dtype=np.uint8).tobytes())
    elif kind == "random bytes":
        path.write_bytes(rng.integers(0, 256, int(rng.integers(1, 500)), dtype=np.uint8).tobytes())
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("label,pixel\nnot,numbers\n" * int(rng.integers(1, 5)))
    else:
        buf = io.BytesIO()
        np.savez(buf, x_train=np.zeros((4, 1, 4, 4), np.uint8), y_train=np.arange(4))
        path.write_bytes(gzip.compress(buf.getvalue())[:30] if fmt == "pickle" else buf.getvalue()[:100])
    out = tmp_path_factory.mktemp("own-run")
    argv = ["train", "--data", str(path), "--epochs", "1", "--quiet", "--out", str(out / "r")]
    if named and fmt != "folder":
        argv += ["--data-format", fmt]
    cli_error("cli", f"train --data ({fmt}: {kind})", argv)
