"""The ``scratchcnn`` command line: train, doctor, evaluate, predict, summary, gradcheck, experiments, serve,
export.

Run ``scratchcnn COMMAND --help`` for each command's options.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

from ..errors import ScratchCNNError
from ..kernels import tune_allocator
from ..threads import set_num_threads
from .export import add_export_parser, export_command

DEFAULT_THREADS = 1
MAX_THREADS = 1024


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line, ``scratchcnn train: error: ...`` (exit 2), not the
    usage text and the error on several."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_from(low, high=None):
    """An argparse type: an integer ``>= low`` (and ``<= high``)."""
    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or value < low or (high is not None and value > high):
            where = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {where}, got {text[:40]!r}")
        return value
    parse.__name__ = "integer"
    return parse


def _float_in(low, high=None, low_open=False, high_open=False):
    """An argparse type: a finite number in the range given (bounds excluded when ``*_open``)."""
    def parse(text):
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = None
        ok = value is not None and math.isfinite(value) and (value > low if low_open else value >= low)
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            where = f"{'>' if low_open else '>='} {low}"
            if high is not None:
                where += f" and {'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text[:40]!r}")
        return value
    parse.__name__ = "number"
    return parse


def _input_shape(text):
    """An argparse type: ``C,H,W`` (or ``N`` / ``C,N``), each a size from 1 to 65536."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except (TypeError, ValueError):
        shape = ()
    if not 1 <= len(shape) <= 3 or not all(1 <= d <= 65536 for d in shape):
        raise argparse.ArgumentTypeError(f"must be C,H,W: up to three sizes from 1 to 65536, e.g. 1,28,28; "
                                         f"got {text[:40]!r}")
    return ",".join(map(str, shape))


def _add_data_args(p):
    p.add_argument("--dataset", default=None,
                   help="mnist, fashion-mnist, cifar10, digits or optdigits (train: the preset's data set, "
                        "digits for 'small' and specs; evaluate: the one the model was trained on)")
    p.add_argument("--data-dir", help="folder holding the data set's files (else $SCRATCHCNN_DATA, the cache, "
                                      "system copies, then a download)")
    p.add_argument("--data", metavar="PATH",
                   help="your own data instead of --dataset: a folder of class folders (PATH/cat/*.jpg, "
                        "PATH/dog/*.png; PATH/train + PATH/test as the split), a CSV (label, pixels...), an .npz "
                        "(x_train, y_train, x_test, y_test), IDX files or their folder (torchvision raw/), "
                        "mnist.pkl.gz, or an HDF5 file (x_train, y_train, x_test, y_test)")
    p.add_argument("--data-format", choices=["folder", "csv", "npz", "idx", "pickle", "hdf5"],
                   help="the format of --data (default: told from the path)")
    p.add_argument("--test-data", metavar="PATH", help="the test set of --data in a second folder, CSV or IDX "
                                                        "images file (else --test-split of --data is held out)")
    p.add_argument("--test-split", type=float, help="fraction of --data held out (stratified) for testing when it "
                                                    "has no test set (default 0.2)")
    p.add_argument("--image-size", metavar="N|HxW", help="--data folders: resize every image to it (default: the "
                                                         "most common size; 28 / 32 for large photos); flat rows "
                                                         "(CSV, ...): their image shape (default: a square)")
    p.add_argument("--rgb", action="store_true", help="--data: three channels (gray images repeated)")
    p.add_argument("--resize", choices=["stretch", "crop", "pad"],
                   help="--data folders: fit images of another shape by stretching (default), centre-cropping "
                        "or padding; photos for the trained model are fitted the same way")
    p.add_argument("--skip-bad", action="store_true",
                   help="--data folders: leave unreadable images out (counted in the summary) instead of stopping")
    p.add_argument("--hdf5-keys", metavar="X,Y[,XT,YT]", help="--data HDF5: the dataset names "
                                                               "(default x_train,y_train,x_test,y_test)")
    p.add_argument("--classes", help="keep only these classes, remapped to 0..k-1, e.g. 0,1,2 (or names: cat,dog)")
    p.add_argument("--per-class", type=_int_from(1), help="training examples per class")
    p.add_argument("--test-per-class", type=_int_from(1), help="test examples per class")
    p.add_argument("--normalize", default="scale", choices=["scale", "standardize", "none"])
    p.add_argument("--grayscale", action="store_true", help="convert RGB images to one channel (--data: default "
                                                            "gray unless an image has colour)")
    p.add_argument("--seed", type=_int_from(0), default=0, help="seed for every random choice (default 0)")


