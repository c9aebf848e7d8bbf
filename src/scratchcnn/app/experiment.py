"""One training run, as the command line does it: data, model, loss, optimizer, schedule,
gradient clipping, augmentation, checkpoints (best and last), Ctrl-C handling, and the run
directory."""
import contextlib
import json
import math
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field, fields

from .. import losses, optim
from ..callbacks import Callback, ModelCheckpoint, TimeBudget
from ..datasets import augment_from_name, describe, load_data, load_dataset
from ..diagnostics import GradientDiagnostics
from ..datasets.formats import data_name
from ..errors import ConfigError
from ..fileio import remove_stale_temporaries, write_json
from ..kernels import textbook, textbook_enabled
from ..model import load
from ..nn.sizes import check_activations, check_model_size
from ..random import manual_seed
from ..threads import set_num_threads
from .presets import PRESETS, get_preset
from .report import write_run_outputs
from .spec import build_from_spec, is_spec


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as config.json in the run directory)."""
    dataset: str = "digits"
    model: str = "small"
    epochs: int = None
    batch_size: int = None
    lr: float = None
    optimizer: str = None          # sgd | adam | adamw | rmsprop
    momentum: float = None
    nesterov: bool = None          # sgd: Nesterov momentum
    weight_decay: float = None
    alpha: float = None            # rmsprop: the smoothing constant (default 0.99)
    centered: bool = False         # rmsprop: divide by the gradient's running variance, not its mean square
    schedule: str = None           # none | cosine | stepN | plateau[N] | onecycle[P]
    loss: str = None               # cross_entropy | bce (two classes, one sigmoid output) | multimargin
    label_smoothing: float = None  # cross_entropy only
    clip_grad_norm: float = None   # max L2 norm of each batch's gradients
    workers: int = 1               # threads that each train on a part of every batch (data parallel)
    time_limit: float = None       # seconds of training: stop there (epochs is the upper bound); cosine over the time
    augment: str = None            # e.g. "shift2", "crop4-flip"; "none" disables
    tta: str = None                # "flip": also report the accuracy with mirrored test images averaged in
    classes: list = None
    per_class: int = None
    test_per_class: int = None
    val_split: float = 0.1
    normalize: str = "scale"
    grayscale: bool = False
    seed: int = 0
    data_dir: str = None
    out: str = None
    textbook: bool = False         # every layer on its textbook path (no fast kernels)
    extra: dict = field(default_factory=dict)
    # your own data (instead of ``dataset``): see scratchcnn.datasets.load_data
    data: str = None               # a folder of class folders, .csv, .npz, IDX, .pkl.gz, .hdf5
    data_format: str = None        # folder | csv | npz | idx | pickle | hdf5 (default: from the path)
    test_data: str = None          # a second folder / CSV / IDX file for the test set
    test_split: float = None       # held out for testing when the data have no test set (0.2)
    image_size: str = None         # N or HxW
    rgb: bool = False
    resize: str = None             # stretch | crop | pad
    skip_bad: bool = False
    hdf5_keys: str = None          # x_train,y_train[,x_test,y_test]

    def resolved(self):
        """Fill the unset values from the preset's training settings, then general defaults."""
        cfg = TrainConfig(**asdict(self))
        preset = PRESETS.get(cfg.model)
        train = dict(preset.train) if preset else {}
        data = dict(preset.data) if preset else {}
        defaults = {"epochs": 10, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9,
                    "schedule": "none", "augment": "none", "loss": "cross_entropy", "weight_decay": 0.0,
                    "label_smoothing": 0.0, "nesterov": False, "tta": "none"}
        for key, default in defaults.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, train.get(key, default))
        if cfg.optimizer != "sgd" and "momentum" not in train and self.momentum is None:
            cfg.momentum = None       # momentum is an SGD setting
        if self.nesterov is None and (cfg.optimizer != "sgd" or not cfg.momentum):
            cfg.nesterov = False      # the preset's Nesterov needs SGD with momentum
        if self.label_smoothing is None and cfg.loss != "cross_entropy":
            cfg.label_smoothing = 0.0  # the preset's smoothing is a cross-entropy setting
        for key in ("classes", "per_class", "test_per_class"):
            if getattr(cfg, key) is None and key in data and not cfg.data:   # the preset's own data set only
                setattr(cfg, key, data[key])
        return cfg


