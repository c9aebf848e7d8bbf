"""Reusable working buffers for the fast kernels.

Allocating a fresh multi-megabyte array for every batch costs page faults (the
operating system zeroes each new page). A :class:`Workspace` keeps one buffer per
name and hands the same memory back while the requested shape and dtype stay the
same, so the buffers of a training run are bounded by the largest batch, not grown
with the data set. Buffers handed out by a workspace are scratch: a layer never
returns one to its caller.
"""
import math
import threading

import numpy as np

class Workspace:
    """Named scratch buffers, reused while shape and dtype are unchanged.

    ``get(name, shape, dtype, zero=False)`` returns an uninitialised buffer (or one
    zero-filled *when it is first allocated* with ``zero=True``: callers that only write
    its interior keep the zero border across calls).
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype, zero=False):
        shape, dtype = tuple(shape), np.dtype(dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = (np.zeros if zero else np.empty)(shape, dtype)
        return buf

    def flat(self, name, shape, dtype):
        """An uninitialised buffer of ``shape`` carved from one flat array that only grows:
        for scratch whose shape changes from call to call (e.g. one per layer)."""
        size, dtype = math.prod(shape), np.dtype(dtype)        # (math.prod: ~10x quicker on a tuple)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def clear(self):
        self._buffers.clear()

    def nbytes(self):
        return sum(b.nbytes for b in self._buffers.values())


class ThreadWorkspace(threading.local, Workspace):
    """A :class:`Workspace` with separate buffers in each thread (``threading.local`` runs
    ``__init__`` again in every thread that touches it)."""


# Scratch shared by every layer for buffers used only inside one call (e.g. the
# column-gradient of a convolution's backward pass): calls in one thread run one after
# another; each thread (the workers of fit(..., workers=N)) has its own buffers.
shared_workspace = ThreadWorkspace()