def _add_model_args(p):
    """The model and optimizer options of ``train`` (``doctor`` takes the same)."""
    p.add_argument("--model", default=None, help="preset name (see 'experiments') or spec such as "
                                                "conv8x3-relu-maxpool2-flatten-dense10 (default: small)")
    p.add_argument("--batch-size", type=_int_from(1))
    p.add_argument("--lr", type=_float_in(0, low_open=True))
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"])
    p.add_argument("--momentum", type=_float_in(0, 1, high_open=True), help="SGD's or RMSprop's momentum")
    p.add_argument("--weight-decay", type=_float_in(0), help="L2 weight decay (default: the preset's, else 0)")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="SGD with Nesterov momentum (default: the preset's setting)")
    p.add_argument("--alpha", type=_float_in(0, 1), help="RMSprop's smoothing constant (default 0.99)")
    p.add_argument("--centered", action="store_true", help="centered RMSprop (divide by the gradient's running "
                                                           "variance instead of its mean square)")


def _parser():
    ap = _Parser(prog="scratchcnn", description="CNNs from scratch in NumPy.")
    ap.add_argument("--threads", type=_int_from(1, MAX_THREADS), default=DEFAULT_THREADS,
                    help="BLAS threads (default %(default)s: safest on a busy 2-core machine)")
    sub = ap.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model and write a run directory (defaults: digits, 'small')")
    _add_data_args(t)
    _add_model_args(t)
    t.add_argument("--epochs", type=_int_from(1))
    t.add_argument("--schedule", help="none, cosine, step[N] (lr x0.1 every N epochs), plateau[N] (lr x0.1 "
                                      "after N epochs, default 2, without a better validation loss; the training "
                                      "loss without --val-split) or onecycle[P] (per batch: up to --lr over the "
                                      "first P%% of the steps, default 30, then down to ~0; momentum cycled)")
    t.add_argument("--loss", choices=["cross_entropy", "bce", "multimargin"],
                   help="cross_entropy (default); bce: two classes, a model with ONE sigmoid output (class 1 when "
                        "its logit is > 0); multimargin: the multi-class hinge")
    t.add_argument("--label-smoothing", type=_float_in(0, 1),
                   help="cross_entropy's label smoothing: targets (1 - F) one-hot + F / classes (default: the "
                        "preset's, else 0)")
    t.add_argument("--tta", choices=["none", "flip"],
                   help="flip: also report the test accuracy with each image's mirror image averaged in "
                        "(test-time augmentation; default: the preset's, else none)")
    t.add_argument("--clip-grad-norm", type=_float_in(0, low_open=True), metavar="F",
                   help="rescale each batch's gradients to a total L2 norm of at most F")
    t.add_argument("--workers", type=_int_from(1), default=1, metavar="N",
                   help="N threads, each running the network on a part of every batch (data parallel on N "
                        "cores, the --threads BLAS threads shared out among them); BatchNorm then normalises "
                        "each part with its own statistics (default 1)")
    t.add_argument("--time-limit", type=_float_in(0, low_open=True), metavar="SECONDS",
                   help="train for at most SECONDS (checked after each batch; --epochs stays the upper bound); "
                        "with --schedule cosine the learning rate anneals over the time instead of the epochs")
    t.add_argument("--augment", help="none, shiftN (random shifts up to N px), cropN (pad N + random crop), "
                                     "flip, erase[P] (random erasing, probability P%%, default 50); join with '-', e.g. crop4-flip")
    t.add_argument("--val-split", type=_float_in(0, 1, high_open=True), default=0.1)
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
    p.add_argument("--top", type=_int_from(1), default=3)
    p.add_argument("--center", action="store_true", help="MNIST-style centring (for drawn digits)")

    s = sub.add_parser("summary", help="layer table of a saved model, a preset or a spec")
    s.add_argument("model")
    s.add_argument("--input-shape", type=_input_shape, default=None,
                   help="C,H,W for presets and specs (default 1,28,28)")
    s.add_argument("--classes", type=_int_from(1, 1 << 20), default=10)

    g = sub.add_parser("gradcheck", help="check a model's gradients by central differences")
    g.add_argument("model")
    g.add_argument("--input-shape", type=_input_shape, default=None,
                   help="C,H,W for presets and specs (default 1,28,28)")
    g.add_argument("--classes", type=_int_from(1, 1 << 20), default=10)
    g.add_argument("--batch", type=_int_from(1, 4096), default=4)

    sub.add_parser("experiments", help="list the presets (the seed experiments and stronger models)")

    from .doctor import add_doctor_arguments
    d = sub.add_parser("doctor", help="check data, model and learning rate before a long training run "
                                      "(the options of train)")
    _add_data_args(d)
    _add_model_args(d)
    d.add_argument("--val-split", type=_float_in(0, 1, high_open=True), default=0.1,
                   help="as in train: the examples checked are train's training split")
    add_doctor_arguments(d, _int_from)

    v = sub.add_parser("serve", help="a local web page to draw, upload and look inside a model")
    v.add_argument("model")
    v.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    v.add_argument("--port", type=_int_from(0, 65535), default=8000)

    add_export_parser(sub)
    return ap


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every error a user can cause is one line on stderr, ``scratchcnn COMMAND: error: ...``, and
    exit status 2 (a usage error too); an error of scratchcnn itself is one line saying so, and
    exit status 1 (``SCRATCHCNN_DEBUG=1`` shows its traceback)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:             # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        _parser().print_help()
        return 0
    who = f"scratchcnn {args.command}"
    for name, value in sorted(vars(args).items()):      # an empty --option= is a mistake, never a default
        if value == [] or any(isinstance(v, str) and not v.strip() for v in
                              (value if isinstance(value, list) else [value])):   # [] : argparse's --opt=--
            kind = name if name in ("model", "images") else "--" + name.replace("_", "-")
            print(f"{who}: error: argument {kind}: empty value (see '{who} --help')", file=sys.stderr)
            return 2
    try:
        set_num_threads(args.threads)
        tune_allocator()          # keep freed memory for reuse (SCRATCHCNN_MALLOC=system opts out)
        return COMMANDS[args.command](args) or 0
    except ScratchCNNError as exc:
        print(f"{who}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{who}: error: out of memory (make the model, the batch size or the data smaller)", file=sys.stderr)
        return 2
    except OSError as exc:            # a file or folder the user named cannot be read or written
        where = f": {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"{who}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("SCRATCHCNN_DEBUG"):
            raise
        print(f"{who}: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in scratchcnn: please "
              f"report it; SCRATCHCNN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(exc):
    """A message on one line (a spec error's pointer lines are kept: they are its point)."""
    text = str(exc)
    return text if "\n  " in text and "^" in text else " ".join(text.split())


def _classes(text):
    if text is None:
        return None
    out = [c.strip() for c in text.split(",") if c.strip()]
    if not out:
        from ..errors import ConfigError
        raise ConfigError(f"--classes must be comma-separated class indices or names, got {text!r}")
    return [int(c) if c.lstrip("-").isdigit() else c for c in out]   # names: --data classes (cat,dog)


def _train_config(args):
    """The TrainConfig of ``train``'s (or ``doctor``'s) options; options a command lacks stay unset."""
    from .experiment import TrainConfig
    from .presets import PRESETS
    model = args.model or "small"
    _check_data_args(args)
    dataset = None if args.data else args.dataset or (PRESETS[model].dataset if model in PRESETS else "digits")
    opt = lambda name, default=None: getattr(args, name, default)
    return TrainConfig(dataset=dataset, model=model, epochs=opt("epochs"),
                       batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                       weight_decay=args.weight_decay, nesterov=args.nesterov, alpha=args.alpha, centered=args.centered,
                       schedule=opt("schedule"), loss=opt("loss"), label_smoothing=opt("label_smoothing"),
                       clip_grad_norm=opt("clip_grad_norm"), workers=opt("workers", 1), time_limit=opt("time_limit"),
                       augment=opt("augment"),
                       tta=opt("tta"),
                       classes=_classes(args.classes), per_class=args.per_class,
                       test_per_class=args.test_per_class, val_split=args.val_split,
                       normalize=None if args.normalize == "none" else args.normalize, grayscale=args.grayscale,
                       seed=args.seed, data_dir=args.data_dir, out=opt("out"), textbook=opt("textbook", False),
                       data=args.data, data_format=args.data_format, test_data=args.test_data,
                       test_split=args.test_split, image_size=args.image_size, rgb=args.rgb, resize=args.resize,
                       skip_bad=args.skip_bad, hdf5_keys=args.hdf5_keys)


def cmd_train(args):
    from .experiment import train
    cfg = _train_config(args)
    run_dir, metrics = train(cfg, resume=args.resume, verbose=0 if args.quiet else 1)
    _print_metrics(metrics)
    print(f"run directory: {os.path.abspath(run_dir)} (model.npz, report.md, metrics.json, pictures)")


def _check_data_args(args):
    from ..errors import ConfigError
    if args.data and args.dataset:
        raise ConfigError("--dataset names a known data set and --data your own files: give one of them")
    if not args.data:
        used = [opt for opt, v in (("--data-format", args.data_format), ("--test-data", args.test_data),
                                   ("--test-split", args.test_split), ("--image-size", args.image_size),
                                   ("--rgb", args.rgb), ("--resize", args.resize), ("--skip-bad", args.skip_bad),
                                   ("--hdf5-keys", args.hdf5_keys)) if v]
        if used and not getattr(args, "model_data_source", None):
            raise ConfigError(f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} to --data (your own files)")


def _print_metrics(metrics):
    print(f"test accuracy {metrics['accuracy']:.4f}  macro precision {metrics['macro']['precision']:.4f}  "
          f"recall {metrics['macro']['recall']:.4f}  F1 {metrics['macro']['f1']:.4f}"
          + (f"  (flip TTA accuracy {metrics['tta_accuracy']:.4f})" if "tta_accuracy" in metrics else ""))
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
    source = model.metadata.get("data_source") if not args.dataset else None
    args.model_data_source = source
    _check_data_args(args)
    if args.data or source:
        return _evaluate_own_data(args, model, source)
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


def _evaluate_own_data(args, model, source):
    """evaluate on --data, or on the files the model was trained on (their recorded options and
    seed, so a held-out test split is the same images), read with the model's preprocessing."""
    from ..datasets import describe, load_data
    from ..errors import ConfigError
    from ..metrics import classification_report
    from .report import evaluate_on_test
    recorded = (source or {}).get("options", {}) if not args.data else {}
    path = args.data or source["path"]
    classes = _classes(args.classes) if args.classes else recorded.get("classes")
    data = load_data(path, args.data_format or recorded.get("format"),
                     test_data=args.test_data or recorded.get("test_data"),
                     test_split=args.test_split or recorded.get("test_split"),
                     skip_bad=args.skip_bad or recorded.get("skip_bad", False),
                     hdf5_keys=args.hdf5_keys or recorded.get("hdf5_keys"), classes=classes,
                     test_per_class=args.test_per_class, val_split=0.0,
                     seed=args.seed if args.data else recorded.get("seed", args.seed),
                     preprocessing=model.metadata.get("preprocessing") or _default_preprocessing(model))
    print(describe(data))
    outputs = int(np.prod(model.output_shape(model.input_shape)))
    outputs = 2 if outputs == 1 else outputs          # one sigmoid output: a two-class model
    names = model.metadata.get("class_names")
    if outputs != data.num_classes or (names and list(names) != list(data.class_names)):
        raise ConfigError(f"the model was trained on {outputs} classes ({', '.join(map(str, names or []))}) but "
                          f"{path} has {data.num_classes} ({', '.join(data.class_names)}): expected the same classes"
                          f" (--classes picks some)")
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
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        from ..errors import ConfigError
        raise ConfigError(f"predict needs an image model with input_shape (C, H, W); this one has {shape}")
    c, h, w = shape
    return {"channels": c, "height": h, "width": w, "max_value": 1.0, "mean": None, "std": None,
            "white_on_black": False}


def _model_from_arg(text, input_shape, classes):
    if os.path.exists(text):
        model = _load_model(text)
        if getattr(model, "input_shape", None) is None:
            if input_shape is None:
                from ..errors import ConfigError
                raise ConfigError(f"{text!r} does not record its input shape: pass --input-shape C,H,W")
            model.build(tuple(int(v) for v in input_shape.split(",")))
        return model
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
    print("or on your own data: scratchcnn train --data PATH (a folder of class folders, a CSV, .npz, IDX, "
          "mnist.pkl.gz or HDF5 file)")


def cmd_doctor(args):
    from .doctor import doctor_command
    return doctor_command(args, _train_config(args))


def cmd_serve(args):
    try:
        from .serve import run
    except ImportError as exc:           # installed without its dependencies (pip install --no-deps)
        from ..errors import ConfigError
        raise ConfigError(f"serve needs the {exc.name or 'fastapi'} package, which is not installed: "
                          f"pip install 'scratchcnn[serve]' (fastapi, uvicorn, python-multipart)") from None
    run(args.model, host=args.host, port=args.port)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "summary": cmd_summary,
            "gradcheck": cmd_gradcheck, "experiments": cmd_experiments, "serve": cmd_serve, "doctor": cmd_doctor,
            "export": export_command}