def read_run_config(run_dir):
    """The TrainConfig saved in ``run_dir/config.json`` (for ``--resume``), checked; a run directory
    that cannot be resumed raises ConfigError saying why. Stale temporary files of writes that
    were killed are removed first."""
    if not isinstance(run_dir, (str, os.PathLike)) or not os.path.isdir(run_dir):
        raise ConfigError(f"--resume: {run_dir!r} is not a run directory (no such folder)")
    remove_stale_temporaries(run_dir)
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"--resume: {run_dir} has no config.json: it is not a run directory, or its training "
                          f"was stopped before it began; start it again without --resume")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.loads(f.read(1 << 20))
        config = saved["config"]
        if not isinstance(config, dict):
            raise TypeError("'config' is not an object")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ConfigError(f"--resume: {path} is damaged ({type(exc).__name__}: {exc}); start the run again "
                          f"without --resume") from None
    known = {f.name for f in fields(TrainConfig)}
    try:
        cfg = TrainConfig(**{k: v for k, v in config.items() if k in known})
        return check_config(cfg)
    except ConfigError as exc:
        raise ConfigError(f"--resume: {path} holds settings that are refused: {exc}") from None


def check_config(cfg):
    """Refuse a run's settings that make no sense, naming the setting (a resolved TrainConfig:
    the values the run would use; None where a setting is optional)."""
    def number(name, low, high=None, integer=False, low_open=False, high_open=False, optional=False):
        value = getattr(cfg, name)
        if value is None and optional:
            return
        optim.check_number("train", name, value, low=low, high=high, integer=integer, low_open=low_open,
                           high_open=high_open)
    number("epochs", 1, integer=True)
    number("batch_size", 1, integer=True)
    number("lr", 0, low_open=True)
    number("momentum", 0, 1, high_open=True, optional=True)
    number("weight_decay", 0, optional=True)
    number("alpha", 0, 1, optional=True)
    number("label_smoothing", 0, 1, optional=True)
    number("clip_grad_norm", 0, low_open=True, optional=True)
    number("workers", 1, integer=True)
    number("time_limit", 0, low_open=True, optional=True)
    number("val_split", 0, 1, high_open=True)
    number("seed", 0, integer=True)
    number("per_class", 1, integer=True, optional=True)
    number("test_per_class", 1, integer=True, optional=True)
    if cfg.tta not in (None, "none", "flip"):
        raise ConfigError(f"train: tta must be none or flip, got {cfg.tta!r}")
    for name in ("dataset", "model", "optimizer", "schedule", "augment", "data_dir", "out", "loss"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"train: {name} must be a string, got {value!r}")
    if not isinstance(cfg.model, str) or not cfg.model.strip():
        raise ConfigError(f"train: model must be a preset name or a spec, got {cfg.model!r}")
    if str(cfg.optimizer).lower() not in ("sgd", "adam", "adamw", "rmsprop"):
        raise ConfigError(f"train: unknown optimizer {cfg.optimizer!r}; choose sgd, adam, adamw or rmsprop")
    if str(cfg.optimizer).lower() != "rmsprop":
        for name, unset in (("alpha", None), ("centered", False)):
            if getattr(cfg, name) not in (unset,):
                raise ConfigError(f"train: {name} is an RMSprop setting; it needs --optimizer rmsprop, not "
                                  f"{cfg.optimizer}")
    loss = loss_name(cfg)
    if cfg.label_smoothing and loss != "cross_entropy":
        raise ConfigError(f"train: label_smoothing applies to the cross_entropy loss, not {loss}")
    if cfg.classes is not None and not isinstance(cfg.classes, (list, tuple)):
        raise ConfigError(f"train: classes must be a list of class indices or names, got {cfg.classes!r}")
    for name in ("grayscale", "textbook", "centered"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"train: {name} must be true or false, got {getattr(cfg, name)!r}")
    if cfg.nesterov is not None and not isinstance(cfg.nesterov, bool):
        raise ConfigError(f"train: nesterov must be true or false, got {cfg.nesterov!r}")
    if cfg.nesterov and (str(cfg.optimizer).lower() != "sgd" or not cfg.momentum):
        raise ConfigError("train: nesterov is SGD's Nesterov momentum: it needs --optimizer sgd and a momentum > 0")
    if cfg.augment is not None and (len(cfg.augment) > 200 or re.search(r"\d{7}", cfg.augment)):
        raise ConfigError(f"train: augment {cfg.augment[:40]!r}...: too long (shiftN, cropN, flip joined by '-')")
    schedule_step(cfg)
    return cfg


