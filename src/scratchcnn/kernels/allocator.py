"""Keep freed memory in the process, so big arrays do not cost page faults every batch.

Every forward pass allocates its outputs afresh: a convolution's output for a batch of 64
28x28 images with 32 channels is 6.4 MB. glibc's ``malloc`` serves blocks that large with
``mmap`` and gives them back with ``munmap`` when NumPy frees them, so the next batch's
array is brand-new memory again, and the kernel must fault in and zero each of its 4 KB
pages (about 1,600 faults for that one array) before NumPy can write to it. Measured with
``benchmarks/bench.py``, this was about 40% of an inference pass of seed D's network.

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve blocks up to 32 MB from its
heap and not to hand freed heap memory back to the system, so a training or inference loop
reuses the same pages batch after batch. The process keeps the memory of its largest batch
(which it needed anyway: the peak is unchanged); larger blocks still use ``mmap``.

Importing scratchcnn changes nothing: the tuning is applied by :func:`tune_allocator` where
scratchcnn starts work that benefits from it -- ``fit``, ``evaluate``, ``predict`` (and
``predict_proba`` / ``predict_logits``) in :mod:`scratchcnn.training`, and the command line. Set the
environment variable ``SCRATCHCNN_MALLOC=system`` to leave the C library's defaults alone
(``keep``, or unset: the default; any other value is warned about and treated as the default);
call :func:`keep_freed_memory` yourself to apply it to a hand-written loop. Elsewhere than glibc (macOS,
Windows, musl) it does nothing and returns False.
"""
import ctypes
import ctypes.util
import os
import warnings

M_TRIM_THRESHOLD = -1      # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30   # never give freed top-of-heap memory back below 1 GB

_applied = False


def keep_freed_memory():
    """Ask glibc to keep freed blocks of up to 32 MB for reuse; returns True when applied."""
    global _applied
    if _applied:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):       # not glibc (or no C library found)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD))
    return _applied


def allocator_tuned():
    """True when :func:`keep_freed_memory` has been applied in this process."""
    return _applied


def tune_allocator():
    """Apply :func:`keep_freed_memory` unless the environment variable ``SCRATCHCNN_MALLOC`` is
    ``system``; returns True when the tuning is in force. Cheap after the first call."""
    if _applied:
        return True
    value = os.environ.get("SCRATCHCNN_MALLOC", "").strip().lower()
    if value == "system":
        return False
    if value not in ("", "keep"):
        warnings.warn(f"SCRATCHCNN_MALLOC={value!r} is not understood: 'system' leaves the C library's "
                      f"defaults alone, 'keep' (the default) keeps freed memory for reuse; keeping it",
                      RuntimeWarning, stacklevel=2)
    return keep_freed_memory()
