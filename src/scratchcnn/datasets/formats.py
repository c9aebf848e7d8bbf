"""Readers for the data files learners have: each returns a :class:`~.arrays.RawData`.

===================  ==========================================================================
:func:`read_csv`     Kaggle's MNIST / Fashion-MNIST CSVs: a label column, then one column per
                     pixel, with or without a header (a ``label`` column is found by name)
:func:`read_npz`     NumPy ``.npz`` with ``x_train``, ``y_train`` (``x_test``, ``y_test``,
                     ``class_names``), loaded with ``allow_pickle=False``
:func:`read_idx_dataset`  IDX files (MNIST, EMNIST, KMNIST, torchvision's ``raw/`` folders), ``.gz`` or not
:func:`read_mnist_pickle` ``mnist.pkl.gz`` of Nielsen's book / deep-learning-from-scratch, read by an
                     allow-list unpickler: nothing in the file is executed
:func:`read_hdf5`    HDF5 (h5py) with ``x_train``, ``y_train``, ``x_test``, ``y_test`` or other names
===================  ==========================================================================

Array layouts, pixel types and labels are checked by :mod:`.arrays`; every problem is a
:class:`~scratchcnn.errors.DatasetError` naming the file and what was expected.
"""
import csv
import gzip
import os
import pickle
import re
import zlib
import zipfile

import numpy as np

from ..errors import DatasetError
from .arrays import parse_image_size, raw_from_arrays
from .cifar import _allowed_globals
from .idx import read_idx

GZIP_MAGIC = b"\x1f\x8b"


def data_name(path):
    """A short name for a data file or folder: ``mnist.pkl.gz`` -> ``mnist``, ``data/MNIST/raw`` -> ``MNIST``."""
    path = os.path.abspath(os.fspath(path))
    base = os.path.basename(path.rstrip(os.sep))
    if os.path.isdir(path) and base.lower() == "raw":
        base = os.path.basename(os.path.dirname(path)) or base
    for ext in (".gz", ".npz", ".csv", ".tsv", ".pkl", ".pickle", ".hdf5", ".h5", ".hdf", ".he5"):
        if base.lower().endswith(ext) and len(base) > len(ext):
            base = base[:-len(ext)]
    return base or "data"


def _open_maybe_gzip(path, mode="rb"):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, mode) if "b" in mode else gzip.open(path, mode, newline="", encoding="utf-8")
    return open(path, mode) if "b" in mode else open(path, mode, newline="", encoding="utf-8")


def _exists(path, what="data file"):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such {what}")
    return path


# ---------------------------------------------------------------- CSV
LABEL_COLUMNS = ("label", "labels", "class", "target", "y")


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _csv_layout(path):
    """``(has_header, number of columns, label column)`` from the first row."""
    try:
        with _open_maybe_gzip(path, "rt") as f:
            first = next((row for row in csv.reader(f) if row), None)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read as CSV text: {exc}") from None
    if first is None:
        raise DatasetError(f"{path}: empty CSV file (expected a label column, then one column per pixel)")
    header = any(not _is_number(v) for v in first)
    label_col = 0
    if header:
        lowered = [v.strip().lower() for v in first]
        label_col = next((lowered.index(n) for n in LABEL_COLUMNS if n in lowered), 0)
    return header, len(first), label_col


def _csv_problem(path, header, ncols):
    """Scan the file row by row for the first bad line (called when NumPy's parse failed)."""
    with _open_maybe_gzip(path, "rt") as f:
        reader = csv.reader(f)
        for i, row in enumerate(reader):
            if i == 0 and header or not row:
                continue
            if len(row) != ncols:
                return (f"{path}: line {reader.line_num} has {len(row)} columns, expected {ncols} (a label, then "
                        f"{ncols - 1} pixel values, like the first {'(header) ' if header else ''}line)")
            for j, v in enumerate(row):
                if not _is_number(v):
                    return (f"{path}: line {reader.line_num}, column {j + 1}: {v!r} is not a number (expected "
                            f"an integer label and numeric pixel values)")
    return None


