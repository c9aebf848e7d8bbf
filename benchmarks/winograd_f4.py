"""Would Winograd F(4x4, 3x3) pay here? Its float32 error, and a forward pass timed against the library's F(2x2, 3x3).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/winograd_f4.py

F(4x4, 3x3) (Lavin & Gray 2015) computes a 4x4 block of outputs from a 6x6 input patch with 36
element-wise products per channel pair, where F(2x2, 3x3) needs 16 per 2x2 block: 2.25 instead of
4 multiplications per output, 1.78x fewer, and 2.25 instead of 4 transformed values per output.
Its transforms are larger (``B^T`` is 6x6 with entries 0, +-1, +-2, +-4, 5; ``A^T`` 4x6 with
powers of two up to 8) and its points (0, +-1, +-2, infinity) make float32 rounding larger.

This script builds a forward pass of F(4x4, 3x3) the way ``scratchcnn.kernels.winograd`` builds
F(2x2, 3x3) -- channels-last pieces of the batch, 36 strided copies to gather the patches, both
transforms separable (rows, then columns) on whole contiguous arrays, 36 batched products over
channels, 16 strided copies to put the outputs in place -- and prints

1. the float32 error of im2col, F(2x2) and F(4x4) against a float64 im2col convolution, and
   whether each stays within the PyTorch parity tolerance of tests/parity_helpers.py (float32:
   ``|a - b| <= 1e-5 * max(1, max|b|) + 1e-4 * |b|``);
2. the forward time of this F(4x4) pass and of the library's F(2x2) kernel on A complex's layers
   (batch 64, one thread, alternating, this thread's CPU time).

It is a measurement, not a kernel of the library (docs/performance.md says why it was not built).
"""
import os
import statistics
import sys
import time

import numpy as np

import scratchcnn as sc

BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)
GG = np.kron(G, G)          # (36, 9)


def input_transform(d, v, t):
    """``v = kron(BT, BT) @ d`` for d, v, t: (36, P), rows then columns (t: scratch)."""
    p = d.shape[1]
    for src, dst in ((d.reshape(6, 6, p), t.reshape(6, 6, p)),
                     (t.reshape(6, 6, p).transpose(1, 0, 2), v.reshape(6, 6, p).transpose(1, 0, 2))):
        s0, s1, s2, s3, s4, s5 = src
        a, b = s4 - s2, s3 - s1
        np.subtract(s4 + 4 * s0, 5 * s2, out=dst[0])
        np.subtract(s3 + s4, 4 * (s1 + s2), out=dst[1])
        np.add(s4 - s3, 4 * (s1 - s2), out=dst[2])
        np.add(a, 2 * b, out=dst[3])
        np.subtract(a, 2 * b, out=dst[4])
        np.subtract(s5 + 4 * s1, 5 * s3, out=dst[5])
    return v


def output_transform(m, y, t):
    """``y = kron(AT, AT) @ m``: m (36, P) -> y (16, P), rows then columns (t: (24, P) scratch)."""
    p = m.shape[1]
    for src, dst in ((m.reshape(6, 6, p), t.reshape(4, 6, p)),
                     (t.reshape(4, 6, p).transpose(1, 0, 2), y.reshape(4, 4, p).transpose(1, 0, 2))):
        s0, s1, s2, s3, s4, s5 = src
        a, b, c, e = s1 + s2, s1 - s2, s3 + s4, s3 - s4
        np.add(s0 + a, c, out=dst[0])
        np.add(b, 2 * e, out=dst[1])
        np.add(a, 4 * c, out=dst[2])
        np.add(b + 8 * e, s5, out=dst[3])
    return y


