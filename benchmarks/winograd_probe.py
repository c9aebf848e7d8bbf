"""Probe: would Winograd F(2x2, 3x3) make scratchcnn's 3x3 convolutions faster? (No, in NumPy.)

Run from the repository root:  python benchmarks/winograd_probe.py

It times, at one BLAS thread, the forward pass of A complex's three 3x3 convolutions
(batch 64) both ways -- Winograd (input transform + 16 batched products + output
transform) and the library's channels-last im2col + one product -- after checking that
they agree. The products shrink as promised (2.25x fewer multiplications), but each
transform is a few dozen element-wise NumPy passes over arrays as large as the layer's
input, and those memory-bound passes cost more than the multiplications saved, so the
library does not use it. (Kept here, outside the package, as the measurement behind that
choice; see docs/performance.md.)

Winograd F(2x2, 3x3): a stride-1 3x3 convolution with 2.25x fewer multiplications.

Lavin & Gray (2016). Each 2x2 block of outputs is computed from a 4x4 tile ``d`` of the
(padded) input, tiles overlapping by 2:

    Y = A^T [ (G w G^T) * (B^T d B) ] A          (* element-wise, over 4x4 positions xi)

so for every one of the 16 positions ``xi`` the channel sum is one matrix product
``M[xi] = V[xi] @ U[xi]`` with ``V[xi]: (T, C)`` (transformed input, T tiles) and
``U[xi]: (C, C_out)`` (transformed weight): 16 * T * C * C_out multiplications instead of
im2col's 36 * T * C * C_out. The transforms B, G, A only add and subtract (and halve).

Backward, the adjoint of each step: ``dM = A dY A^T`` (per tile), ``dU[xi] = V[xi]^T dM[xi]``,
``dw = G^T dU G``.

All arrays are channels-last: ``xp: (N, Hp, Wp, C)`` with ``Hp = OH + 2``, ``Wp = OW + 2``,
``OH`` and ``OW`` even; tiles are ``(N, OH/2, OW/2)`` = ``T``.
"""
import sys
import time

import numpy as np

BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def _combine(coefs, arrays, out):
    """``out = sum_k coefs[k] * arrays[k]`` with only additions for coefficients +-1."""
    terms = [(c, a) for c, a in zip(coefs, arrays) if c != 0]
    (c0, a0), rest = terms[0], terms[1:]
    if c0 == 1:
        out[...] = a0
    else:
        np.multiply(a0, out.dtype.type(c0), out=out)
    for c, a in rest:
        if c == 1:
            out += a
        elif c == -1:
            out -= a
        else:
            out += out.dtype.type(c) * a
    return out


def transform_weight(weight):
    """``U = G w G^T`` per (C_out, C): weight (C_out, C, 3, 3) -> U (16, C, C_out)."""
    u = np.einsum("ai,bj,ocij->abco", G, G, weight.astype(np.float64))
    return np.ascontiguousarray(u.reshape(16, weight.shape[1], weight.shape[0]), dtype=weight.dtype)


def weight_grad(du, dtype):
    """Adjoint of :func:`transform_weight`: dU (16, C, C_out) -> dw (C_out, C, 3, 3)."""
    c, o = du.shape[1:]
    return np.einsum("ai,bj,abco->ocij", G, G, du.reshape(4, 4, c, o).astype(np.float64)).astype(dtype)


def transform_input(xp, out):
    """``V = B^T d B`` for every 4x4 tile of ``xp: (N, 2TH+2, 2TW+2, C)``; out: (16, T, C)."""
    n, hp, wp, c = xp.shape
    th, tw = (hp - 2) // 2, (wp - 2) // 2
    d = [[xp[:, i:i + 2 * th:2, j:j + 2 * tw:2, :] for j in range(4)] for i in range(4)]   # views
    rows = []
    for a in range(4):   # t[a][j] = sum_i BT[a, i] d[i][j]
        rows.append([_combine(BT[a], [d[i][j] for i in range(4)], np.empty((n, th, tw, c), xp.dtype))
                     for j in range(4)])
    v = out.reshape(4, 4, n, th, tw, c)
    for a in range(4):   # V[a][b] = sum_j t[a][j] BT[b, j]
        for b in range(4):
            _combine(BT[b], rows[a], v[a, b])
    return out


def output_transform(m, n, th, tw, out):
    """``Y = A^T M A``: m (16, T, C_out) -> out (N, 2TH, 2TW, C_out) (2x2 outputs per tile)."""
    o = m.shape[-1]
    m4 = m.reshape(4, 4, n, th, tw, o)
    y6 = out.reshape(n, th, 2, tw, 2, o)
    for r in range(2):
        # t[b] = sum_a AT[r, a] M[a][b]
        t = [_combine(AT[r], [m4[a, b] for a in range(4)], np.empty((n, th, tw, o), m.dtype)) for b in range(4)]
        for s in range(2):
            _combine(AT[s], t, y6[:, :, r, :, s, :])
    return out


def output_grad_transform(g, out):
    """Adjoint of :func:`output_transform`: g (N, 2TH, 2TW, C_out) -> dM (16, T, C_out) in out."""
    n, h, w, o = g.shape
    th, tw = h // 2, w // 2
    g6 = g.reshape(n, th, 2, tw, 2, o)
    dm = out.reshape(4, 4, n, th, tw, o)
    # dM[a][b] = sum_{r,s} AT[r, a] AT[s, b] dY[r][s]; first over s: t[r][b]
    t = [[_combine(AT[:, b], [g6[:, :, r, :, s, :] for s in range(2)], np.empty((n, th, tw, o), g.dtype))
          for b in range(4)] for r in range(2)]
    for a in range(4):
        for b in range(4):
            _combine(AT[:, a], [t[r][b] for r in range(2)], dm[a, b])
    return out


def _time(f, repeats=10):
    f()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f()
    return (time.perf_counter() - t0) / repeats * 1e3


def main():
    from scratchcnn import set_num_threads
    from scratchcnn.kernels import im2col_nhwc, weight_rows
    set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| layer (batch 64) | Winograd: input / products / output = total ms | im2col: copy / product = total ms |")
    print("|---|---|---|")
    for n, h, c, o in [(64, 28, 32, 32), (64, 14, 32, 64), (64, 14, 64, 64)]:
        xp = rng.random((n, h + 2, h + 2, c), dtype=np.float32)
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        th = h // 2
        v = np.empty((16, n * th * th, c), np.float32)
        u = transform_weight(w)
        m = np.empty((16, n * th * th, o), np.float32)
        y = np.empty((n, h, h, o), np.float32)
        ti = _time(lambda: transform_input(xp, v))
        tg = _time(lambda: np.matmul(v, u, out=m))
        to = _time(lambda: output_transform(m, n, th, th, y))
        cols = np.empty((n * h * h, 9 * c), np.float32)
        wr = weight_rows(w)
        y2 = np.empty((n * h * h, o), np.float32)
        tc = _time(lambda: im2col_nhwc(xp, (3, 3), (1, 1), (h, h), cols))
        tm = _time(lambda: np.matmul(cols, wr.T, out=y2))
        err = np.abs(y.reshape(-1, o) - y2).max() / np.abs(y2).max()
        if err > 1e-5:
            sys.exit(f"Winograd and im2col disagree: relative error {err:.1e}")
        print(f"| {c}->{o} on {h}x{h} | {ti:.1f} / {tg:.1f} / {to:.1f} = **{ti + tg + to:.1f}** "
              f"| {tc:.1f} / {tm:.1f} = **{tc + tm:.1f}** |")


if __name__ == "__main__":
    main()