def _read_csv_table(path, image_size):
    """``(images, labels)`` of one CSV file, checked line by line on any problem."""
    path = _exists(path, "CSV file")
    header, ncols, label_col = _csv_layout(path)
    if ncols < 2:
        raise DatasetError(f"{path}: one column only: expected a label column, then one column per pixel")
    try:
        with _open_maybe_gzip(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", skiprows=1 if header else 0, dtype=np.float32, ndmin=2,
                               comments=None)
    except (ValueError, IndexError) as exc:
        problem = _csv_problem(path, header, ncols)
        raise DatasetError(problem or f"{path}: not a table of numbers with {ncols} columns: {exc}") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as CSV text (truncated or corrupted?): {exc}") from None
    if table.shape[1] != ncols:
        raise DatasetError(_csv_problem(path, header, ncols) or f"{path}: expected {ncols} columns")
    y = table[:, label_col]
    bad = np.flatnonzero(y != np.round(y))
    if len(bad):
        raise DatasetError(f"{path}: line {bad[0] + 1 + header}: label {y[bad[0]]:g} is not an integer "
                           f"(column {label_col + 1} holds the class index)")
    x = np.delete(table, label_col, axis=1)
    del table
    if (x == np.round(x)).all() and x.size and x.min() >= 0 and x.max() <= 255:
        x = x.astype(np.uint8)
    return x, y.astype(np.int64), ncols


def read_csv(path, test_path=None, image_size=None):
    """A Kaggle-style CSV (``label, pixel0, pixel1, ...``; header optional; ``.csv.gz`` too).

    test_path: a second CSV of the same layout for the test set (else there is none, and
    :func:`load_data` holds out a split). image_size: ``(H, W)`` when the pixel count is not
    a square (or three times one: RGB planes). Wrong column counts and non-numbers are named
    by line."""
    image_size = parse_image_size(image_size)
    x, y, ncols = _read_csv_table(path, image_size)
    x_test = y_test = None
    if test_path is not None:
        x_test, y_test, tcols = _read_csv_table(test_path, image_size)
        if tcols != ncols:
            raise DatasetError(f"{test_path}: {tcols} columns, but {path} has {ncols}: expected the same layout "
                               f"(a label column, then the pixels; an unlabelled test file cannot be scored)")
    return raw_from_arrays(data_name(path), path, "csv", x, y, x_test, y_test, image_size=image_size,
                           info={"files": [os.fspath(p) for p in (path, test_path) if p is not None]})


# ---------------------------------------------------------------- npz
def read_npz(path, image_size=None):
    """A NumPy ``.npz`` holding ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``,
    ``class_names`` (images NCHW, NHWC, (N, H, W) or flat; uint8 or float). Read with
    ``allow_pickle=False``: an object array in the file is refused, never unpickled."""
    path = _exists(path, "npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            missing = [k for k in ("x_train", "y_train") if k not in keys]
            if missing:
                raise DatasetError(f"{path}: expected arrays x_train, y_train (and x_test, y_test, class_names); "
                                   f"it has {', '.join(keys) or 'none'}")
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "class_names") if k in keys}
    except DatasetError:
        raise
    except ValueError as exc:        # object arrays need pickle: refused
        raise DatasetError(f"{path}: holds an object array, which would need unpickling (refused): expected "
                           f"numeric arrays x_train, y_train, ...: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file (truncated or corrupted?): {exc}") from None
    names = arrays.get("class_names")
    names = None if names is None else [str(n) for n in np.asarray(names).reshape(-1)]
    return raw_from_arrays(data_name(path), path, "npz", arrays["x_train"], arrays["y_train"],
                           arrays.get("x_test"), arrays.get("y_test"), class_names=names,
                           image_size=parse_image_size(image_size), info={"files": [path]})


# ---------------------------------------------------------------- IDX
IDX_NAME = re.compile(r"(idx\d-ubyte|\.idx\d?)(\.gz)?$", re.IGNORECASE)


def _idx_role(name):
    """``(split, kind)`` of an IDX file name (``train``/``test``, ``images``/``labels``), or None."""
    low = name.lower()
    kind = "images" if ("images" in low or "idx3" in low or "idx4" in low) else (
        "labels" if ("labels" in low or "idx1" in low) else None)
    split = "test" if ("t10k" in low or "test" in low) else ("train" if "train" in low else None)
    return (split, kind) if kind and split else None


