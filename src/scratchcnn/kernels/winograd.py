"""Winograd F(2x2, 3x3): a stride-1 3x3 convolution with 2.25x fewer multiplications.

Lavin & Gray (2016). Each 2x2 block of outputs is computed from a 4x4 tile ``d`` of the
(padded) input, tiles overlapping by 2:

    Y = A^T [ (G w G^T) * (B^T d B) ] A          (* element-wise, over 4x4 positions xi)

so for every one of the 16 positions ``xi`` the channel sum is one matrix product
``M[xi] = V[xi] @ U[xi]`` with ``V[xi]: (T, C)`` (transformed input, T tiles) and
``U[xi]: (C, C_out)`` (transformed weight): 16 * T * C * C_out multiplications instead of
im2col's 36 * T * C * C_out. The transforms B, G, A only add and subtract (and halve).

Backward, the adjoint of each step: ``dM = A dY A^T`` (per tile), ``dU[xi] = V[xi]^T dM[xi]``,
``dw = G^T dU G``. (The input gradient uses :func:`conv_nhwc.conv_input_grad_nhwc`.)

All arrays are channels-last: ``xp: (N, Hp, Wp, C)`` with ``Hp = OH + 2``, ``Wp = OW + 2``,
``OH`` and ``OW`` even; tiles are ``(N, OH/2, OW/2)`` = ``T``.
"""
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
