"""Side-by-side speed benchmark: scratchcnn against the same model in PyTorch (CPU).

For each seed network (A simple, A complex, D; see ``scratchcnn.app.presets``) it times

* a training step: forward + softmax cross-entropy + backward + SGD update, and
* inference: forward only, gradients off (``no_grad`` / ``torch.no_grad``),

for scratchcnn and for the equivalent ``torch.nn.Sequential`` (same weights, same
real Fashion-MNIST batches), in one process, alternating the two frameworks block by
block, several repeats, and reports the median images per second and the ratio
scratchcnn / PyTorch. Both frameworks are limited to the same number of threads
(BLAS threads for scratchcnn via ``scratchcnn.set_num_threads``, ``torch.set_num_threads``).

The machine is watched while timing: the CPU time other processes used (from
/proc/stat) and the share of a core this process got. When another process loaded the
machine by more than ``--max-load`` cores on average, the script refuses to print a
table (exit status 3) unless ``--allow-load`` is given, in which case the figures are
marked with ``*``.

``--epoch`` also trains one full Fashion-MNIST epoch (60,000 images, then evaluation
on the 10,000 test images) of a network in a fresh child process per framework and
reports the seconds and the peak resident memory (``ru_maxrss``) of that process.

Run from the repository root (see benchmarks/README.md):

    python benchmarks/bench.py --threads 1 2 --repeats 7 --epoch a_complex --out bench.md
"""
import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
NETWORKS = {  # name: (preset builder, batch size, label)
    "a_simple": ("seed_a_simple", 10, "A simple (conv 8@3x3 same, pool, dense)"),
    "a_complex": ("seed_a_complex", 64, "A complex (32,32,pool,64,64,pool,3136-128-10)"),
    "d": ("seed_d", 64, "D (conv 32@7x7 pad 1, dense)"),
    "strong": ("strong_cnn", 128, "strong (A complex + BatchNorm, Dropout, 3136-256-10; the record network)"),
}
LR = 0.01


