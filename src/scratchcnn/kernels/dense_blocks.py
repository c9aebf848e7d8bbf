"""Dense's fast kernel for wide layers: the backward products cut into the blocks BLAS runs fastest.

:class:`scratchcnn.nn.Dense`'s textbook backward is two products, ``dW = dy^T @ x`` and
``dx = dy @ W`` (``dy: (N, out)``, ``x: (N, in)``, ``W: (out, in)``). For a wide layer with few
outputs -- seed D's ``Dense(18432, 10)`` -- both have a small inner or outer dimension (10 or
N) and a long one (18,432), a shape on which BLAS kernels differ a lot: OpenBLAS 0.3.31's
SkylakeX sgemm computed ``dx = dy @ W`` for a batch of 64 2.6x faster in blocks of 4 rows
(``dx[i:i+4] = dy[i:i+4] @ W``) than in one call, while its Haswell kernel was fastest in one
call (docs/performance.md has the figures). So this kernel cuts each product along its long
output axis into blocks and *measures once* which cut is fastest for a given shape, dtype and
BLAS: the first call times every candidate on the real operands (a few milliseconds, once per
shape), later calls use the winner. Every cut computes each output element as the same dot
product as the one-call product, so the results equal the textbook path's up to rounding.

Contract (no state kept between forward and backward: Dense keeps its input itself)::

    applies(x, weight)              # True for wide layers (this kernel's use)
    grad_weight = weight_grad(grad_y, x)      # (out, in)  = grad_y^T @ x
    grad_x = input_grad(grad_y, weight)       # (N, in)    = grad_y @ weight, C-contiguous
"""
import time

import numpy as np

#: layers with at least this many inputs use the kernel (below, one product is fine and quick)
MIN_IN_FEATURES = 2048

#: candidate cuts: rows per block of ``dx`` (None: one product), columns per block of ``dW``
INPUT_GRAD_ROWS = (None, 4, 8, 16)
WEIGHT_GRAD_COLUMNS = (None, 512, 2048)

_best = {}          # (product, shapes, dtype) -> the fastest cut measured


def applies(x, weight):
    """True when the layer is wide (``in_features >= MIN_IN_FEATURES``) and x is a C-contiguous matrix."""
    return weight.shape[1] >= MIN_IN_FEATURES and x.ndim == 2 and x.flags.c_contiguous


def _rows(g, w, rows, out):
    """``out = g @ w`` (``out: (N, in)``), ``rows`` rows of g at a time (None: one product)."""
    if rows is None:
        return np.matmul(g, w, out=out)
    for i in range(0, len(g), rows):
        np.matmul(g[i:i + rows], w, out=out[i:i + rows])
    return out


def _columns(g, x, cols, out):
    """``out = g^T @ x`` (``out: (out, in)``), ``cols`` columns of x at a time (None: one product)."""
    if cols is None:
        return np.matmul(g.T, x, out=out)
    for j in range(0, x.shape[1], cols):
        np.matmul(g.T, x[:, j:j + cols], out=out[:, j:j + cols])
    return out


def _fastest(key, candidates, run):
    """Run ``run(candidate)`` with the cut measured fastest for ``key`` (measuring them all, three
    times each, on the first call with this key); returns its result."""
    if key in _best:
        return run(_best[key])
    times = {}
    for _ in range(3):
        for c in candidates:
            t = time.perf_counter()
            result = run(c)
            times[c] = min(times.get(c, np.inf), time.perf_counter() - t)
    _best[key] = min(candidates, key=lambda c: times[c])
    return result


def input_grad(grad_y, weight):
    """``dx = grad_y @ weight``: grad_y (N, out), weight (out, in) -> (N, in), C-contiguous."""
    g = np.ascontiguousarray(grad_y)
    out = np.empty((g.shape[0], weight.shape[1]), dtype=np.result_type(g, weight))
    key = ("dx", g.shape, weight.shape, out.dtype.str)
    return _fastest(key, INPUT_GRAD_ROWS, lambda rows: _rows(g, weight, rows, out))


def weight_grad(grad_y, x):
    """``dW = grad_y^T @ x``: grad_y (N, out), x (N, in) -> (out, in)."""
    out = np.empty((grad_y.shape[1], x.shape[1]), dtype=np.result_type(grad_y, x))
    key = ("dW", grad_y.shape, x.shape, out.dtype.str)
    return _fastest(key, WEIGHT_GRAD_COLUMNS, lambda cols: _columns(grad_y, x, cols, out))
