#!/usr/bin/env python3
"""Reproduce every seed experiment that can run here, then the stronger presets, and write
docs/results.md (the table) from docs/results.json (the measurements).

    python scripts/results.py                 # every row (about an hour on 2 cores)
    python scripts/results.py --only seed-b,seed-e
    python scripts/results.py --table-only    # rewrite docs/results.md from docs/results.json

MNIST and CIFAR-10 cannot be downloaded on the machine these figures come from, so the MNIST
experiments run on Fashion-MNIST (harder: the same networks score lower), seed B on the
scikit-learn digits, seed E on the three-class Fashion-MNIST subset; each row says which.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from scratchcnn.app.experiment import TrainConfig, train  # noqa: E402
from scratchcnn.threads import set_num_threads  # noqa: E402

# name: (seed label, seed's data set and figures, config overrides, note)
ROWS = [
    ("seed-a-simple", "A simple", "MNIST: 97.67%, 'minutes'",
     dict(dataset="fashion-mnist", model="seed-a-simple", val_split=0.0), "30 epochs, batch 10, SGD lr 0.05 (seed's)"),
    ("seed-a-complex", "A complex", "MNIST: 99.33%, 'hours'",
     dict(dataset="fashion-mnist", model="seed-a-complex", val_split=0.0, epochs=2),
     "seed's batch 10 and lr 0.05, but 2 epochs instead of 30 (time budget)"),
    ("seed-b", "B", "UCI digits (5620): loss not converged after 10 epochs",
     dict(dataset="digits", model="seed-b", val_split=0.0, seeds=[0, 1, 2, 3, 4]), "10 epochs, batch 128, SGD lr 0.1 (seed's); sklearn's 1797 digits"),
    ("seed-c", "C", "MNIST: 0.90 acc / P / R / F1 in ~2 h (1 epoch)",
     dict(dataset="fashion-mnist", model="seed-c", val_split=0.0), "1 epoch, one image per step (seed's)"),
    ("seed-d", "D", "MNIST: 97.7% after ~25 of 50 epochs (stopped: too slow)",
     dict(dataset="fashion-mnist", model="seed-d", val_split=0.0, epochs=10),
     "seed's batch 64 and lr 0.01, 10 epochs instead of 50 (time budget)"),
    ("seed-e", "E", "MNIST 0/1/2, 25+10 per class: 70%, weighted P 0.73 / R 0.70 / F1 0.70, ~41 s",
     dict(dataset="fashion-mnist", model="seed-e", val_split=0.0, seeds=[0, 1, 2, 3, 4]),
     "classes 0,1,2; 25 train / 10 test per class; 50 epochs, per-sample SGD lr 0.001 (seed's)"),
    ("strong-fashion", "stronger preset", "published two-conv baselines: 91-93%; target >= 93%",
     dict(dataset="fashion-mnist", model="strong"), "the 'strong' preset: seed A complex's layout with BatchNorm, Dropout, Adam + cosine, shift+flip, 15 epochs"),
    ("strong-light-fashion", "stronger preset", "published two-conv baselines: 91-93%",
     dict(dataset="fashion-mnist", model="strong-light"), "the 'strong-light' preset: one conv per block, 20 epochs"),
    ("record-fashion", "record attempt", "published: two-conv-block baselines 91-93%; ResNet-18 94.9% "
     "(Zalando's benchmark); target >= 94.5% in <= 20 min of training",
     dict(dataset="fashion-mnist", model="strong-plus", val_split=0.0, epochs=40, time_limit=1180, batch_size=128,
          label_smoothing=0.1, tta="flip", threads=2, workers=2),
     "the 'strong-plus' preset (Adam, batch 128, label smoothing 0.1) on two workers (`--workers 2`: 64 "
     "images per worker and BatchNorm), two BLAS threads, `--time-limit 1180`: the cosine runs over "
     "1,180 s and training stops there (at most 40 epochs); flip test-time augmentation reported beside"),
    ("small-digits", "stronger preset", "(seed B's data)",
     dict(dataset="digits", model="small", seeds=[0, 1, 2, 3, 4]), "the 'small' preset (the default of `scratchcnn train`)"),
    ("seed-e-strong", "stronger preset", "(seed E's subset)",
     dict(dataset="fashion-mnist", model="small", classes=[0, 1, 2], per_class=25, test_per_class=10,
          epochs=50, batch_size=8, val_split=0.0, seeds=[0, 1, 2, 3, 4]), "the 'small' preset on seed E's 75-image subset"),
]


def blas_kernel():
    """'OpenBLAS 0.3.x, kernel SkylakeX' (threadpoolctl), with the variables that force a kernel."""
    try:
        from threadpoolctl import threadpool_info
        info = next((i for i in threadpool_info() if i.get("user_api") == "blas"), {})
        text = f"{info.get('internal_api', '?')} {info.get('version', '')}, kernel {info.get('architecture', '?')}"
    except ImportError:
        text = "BLAS unknown (threadpoolctl not installed)"
    forced = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    return text + (f" (forced by {', '.join(forced)})" if forced else "")


def run_rows(names, results_path, default_threads=1):
    results = _load(results_path)
    for name, label, seed, overrides, note in ROWS:
        if names and name not in names:
            continue
        overrides = dict(overrides)
        seeds = overrides.pop("seeds", [0])
        threads = overrides.pop("threads", default_threads)
        set_num_threads(threads)
        runs = []
        for s in seeds:
            out = os.path.join(ROOT, "runs", "results", name if len(seeds) == 1 else f"{name}-seed{s}")
            cfg = TrainConfig(out=out, seed=s, **overrides)
            run_dir, metrics = train(cfg, verbose=1)
            runs.append(metrics)
            print(f"{name} seed {s}: accuracy {metrics['accuracy']:.4f} in {metrics['train_seconds']:.0f} s",
                  flush=True)
        accs = [m["accuracy"] for m in runs]
        middle = runs[int(np.argsort(accs)[len(accs) // 2])]          # the median run
        results[name] = {
            "label": label, "seed": seed, "note": note, "dataset": overrides["dataset"], "seeds": seeds,
            "accuracy": middle["accuracy"], "accuracies": accs, "macro_f1": middle["macro"]["f1"],
            "weighted": middle["weighted"], "train_seconds": float(np.median([m["train_seconds"] for m in runs])),
            "epochs": middle["epochs_run"], "time_limited": bool(middle.get("stopped_by_time_limit")),
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "threads": threads, "workers": overrides.get("workers", 1), "blas": blas_kernel(),
        }
        for key in ("tta_accuracy",):
            if key in middle:
                results[name][key] = middle[key]
        _save(results_path, results, name)
    return results


def _load(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def _save(path, results, name):
    """Write row ``name`` of ``results`` into the file as it is now (rows another process of this
    script wrote meanwhile are kept), and take those rows into ``results``."""
    from scratchcnn.fileio import atomic_write
    merged = _load(path)
    merged[name] = results[name]
    results.update(merged)
    atomic_write(path, lambda f: f.write(json.dumps(merged, indent=2)), mode="w")


def write_table(results, md_path):
    from scratchcnn.fileio import atomic_write
    lines = ["# Results: the seed experiments, reproduced and beaten", "",
             "Made by `python scripts/results.py` (rows: `--only NAME,...`; table: `--table-only`), one BLAS",
             "thread unless the row says two, on this project's 2-core machine. The seed rows ran while it was",
             "shared with other work, so their times are indicative; the record attempt ran alone, with",
             "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` (the BLAS kernel the machine picks itself, named",
             "at the end). MNIST and CIFAR-10 cannot be downloaded here: the MNIST experiments ran",
             "on **Fashion-MNIST** (a harder drop-in with the same shapes: the same network scores lower on",
             "it than on MNIST), seed B on scikit-learn's 1,797 UCI digits (the 5,620-image set needs a",
             "download), seed E on the three-class Fashion-MNIST subset with seed E's sizes.", "",
             "| experiment | seed reported | here: data | settings | test accuracy | macro F1 | training time |",
             "|---|---|---|---|---|---|---|"]
    for name, label, seed, overrides, note in ROWS:
        r = results.get(name)
        if r is None:
            lines.append(f"| {label} (`{name}`) | {seed} | {overrides['dataset']} | {note} | not run | | |")
            continue
        acc = f"**{r['accuracy']:.4f}**"
        if "tta_accuracy" in r:
            acc += f" (with flip test-time augmentation: {r['tta_accuracy']:.4f})"
        if len(r.get("accuracies", [])) > 1:
            acc += (f" (median of seeds {', '.join(map(str, r['seeds']))}: "
                    f"{', '.join(f'{a:.2f}' for a in r['accuracies'])})")
        wp = r["weighted"]
        threads = r.get("threads", 1)
        workers = f", {r['workers']} workers" if r.get("workers", 1) > 1 else ""
        lines.append(f"| {label} (`{name}`) | {seed} | {r['dataset']} | {note} | {acc} | "
                     f"{r['macro_f1']:.4f} (weighted P {wp['precision']:.2f} / R {wp['recall']:.2f} / "
                     f"F1 {wp['f1']:.2f}) | {r['train_seconds']:.0f} s ({r['epochs']} epochs"
                     f"{', the last cut at the time limit' if r.get('time_limited') else ''}"
                     f"{', 2 threads' if threads == 2 else f', {threads} threads' if threads != 1 else ''}{workers}) |")
    lines += ["| C on CIFAR-10 | CIFAR-10 (gray): 0.30 | cifar10 | the loader (real RGB, optional "
              "grayscale) is tested on generated files | not measured here (no CIFAR-10 download) | | |",
              "| ResNet-20 (`resnet20-cifar`) | published: 91.25% (He et al. 2016, 164 epochs) | cifar10 | "
              "trained on generated CIFAR-format files in tests/test_resnet_presets.py only | not measured here "
              "(no CIFAR-10 download) | | |",
              "| small ResNet (`resnet-small-mnist`) | published: ResNets reach 99.5-99.7% on MNIST | mnist | "
              "trained on generated MNIST-format files in tests/test_resnet_presets.py only | not measured here "
              "(no MNIST download) | | |", "",
              "Each row's run directory (`runs/results/NAME/`) holds its report.md, metrics, pictures and model.",
              "",
              "**The 94.5% record (issue 14): 94.58% in 1,180 s** (the row above, seed 0; seed 1: 94.51%). The target:",
              "at least 94.5% Fashion-MNIST test accuracy with at most 20 minutes of training on this machine.",
              "The record network 'strong-plus' is 'strong' with one more convolution, 128 maps at 7x7 (3.6 M",
              "multiply-adds, as many as the 32-to-64-map convolution at 14x14; with its wider dense input",
              "23.7 M per image against the 19.3 M of 'strong'), and Dropout 0.2 for 0.3; `--time-limit` anneals",
              "the cosine over the time instead of the epochs and stops at it, so",
              "the run uses the whole budget however fast the machine is that day (19 epochs and 19 batches",
              "of a 20th at 54-69 s per epoch). Attempts on 2026-12-02, each a run of this script alone on the",
              "machine, two BLAS threads, the SkylakeX kernel; 'workers' is `fit(workers=2)` / `--workers 2`",
              "(data parallel: each core runs the network on half of every batch, BatchNorm per half; 1.3-1.4x",
              "the images per second of two BLAS threads alone):",
              "",
              "| network and settings | epochs | training time | test accuracy | with flip TTA |",
              "|---|---|---|---|---|",
              "| 'strong', label smoothing 0.1, batch 64 | 12 | 1162 s | 0.9392 | 0.9405 |",
              "| 'strong', label smoothing 0.1, batch 64 | 13 | 1209 s (9 s over) | 0.9402 | 0.9415 |",
              "| 'strong', label smoothing 0.1, batch 128, 2 workers, random erasing p 0.25 | 19 | 1221 s (21 s over) | "
              "0.9416 | 0.9431 |",
              "| 'strong', label smoothing 0.1, batch 128, 2 workers | 17 | 954 s | 0.9403 | 0.9414 |",
              "| 'strong-plus', label smoothing 0.1, batch 128, 2 workers, `--time-limit 1180` (the row above) | "
              "19 + 19 batches | 1180 s | 0.9458 | 0.9465 |",
              "| the same, seed 1 (`scratchcnn --threads 2 train --model strong-plus --workers 2 --time-limit 1180 "
              "--epochs 40 --val-split 0 --tta flip --seed 1`) | 21 + part of a 22nd | 1180 s | 0.9451 | 0.9466 |",
              "| 'resnet-small' (37 M multiply-adds), random erasing, batch 128 (*) | 12 | 103 s / epoch alone | "
              "0.9346 | 0.9365 |",
              "| 'strong', Adam + cosine, label smoothing 0.1, batch 128, one thread (*) | 20 | 2091 s | 0.9422 | "
              "0.9435 |",
              "| 'strong', SGD (Nesterov, wd 5e-4) + one-cycle to lr 0.15, label smoothing 0.1, batch 128, one "
              "thread (*) | 20 | 2073 s | 0.9415 | 0.9423 |",
              "",
              "(*) development runs outside this script on a shared machine (the two 20-epoch runs ran side by",
              "side, one thread each; `--schedule onecycle` is the one-cycle policy): their accuracies, not",
              "their times, are the figures.",
              "The same machine ran the same network at 43 to 77 s per epoch within one run (the 19-epoch",
              "attempt went over the budget by 21 s although its first epochs took 57 s), so an attempt keeps",
              "a margin, or, as the record row does, a time limit.",
              "Six-epoch probes (development runs, SGD Nesterov + one-cycle to lr 0.1, weight decay 5e-4, batch",
              "64, one thread each, two side by side) chose the network: 'strong' 0.9290; a 128-map convolution",
              "at 7x7 added ('strong-plus' with Dropout 0.3) 0.9312, two of them 0.9316, 'strong-plus' (Dropout",
              "0.2) 0.9335; moving the capacity down instead (one 32-map convolution at 28x28, two 64-map at",
              "14x14, two 128-map at 7x7) 0.9283 with the dense head and 0.9234 with global average pooling.",
              ""]
    dates = sorted({r["date"] for r in results.values()})
    if dates:
        lines.append(f"Measured on {', '.join(dates)}; machine: {next(iter(results.values()))['machine']}.")
    kernels = sorted({(n, r["blas"]) for n, r in results.items() if r.get("blas")})
    for n, k in kernels:
        lines.append(f"`{n}`: {k}.")
    text = "\n".join(lines) + "\n"
    atomic_write(md_path, lambda f: f.write(text), mode="w")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated row names: " + ", ".join(r[0] for r in ROWS))
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_num_threads(args.threads)
    results_path = os.path.join(ROOT, "docs", "results.json")
    md_path = os.path.join(ROOT, "docs", "results.md")
    names = set(args.only.split(",")) if args.only else None
    results = _load(results_path) if args.table_only else run_rows(names, results_path, args.threads)
    write_table(results, md_path)
    print(f"wrote {md_path}")


if __name__ == "__main__":
    main()