def _idx_group(name):
    """The data-set part of an IDX file name: ``emnist-letters-train-images-idx3-ubyte.gz`` -> ``emnist-letters``."""
    low = IDX_NAME.sub("", name.lower())
    low = re.sub(r"(t10k|train|test|images|labels|idx\d|ubyte)", "", low)
    return re.sub(r"[-_.]+", "-", low).strip("-")


def idx_files(folder, depth=3):
    """IDX file paths under ``folder`` (``depth`` levels down: torchvision's ``root/MNIST/raw/``)."""
    found = []
    root_depth = os.path.abspath(folder).rstrip(os.sep).count(os.sep)
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if os.path.abspath(here).count(os.sep) - root_depth >= depth:
            dirs[:] = []
        found += [os.path.join(here, f) for f in sorted(files) if IDX_NAME.search(f)]
    return found


def _pick_idx(folder):
    """``{(split, kind): path}`` of the one IDX data set in ``folder``, or a clear error."""
    groups = {}
    for path in idx_files(folder):
        role = _idx_role(os.path.basename(path))
        if role is None:
            continue
        key = (os.path.dirname(path), _idx_group(os.path.basename(path)))
        slot = groups.setdefault(key, {})
        # torchvision keeps both train-images-idx3-ubyte and its .gz: take the uncompressed one
        if role not in slot or slot[role].endswith(".gz"):
            slot[role] = path
    complete = {k: v for k, v in groups.items() if ("train", "images") in v and ("train", "labels") in v}
    if not complete:
        raise DatasetError(f"{folder}: no IDX data set found (expected train-images-idx3-ubyte[.gz] and "
                           f"train-labels-idx1-ubyte[.gz], optionally t10k-/test- files, up to 3 folders down)")
    if len(complete) > 1:
        names = ", ".join(sorted(os.path.join(d, g or "(unnamed)") for d, g in complete))
        raise DatasetError(f"{folder}: several IDX data sets ({names}): name one by its training images file "
                           f"(e.g. --data {complete[sorted(complete)[0]][('train', 'images')]})")
    return next(iter(complete.values()))


def _labels_next_to(images_path):
    folder, name = os.path.split(images_path)
    candidates = [name.replace("images", "labels").replace("idx3", "idx1").replace("idx4", "idx1")]
    candidates += [c[:-3] if c.endswith(".gz") else c + ".gz" for c in candidates]
    for c in candidates:
        p = os.path.join(folder, c)
        if c != name and os.path.isfile(p):
            return p
    raise DatasetError(f"{images_path}: no labels file next to it (expected {os.path.join(folder, candidates[0])})")


def _test_next_to(images_path):
    folder, name = os.path.split(images_path)
    if "train" not in name:
        return None
    for c in (name.replace("train", "t10k"), name.replace("train", "test")):
        for cand in (c, c[:-3] if c.endswith(".gz") else c + ".gz"):
            if os.path.isfile(os.path.join(folder, cand)):
                return os.path.join(folder, cand)
    return None


def _read_idx_images_labels(images_path, labels_path):
    x, y = read_idx(images_path), read_idx(labels_path)
    if x.ndim not in (3, 4):
        raise DatasetError(f"{images_path}: expected IDX images (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if y.ndim != 1:
        raise DatasetError(f"{labels_path}: expected IDX labels (N,), got shape {y.shape}")
    if len(y) != len(x):
        raise DatasetError(f"{labels_path}: {len(y)} labels for the {len(x)} images of {images_path}: "
                           f"expected one label per image")
    return x, y


def read_idx_dataset(path, test_path=None):
    """An IDX data set: a folder (MNIST's four files, EMNIST / KMNIST subsets, torchvision's
    ``MNIST/raw/``; gzipped or not), or the training images file itself (its labels file is found
    by name: ``images`` -> ``labels``, ``idx3`` -> ``idx1``; its test files by ``train`` ->
    ``t10k`` / ``test``). test_path: the test images file, when it is elsewhere.

    EMNIST stores its images transposed; they train as they are, but photos to predict on must
    be transposed the same way."""
    path = _exists(os.fspath(path), "IDX file or folder")
    if os.path.isdir(path):
        files = _pick_idx(path)
        train = files[("train", "images")], files[("train", "labels")]
        test = (files[("test", "images")], files[("test", "labels")]) if (
            ("test", "images") in files and ("test", "labels") in files) else None
    else:
        train = path, _labels_next_to(path)
        test_images = _test_next_to(path) if test_path is None else None
        test = (test_images, _labels_next_to(test_images)) if test_images else None
    if test_path is not None:
        test_path = _exists(os.fspath(test_path), "IDX file")
        test = (test_path, _labels_next_to(test_path))
    x, y = _read_idx_images_labels(*train)
    x_test = y_test = None
    if test:
        x_test, y_test = _read_idx_images_labels(*test)
    return raw_from_arrays(data_name(path), path, "idx", x, y, x_test, y_test, source=train[0],
                           info={"files": list(train) + (list(test) if test else [])})


# ---------------------------------------------------------------- pickle
def _pickle_globals():
    """(module, name) -> object: what a pickled MNIST may refer to: NumPy's array, dtype and
    scalar rebuilders (both the NumPy 1 and 2 module names), bytes from Python 2 pickles."""
    table = dict(_allowed_globals())
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "scalar")] = multiarray.scalar
    return table


