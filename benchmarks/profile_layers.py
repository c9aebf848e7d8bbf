"""Where does a training step's time go? Milliseconds per layer, forward and backward.

Run from the repository root:

    python benchmarks/profile_layers.py a_complex            # training steps, batch 64
    python benchmarks/profile_layers.py d --mode infer --steps 50

It builds a seed network of benchmarks/bench.py (same batches of real Fashion-MNIST),
runs ``--steps`` timed steps after two warm-up steps at one BLAS thread, and prints the
mean time of each layer's forward and backward pass, of the loss and of the SGD step.
Per-layer timing adds a little overhead of its own; for speed claims use bench.py.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

import scratchcnn as sc  # noqa: E402

sc.kernels.tune_allocator()       # as fit / evaluate / predict do


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("net", choices=list(bench.NETWORKS))
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    sc.set_num_threads(args.threads)
    batch = bench.NETWORKS[args.net][1]
    x, y = bench.load_fashion_mnist("train", limit=10 * batch)
    model, _ = bench.build_pair(args.net)
    layers = model.layers
    crit, opt = sc.CrossEntropyLoss(), sc.optim.SGD(model.parameters(), lr=bench.LR)
    fwd, bwd = np.zeros(len(layers)), np.zeros(len(layers))
    other = {"loss": 0.0, "optimizer": 0.0}
    clock = time.perf_counter
    for step in range(args.steps + 2):
        timed = step >= 2                                   # two warm-up steps
        i = step % 10
        h, target = np.ascontiguousarray(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch]
        with (sc.no_grad() if args.mode == "infer" else _Nothing()):
            for k, layer in enumerate(layers):
                t = clock()
                h = layer(h)
                fwd[k] += (clock() - t) * timed
        if args.mode == "infer":
            continue
        t = clock()
        opt.zero_grad()
        crit(h, target)
        g = crit.backward()
        other["loss"] += (clock() - t) * timed
        for k in range(len(layers) - 1, -1, -1):
            t = clock()
            g = layers[k].backward(g)
            bwd[k] += (clock() - t) * timed
        t = clock()
        opt.step()
        other["optimizer"] += (clock() - t) * timed
    n = args.steps
    print(f"{bench.NETWORKS[args.net][2]}, batch {batch}, {args.mode}, {args.threads} thread(s), mean of {n} steps\n")
    print("| layer | forward ms | backward ms |\n|---|---:|---:|")
    for k, layer in enumerate(layers):
        print(f"| {k} {layer!r} | {fwd[k] / n * 1e3:.2f} | {bwd[k] / n * 1e3:.2f} |")
    total = (fwd.sum() + bwd.sum() + sum(other.values())) / n
    print(f"\nloss {other['loss'] / n * 1e3:.2f} ms, optimizer {other['optimizer'] / n * 1e3:.2f} ms; "
          f"step {total * 1e3:.2f} ms = {batch / total:,.0f} images/s")


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