LOSS_NAMES = ("cross_entropy", "bce", "multimargin")
#: the loss names a run accepts, and the names they stand for
_LOSS_ALIASES = {"cross_entropy": "cross_entropy", "crossentropy": "cross_entropy", "bce": "bce",
                 "bce_with_logits": "bce", "multimargin": "multimargin", "hinge": "multimargin"}
#: a plateau schedule's patience when ``plateau`` gives no N
PLATEAU_PATIENCE = 2
#: a one-cycle schedule's warm-up, percent of the steps, when ``onecycle`` gives no P (PyTorch's 0.3)
ONECYCLE_PCT = 30


def loss_name(cfg):
    """The run's loss, one of LOSS_NAMES (unset: cross_entropy), checked."""
    name = str(cfg.loss or "cross_entropy").lower()
    if name not in _LOSS_ALIASES:
        raise ConfigError(f"train: unknown loss {cfg.loss!r}; choose {', '.join(LOSS_NAMES)}")
    return _LOSS_ALIASES[name]


def make_loss(cfg):
    """The run's loss object: ``CrossEntropyLoss(label_smoothing)``, ``BCEWithLogitsLoss()`` (a
    two-class model with one output) or ``MultiMarginLoss()``."""
    name = loss_name(cfg)
    if name == "bce":
        return losses.BCEWithLogitsLoss()
    if name == "multimargin":
        return losses.MultiMarginLoss()
    return losses.CrossEntropyLoss(label_smoothing=float(cfg.label_smoothing or 0.0))


def model_outputs(cfg, num_classes):
    """The model's output units: one per class, or ONE for ``bce`` (two classes only: class 1 when
    the logit is > 0), else ConfigError."""
    if loss_name(cfg) != "bce":
        return num_classes
    if num_classes != 2:
        raise ConfigError(f"--loss bce is for two classes (one sigmoid output); the data have {num_classes}: "
                          f"pick two with --classes (e.g. --classes 0,1) or use --loss cross_entropy")
    return 1


