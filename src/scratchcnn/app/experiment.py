"""One training run, as the command line does it: data, model, optimizer, schedule,
augmentation, checkpoints (best and last), Ctrl-C handling, and the run directory."""
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field

from .. import optim
from ..callbacks import Callback, ModelCheckpoint
from ..datasets import augment_from_name, load_dataset
from ..errors import ConfigError
from ..fileio import write_json
from ..kernels import textbook, textbook_enabled
from ..model import load
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
    optimizer: str = None          # sgd | adam | adamw
    momentum: float = None
    weight_decay: float = 0.0
    schedule: str = None           # none | step | cosine
    augment: str = None            # e.g. "shift2", "crop4-flip"; "none" disables
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

    def resolved(self):
        """Fill the unset values from the preset's training settings, then general defaults."""
        cfg = TrainConfig(**asdict(self))
        preset = PRESETS.get(cfg.model)
        train = dict(preset.train) if preset else {}
        data = dict(preset.data) if preset else {}
        defaults = {"epochs": 10, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9,
                    "schedule": "none", "augment": "none"}
        for key, default in defaults.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, train.get(key, default))
        if cfg.optimizer != "sgd" and "momentum" not in train and self.momentum is None:
            cfg.momentum = None       # momentum is an SGD setting
        for key in ("classes", "per_class", "test_per_class"):
            if getattr(cfg, key) is None and key in data:
                setattr(cfg, key, data[key])
        return cfg


def build_model(name_or_spec, input_shape, num_classes):
    """A preset name (``seed-a-simple``, ``strong``, ...) or a spec string (see scratchcnn.app.spec).
    A spec's last Dense must output ``num_classes`` values."""
    if name_or_spec in PRESETS:
        return get_preset(name_or_spec).build(tuple(input_shape), num_classes)
    if is_spec(name_or_spec):
        model = build_from_spec(name_or_spec, tuple(input_shape))
        out = model.output_shape(tuple(input_shape))
        if out != (num_classes,):
            raise ConfigError(f"model spec {name_or_spec!r} outputs {out}, but the data set has {num_classes} "
                              f"classes: end it with dense{num_classes}")
        return model
    raise ConfigError(f"unknown model {name_or_spec!r}: use a preset ({', '.join(PRESETS)}) or a spec such "
                      f"as conv8x3-relu-maxpool2-flatten-dense10")


def make_optimizer(cfg, params):
    name = cfg.optimizer.lower()
    if name == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum or 0.0, weight_decay=cfg.weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay or 1e-2)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


def make_scheduler(cfg, optimizer, start_epoch=0):
    name = (cfg.schedule or "none").lower()
    if name == "none":
        return None
    if name == "cosine":
        sched = optim.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    elif name.startswith("step"):
        step = int(name[4:] or max(cfg.epochs // 3, 1))
        sched = optim.StepLR(optimizer, step_size=step, gamma=0.1)
    else:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose none, step[N] or cosine")
    if start_epoch:
        sched.last_epoch = start_epoch
        optimizer.lr = sched.get_lr(start_epoch)
    return sched


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
    return os.path.join("runs", f"{cfg.dataset}-{model}-{stamp}")


def train(cfg, resume=None, verbose=1, threads=None):
    """Run one experiment; returns ``(run_dir, metrics dict)``."""
    if resume:
        with open(os.path.join(resume, "config.json")) as f:
            saved = json.load(f)
        saved_cfg = TrainConfig(**saved["config"])
        if cfg.epochs is not None:
            saved_cfg.epochs = cfg.epochs
        saved_cfg.textbook = saved_cfg.textbook or cfg.textbook
        cfg, run_dir = saved_cfg, resume
    else:
        cfg = cfg.resolved()
        run_dir = cfg.out or default_run_dir(cfg)
    os.makedirs(run_dir, exist_ok=True)
    manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, classes=cfg.classes, per_class=cfg.per_class,
                        test_per_class=cfg.test_per_class, val_split=cfg.val_split, normalize=cfg.normalize,
                        grayscale=cfg.grayscale, seed=cfg.seed)
    input_shape = data.x_train.shape[1:]
    num_classes = len(data.class_names)
    last_path, best_path = os.path.join(run_dir, "last.npz"), os.path.join(run_dir, "model.npz")
    if resume:
        model = load(last_path)
        optimizer = model.optimizer
        start = len(model.history.epoch) if model.history else 0
    else:
        model = build_model(cfg.model, input_shape, num_classes)
        optimizer = make_optimizer(cfg, model.parameters())
        start = 0
    model.metadata.update({"dataset": data.name, "class_names": list(data.class_names),
                           "preprocessing": data.preprocessing, "run_dir": os.path.abspath(run_dir),
                           "model": cfg.model})
    write_json(os.path.join(run_dir, "config.json"),
               {"config": asdict(cfg), "input_shape": list(input_shape), "num_classes": num_classes,
                "train_size": len(data.x_train), "val_size": len(data.x_val) if data.x_val is not None else 0,
                "test_size": len(data.x_test)})
    if threads:
        set_num_threads(threads)
    augment = _augmenter(cfg.augment)
    stopper = GracefulInterrupt()
    callbacks = [stopper, ModelCheckpoint(last_path)]
    has_val = data.x_val is not None and len(data.x_val) > 0
    # model.npz: the best epoch on validation data, or simply the last one when there is none
    best_ckpt = ModelCheckpoint(best_path, monitor="val_accuracy", save_best_only=has_val)
    if resume and has_val and model.history is not None and model.history.history.get("val_accuracy"):
        best_ckpt.best = max(model.history.history["val_accuracy"])
    callbacks.append(best_ckpt)
    sched = make_scheduler(cfg, optimizer, start)
    if sched is not None:
        callbacks.append(sched)
    t0 = time.perf_counter()
    with textbook(True) if cfg.textbook else contextlib.nullcontext():
        code_path = "textbook" if textbook_enabled() else "fast kernels"
        model.fit(data.x_train, data.y_train, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  optimizer=optimizer, validation_data=(data.x_val, data.y_val) if has_val else None,
                  callbacks=callbacks, verbose=verbose, augment=augment, initial_epoch=start)
    train_seconds = time.perf_counter() - t0
    best = load(best_path) if os.path.exists(best_path) else model
    metrics = write_run_outputs(run_dir, best, data, cfg, train_seconds=train_seconds,
                                interrupted=stopper.interrupted, history=model.history, code_path=code_path)
    return run_dir, metrics


def _augmenter(name):
    if not name or name == "none":
        return None
    return augment_from_name(name)
