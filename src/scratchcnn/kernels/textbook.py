"""The textbook switch: run every layer's plain path instead of its fast kernels.

scratchcnn has three kinds of implementation of each layer's maths, and one word for each:

* **loops** -- :mod:`scratchcnn.nn.loops`, naive Python loops written straight from the
  formulas. Slow; they exist to be read and to check the other two (the tests compare them).
* **the textbook path** -- a layer's own ``forward`` / ``backward`` methods: the plain,
  vectorised algorithm (for ``Conv2D``: im2col and one matrix product), the code a reader reads.
* **fast kernels** -- :mod:`scratchcnn.kernels` (channels-last im2col, the one-channel
  product, Winograd, depthwise and grouped / dilated convolution, tiled max-pool, BatchNorm on
  rows or planes): the same maths with less
  work or memory traffic. A layer picks one in a few lines when the textbook switch is off.

``with scratchcnn.textbook(): ...`` (or ``scratchcnn.use_textbook(True)``, or the command
line's ``scratchcnn train --textbook``) makes every layer run its textbook path, so a reader
can watch exactly the code they read train a network: the same results to rounding, slower.
"""
from contextlib import contextmanager

_textbook = False


def textbook_enabled():
    """True when every layer must run its textbook path (the switch is off by default)."""
    return _textbook


def use_textbook(enabled=True):
    """Turn the textbook switch on or off for the whole process; returns the previous setting."""
    global _textbook
    previous, _textbook = _textbook, bool(enabled)
    return previous


@contextmanager
def textbook(enabled=True):
    """Within this block every layer runs its textbook path (``enabled=False``: its fast kernels)."""
    previous = use_textbook(enabled)
    try:
        yield
    finally:
        use_textbook(previous)