def schedule_step(cfg):
    """The N of a ``stepN`` schedule, the patience N of ``plateau[N]`` or the warm-up percent P of
    ``onecycle[P]`` (None for the other schedules), checked."""
    name = (cfg.schedule or "none").lower()
    if name in ("none", "cosine"):
        return None
    m = re.fullmatch(r"(step|plateau|onecycle)(\d{0,6})", name)
    if (m is None or (m.group(1) == "step" and m.group(2) and int(m.group(2)) < 1)
            or (m.group(1) == "onecycle" and m.group(2) and not 1 <= int(m.group(2)) <= 99)):
        raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose none, cosine, stepN (N >= 1: lr x0.1 "
                          f"every N epochs), plateau[N] (lr x0.1 after N epochs without a better validation "
                          f"loss; default {PLATEAU_PATIENCE}) or onecycle[P] (per batch: up to --lr over the "
                          f"first P% of the steps, 1 <= P <= 99, default {ONECYCLE_PCT}, then down to ~0)")
    if m.group(1) == "plateau":
        return int(m.group(2)) if m.group(2) else PLATEAU_PATIENCE
    if m.group(1) == "onecycle":
        return int(m.group(2)) if m.group(2) else ONECYCLE_PCT
    return int(m.group(2) or max(cfg.epochs // 3, 1))


def build_model(name_or_spec, input_shape, num_classes):
    """A preset name (``seed-a-simple``, ``strong``, ...) or a spec string (see scratchcnn.app.spec).
    A spec's last Dense must output ``num_classes`` values. The model's size is checked against
    the memory before its weights are allocated (:mod:`scratchcnn.nn.sizes`)."""
    if not isinstance(name_or_spec, str):
        raise ConfigError(f"a model must be a preset name or a spec string, got {type(name_or_spec).__name__}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"the number of classes must be a positive integer, got {num_classes!r}")
    input_shape = tuple(input_shape)
    check_activations(f"a model for inputs of shape {input_shape}", math.prod(input_shape))
    if name_or_spec in PRESETS:
        if len(input_shape) != 3:
            raise ConfigError(f"preset {name_or_spec!r} needs image inputs (C, H, W), got input shape {input_shape}")
        try:
            model = get_preset(name_or_spec).build(input_shape, num_classes)
        except MemoryError:
            raise ConfigError(f"preset {name_or_spec!r} for inputs of shape {input_shape} does not fit in memory: "
                              f"use smaller images") from None
        check_model_size(model.layers, input_shape, what=f"preset {name_or_spec!r} for inputs {input_shape}")
        return model
    if is_spec(name_or_spec):
        model = build_from_spec(name_or_spec, tuple(input_shape))
        out = model.output_shape(tuple(input_shape))
        if out != (num_classes,):
            if num_classes == 1:
                raise ConfigError(f"model spec {name_or_spec!r} outputs {out}, but a two-class model for --loss "
                                  f"bce has one (sigmoid) output: end it with dense1")
            raise ConfigError(f"model spec {name_or_spec!r} outputs {out}, but the data set has {num_classes} "
                              f"classes: end it with dense{num_classes}")
        return model
    raise ConfigError(f"unknown model {name_or_spec!r}: use a preset ({', '.join(PRESETS)}) or a spec such "
                      f"as conv8x3-relu-maxpool2-flatten-dense10")


def make_optimizer(cfg, params):
    name = cfg.optimizer.lower()
    if name == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum or 0.0, nesterov=bool(cfg.nesterov),
                         weight_decay=cfg.weight_decay or 0.0)
    if name == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0)
    if name == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay or 1e-2)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=cfg.lr, alpha=0.99 if cfg.alpha is None else cfg.alpha,
                             weight_decay=cfg.weight_decay or 0.0, momentum=cfg.momentum or 0.0,
                             centered=cfg.centered)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam, adamw or rmsprop")


def make_scheduler(cfg, optimizer, start_epoch=0, history=None, monitor="val_loss", steps_per_epoch=None):
    """The run's schedule (None for ``none``), at epoch ``start_epoch`` of a resumed run.

    ``onecycle[P]``: OneCycleLR up to ``cfg.lr`` (the optimizer's lr) over ``cfg.epochs *
    steps_per_epoch`` batches, P% of them rising; a resumed run starts at step ``start_epoch *
    steps_per_epoch``.

    ``cosine``: CosineAnnealingLR over ``cfg.epochs``, or, with ``cfg.time_limit``, a cosine over
    the time limit (see :func:`make_time_budget`; no schedule here then).

    ``plateau[N]``: ReduceLROnPlateau(patience N) on ``monitor`` (val_loss, or loss when the run
    has no validation split). Its state (best value, bad epochs, lr) is not a function of the
    epoch: on resume it is rebuilt by replaying ``history`` (the run's History), whose
    ``monitor`` values are exactly what it was stepped with, from the optimizer's first lr."""
    name = (cfg.schedule or "none").lower()
    step = schedule_step(cfg)
    if name == "none":
        return None
    if name.startswith("plateau"):
        sched = optim.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=step, monitor=monitor)
        if start_epoch:
            values = (history.history.get(monitor, []) if history is not None else [])[:start_epoch]
            if len(values) != start_epoch:
                raise ConfigError(f"--resume: the history holds {len(values)} values of {monitor!r} for "
                                  f"{start_epoch} epochs: the plateau schedule cannot be restored")
            optimizer.lr = optimizer.initial_lr
            for v in values:
                sched.step(v)
        return sched
    if name.startswith("onecycle"):
        if not steps_per_epoch:
            raise ConfigError("the onecycle schedule needs the number of batches per epoch")
        sched = optim.OneCycleLR(optimizer, max_lr=optimizer.initial_lr, epochs=cfg.epochs,
                                 steps_per_epoch=steps_per_epoch, pct_start=step / 100)
        if start_epoch:
            sched.load_state_dict({"last_epoch": min(start_epoch * steps_per_epoch, sched.total_steps)})
        return sched
    if name == "cosine":
        if cfg.time_limit:
            return None                            # the TimeBudget's cosine
        sched = optim.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    else:
        sched = optim.StepLR(optimizer, step_size=step, gamma=0.1)
    if start_epoch:
        sched.last_epoch = start_epoch
        optimizer.lr = sched.get_lr(start_epoch)
    return sched


