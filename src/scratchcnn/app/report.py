"""What a finished run leaves in its directory: test metrics, history, pictures and report.md."""
import csv
import io
import os

import numpy as np

from ..errors import ScratchCNNError
from ..fileio import atomic_write, write_json
from ..losses import LOSSES
from ..metrics import classification_metrics, classification_report
from . import plots


def _write_history_csv(path, history):
    keys = list(history.history)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch"] + keys)
    for i, epoch in enumerate(history.epoch):
        w.writerow([epoch + 1] + [history.history[k][i] if i < len(history.history[k]) else "" for k in keys])
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")


def model_loss(model):
    """The loss the model was trained with, from ``metadata["loss"]`` (``{"name", **config}``, as
    :func:`scratchcnn.app.experiment.train` records it), or None (evaluate's default: cross-entropy,
    BCEWithLogitsLoss for a one-output model) when the file does not say or says something unknown."""
    spec = getattr(model, "metadata", {}).get("loss")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or spec["name"] not in LOSSES:
        return None
    config = {k: v for k, v in spec.items() if k != "name"}
    try:
        return LOSSES[spec["name"]](**config)
    except (ScratchCNNError, TypeError):
        return None


def evaluate_on_test(model, data, batch_size=256, loss=None):
    """Predictions, probabilities and the metrics dict of ``model`` on the test split; the test
    loss with ``loss`` (default: the model's own, :func:`model_loss`). The probabilities are
    (N, K), (N, 2) ``[1 - p, p]`` for a two-class model with one sigmoid output."""
    probs = model.predict_proba(data.x_test, batch_size=batch_size)
    pred = probs.argmax(axis=1)
    metrics = classification_metrics(data.y_test, pred, class_names=list(data.class_names))
    loss = loss if loss is not None else model_loss(model)
    metrics["test_loss"] = model.evaluate(data.x_test, data.y_test, batch_size=batch_size, loss=loss)["loss"]
    metrics["loss"] = getattr(loss, "name", None)
    return pred, probs, metrics


def flip_tta_accuracy(model, x, y, probs=None, batch_size=256):
    """Test-time augmentation by mirroring: the accuracy of the mean of the class probabilities
    of each image and of its left-right mirror image (``probs``: those of ``x``, if known). The
    plain accuracy stays the run's figure; this one is reported beside it."""
    probs = model.predict_proba(x, batch_size=batch_size) if probs is None else probs
    mirrored = model.predict_proba(np.ascontiguousarray(x[..., ::-1]), batch_size=batch_size)
    return float(((probs + mirrored).argmax(axis=1) == np.asarray(y)).mean())


def write_run_outputs(run_dir, model, data, cfg, train_seconds=None, interrupted=False, history=None,
                      code_path=None, time_limited=False):
    """Write metrics.json, history.csv / .json, the pictures and report.md; return the metrics.

    ``model`` is the model evaluated (the best checkpoint); ``history`` the whole run's History
    (default: the model's own); ``code_path``: "textbook" or "fast kernels", the code that trained it;
    ``time_limited``: whether ``--time-limit`` ended the training (in its last, partial epoch)."""
    history = history if history is not None else model.history
    pred, probs, metrics = evaluate_on_test(model, data)
    metrics["train_seconds"] = train_seconds
    metrics["interrupted"] = interrupted
    metrics["stopped_by_time_limit"] = bool(time_limited)
    metrics["code_path"] = code_path
    metrics["epochs_run"] = len(history.epoch) if history else 0
    if getattr(cfg, "tta", None) == "flip":
        metrics["tta"] = "flip"
        metrics["tta_accuracy"] = flip_tta_accuracy(model, data.x_test, data.y_test, probs)
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    if history is not None:
        write_json(os.path.join(run_dir, "history.json"), history.to_dict())
        _write_history_csv(os.path.join(run_dir, "history.csv"), history)
    pictures = {}
    names = list(data.class_names)
    jobs = [
        ("history", "Loss and accuracy per epoch",
         lambda p: plots.plot_history(history, p) if history else None),
        ("diagnostics", "Gradient norm and update / weight ratio per layer (last batch of each epoch)",
         lambda p: plots.plot_diagnostics(history, p) if history else None),
        ("confusion", "Confusion matrix (test)",
         lambda p: plots.plot_confusion_matrix(np.array(metrics["confusion_matrix"]), names, p)),
        ("filters", "First-layer filters", lambda p: plots.plot_filters(model, p)),
        ("feature_maps", "Feature maps of every conv layer for one test image",
         lambda p: plots.plot_feature_maps(model, data.x_test[0], p)),
        ("misclassified", "Worst misclassified test images (true / predicted)",
         lambda p: plots.plot_misclassified(data.x_test, data.y_test, pred, names, p, probs=probs)),
    ]
    for key, title, fn in jobs:
        path = os.path.join(run_dir, f"{key}.png")
        if fn(path) is not None or os.path.exists(path):
            pictures[key] = (title, f"{key}.png")
    report = classification_report(data.y_test, pred, class_names=names)
    _write_report(run_dir, model, data, cfg, metrics, report, pictures)
    return metrics


