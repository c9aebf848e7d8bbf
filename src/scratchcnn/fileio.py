"""Files written safely: every write goes to a temporary file that is renamed into place.

Used by every side of the package (model files, data-set downloads, run directories, plots):
an interrupted write never destroys the previous file, and a reader never sees half of one.

The temporary file is ``.<name>.<pid>.<random>.tmp`` next to the destination. A process killed
while writing (``kill -9``, a power cut) cannot remove its temporary file, so every write first
removes the stale ones of its own name: those whose writer (the pid in the name) is gone, and
those older than :data:`STALE_SECONDS` that carry no pid (written by an older scratchcnn) or are
older than :data:`ABANDONED_SECONDS` whatever their pid says (the pid may have been reused).
"""
import json
import os
import re
import tempfile
import time

import numpy as np

#: a temporary file without a pid in its name is stale after this many seconds
STALE_SECONDS = 5.0
#: any temporary file of ours is stale after this many seconds (a writer's pid may be reused)
ABANDONED_SECONDS = 24 * 3600.0

_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp$")


def _pid_alive(pid):
    """Whether process ``pid`` exists and is not a zombie (a killed child not yet reaped)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _temporary_pid(entry, name=None):
    """For a temporary file name of ours: the writer's pid as a string, or None (no pid in the
    name); False when ``entry`` is not one (of destination ``name``, when given)."""
    if name is not None:
        prefix = f".{name}."
        if not (entry.startswith(prefix) and entry.endswith(".tmp")) or len(entry) <= len(prefix) + 4:
            return False
        middle = entry[len(prefix):-4]
        head, dot, _ = middle.partition(".")
        return head if dot and head.isdigit() else None
    m = _TEMP.match(entry)
    return False if m is None else m.group("pid")


def stale_temporaries(folder, name=None, now=None):
    """Paths of the temporary files of :func:`atomic_write` in ``folder`` (for destination file
    ``name``, or for every name) whose writer is gone: see the module's docstring."""
    now = time.time() if now is None else now
    out = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return out
    for entry in entries:
        pid = _temporary_pid(entry, name)
        if pid is False:
            continue
        path = os.path.join(folder, entry)
        try:
            age = now - os.lstat(path).st_mtime
        except OSError:
            continue
        if age > ABANDONED_SECONDS or (pid is None and age > STALE_SECONDS) or (
                pid is not None and not _pid_alive(int(pid))):
            out.append(path)
    return out


def remove_stale_temporaries(folder, name=None):
    """Delete :func:`stale_temporaries`; returns how many were removed."""
    removed = 0
    for path in stale_temporaries(folder, name):
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed


def atomic_write(path, write_fn, mode="wb"):
    """Call ``write_fn(file)`` on a temporary file next to ``path``, then rename it into place.

    Stale temporary files of earlier, killed writes of ``path`` are removed first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    remove_stale_temporaries(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=folder)
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
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_depth_exceeds(text, max_depth):
    """Whether the JSON ``text`` nests arrays / objects deeper than ``max_depth`` (strings are
    skipped), so that a hostile document is refused before :func:`json.loads` recurses."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def write_json(path, obj):
    """Write ``obj`` as indented JSON (NumPy scalars and arrays as Python values), atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable)), mode="w")


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