def make_time_budget(cfg, optimizer, start_epoch=0, history=None):
    """The TimeBudget of ``cfg.time_limit`` seconds (None without one): training stops once they
    are spent; with the ``cosine`` schedule the learning rate follows a cosine over the time,
    not the epochs. A resumed run counts the epochs' logged times as spent."""
    if not cfg.time_limit:
        return None
    spent = 0.0
    if start_epoch and history is not None:
        spent = float(sum(history.history.get("time", [])[:start_epoch]))
    cosine = (cfg.schedule or "none").lower() == "cosine"
    return TimeBudget(cfg.time_limit, optimizer if cosine else None, spent=spent)


class GracefulInterrupt(Callback):
    """First Ctrl-C: finish the current epoch, save, stop. Second Ctrl-C: stop at once."""

    def __init__(self):
        self.interrupted = False
        self._previous = None

    def on_train_begin(self, logs=None):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:       # not in the main thread
            self._previous = None

    def _handler(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self.model.stop_training = True
        print("\nCtrl-C: finishing this epoch, then saving the best and last models "
              "(press Ctrl-C again to stop at once)", flush=True)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def default_run_dir(cfg):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model = cfg.model if cfg.model in PRESETS else "custom"
    return os.path.join("runs", f"{data_name(cfg.data) if cfg.data else cfg.dataset}-{model}-{stamp}")


def load_run_data(cfg, verbose=1):
    """The run's data: a known data set by name, or the user's files (``cfg.data``), whose summary
    (classes, sizes, images skipped, files ignored, cache) is printed unless ``verbose < 0``."""
    if not cfg.data:
        return load_dataset(cfg.dataset, data_dir=cfg.data_dir, classes=cfg.classes, per_class=cfg.per_class,
                            test_per_class=cfg.test_per_class, val_split=cfg.val_split, normalize=cfg.normalize,
                            grayscale=cfg.grayscale, seed=cfg.seed)
    data = load_data(cfg.data, cfg.data_format, test_data=cfg.test_data, test_split=cfg.test_split,
                     image_size=cfg.image_size, grayscale=cfg.grayscale, rgb=cfg.rgb, resize=cfg.resize or "stretch",
                     skip_bad=cfg.skip_bad, hdf5_keys=cfg.hdf5_keys, classes=cfg.classes, per_class=cfg.per_class,
                     test_per_class=cfg.test_per_class, val_split=cfg.val_split, normalize=cfg.normalize,
                     seed=cfg.seed, progress=verbose > 0)
    if verbose >= 0:
        print(describe(data), flush=True)
    return data


def train(cfg, resume=None, verbose=1, threads=None):
    """Run one experiment; returns ``(run_dir, metrics dict)``."""
    if resume:
        saved_cfg = read_run_config(resume)
        if cfg.epochs is not None:
            saved_cfg.epochs = cfg.epochs
        saved_cfg.textbook = saved_cfg.textbook or cfg.textbook
        cfg, run_dir = saved_cfg, resume
    else:
        cfg = cfg.resolved()
        run_dir = cfg.out or default_run_dir(cfg)
    check_config(cfg)
    augment = _augmenter(cfg.augment)            # a bad --augment is refused before the data are read
    manual_seed(cfg.seed)
    data = load_run_data(cfg, verbose)
    num_classes = len(data.class_names)
    outputs = model_outputs(cfg, num_classes)      # --loss bce on more than two classes is refused here
    crit = make_loss(cfg)
    os.makedirs(run_dir, exist_ok=True)      # after the data: a bad --data leaves no empty run directory
    input_shape = data.x_train.shape[1:]
    last_path, best_path = os.path.join(run_dir, "last.npz"), os.path.join(run_dir, "model.npz")
    if resume and not os.path.exists(last_path):
        print(f"note: {run_dir} has no last.npz (the run was stopped before its first epoch ended): "
              f"starting it from the beginning", flush=True)
        resume = None
    if resume:
        model = load(last_path)
        optimizer = model.optimizer
        if optimizer is None:
            raise ConfigError(f"--resume: {last_path} holds no optimizer state to continue from; start the run "
                              f"again without --resume")
        start = len(model.history.epoch) if model.history else 0
        if start > cfg.epochs:
            raise ConfigError(f"--resume: {run_dir} has already trained {start} epochs, more than --epochs "
                              f"{cfg.epochs}: ask for at least {start}")
    else:
        model = build_model(cfg.model, input_shape, outputs)
        optimizer = make_optimizer(cfg, model.parameters())
        start = 0
    model.metadata.update({"dataset": data.name, "class_names": list(data.class_names),
                           "preprocessing": data.preprocessing, "run_dir": os.path.abspath(run_dir),
                           "model": cfg.model, "loss": {"name": loss_name(cfg), **crit.config()}})
    if data.source:        # the user's files: where they are and how they were read (evaluate re-reads them)
        model.metadata["data_source"] = {"path": data.source["path"], "format": data.source["format"],
                                         "options": data.source["options"]}
    write_json(os.path.join(run_dir, "config.json"),
               {"config": asdict(cfg), "input_shape": list(input_shape), "num_classes": num_classes,
                "train_size": len(data.x_train), "val_size": len(data.x_val) if data.x_val is not None else 0,
                "test_size": len(data.x_test)})
    if threads:
        set_num_threads(threads)
    _check_augment(cfg.augment, input_shape)
    stopper = GracefulInterrupt()
    # per-layer gradient norms and update ratios each epoch, in the history (before the checkpoints save it)
    callbacks = [stopper, GradientDiagnostics(optimizer), ModelCheckpoint(last_path)]
    has_val = data.x_val is not None and len(data.x_val) > 0
    # model.npz: the best epoch on validation data, or simply the last one when there is none
    best_ckpt = ModelCheckpoint(best_path, monitor="val_accuracy", save_best_only=has_val)
    if resume and has_val and model.history is not None and model.history.history.get("val_accuracy"):
        best_ckpt.best = max(model.history.history["val_accuracy"])
    callbacks.append(best_ckpt)
    monitor = "val_loss" if has_val else "loss"
    sched = make_scheduler(cfg, optimizer, start, history=model.history, monitor=monitor,
                           steps_per_epoch=math.ceil(len(data.x_train) / cfg.batch_size))
    if sched is not None:
        callbacks.append(sched)
    budget = make_time_budget(cfg, optimizer, start, history=model.history)
    if budget is not None:
        callbacks.append(budget)
    t0 = time.perf_counter()
    with textbook(True) if cfg.textbook else contextlib.nullcontext():
        code_path = "textbook" if textbook_enabled() else "fast kernels"
        model.fit(data.x_train, data.y_train, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  optimizer=optimizer, loss=crit, validation_data=(data.x_val, data.y_val) if has_val else None,
                  callbacks=callbacks, verbose=verbose, augment=augment, initial_epoch=start,
                  clip_grad_norm=cfg.clip_grad_norm, workers=cfg.workers)
    train_seconds = time.perf_counter() - t0
    best = load(best_path) if os.path.exists(best_path) else model
    metrics = write_run_outputs(run_dir, best, data, cfg, train_seconds=train_seconds,
                                interrupted=stopper.interrupted, history=model.history, code_path=code_path,
                                time_limited=budget is not None and budget.stopped)
    return run_dir, metrics


def _check_augment(name, input_shape):
    """A shift or crop padding of more pixels than the images have makes no sense."""
    side = min(input_shape[1:]) if len(input_shape) == 3 else None
    for kind, n in re.findall(r"(shift|crop)(\d+)", str(name or "").lower()):
        if side is not None and int(n) > side:
            raise ConfigError(f"--augment {name}: {kind}{n} moves the images by more than their {side} pixels")


def _augmenter(name):
    if not name or name == "none":
        return None
    return augment_from_name(name)
