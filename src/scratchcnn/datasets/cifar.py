"""Reader for CIFAR-10's python version, ``cifar-10-python.tar.gz``.

The archive holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (10000 images
each) and ``test_batch``: each a pickled dict whose ``data`` is a (10000, 3072) uint8
array (1024 red, then 1024 green, then 1024 blue values, row-major 32x32) and whose
``labels`` is a list of ints 0..9.

Unpickling can run arbitrary code, so the batches are read with an Unpickler whose
``find_class`` only returns NumPy's array-rebuilding helpers: a file asking for anything
else is rejected, never executed.
"""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from ..errors import DatasetError

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
FOLDER = "cifar-10-batches-py"
MAX_BATCH_BYTES = 64 << 20      # a real batch is 31 MB


def _allowed_globals():
    """(module, name) -> object: the only globals a CIFAR batch may refer to."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray, numeric
    import codecs
    reconstruct, frombuffer = multiarray._reconstruct, numeric._frombuffer
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = frombuffer
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that can rebuild dicts, lists, strings, numbers and NumPy arrays, nothing else."""

    _allowed = None

    def find_class(self, module, name):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def load_batch(data, source):
    """Parse one pickled batch: images ``(N, 3, 32, 32)`` uint8, labels ``(N,)`` int64."""
    try:
        d = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure is a bad file, never a crash
        raise DatasetError(f"{source}: not a readable CIFAR-10 batch: {exc}") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{source}: a CIFAR-10 batch must be a dict, got {type(d).__name__}")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    x, y = d.get("data"), d.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{source}: 'data' must be an (N, 3072) uint8 array")
    if len(x) == 0:
        raise DatasetError(f"{source}: the batch holds no images")
    try:
        y = np.asarray(y) if isinstance(y, (list, tuple, np.ndarray)) else None
    except (ValueError, TypeError):
        y = None
    if y is None or y.dtype.kind not in "iu" or y.shape != (len(x),) or y.min() < 0 or y.max() > 9:
        raise DatasetError(f"{source}: 'labels' must be {len(x)} ints in 0..9")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_cifar10(path):
    """``(x_train, y_train, x_test, y_test)`` from ``cifar-10-python.tar.gz``:
    x (50000 / 10000, 3, 32, 32) uint8 RGB, y int64 in 0..9."""
    path = os.fspath(path)
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and base in TRAIN_BATCHES + [TEST_BATCH]:
                    if member.size > MAX_BATCH_BYTES:
                        raise DatasetError(f"{path}: {member.name} is {member.size:,} bytes, more than a CIFAR-10 "
                                           f"batch holds (about 31 MB)")
                    if base in batches:
                        raise DatasetError(f"{path}: the archive holds {base} twice")
                    batches[base] = tar.extractfile(member).read()
    except DatasetError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read the CIFAR-10 archive (truncated or corrupted?): {exc}") from None
    absent = [b for b in TRAIN_BATCHES + [TEST_BATCH] if b not in batches]
    if absent:
        raise DatasetError(f"{path}: CIFAR-10 archive lacks {', '.join(absent)} (expected {FOLDER}/...)")
    train = [load_batch(batches[b], f"{path}:{b}") for b in TRAIN_BATCHES]
    x_test, y_test = load_batch(batches[TEST_BATCH], f"{path}:{TEST_BATCH}")
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test)
