"""Time scratchcnn's convolution paths against each other, layer by layer.

Run from the repository root:  python benchmarks/conv_paths.py [--threads 1] [--batch 64]

For 3x3 stride-1 convolutions the fast kernels include Winograd F(2x2, 3x3)
(``scratchcnn.kernels.winograd``) or channels-last im2col + one matrix product
(``scratchcnn.kernels.conv_nhwc``). This script times both on the same layer and input
(NHWC memory, as one convolution hands to the next), forward without gradients
("infer") and forward + backward ("train"), alternating the two paths over several
repeats, after checking that they agree. Its table is the evidence behind
``Conv2D.winograd_min_channels`` (see docs/performance.md).
"""
import argparse
import statistics
import time

import numpy as np

import scratchcnn as sc

sc.kernels.tune_allocator()       # as fit / evaluate / predict do

LAYERS = [  # (C_in, C_out, H = W): A complex's 3x3 layers first, then smaller and larger ones
    (32, 32, 28), (32, 64, 14), (64, 64, 14),
    (2, 4, 8), (4, 8, 28), (8, 8, 28), (16, 16, 14), (16, 32, 8), (64, 128, 8), (128, 128, 8),
]


def run(layer, x, mode):
    if mode == "train":
        y = layer(x)
        layer.backward(np.ones_like(y))
    else:
        with sc.no_grad():
            layer(x)


def time_path(layer, x, mode, winograd, steps):
    layer.winograd_min_channels = Conv_default if winograd else None
    run(layer, x, mode)                        # warm the workspaces
    t = time.perf_counter()
    for _ in range(steps):
        run(layer, x, mode)
    return (time.perf_counter() - t) / steps * 1e3


Conv_default = sc.Conv2D.winograd_min_channels


def check_agree(layer, x):
    layer.winograd_min_channels = Conv_default
    with sc.no_grad():
        a = layer(x)
    layer.winograd_min_channels = None
    with sc.no_grad():
        b = layer(x)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    sc.set_num_threads(args.threads)
    sc.manual_seed(0)
    print(f"batch {args.batch}, {args.threads} BLAS thread(s), float32, median of {args.repeats} alternating "
          f"blocks of {args.steps} calls; Conv2D.winograd_min_channels = {Conv_default}\n")
    print("| layer (3x3, pad 1) | mode | im2col ms | Winograd ms | im2col / Winograd |")
    print("|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for cin, cout, hw in LAYERS:
        layer = sc.Conv2D(cin, cout, 3, padding=1)
        x = rng.standard_normal((args.batch, hw, hw, cin), dtype=np.float32).transpose(0, 3, 1, 2)
        check_agree(layer, x)
        for mode in ("infer", "train"):
            times = {True: [], False: []}
            for rep in range(args.repeats):
                for wino in ((True, False) if rep % 2 == 0 else (False, True)):
                    times[wino].append(time_path(layer, x, mode, wino, args.steps))
            im, wi = statistics.median(times[False]), statistics.median(times[True])
            print(f"| {cin}->{cout} on {hw}x{hw} | {mode} | {im:.2f} | {wi:.2f} | {im / wi:.2f} |", flush=True)


if __name__ == "__main__":
    main()