# ---------------------------------------------------------------- data
def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split="train", limit=None):
    """Images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64."""
    prefix = "train" if split == "train" else "t10k"
    x = _read_idx(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    y = _read_idx(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    out = np.empty((len(x), 1) + x.shape[1:], dtype=np.float32)   # no float64 temporary
    np.divide(x[:, None], np.float32(255), out=out)
    return out, y.astype(np.int64)


def _rss_mb(field):
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss():
    """Start measuring the peak resident memory afresh (Linux: clear_refs 5 resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------- models
def build_pair(name, seed=0):
    """The scratchcnn seed network ``name`` and a torch.nn.Sequential with the same weights."""
    import torch
    import scratchcnn as sc
    from scratchcnn.app import presets

    sc.manual_seed(seed)
    model = getattr(presets, NETWORKS[name][0])((1, 28, 28), 10)
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            t, b, l, r = layer.pads
            assert t == b and l == r, "asymmetric padding is not benchmarked"
            layers.append(torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                          stride=layer.stride, padding=(t, l), bias=layer.use_bias))
        elif kind == "Dense":
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias))
        elif kind == "ReLU":
            layers.append(torch.nn.ReLU())
        elif kind == "MaxPool2D":
            layers.append(torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif kind == "Flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "BatchNorm2D":
            layers.append(torch.nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum))
        elif kind == "BatchNorm1D":
            layers.append(torch.nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum))
        elif kind == "Dropout":
            layers.append(torch.nn.Dropout(layer.p))
        else:
            raise ValueError(f"no torch equivalent for {kind}")
    tmodel = torch.nn.Sequential(*layers)
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return model, tmodel


class ScratchRunner:
    def __init__(self, model, workers=1):
        import scratchcnn as sc
        self.sc, self.model, self.workers = sc, model, workers
        sc.kernels.tune_allocator()        # what fit / evaluate / predict do before they start
        self.opt = sc.optim.SGD(model.parameters(), lr=LR)
        self.crit = sc.CrossEntropyLoss()
        self.par = None

    def train_step(self, xb, yb):
        self.opt.zero_grad()
        if self.par is not None:           # fit(..., workers=N)'s step: shards in N threads
            self.par.forward_backward(xb, yb)
        else:
            out = self.model(xb)
            self.crit(out, yb)
            self.model.backward(self.crit.backward())
        self.opt.step()

    def infer(self, xb):
        with self.sc.no_grad():
            self.model(xb)

    def set_threads(self, n):
        """n BLAS threads; with workers, min(workers, n) worker threads sharing them."""
        from scratchcnn.parallel import DataParallel
        self.sc.set_num_threads(n)
        if self.par is not None:
            self.par.close()
        w = min(self.workers, n)
        self.par = DataParallel(self.model, self.crit, w, threads=n) if w > 1 else None

    def used_workers(self):
        return 1 if self.par is None else self.par.workers

    def block(self, mode):
        """What a timed block runs inside: with workers, training holds the per-worker BLAS limit
        for the whole block, as fit holds it for a whole epoch."""
        import contextlib
        return self.par.blas_limit() if mode == "train" and self.par is not None else contextlib.nullcontext()


class TorchRunner:
    def __init__(self, model):
        import torch
        self.torch, self.model = torch, model
        self.opt = torch.optim.SGD(model.parameters(), lr=LR)
        self.crit = torch.nn.CrossEntropyLoss()

    def train_step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.crit(self.model(xb), yb)
        loss.backward()
        self.opt.step()

    def infer(self, xb):
        with self.torch.no_grad():
            self.model(xb)

    def set_threads(self, n):
        self.torch.set_num_threads(n)

    def block(self, mode):
        import contextlib
        return contextlib.nullcontext()


# ---------------------------------------------------------------- load watch
_HZ = os.sysconf("SC_CLK_TCK")


def _busy_seconds():
    """CPU seconds all processes have used since boot (the 'cpu' line of /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _HZ


class Watch:
    """Times a block and measures how busy the rest of the machine was meanwhile."""

    def __enter__(self):
        self.busy0, self.own0, self.t0 = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        own = time.process_time() - self.own0
        busy1 = _busy_seconds()
        self.share = own / self.wall  # cores this process used
        self.other = None if busy1 is None else max(0.0, (busy1 - self.busy0 - own) / self.wall)
        return False


# ---------------------------------------------------------------- timing
def time_block(runner, mode, xs, ys, steps):
    """Run ``steps`` batches (cycling over the prepared ones); returns the Watch."""
    with runner.block(mode), Watch() as w:
        for s in range(steps):
            i = s % len(xs)
            if mode == "train":
                runner.train_step(xs[i], ys[i])
            else:
                runner.infer(xs[i])
    return w


def bench_network(name, threads, repeats, seconds, x, y, workers=1):
    import torch
    batch = NETWORKS[name][1]
    model, tmodel = build_pair(name)
    runners = {"scratchcnn": ScratchRunner(model, workers), "torch": TorchRunner(tmodel)}
    nb = min(len(x) // batch, 50)
    xs = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(nb)]
    ys = [y[i * batch:(i + 1) * batch] for i in range(nb)]
    data = {"scratchcnn": (xs, ys), "torch": ([torch.from_numpy(a) for a in xs],
                                              [torch.from_numpy(a) for a in ys])}
    for r in runners.values():
        r.set_threads(threads)
    results = {}
    for mode in ("train", "infer"):
        # calibrate: steps so that one block takes about `seconds` (also warms up caches)
        steps = {}
        for fw, r in runners.items():
            time_block(r, mode, *data[fw], 2)
            w = time_block(r, mode, *data[fw], 3)
            steps[fw] = max(3, int(seconds / max(w.wall / 3, 1e-6)))
        rates = {fw: [] for fw in runners}
        shares, others = [], []
        for rep in range(repeats):
            order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
            for fw in order:
                w = time_block(runners[fw], mode, *data[fw], steps[fw])
                rates[fw].append(steps[fw] * batch / w.wall)
                shares.append(w.share)
                if w.other is not None:
                    others.append(w.other)
        med = {fw: statistics.median(v) for fw, v in rates.items()}
        results[mode] = {"scratchcnn": med["scratchcnn"], "torch": med["torch"],
                         "workers": runners["scratchcnn"].used_workers() if mode == "train" else 1,
                         "ratio": med["scratchcnn"] / med["torch"],
                         "spread": {fw: (min(v), max(v)) for fw, v in rates.items()},
                         "other_load": statistics.mean(others) if others else None,
                         "own_share": statistics.median(shares)}
    return results


# ---------------------------------------------------------------- epoch (child process)
def epoch_child(framework, name, threads, workers=1):
    """One epoch of Fashion-MNIST training plus test evaluation; prints JSON."""
    batch = NETWORKS[name][1]
    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    if framework == "scratchcnn":
        import scratchcnn as sc
        from scratchcnn.app import presets
        sc.set_num_threads(threads)
        sc.manual_seed(0)
        model = getattr(presets, NETWORKS[name][0])((1, 28, 28), 10)
        rss_before = _rss_mb("VmRSS")
        _reset_peak_rss()
        t0 = time.perf_counter()
        hist = model.fit(x, y, epochs=1, batch_size=batch, optimizer=sc.optim.SGD(model.parameters(), lr=LR),
                         validation_data=(xt, yt), verbose=0, workers=min(workers, threads))
        seconds = time.perf_counter() - t0
        acc = hist.history["val_accuracy"][-1]
    else:
        import torch
        torch.set_num_threads(threads)
        _, tmodel = build_pair(name)
        rss_before = _rss_mb("VmRSS")
        _reset_peak_rss()
        opt = torch.optim.SGD(tmodel.parameters(), lr=LR)
        crit = torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        t0 = time.perf_counter()
        order = torch.randperm(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            crit(tmodel(tx[idx]), ty[idx]).backward()
            opt.step()
        correct = 0
        with torch.no_grad():
            for s in range(0, len(xt), 256):
                out = tmodel(torch.from_numpy(xt[s:s + 256]))
                correct += int((out.argmax(1) == torch.from_numpy(yt[s:s + 256])).sum())
        seconds = time.perf_counter() - t0
        acc = correct / len(xt)
    peak = _rss_mb("VmHWM")            # peak while training and evaluating
    print(json.dumps({"framework": framework, "network": name, "seconds": seconds,
                      "peak_rss_mb": peak, "rss_after_setup_mb": rss_before,
                      "val_accuracy": acc}))


def run_epoch(framework, name, threads, workers=1):
    cmd = [sys.executable, os.path.abspath(__file__), "--epoch-child", framework, name,
           "--threads", str(threads), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Watch() as w:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(out.strip().splitlines()[-1])
    # the child's own CPU time is not load from another process
    child = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["other_load"] = None if w.other is None else max(0.0, w.other - child / w.wall)
    return res


# ---------------------------------------------------------------- report
def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch
    from threadpoolctl import threadpool_info
    blas = ", ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture') or '?'} kernel)"
                     for i in threadpool_info() if i.get("user_api") == "blas") or "no BLAS found"
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__} "
            f"on {blas}" + (f" forced by {forced}" if forced else "") + f", PyTorch {torch.__version__}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="+", default=["a_simple", "a_complex", "d"], choices=list(NETWORKS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per framework (median)")
    p.add_argument("--seconds", type=float, default=0.5, help="target length of one timed block")
    p.add_argument("--epoch", nargs="*", default=[], choices=list(NETWORKS),
                   help="networks to train for one full epoch (seconds, peak memory)")
    p.add_argument("--max-load", type=float, default=0.3,
                   help="refuse when other processes used more than this many cores on average")
    p.add_argument("--allow-load", action="store_true", help="report anyway, figures marked '*'")
    p.add_argument("--out", help="also write the markdown tables to this file")
    p.add_argument("--json", help="also write the raw results to this JSON file")
    p.add_argument("--workers", type=int, default=1,
                   help="scratchcnn trains with fit(workers=N)'s data-parallel step: min(N, threads) threads "
                        "sharing the BLAS threads, each on a part of the batch (PyTorch: its own threads)")
    p.add_argument("--epoch-child", nargs=2, metavar=("FRAMEWORK", "NET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epoch_child:
        epoch_child(*args.epoch_child, args.threads[0], args.workers)
        return 0

    x, y = load_fashion_mnist("train", limit=3200)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    all_res = {"date": started, "machine": machine_line(), "load_before": os.getloadavg(),
               "speed": {}, "epoch": {}}
    lines = [f"Measured {started} on {all_res['machine']}; load average before the run "
             f"{all_res['load_before'][0]:.2f}.", ""]
    loaded = False
    for threads in args.threads:
        lines += [f"**{threads} thread{'s' if threads > 1 else ''}** (median images/s of {args.repeats} "
                  f"alternating blocks; ratio = scratchcnn / PyTorch)", "",
                  "| network | batch | mode | scratchcnn img/s | PyTorch img/s | ratio | other load (cores) |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for name in args.nets:
            res = bench_network(name, threads, args.repeats, args.seconds, x, y, args.workers)
            all_res["speed"][f"{name}/{threads}"] = res
            for mode, r in res.items():
                heavy = r["other_load"] is not None and r["other_load"] > args.max_load
                loaded |= heavy
                mark = "*" if heavy else ""
                other = "n/a" if r["other_load"] is None else f"{r['other_load']:.2f}"
                how = f"{mode} ({r['workers']} workers)" if r.get("workers", 1) > 1 else mode
                row = (f"| {NETWORKS[name][2]} | {NETWORKS[name][1]} | {how} | {r['scratchcnn']:,.0f}{mark} | "
                       f"{r['torch']:,.0f}{mark} | {r['ratio']:.2f}{mark} | {other} |")
                lines.append(row)
                print(row, flush=True)
        lines.append("")
    if args.epoch:
        threads = args.threads[0]
        lines += [f"**One full Fashion-MNIST epoch** (60,000 training images + evaluation on 10,000 test "
                  f"images, {threads} thread{'s' if threads > 1 else ''}, fresh process each)", "",
                  "| network | framework | seconds | peak RSS in epoch (MB) | RSS after loading data (MB) | "
                  "test accuracy | other load |", "|---|---|---:|---:|---:|---:|---:|"]
        for name in args.epoch:
            for fw in ("scratchcnn", "torch"):
                r = run_epoch(fw, name, threads, args.workers)
                all_res["epoch"][f"{name}/{fw}"] = r
                heavy = r["other_load"] is not None and r["other_load"] > args.max_load
                loaded |= heavy
                mark = "*" if heavy else ""
                row = (f"| {NETWORKS[name][2]} | {fw} | {r['seconds']:.1f}{mark} | {r['peak_rss_mb']:.0f} | "
                       f"{r['rss_after_setup_mb']:.0f} | {r['val_accuracy']:.4f} | "
                       f"{'n/a' if r['other_load'] is None else format(r['other_load'], '.2f')} |")
                lines.append(row)
                print(row, flush=True)
        lines.append("")
    if loaded:
        lines.append(f"`*` another process used more than {args.max_load} cores on average while this "
                     f"figure was measured: the machine was shared, read the figures as rough.")
    all_res["loaded"] = loaded
    text = "\n".join(lines)
    if loaded and not args.allow_load:
        print(f"\nREFUSED: other processes loaded the machine (> {args.max_load} cores on average); "
              f"rerun on a quiet machine or pass --allow-load to report marked figures.", file=sys.stderr)
        return 3
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
