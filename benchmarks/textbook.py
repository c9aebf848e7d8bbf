"""How much slower the textbook path is: each seed network's training step and inference with
the fast kernels, and again with every layer on its own plain forward / backward
(``scratchcnn.textbook()``), alternating the two block by block in one process.

    python benchmarks/textbook.py --threads 1 --repeats 5

It prints one markdown row per network and mode: images per second each way and the slowdown
(fast / textbook). Like bench.py it watches the machine and marks figures measured while other
processes used more than ``--max-load`` cores.
"""
import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

import scratchcnn as sc  # noqa: E402


def measure(name, repeats, seconds, x, y):
    batch = bench.NETWORKS[name][1]
    model, _ = bench.build_pair(name)
    runner = bench.ScratchRunner(model)
    nb = min(len(x) // batch, 50)
    xs = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(nb)]
    ys = [y[i * batch:(i + 1) * batch] for i in range(nb)]
    out = {}
    for mode in ("train", "infer"):
        steps = {}
        for path in ("fast", "textbook"):
            with sc.textbook(path == "textbook"):
                bench.time_block(runner, mode, xs, ys, 2)
                w = bench.time_block(runner, mode, xs, ys, 3)
            steps[path] = max(3, int(seconds / max(w.wall / 3, 1e-6)))
        rates, others = {"fast": [], "textbook": []}, []
        for rep in range(repeats):
            for path in (("fast", "textbook") if rep % 2 == 0 else ("textbook", "fast")):
                with sc.textbook(path == "textbook"):
                    w = bench.time_block(runner, mode, xs, ys, steps[path])
                rates[path].append(steps[path] * batch / w.wall)
                if w.other is not None:
                    others.append(w.other)
        med = {p: statistics.median(v) for p, v in rates.items()}
        out[mode] = {**med, "slowdown": med["fast"] / med["textbook"],
                     "other_load": statistics.mean(others) if others else None}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=list(bench.NETWORKS), choices=list(bench.NETWORKS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--max-load", type=float, default=0.3)
    args = p.parse_args(argv)
    sc.set_num_threads(args.threads)
    x, y = bench.load_fashion_mnist("train", limit=3200)
    print(f"{bench.machine_line()}; {args.threads} thread(s); median of {args.repeats} alternating blocks")
    print("\n| network | batch | mode | fast kernels img/s | textbook img/s | textbook is slower by | other load |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.nets:
        for mode, r in measure(name, args.repeats, args.seconds, x, y).items():
            mark = "*" if r["other_load"] is not None and r["other_load"] > args.max_load else ""
            load = "n/a" if r["other_load"] is None else f"{r['other_load']:.2f}"
            print(f"| {bench.NETWORKS[name][2]} | {bench.NETWORKS[name][1]} | {mode} | {r['fast']:,.0f}{mark} | "
                  f"{r['textbook']:,.0f}{mark} | {r['slowdown']:.2f}x{mark} | {load} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
