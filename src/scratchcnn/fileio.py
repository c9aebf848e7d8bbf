"""Files written safely: every write goes to a temporary file that is renamed into place.

Used by every side of the package (model files, data-set downloads, run directories, plots):
an interrupted write never destroys the previous file, and a reader never sees half of one.
"""
import json
import os
import tempfile

import numpy as np


def atomic_write(path, write_fn, mode="wb"):
    """Call ``write_fn(file)`` on a temporary file next to ``path``, then rename it into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj):
    """Write ``obj`` as indented JSON (NumPy scalars and arrays as Python values), atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable)), mode="w")


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
