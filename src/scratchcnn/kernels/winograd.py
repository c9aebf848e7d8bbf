"""Winograd F(2x2, 3x3): 3x3, stride-1 convolutions with 2.25x fewer multiplications.

A 2x2 block of outputs of a 3x3 convolution needs a 4x4 patch ``d`` of the (padded) input.
Lavin & Gray (2015) compute it as

    Y = A^T [ (G w G^T) (*) (B^T d B) ] A          ((*): element-wise product)

with fixed small matrices ``B^T`` (4x4), ``G`` (4x3), ``A^T`` (2x4) of 0, +-1 and 1/2.
Summed over input channels, the element-wise product becomes, for each of the 16 positions
``k`` of the 4x4 "Winograd domain", an ordinary matrix product over channels:

    M[k] = V[k] @ U[k]      V[k]: (tiles, C_in)   U[k]: (C_in, C_out)   M[k]: (tiles, C_out)

16 products of (tiles x C_in x C_out) instead of im2col's one product with 9 * C_in inner
terms over four times as many rows: 16 / 36 of the multiplications.

Each transform is linear in its 16 (or 4) values and is applied to all tiles and channels
at once: the output transform as one matrix product with ``kron(A^T, A^T)`` (4x16), the
input transform ``B^T d B`` separably, rows then columns, as 8 whole-array additions and
subtractions (every row of ``B^T`` takes the sum or difference of two values: cheaper than
the product with the 16x16 ``kron(B^T, B^T)``, which :data:`BB` keeps as the definition).
The tiles are gathered with 16 strided block copies and the outputs scattered with 4.
Arrays here are channels-last:

    xp: (m, 2*TH + 2, 2*TW + 2, C)   padded input, zero wherever the image is not
    D:  (16, m*TH*TW*C)              D[4a + b] = xp[:, a::2, b::2, :] (TH x TW tiles)
    V = BB @ D                       (16, m*TH*TW, C)      (input_transform)
    M = V @ U                        (16, m*TH*TW, C_out)
    Y = AA @ M                       (4, m*TH*TW*C_out) -> y (m, OH, OW, C_out)

Backward (Lavin & Gray, section 4): with ``dM = AA^T @ dY`` (``dY``: the output gradient cut
into the same 2x2 tiles), the weight gradient is ``dU[k] = V[k]^T @ dM[k]`` mapped back by
``G^T . G``; the input gradient is the same algorithm run on the padded output gradient with
the flipped, transposed kernel (a "full" convolution). In float32 the results differ from
im2col's by rounding only (about 1e-6 relative); in float64 by about 1e-15.

These are the maths of :class:`scratchcnn.kernels.conv_winograd.WinogradConv`, the kernel
:class:`scratchcnn.nn.Conv2D` uses for them (its piece loop and what it keeps for backward).
"""
import numpy as np

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
BB = np.kron(BT, BT)        # (16, 16): V[4a+b] = sum_ij BT[a,i] BT[b,j] d[4i+j]
GG = np.kron(G, G)          # (16, 9):  U[4a+b] = sum_ij G[a,i] G[b,j] w[3i+j]
AA = np.kron(AT, AT)        # (4, 16):  Y[2p+q] = sum_ab AT[p,a] AT[q,b] M[4a+b]


def _as(matrix, dtype):
    return matrix.astype(dtype, copy=False)


def tiles(out_size):
    """Number of 2x2 output tiles (TH, TW) covering an (OH, OW) output."""
    return (out_size[0] + 1) // 2, (out_size[1] + 1) // 2


def winograd_weight(weight):
    """``weight: (C_out, C_in, 3, 3) -> U: (16, C_in, C_out)``, ``U[k] = (G w G^T)[k]`` per channel pair."""
    o, c = weight.shape[:2]
    u = _as(GG, weight.dtype) @ weight.reshape(o * c, 9).T          # (16, C_out*C_in)
    return np.ascontiguousarray(u.reshape(16, o, c).transpose(0, 2, 1))


def winograd_weight_grad(du, weight_shape):
    """Adjoint of :func:`winograd_weight`: ``dU: (16, C_in, C_out) -> dW: (C_out, C_in, 3, 3)``."""
    o, c = weight_shape[:2]
    dw = _as(GG, du.dtype).T @ du.reshape(16, c * o)                  # (9, C_in*C_out)
    return dw.reshape(3, 3, c, o).transpose(3, 2, 0, 1)