def f4_forward(x, w, piece):
    """3x3 'same' convolution, no bias: x (N, H, W, C) channels-last, w (O, C, 3, 3) -> (N, H, W, O)."""
    n, h, ww, c = x.shape
    o = w.shape[0]
    th, tw = -(-h // 4), -(-ww // 4)
    dt = x.dtype
    u = np.ascontiguousarray((GG.astype(dt) @ w.reshape(o * c, 9).T).reshape(36, o, c).transpose(0, 2, 1))
    out = np.empty((n, h, ww, o), dt)
    xp = np.zeros((piece, 4 * th + 2, 4 * tw + 2, c), dt)
    d = np.empty((36, piece, th, tw, c), dt)
    v, t = np.empty_like(d), np.empty_like(d)
    ybuf, tbuf = np.empty((16, piece * th * tw * o), dt), np.empty((24, piece * th * tw * o), dt)
    for s in range(0, n, piece):
        m = min(piece, n - s)
        xp[:m, 1:1 + h, 1:1 + ww] = x[s:s + m]
        for a in range(6):
            for b in range(6):
                d[6 * a + b, :m] = xp[:m, a:a + 4 * th - 3:4, b:b + 4 * tw - 3:4]
        vv = input_transform(d[:, :m].reshape(36, -1), v[:, :m].reshape(36, -1), t[:, :m].reshape(36, -1))
        mm = np.matmul(vv.reshape(36, m * th * tw, c), u)                  # (36, tiles, O)
        y6 = output_transform(mm.reshape(36, -1), ybuf[:, :m * th * tw * o], tbuf[:, :m * th * tw * o])
        y6 = y6.reshape(4, 4, m, th, tw, o)
        for p in range(4):
            for q in range(4):
                out[s:s + m, p::4, q::4] = y6[p, q, :, :len(range(p, h, 4)), :len(range(q, ww, 4))]
    return out


def conv(c, o, w, x_nchw, textbook=False, dtype=np.float32):
    layer = sc.Conv2D(c, o, 3, padding="same", bias=False, dtype=dtype)
    layer.weight.data = w.astype(dtype)
    with sc.textbook(textbook), sc.no_grad():
        return np.asarray(layer(x_nchw.astype(dtype))).transpose(0, 2, 3, 1)


def within_parity(a, b):
    return bool(np.all(np.abs(a - b) <= 1e-5 * max(1.0, float(np.abs(b).max())) + 1e-4 * np.abs(b)))


def main():
    sc.set_num_threads(1)
    sc.kernels.tune_allocator()
    rng = np.random.default_rng(0)
    print("float32 error, max |y - y_float64| / max |y_float64| (within the parity tolerance?), He-initialised weights\n")
    print("| layer (3x3 same) | input | im2col | Winograd F(2x2) | Winograd F(4x4) |\n|---|---|---:|---:|---:|")
    for c, o, hw, kind in [(32, 32, 28, "ReLU of a Gaussian"), (64, 64, 14, "ReLU of a Gaussian"),
                           (32, 64, 14, "Gaussian")]:
        xr = rng.standard_normal((8, c, hw, hw))
        x = (np.maximum(xr, 0) if kind.startswith("ReLU") else xr).astype(np.float32)
        w = (rng.standard_normal((o, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        ref = conv(c, o, w, x, textbook=True, dtype=np.float64)
        scale = np.abs(ref).max()
        cells = []
        for y in (conv(c, o, w, x, textbook=True), conv(c, o, w, x),
                  f4_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, 8)):
            cells.append(f"{np.abs(y - ref).max() / scale:.1e} ({'yes' if within_parity(y, ref) else 'NO'})")
        print(f"| {c}->{o} on {hw}x{hw} | {kind} | " + " | ".join(cells) + " |")
    print("\nforward, batch 64, 1 thread: ms (this thread's CPU time, median of 16 alternating rounds)\n")
    print("| layer | F(2x2) kernel | F(4x4) pass | F(2x2) / F(4x4) |\n|---|---:|---:|---:|")
    for c, o, hw in [(32, 32, 28), (32, 64, 14), (64, 64, 14)]:
        x = np.ascontiguousarray(rng.standard_normal((64, hw, hw, c)).astype(np.float32))
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        layer = sc.Conv2D(c, o, 3, padding="same", bias=False)
        layer.weight.data = w
        xv = x.transpose(0, 3, 1, 2)
        th = -(-hw // 4)
        piece = max(1, (1 << 19) // (36 * th * th * c))              # the library's piece rule
        np.testing.assert_allclose(f4_forward(x, w, piece), np.asarray(layer(xv)).transpose(0, 2, 3, 1),
                                   rtol=1e-3, atol=1e-3)

        def f2():
            with sc.no_grad():
                layer.forward(xv)
        runs = {"f2": f2, "f4": lambda: f4_forward(x, w, piece)}
        times = {k: [] for k in runs}
        for r in range(16):
            for k in (("f2", "f4") if r % 2 == 0 else ("f4", "f2")):
                t = time.thread_time()
                runs[k]()
                runs[k]()
                times[k].append((time.thread_time() - t) / 2 * 1e3)
        f2m, f4m = statistics.median(times["f2"]), statistics.median(times["f4"])
        print(f"| {c}->{o} on {hw}x{hw} | {f2m:.2f} | {f4m:.2f} | {f2m / f4m:.2f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
