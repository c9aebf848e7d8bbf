"""What each fast path of issue 15 buys: the same seed network stepped with and without it, in one
process, alternating block by block.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/speedups.py
    python benchmarks/speedups.py --nets d --rounds 30

Variants (each adds to the one before; the library's default is the last):

* ``before``: Sequential runs its layers in order, nothing fused, Dense's products in one call
  (the code before issue 15, but for the one-channel im2col as one strided copy);
* ``+ relu/pool swap``: a ReLU before a MaxPool2D runs after it (``scratchcnn.nn.fast_plan``);
* ``+ conv/relu fused``: a ReLU after a Conv2D is applied by the convolution's kernel, in cache,
  and (one-channel kernel) its derivative taken there too;
* ``+ dense blocks``: a wide Dense layer's backward products in the cut measured fastest
  (``scratchcnn.kernels.dense_blocks``).

The figure is the median over ``--rounds`` rounds of each variant's milliseconds per step, measured
as this thread's CPU time (``time.thread_time``: on a shared machine the time the process waits
for a core is not counted, which keeps small differences visible under load) and as wall time;
``speed-up`` is the median of the per-round ratios ``before / variant`` (each round runs every
variant back to back). For speed against PyTorch use bench.py.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

import scratchcnn as sc  # noqa: E402
from scratchcnn.kernels import dense_blocks  # noqa: E402
from scratchcnn.nn import fast_plan  # noqa: E402

_PLAN, _APPLIES = fast_plan.plan, dense_blocks.applies


def _swap_only(layers):
    """The fast plan with nothing fused (every step's layers one by one, in the plan's order)."""
    return [(i, m, None) for i, layer, relu in _PLAN(layers) for m in ((layer,) if relu is None else (layer, relu))]


VARIANTS = {  # name: (plan, dense_blocks on)
    "before": (fast_plan.textbook_plan, False),
    "+ relu/pool swap": (_swap_only, False),
    "+ conv/relu fused": (_PLAN, False),
    "+ dense blocks": (_PLAN, True),
}


def use(variant, model):
    plan, dense = VARIANTS[variant]
    fast_plan.plan = plan
    dense_blocks.applies = _APPLIES if dense else (lambda x, w: False)
    model.__dict__.pop("_plan_key", None)        # the Sequential makes its plan again


def measure(name, mode, rounds, seconds, x, y):
    batch = bench.NETWORKS[name][1]
    model, _ = bench.build_pair(name)
    runner = bench.ScratchRunner(model)
    xs = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(8)]
    ys = [y[i * batch:(i + 1) * batch] for i in range(8)]

    def run(s):
        if mode == "train":
            runner.train_step(xs[s % 8], ys[s % 8])
        else:
            runner.infer(xs[s % 8])

    for v in VARIANTS:                           # warm up every variant (workspaces, dense_blocks' choice)
        use(v, model)
        for s in range(3):
            run(s)
    t = time.perf_counter()
    for s in range(3):
        run(s)
    steps = max(3, int(seconds / ((time.perf_counter() - t) / 3)))
    cpu, wall = {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}
    names = list(VARIANTS)
    for r in range(rounds):
        for v in (names if r % 2 == 0 else names[::-1]):
            use(v, model)
            run(0)
            c0, w0 = time.thread_time(), time.perf_counter()
            for s in range(steps):
                run(s)
            cpu[v].append((time.thread_time() - c0) / steps * 1e3)
            wall[v].append((time.perf_counter() - w0) / steps * 1e3)
    use(names[-1], model)
    base = np.array(cpu["before"])
    return {v: (statistics.median(cpu[v]), statistics.median(wall[v]), float(np.median(base / np.array(cpu[v]))))
            for v in VARIANTS}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=list(bench.NETWORKS), choices=list(bench.NETWORKS))
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=0.2, help="length of one variant's block")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    sc.set_num_threads(args.threads)
    sc.kernels.tune_allocator()
    x, y = bench.load_fashion_mnist("train", limit=640)
    print(f"{bench.machine_line()}; {args.threads} thread(s); load average before {os.getloadavg()[0]:.2f}; "
          f"median of {args.rounds} alternating rounds\n")
    print("| network | mode | " + " | ".join(f"{v} ms (CPU / wall)" for v in VARIANTS) + " | speed-up of each (CPU) |")
    print("|---|---|" + "---:|" * (len(VARIANTS) + 1))
    for name in args.nets:
        for mode in args.modes:
            with bench.Watch() as w:
                res = measure(name, mode, args.rounds, args.seconds, x, y)
            cells = " | ".join(f"{c:.3f} / {wt:.3f}" for c, wt, _ in res.values())
            ups = ", ".join(f"{s:.3f}" for _, _, s in res.values())
            load = "" if w.other is None else f" (other load {w.other:.2f} cores)"
            print(f"| {bench.NETWORKS[name][2]}{load} | {mode} | {cells} | {ups} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
