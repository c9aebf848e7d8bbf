"""``scratchcnn doctor``: the checks of :func:`scratchcnn.doctor` on the data and model that
``scratchcnn train`` with the same options would use.

    scratchcnn doctor --dataset fashion-mnist --model seed-c                # the table
    scratchcnn doctor --model small --json                                  # the findings as JSON
    scratchcnn doctor --model seed-c --dataset fashion-mnist --input-scale 1/255 --out doctor/

The data, model and optimizer options are ``train``'s (the doctor looks at the examples of
train's training split, the preset's model, optimizer, learning rate and batch size). Its own:
``--json``, ``--out DIR`` (doctor.json and the range test's lr_range.png), ``--steps``,
``--examples``, ``--checks`` and ``--input-scale F`` (multiply the inputs by F after the
normalisation: ``1/255`` divides pixels that are already in 0..1 by 255 a second time, as
seed C did). Exit status 0 when no check fails, 1 when one does, 2 on a usage error.
"""
import argparse
import json
import math
import os

from ..errors import ConfigError


def _scale(text):
    """An argparse type: a positive finite number, or a fraction such as ``1/255``."""
    try:
        if "/" in text:
            num, _, den = text.partition("/")
            value = float(num) / float(den)
        else:
            value = float(text)
    except (TypeError, ValueError, ZeroDivisionError):
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number or a fraction such as 1/255, got {text[:40]!r}")
    return value


def add_doctor_arguments(p, int_from):
    """The doctor's own options (its data and model options are train's)."""
    p.add_argument("--json", action="store_true",
                   help="print the findings as a JSON list of {id, status, message, evidence, fix}")
    p.add_argument("--out", metavar="DIR", help="also write DIR/doctor.json (findings, range test) and "
                                                "DIR/lr_range.png (the learning-rate range test)")
    p.add_argument("--steps", type=int_from(10, 100000), default=200,
                   help="steps of the overfit test (at most) and of the learning-rate range test (default 200)")
    p.add_argument("--examples", type=int_from(2, 10_000_000), default=512,
                   help="training examples the checks that train use (default 512; the input and label checks "
                        "read them all)")
    p.add_argument("--checks", help="only these checks, comma-separated (input-scale, labels, initial-loss, "
                                    "activations, gradient-flow, overfit-batch, gradcheck, learning-rate)")
    p.add_argument("--input-scale", type=_scale, metavar="F",
                   help="multiply the inputs by F after --normalize, e.g. 1/255 to reproduce pixels divided by "
                        "255 twice (seed C's bug)")


def doctor_command(args, cfg):
    """Run the doctor for ``train``'s configuration ``cfg`` (a TrainConfig) and the doctor's
    options in ``args``; print the table (or JSON); return the exit status."""
    from ..doctor import doctor
    from ..fileio import write_json
    from ..random import manual_seed
    from .experiment import build_model, check_config, load_run_data, make_optimizer
    cfg = check_config(cfg.resolved())
    checks = None
    if args.checks:
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        if not checks:
            raise ConfigError(f"--checks must name checks, comma-separated, got {args.checks!r}")
    manual_seed(cfg.seed)
    data = load_run_data(cfg, verbose=-1 if args.json else 0)
    x = data.x_train
    if args.input_scale is not None:
        x = x * x.dtype.type(args.input_scale)
    model = build_model(cfg.model, x.shape[1:], len(data.class_names))
    optimizer = make_optimizer(cfg, model.parameters())
    if not args.json:
        scale = f", inputs x {args.input_scale:.4g}" if args.input_scale is not None else ""
        print(f"doctor: model {cfg.model} on {data.name} ({len(x)} training examples of "
              f"{' x '.join(map(str, x.shape[1:]))}, {len(data.class_names)} classes{scale}); {optimizer!r}, "
              f"batch {cfg.batch_size}", flush=True)
    report = doctor(model, x, data.y_train, optimizer=optimizer, batch_size=cfg.batch_size, seed=cfg.seed,
                    examples=args.examples, steps=args.steps, checks=checks)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_json(os.path.join(args.out, "doctor.json"),
                   {"findings": report.to_list(), "lr_range": report.lr_range, "seconds": report.seconds,
                    "model": cfg.model, "dataset": data.name, "input_scale": args.input_scale})
        if report.lr_range:
            from .plots import plot_lr_range
            plot_lr_range(report.lr_range, os.path.join(args.out, "lr_range.png"))
    if args.json:
        print(json.dumps(report.to_list(), indent=2))
    else:
        print(report)
        if args.out:
            print(f"written: {os.path.join(os.path.abspath(args.out), 'doctor.json')}"
                  + (", lr_range.png" if report.lr_range else ""))
    return 1 if report.status == "fail" else 0


__all__ = ["add_doctor_arguments", "doctor_command"]
