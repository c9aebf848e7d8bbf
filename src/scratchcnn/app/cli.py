"""The ``scratchcnn`` command line: train, evaluate, predict, summary, gradcheck, experiments, serve, export.

Run ``scratchcnn COMMAND --help`` for each command's options.
"""
import argparse
import json
import os
import sys

import numpy as np

from ..errors import ScratchCNNError
from ..kernels import tune_allocator
from ..threads import set_num_threads
from .export import add_export_parser, export_command

DEFAULT_THREADS = 1


def _add_data_args(p):
    p.add_argument("--dataset", default=None,
                   help="mnist, fashion-mnist, cifar10, digits or optdigits (train: the preset's data set, "
                        "digits for 'small' and specs; evaluate: the one the model was trained on)")
    p.add_argument("--data-dir", help="folder holding the data set's files (else $SCRATCHCNN_DATA, the cache, "
                                      "system copies, then a download)")
    p.add_argument("--classes", help="keep only these classes, remapped to 0..k-1, e.g. 0,1,2")
    p.add_argument("--per-class", type=int, help="training examples per class")
    p.add_argument("--test-per-class", type=int, help="test examples per class")
    p.add_argument("--normalize", default="scale", choices=["scale", "standardize", "none"])
    p.add_argument("--grayscale", action="store_true", help="convert RGB images to one channel")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")