class DataUnpickler(pickle.Unpickler):
    """An Unpickler in the manner of ``torch.load(weights_only=True)``: it rebuilds tuples, lists,
    dicts, strings, numbers and NumPy arrays, and refuses every other global (``os.system``,
    ``builtins.open``, ``subprocess.Popen``, any class), so nothing in the file is executed."""

    _allowed = None

    def find_class(self, module, name):
        if DataUnpickler._allowed is None:
            DataUnpickler._allowed = _pickle_globals()
        try:
            return DataUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a data pickle may only hold NumPy "
                                         f"arrays, numbers, strings, lists, tuples and dicts") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id: a data pickle may not refer outside itself")


def load_data_pickle(path):
    """Unpickle ``path`` (gzipped or not) with :class:`DataUnpickler`; any refusal or damage is a
    :class:`DatasetError` naming the file."""
    path = _exists(os.fspath(path), "pickle file")
    try:
        with _open_maybe_gzip(path, "rb") as f:
            return DataUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{path}: {exc}; nothing in the file was run") from None
    except Exception as exc:  # any unpickling failure is a bad file, never a crash
        raise DatasetError(f"{path}: not a readable pickle (truncated or corrupted?): {type(exc).__name__}: "
                           f"{exc}") from None


PICKLE_LAYOUT = ("expected a tuple (train, valid, test) or (train, test) of (images, labels) pairs, as "
                 "mnist.pkl.gz, or a dict with train_img, train_label, test_img, test_label")


def read_mnist_pickle(path, image_size=None):
    """Seed A's ``mnist.pkl.gz``: the pickled MNIST of Nielsen's book (a gzipped tuple
    ``(train, valid, test)``, each ``(x float32 (N, 784) in 0..1, y int64 (N,))``; the
    validation images join the training set, ``val_split`` holds out its own), or
    deep-learning-from-scratch's dict (``train_img``, ``train_label``, ``test_img``, ``test_label``).

    Read by :class:`DataUnpickler`: only NumPy arrays and plain Python values can come out
    of it; a pickle that asks for anything else is refused before it can do anything."""
    obj = load_data_pickle(path)
    info = {"files": [os.fspath(path)]}
    if isinstance(obj, dict):
        keys = {str(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
        for a, b, c, d in (("train_img", "train_label", "test_img", "test_label"),
                           ("x_train", "y_train", "x_test", "y_test")):
            if a in keys and b in keys:
                return raw_from_arrays(data_name(path), path, "pickle", keys[a], keys[b], keys.get(c), keys.get(d),
                                       image_size=parse_image_size(image_size), info=info)
        raise DatasetError(f"{path}: a dict with keys {', '.join(sorted(keys))}: {PICKLE_LAYOUT}")
    if not isinstance(obj, (tuple, list)) or len(obj) not in (2, 3) or not all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in obj):
        raise DatasetError(f"{path}: a {type(obj).__name__}: {PICKLE_LAYOUT}")
    for part in obj:
        for a in part:
            if not isinstance(a, np.ndarray) and not isinstance(a, (list, tuple)):
                raise DatasetError(f"{path}: a {type(a).__name__} where an array was expected: {PICKLE_LAYOUT}")
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in obj]
    if len(pairs) == 3:
        (xt, yt), (xv, yv), (xs, ys) = pairs
        if xv.ndim == xt.ndim and xv.shape[1:] == xt.shape[1:] and len(xv):
            info["validation images merged into training"] = int(len(xv))
            xt, yt = np.concatenate([xt, xv]), np.concatenate([np.ravel(yt), np.ravel(yv)])
    else:
        (xt, yt), (xs, ys) = pairs
    return raw_from_arrays(data_name(path), path, "pickle", xt, yt, xs, ys,
                           image_size=parse_image_size(image_size), info=info)