def flipped_transposed_weight(weight):
    """The kernel of the input gradient: ``(C_out, C_in, 3, 3) -> (C_in, C_out, 3, 3)`` flipped in space."""
    return weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def input_tiles(xp, tile_hw, d):
    """Gather the 4x4 input patches: ``d[4a + b] = xp[:, a::2, b::2, :]`` cut to (TH, TW).

    xp: (m, >= 2*TH+2, >= 2*TW+2, C); d: (16, m, TH, TW, C), overwritten."""
    th, tw = tile_hw
    for a in range(4):
        for b in range(4):
            d[4 * a + b] = xp[:, a:a + 2 * th - 1:2, b:b + 2 * tw - 1:2, :]
    return d


def input_transform(d, v, tmp):
    """``v = BB @ d`` for ``d, v, tmp: (16, P)`` (``tmp``: scratch), as ``B^T`` applied along
    the tile rows, then along the tile columns: ``[d0 - d2, d1 + d2, d2 - d1, d1 - d3]``."""
    p = d.shape[1]
    for src, dst in ((d.reshape(4, 4, p), tmp.reshape(4, 4, p)),                  # rows a
                     (tmp.reshape(4, 4, p).transpose(1, 0, 2), v.reshape(4, 4, p).transpose(1, 0, 2))):
        np.subtract(src[0], src[2], out=dst[0])
        np.add(src[1], src[2], out=dst[1])
        np.subtract(src[2], src[1], out=dst[2])
        np.subtract(src[1], src[3], out=dst[3])
    return v


def output_tiles(g, tile_hw, dy):
    """Cut an output-shaped array ``g: (m, OH, OW, C_out)`` into 2x2 tiles:
    ``dy[2p + q] = g[:, p::2, q::2, :]`` (zero where an odd OH or OW leaves no element).
    dy: (4, m, TH, TW, C_out), overwritten."""
    oh, ow = g.shape[1:3]
    th, tw = tile_hw
    if oh % 2 or ow % 2:
        dy[...] = 0
    for p in range(2):
        for q in range(2):
            dy[2 * p + q, :, :(oh - p + 1) // 2, :(ow - q + 1) // 2] = g[:, p::2, q::2, :]
    return dy


def winograd_conv_piece(xp, u, out, bufs, v_out=None, bias=None):
    """One piece of a 3x3 stride-1 convolution: ``xp: (m, 2*TH+2, 2*TW+2, C)`` (zero-padded,
    channels-last), ``u: (16, C, C_out)`` from :func:`winograd_weight` -> ``out: (m, OH, OW,
    C_out)`` (written, any strides) with ``TH = ceil(OH / 2)``; ``bias: (C_out,)``, if given, is
    added while the outputs are put in place.

    ``bufs``: a :class:`~scratchcnn.kernels.Workspace`-like object with ``flat(name, shape,
    dtype)`` for the scratch arrays. Returns ``V: (16, m*TH*TW, C)``, the transformed input,
    written into ``v_out`` when given (to keep it for backward), else scratch."""
    m, oh, ow, o = out.shape
    c = xp.shape[3]
    th, tw = tiles((oh, ow))
    dt = xp.dtype
    d = input_tiles(xp, (th, tw), bufs.flat("wino_d", (16, m, th, tw, c), dt))
    if v_out is None:
        v_out = bufs.flat("wino_v", (16, m * th * tw, c), dt)
    v = v_out
    input_transform(d.reshape(16, -1), v.reshape(16, -1), bufs.flat("wino_t", (16, m * th * tw * c), dt))
    mm = np.matmul(v, u, out=bufs.flat("wino_m", (16, m * th * tw, o), dt))
    y = np.matmul(_as(AA, dt), mm.reshape(16, -1), out=bufs.flat("wino_y", (4, m * th * tw * o), dt))
    y6 = y.reshape(2, 2, m, th, tw, o)
    for p in range(2):
        for q in range(2):
            tile = y6[p, q, :, :(oh - p + 1) // 2, :(ow - q + 1) // 2]
            if bias is None:
                out[:, p::2, q::2, :] = tile
            else:
                np.add(tile, bias, out=out[:, p::2, q::2, :])
    return v


def winograd_weight_grad_piece(v, g, bufs):
    """This piece's share of ``dU``: ``v: (16, m*TH*TW, C)`` kept from the forward pass,
    ``g: (m, OH, OW, C_out)`` the output gradient -> ``dU: (16, C, C_out)`` (a fresh array)."""
    m, oh, ow, o = g.shape
    th, tw = tiles((oh, ow))
    dt = g.dtype
    dy = output_tiles(g, (th, tw), bufs.flat("wino_dy", (4, m, th, tw, o), dt))
    dm = np.matmul(_as(AA, dt).T, dy.reshape(4, -1), out=bufs.flat("wino_dm", (16, m * th * tw * o), dt))
    return np.matmul(v.transpose(0, 2, 1), dm.reshape(16, m * th * tw, o))