def _parser():
    ap = argparse.ArgumentParser(prog="scratchcnn", description="CNNs from scratch in NumPy.")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                    help="BLAS threads (default %(default)s: safest on a busy 2-core machine)")
    sub = ap.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model and write a run directory (defaults: digits, 'small')")
    _add_data_args(t)
    t.add_argument("--model", default=None, help="preset name (see 'experiments') or spec such as "
                                                "conv8x3-relu-maxpool2-flatten-dense10 (default: small)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    t.add_argument("--momentum", type=float)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--schedule", help="none, cosine, or step[N] (lr x0.1 every N epochs)")
    t.add_argument("--augment", help="none, shiftN (random shifts up to N px), cropN (pad N + random crop), "
                                     "flip; join with '-', e.g. crop4-flip")
    t.add_argument("--val-split", type=float, default=0.1)
    t.add_argument("--out", help="run directory (default runs/DATASET-MODEL-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.npz")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--textbook", action="store_true",
                   help="train on every layer's textbook path (the plain forward/backward a reader reads, "
                        "no fast kernels): the same results to rounding, slower; the report says which ran")

    e = sub.add_parser("evaluate", help="test metrics of a saved model on a data set")
    e.add_argument("model")
    _add_data_args(e)

    p = sub.add_parser("predict", help="classify image files (PNG/JPEG, any size and colour)")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--center", action="store_true", help="MNIST-style centring (for drawn digits)")

    s = sub.add_parser("summary", help="layer table of a saved model, a preset or a spec")
    s.add_argument("model")
    s.add_argument("--input-shape", default=None, help="C,H,W for presets and specs (default 1,28,28)")
    s.add_argument("--classes", type=int, default=10)

    g = sub.add_parser("gradcheck", help="check a model's gradients by central differences")
    g.add_argument("model")
    g.add_argument("--input-shape", default=None, help="C,H,W for presets and specs (default 1,28,28)")
    g.add_argument("--classes", type=int, default=10)
    g.add_argument("--batch", type=int, default=4)

    sub.add_parser("experiments", help="list the presets (the seed experiments and stronger models)")

    v = sub.add_parser("serve", help="a local web page to draw, upload and look inside a model")
    v.add_argument("model")
    v.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    v.add_argument("--port", type=int, default=8000)

    add_export_parser(sub)
    return ap


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    set_num_threads(args.threads)
    tune_allocator()          # keep freed memory for reuse (SCRATCHCNN_MALLOC=system opts out)
    try:
        return COMMANDS[args.command](args) or 0
    except ScratchCNNError as exc:
        print(f"scratchcnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _classes(text):
    if text is None:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        from ..errors import ConfigError
        raise ConfigError(f"--classes must be comma-separated integers, got {text!r}") from None


def cmd_train(args):
    from .experiment import TrainConfig, train
    from .presets import PRESETS
    model = args.model or "small"
    dataset = args.dataset or (PRESETS[model].dataset if model in PRESETS else "digits")
    cfg = TrainConfig(dataset=dataset, model=model, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                      weight_decay=args.weight_decay, schedule=args.schedule, augment=args.augment,
                      classes=_classes(args.classes), per_class=args.per_class,
                      test_per_class=args.test_per_class, val_split=args.val_split,
                      normalize=None if args.normalize == "none" else args.normalize, grayscale=args.grayscale,
                      seed=args.seed, data_dir=args.data_dir, out=args.out, textbook=args.textbook)
    run_dir, metrics = train(cfg, resume=args.resume, verbose=0 if args.quiet else 1)
    _print_metrics(metrics)
    print(f"run directory: {os.path.abspath(run_dir)} (model.npz, report.md, metrics.json, pictures)")


def _print_metrics(metrics):
    print(f"test accuracy {metrics['accuracy']:.4f}  macro precision {metrics['macro']['precision']:.4f}  "
          f"recall {metrics['macro']['recall']:.4f}  F1 {metrics['macro']['f1']:.4f}")
    if metrics.get("report"):
        print(metrics["report"])


def _load_model(path):
    from ..model import load
    return load(path)


def cmd_evaluate(args):
    from ..datasets import load_dataset
    from ..metrics import classification_report
    from .report import evaluate_on_test
    model = _load_model(args.model)
    dataset = args.dataset or model.metadata.get("dataset")
    if dataset is None:
        from ..errors import ConfigError
        raise ConfigError("the model file does not name its data set: pass --dataset")
    prep = model.metadata.get("preprocessing") or {}
    data = load_dataset(dataset, data_dir=args.data_dir, classes=_classes(args.classes),
                        per_class=args.per_class, test_per_class=args.test_per_class, val_split=0.0,
                        normalize=None if args.normalize == "none" else args.normalize,
                        grayscale=args.grayscale or prep.get("channels") == 1 and dataset == "cifar10",
                        seed=args.seed)
    pred, _, metrics = evaluate_on_test(model, data)
    _print_metrics(metrics)
    print(classification_report(data.y_test, pred, class_names=list(data.class_names)))


def cmd_predict(args):
    from ..images import prepare_image
    model = _load_model(args.model)
    meta = model.metadata
    names = meta.get("class_names")
    prep = meta.get("preprocessing") or _default_preprocessing(model)
    xs = np.stack([prepare_image(path, prep, center=args.center) for path in args.images])
    probs = model.predict_proba(xs)
    names = names or [str(i) for i in range(probs.shape[1])]
    for path, p in zip(args.images, probs):
        top = np.argsort(-p)[:args.top]
        print(f"{path}: " + ", ".join(f"{names[k]} {p[k]:.3f}" for k in top))


def _default_preprocessing(model):
    c, h, w = model.input_shape
    return {"channels": c, "height": h, "width": w, "max_value": 1.0, "mean": None, "std": None,
            "white_on_black": False}


def _model_from_arg(text, input_shape, classes):
    if os.path.exists(text):
        return _load_model(text)
    from .experiment import build_model
    shape = tuple(int(v) for v in (input_shape or "1,28,28").split(","))
    return build_model(text, shape, classes)


def cmd_summary(args):
    _model_from_arg(args.model, args.input_shape, args.classes).summary()


def cmd_gradcheck(args):
    from ..gradcheck import gradcheck, jitter_biases
    model = _model_from_arg(args.model, args.input_shape, args.classes)
    if not os.path.exists(args.model):
        jitter_biases(model)          # a fresh model's zero biases put ReLUs exactly on their kink
    r = np.random.default_rng(0)
    x = r.standard_normal((args.batch,) + tuple(model.input_shape))
    k = model.output_shape(model.input_shape)[0]
    errors = gradcheck(model, x, r.integers(0, k, args.batch))
    return 0 if max(errors.values(), default=0) < 1e-5 else 1


def cmd_experiments(args):
    from .presets import PRESETS
    print(f"{'preset':<16} {'data set':<14} description")
    for p in PRESETS.values():
        print(f"{p.name:<16} {p.dataset:<14} {p.description}")
        if p.seed_result:
            print(f"{'':<16} {'':<14} seed reported: {p.seed_result}")
    print("\nrun one with: scratchcnn train --model PRESET [--dataset NAME] [--epochs N]")


def cmd_serve(args):
    from .serve import run
    run(args.model, host=args.host, port=args.port)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "summary": cmd_summary,
            "gradcheck": cmd_gradcheck, "experiments": cmd_experiments, "serve": cmd_serve,
            "export": export_command}
