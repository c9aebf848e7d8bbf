"""Where the time goes, side by side: each layer's forward and backward milliseconds in
scratchcnn next to the same layer in PyTorch, for the seed networks of benchmarks/bench.py.

Run from the repository root (one BLAS / torch thread by default):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_compare.py
    python benchmarks/profile_compare.py a_complex d --modes train --repeats 5 --out where.md

How each side is measured (both on the same real Fashion-MNIST batches, same weights, the
same full training step as bench.py: zero_grad, forward, softmax cross-entropy, backward,
SGD step; "infer" is the forward pass without gradients):

* **PyTorch**, with ``torch.profiler`` inside the real step of the whole ``nn.Sequential``
  (no layer is run in isolation). A forward pre-hook / forward hook pair on every module
  opens and closes a ``record_function("fwd/<k>")`` range around its forward; a tensor
  hook on every module's output opens ``bwd/<k>`` when autograd has computed the gradient
  of that output, and the next such hook (the gradient of layer k's input, i.e. of layer
  k-1's output) closes it, so ``bwd/<k>`` holds exactly layer k's backward functions
  (``ConvolutionBackward0``, ``ReluBackward0``, ... and the ``AccumulateGrad`` of its
  parameters); ``bwd/0`` closes when ``loss.backward()`` returns. The loss (forward and
  ``bwd/loss``, up to the first tensor hook) and the optimizer (``zero_grad`` + ``step``)
  get their own ranges. The profiler's CPU time of each range, summed over the profiled
  steps and divided by their number, is the row's figure.
* **scratchcnn**, by wrapping each layer's ``forward`` / ``backward`` with a clock while
  the model's own ``Sequential.forward`` / ``backward`` run, so whatever order or fusion the
  container's fast plan uses (``scratchcnn.nn.fast_plan``) is what is timed. A ReLU fused into
  the convolution before it does its work inside that convolution's row (the row says so; for
  the one-channel convolution backward too); a ReLU swapped behind a max-pool is timed in its
  own row, on the pooled values.

Each repeat profiles one block of ``--steps`` steps of each framework, alternating which
goes first; every figure is the median over ``--repeats`` blocks. The table's last rows
give the sum of the rows and the whole step timed without any profiler or wrapper (the
same alternation), so the instrumentation's own cost is visible (PyTorch's profiler adds
a few microseconds per operator: noticeable on A simple's 0.5 ms step, not on the others).
``ratio`` = PyTorch ms / scratchcnn ms for the row's forward + backward: above 1,
scratchcnn is faster on that layer (the same sense as bench.py's ratio of images/s).
For speed claims use bench.py; this script says *where* the time goes.
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

CLOCK = time.perf_counter


# ---------------------------------------------------------------- scratchcnn side
class ScratchTimer:
    """Wraps every layer's forward / backward of ``model`` with a clock (instance attributes
    shadow the methods; ``Sequential.forward`` calls ``layer.forward`` as usual)."""

    def __init__(self, model):
        self.model = model
        self.layers = model.layers
        self.fwd = np.zeros(len(self.layers))
        self.bwd = np.zeros(len(self.layers))
        self.other = {"loss": 0.0, "optimizer": 0.0}
        for k, layer in enumerate(self.layers):
            layer.forward = self._wrap(layer.forward, self.fwd, k)
            layer.backward = self._wrap(layer.backward, self.bwd, k)

    @staticmethod
    def _wrap(fn, acc, k):
        def timed(arg):
            t = CLOCK()
            out = fn(arg)
            acc[k] += CLOCK() - t
            return out
        return timed

    def unwrap(self):
        for layer in self.layers:
            del layer.forward, layer.backward

    def reset(self):
        self.fwd[:] = 0
        self.bwd[:] = 0
        self.other = {"loss": 0.0, "optimizer": 0.0}


def scratch_block(model, crit, opt, timer, mode, xs, ys, steps):
    """``steps`` steps with the per-layer clocks on; returns per-step ms (fwd, bwd, other)."""
    timer.reset()
    for s in range(steps):
        i = s % len(xs)
        if mode == "infer":
            with sc.no_grad():
                model(xs[i])
            continue
        t = CLOCK()
        opt.zero_grad()
        timer.other["optimizer"] += CLOCK() - t
        out = model(xs[i])
        t = CLOCK()
        crit(out, ys[i])
        g = crit.backward()
        timer.other["loss"] += CLOCK() - t
        model.backward(g)
        t = CLOCK()
        opt.step()
        timer.other["optimizer"] += CLOCK() - t
    k = 1e3 / steps
    return timer.fwd * k, timer.bwd * k, {n: v * k for n, v in timer.other.items()}


# ---------------------------------------------------------------- PyTorch side
class TorchLabels:
    """record_function ranges per layer of a torch.nn.Sequential (see the module docstring)."""

    def __init__(self, torch, tmodel):
        from torch.profiler import record_function
        self.torch, self.record_function = torch, record_function
        self.open = {}
        self.handles = []
        for k, mod in enumerate(tmodel):
            self.handles.append(mod.register_forward_pre_hook(self._pre(k)))
            self.handles.append(mod.register_forward_hook(self._post(k)))

    def begin(self, key, label):
        r = self.record_function(label)
        r.__enter__()
        self.open[key] = r

    def end(self, key):
        r = self.open.pop(key, None)
        if r is not None:
            r.__exit__(None, None, None)

    def _pre(self, k):
        def hook(mod, inputs):
            self.begin(("f", k), f"fwd/{k}")
        return hook

    def _post(self, k):
        def hook(mod, inputs, out):
            self.end(("f", k))
            if out.requires_grad:
                def grad_ready(g):          # d loss / d (output of layer k) is computed
                    self.end("b")           # closes the layer above (or the loss)
                    self.begin("b", f"bwd/{k}")
                out.register_hook(grad_ready)
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def torch_step(torch, tmodel, crit, opt, labels, mode, xb, yb):
    if mode == "infer":
        with torch.no_grad():
            tmodel(xb)
        return
    labels.begin("o", "optimizer")
    opt.zero_grad(set_to_none=True)
    labels.end("o")
    out = tmodel(xb)
    labels.begin("l", "fwd/loss")
    loss = crit(out, yb)
    labels.end("l")
    labels.begin("b", "bwd/loss")
    loss.backward()
    labels.end("b")                                   # bwd/0
    labels.begin("o", "optimizer")
    opt.step()
    labels.end("o")


def torch_block(torch, tmodel, crit, opt, labels, mode, xs, ys, steps, nlayers):
    """``steps`` profiled steps; returns per-step ms (fwd, bwd, other) from the profiler's ranges."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in range(steps):
            i = s % len(xs)
            torch_step(torch, tmodel, crit, opt, labels, mode, xs[i], ys[i])
    totals = {}
    for ev in prof.key_averages():
        totals[ev.key] = ev.cpu_time_total / 1e3          # us -> ms, summed over the steps
    k = 1.0 / steps
    fwd = np.array([totals.get(f"fwd/{j}", 0.0) * k for j in range(nlayers)])
    bwd = np.array([totals.get(f"bwd/{j}", 0.0) * k for j in range(nlayers)])
    other = {"loss": (totals.get("fwd/loss", 0.0) + totals.get("bwd/loss", 0.0)) * k,
             "optimizer": totals.get("optimizer", 0.0) * k}
    return fwd, bwd, other