# ---------------------------------------------------------------- HDF5
HDF5_KEYS = ("x_train", "y_train", "x_test", "y_test")


def parse_hdf5_keys(keys):
    """``"a,b,c,d"`` / ``["a", "b"]`` -> a tuple of 2 (train only) or 4 dataset names."""
    if keys is None:
        return HDF5_KEYS
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    keys = tuple(str(k) for k in keys)
    if len(keys) not in (2, 4):
        raise DatasetError(f"HDF5 keys: expected x_train,y_train[,x_test,y_test] (2 or 4 names), got {keys}")
    return keys


def read_hdf5(path, keys=None, image_size=None):
    """An HDF5 file (h5py) in seed D's ``MNISTdata.hdf5`` layout: datasets ``x_train (N, 784)``
    in 0..1, ``y_train (N, 1)``, ``x_test``, ``y_test``. keys: other dataset names, 2 (no test
    set) or 4, as a list or ``"x,y,xt,yt"`` (groups with ``/``). A ``class_names`` dataset, if
    present, names the classes."""
    path = _exists(os.fspath(path), "HDF5 file")
    keys = parse_hdf5_keys(keys)
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path}: reading HDF5 needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            present = []
            f.visit(lambda name: present.append(name) if isinstance(f[name], h5py.Dataset) else None)
            missing = [k for k in keys if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise DatasetError(f"{path}: expected HDF5 datasets {', '.join(keys)}, but {', '.join(missing)} "
                                   f"{'is' if len(missing) == 1 else 'are'} missing (it has: "
                                   f"{', '.join(present) or 'no datasets'}); name yours with --hdf5-keys "
                                   f"X_TRAIN,Y_TRAIN[,X_TEST,Y_TEST]")
            arrays = [np.asarray(f[k][()]) for k in keys]
            names = None
            if "class_names" in f and isinstance(f["class_names"], h5py.Dataset):
                names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                         for n in np.asarray(f["class_names"][()]).reshape(-1)]
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupted?): {exc}") from None
    x_test, y_test = (arrays[2], arrays[3]) if len(arrays) == 4 else (None, None)
    return raw_from_arrays(data_name(path), path, "hdf5", arrays[0], arrays[1], x_test, y_test, class_names=names,
                           image_size=parse_image_size(image_size), info={"files": [path], "keys": list(keys)})


# ---------------------------------------------------------------- sniffing
def sniff_file(path):
    """The format of a data file from its name, else its first bytes; None when unknown."""
    low = os.path.basename(path).lower()
    stem = low[:-3] if low.endswith(".gz") else low
    by_ext = [(".npz", "npz"), (".csv", "csv"), (".tsv", "csv"), (".pkl", "pickle"), (".pickle", "pickle"),
              (".hdf5", "hdf5"), (".h5", "hdf5"), (".hdf", "hdf5"), (".he5", "hdf5")]
    for ext, fmt in by_ext:
        if stem.endswith(ext):
            return fmt
    if IDX_NAME.search(low) or "ubyte" in low:
        return "idx"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if head[:2] == GZIP_MAGIC:
            with gzip.open(path, "rb") as f:
                head = f.read(16)
    except (OSError, EOFError, zlib.error):
        return None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PK"):
        return "npz"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:2] == b"\x00\x00" and len(head) >= 4 and head[2] in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E):
        return "idx"
    try:
        text = head.decode("ascii")
        if "," in text or text[:1].isdigit():
            return "csv"
    except UnicodeDecodeError:
        pass
    return None


__all__ = ["DataUnpickler", "HDF5_KEYS", "data_name", "idx_files", "read_csv", "read_hdf5",
           "read_idx_dataset", "read_mnist_pickle", "read_npz", "sniff_file"]