def _write_report(run_dir, model, data, cfg, metrics, report_text, pictures):
    from dataclasses import asdict
    lines = [f"# scratchcnn run: {cfg.model} on {data.name}", ""]
    if metrics.get("interrupted"):
        lines += ["**Interrupted with Ctrl-C**: the models are from the last finished epoch.", ""]
    if metrics.get("stopped_by_time_limit"):
        lines += [f"**Stopped by the time limit** ({cfg.time_limit:g} s) in epoch {metrics['epochs_run']}, "
                  f"which ran only until then (its logged loss and accuracy cover those batches).", ""]
    path = metrics.get("code_path")
    if path:
        lines += [f"Trained on the **{path}** path: " + (
            "every layer ran its own plain forward / backward, the code a reader reads (no fast kernels)."
            if path == "textbook" else
            "the layers chose their fast kernels (scratchcnn.kernels) where one applies; "
            "`scratchcnn train --textbook` runs the plain layer code instead."), ""]
    loss = getattr(model, "metadata", {}).get("loss")
    if isinstance(loss, dict) and loss.get("name"):
        what = {"cross_entropy": "softmax cross-entropy over the classes"
                                 + (f", label smoothing {loss.get('label_smoothing')}" if loss.get("label_smoothing")
                                    else ""),
                "bce": "binary cross-entropy on ONE sigmoid output (BCEWithLogitsLoss): class "
                       f"{data.class_names[1] if len(data.class_names) == 2 else 1} when the logit is > 0",
                "multimargin": "the multi-class hinge (MultiMarginLoss)"}.get(loss["name"], loss["name"])
        lines += [f"Loss: **{loss['name']}**, {what}."
                  + (f" Gradients clipped to a total norm of {cfg.clip_grad_norm}."
                     if getattr(cfg, "clip_grad_norm", None) else ""), ""]
    lines += ["## Configuration", "", "| setting | value |", "|---|---|"]
    for k, v in asdict(cfg).items():
        if v not in (None, {}, []):
            lines.append(f"| {k} | {v} |")
    lines += [f"| train / val / test examples | {len(data.x_train)} / "
              f"{0 if data.x_val is None else len(data.x_val)} / {len(data.x_test)} |", ""]
    lines += ["## Model", "", "```", model.summary(print_fn=None), "```", ""]
    secs = metrics.get("train_seconds")
    lines += ["## Test metrics", "",
              f"accuracy **{metrics['accuracy']:.4f}**, macro F1 {metrics['macro']['f1']:.4f}, "
              f"weighted F1 {metrics['weighted']['f1']:.4f}, test loss {metrics['test_loss']:.4f}"
              + (f", training time {secs:.1f} s" if secs else "")
              + (f"; with flip test-time augmentation (each image averaged with its mirror image) accuracy "
                 f"{metrics['tta_accuracy']:.4f}" if "tta_accuracy" in metrics else ""), "",
              "```", report_text.rstrip(), "```", ""]
    lines += ["## Pictures", ""]
    for key, (title, fname) in pictures.items():
        lines += [f"### {title}", "", f"![{title}]({fname})", ""]
    text = "\n".join(lines)
    atomic_write(os.path.join(run_dir, "report.md"), lambda f: f.write(text), mode="w")