# ---------------------------------------------------------------- one network
def compare(name, mode, steps, repeats, x, y):
    import torch
    batch = bench.NETWORKS[name][1]
    model, tmodel = bench.build_pair(name)
    nb = min(len(x) // batch, 20)
    xs = [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(nb)]
    ys = [y[i * batch:(i + 1) * batch] for i in range(nb)]
    txs, tys = [torch.from_numpy(a) for a in xs], [torch.from_numpy(a) for a in ys]
    runners = {"scratchcnn": bench.ScratchRunner(model), "torch": bench.TorchRunner(tmodel)}
    n = len(model.layers)
    sc_crit, sc_opt = runners["scratchcnn"].crit, runners["scratchcnn"].opt
    t_crit, t_opt = runners["torch"].crit, runners["torch"].opt
    # whole steps without instrumentation (warm-up first), then with it
    plain = {"scratchcnn": [], "torch": []}
    for fw in plain:
        bench.time_block(runners[fw], mode, *((xs, ys) if fw == "scratchcnn" else (txs, tys)), 3)
    rows = {"scratchcnn": [], "torch": []}
    for rep in range(repeats):
        order = ("scratchcnn", "torch") if rep % 2 == 0 else ("torch", "scratchcnn")
        for fw in order:
            data = (xs, ys) if fw == "scratchcnn" else (txs, tys)
            w = bench.time_block(runners[fw], mode, *data, steps)
            plain[fw].append(w.wall / steps * 1e3)
        for fw in order:
            if fw == "scratchcnn":
                timer = ScratchTimer(model)
                rows[fw].append(scratch_block(model, sc_crit, sc_opt, timer, mode, xs, ys, steps))
                timer.unwrap()
            else:
                labels = TorchLabels(torch, tmodel)
                rows[fw].append(torch_block(torch, tmodel, t_crit, t_opt, labels, mode, txs, tys, steps, n))
                labels.remove()

    def med(fw, part, j=None, key=None):
        vals = [r[part][j] if key is None else r[2][key] for r in rows[fw]]
        return statistics.median(vals)

    notes, prev = {}, None                     # what scratchcnn's fast plan does with each layer
    index = {id(m): k for k, m in enumerate(model.layers)}
    for i, layer, relu in model.run_plan():
        if relu is not None:
            both = hasattr(layer.fast_kernel(), "relu_mask_once")      # the kernel takes its derivative too
            notes[index[id(relu)]] = (f" *(fused into {i}: its time is in row {i})*" if both else
                                      f" *(forward fused into {i}: in row {i})*")
        if prev is not None and i < prev:
            notes[i] = f" *(runs after {prev})*"
        prev = i if relu is None else index[id(relu)]
    fused = {i: index[id(relu)] for i, _, relu in model.run_plan() if relu is not None}
    table = []
    for j, layer in enumerate(model.layers):
        sf, tf, sb, tb = (med("scratchcnn", 0, j), med("torch", 0, j), med("scratchcnn", 1, j), med("torch", 1, j))
        ratio_to = None                      # a fused row: its ratio is against torch's two layers
        if j in fused:
            r = fused[j]
            ratio_to = (tf + med("torch", 0, r), tb + med("torch", 1, r))
            if mode == "train":              # the ReLU's backward, where it still ran on its own
                sb_all = sb + med("scratchcnn", 1, r)
            else:
                sb_all = sb
            ratio_to += (sb_all,)
        table.append((f"{j} {layer!r}{notes.get(j, '')}", sf, tf, sb, tb, ratio_to))
    if mode == "train":
        for key in ("loss", "optimizer"):
            table.append((f"{key} (fwd + bwd)" if key == "loss" else "optimizer (zero_grad + step)",
                          med("scratchcnn", 2, key=key), med("torch", 2, key=key), 0.0, 0.0, None))
    return {"table": table, "plain": {fw: statistics.median(v) for fw, v in plain.items()},
            "batch": batch}


def ratio(t, s):
    return f"{t / s:.2f}" if s > 0 else "-"


def render(name, mode, res, threads, steps, repeats):
    train = mode == "train"
    lines = [f"**{bench.NETWORKS[name][2]}**, batch {res['batch']}, {mode}, {threads} thread(s); ms per step, "
             f"median of {repeats} alternating blocks of {steps} steps; ratio = PyTorch ms / scratchcnn ms "
             f"(above 1: scratchcnn faster)", ""]
    if train:
        lines += ["| layer | scratchcnn fwd ms | torch fwd ms | scratchcnn bwd ms | torch bwd ms | ratio |",
                  "|---|---:|---:|---:|---:|---:|"]
    else:
        lines += ["| layer | scratchcnn fwd ms | torch fwd ms | ratio |", "|---|---:|---:|---:|"]
    sums = np.zeros(4)
    for label, sf, tf, sb, tb, fused in res["table"]:
        sums += (sf, tf, sb, tb)
        if fused is None:
            r_fwd, r_all = ratio(tf, sf), ratio(tf + tb, sf + sb)
        else:                                 # conv + ReLU against torch's Conv2d + ReLU rows
            r_fwd = ratio(fused[0], sf) + " (with the ReLU)"
            r_all = ratio(fused[0] + fused[1], sf + fused[2]) + " (with the ReLU)"
        if train:
            if label.startswith(("loss", "optimizer")):
                lines.append(f"| {label} | {sf:.2f} | {tf:.2f} | | | {ratio(tf, sf)} |")
            else:
                lines.append(f"| {label} | {sf:.2f} | {tf:.2f} | {sb:.2f} | {tb:.2f} | {r_all} |")
        else:
            lines.append(f"| {label} | {sf:.2f} | {tf:.2f} | {r_fwd} |")
    ps, pt = res["plain"]["scratchcnn"], res["plain"]["torch"]
    if train:
        lines.append(f"| **sum of the rows** | {sums[0]:.2f} | {sums[1]:.2f} | {sums[2]:.2f} | {sums[3]:.2f} | "
                     f"{ratio(sums[1] + sums[3], sums[0] + sums[2])} |")
        lines.append(f"| **whole step, no profiler** | {ps:.2f} | {pt:.2f} | | | {ratio(pt, ps)} |")
    else:
        lines.append(f"| **sum of the rows** | {sums[0]:.2f} | {sums[1]:.2f} | {ratio(sums[1], sums[0])} |")
        lines.append(f"| **whole pass, no profiler** | {ps:.2f} | {pt:.2f} | {ratio(pt, ps)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("nets", nargs="*", help=f"some of {', '.join(bench.NETWORKS)} (default: all)")
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--steps", type=int, default=20, help="steps per profiled block")
    p.add_argument("--repeats", type=int, default=3, help="alternating blocks per framework (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="also write the markdown tables to this file")
    args = p.parse_args(argv)
    args.nets = args.nets or list(bench.NETWORKS)
    for name in args.nets:
        if name not in bench.NETWORKS:
            p.error(f"unknown network {name!r}: choose from {', '.join(bench.NETWORKS)}")
    import torch
    sc.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    x, y = bench.load_fashion_mnist("train", limit=1280)
    load0 = os.getloadavg()[0]
    text = [f"{bench.machine_line()}; load average before {load0:.2f}", ""]
    print(text[0], flush=True)
    for name in args.nets:
        for mode in args.modes:
            with bench.Watch() as w:
                res = compare(name, mode, args.steps, args.repeats, x, y)
            block = render(name, mode, res, args.threads, args.steps, args.repeats)
            if w.other is not None:
                block += f"\nother processes used {w.other:.2f} cores on average meanwhile" + (
                    " (measured under load: read the figures as rough)\n" if w.other > 0.3 else "\n")
            print(block, flush=True)
            text.append(block)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
