"""What a finished run leaves in its directory: test metrics, history, pictures and report.md."""
import csv
import io
import os

import numpy as np

from ..fileio import atomic_write, write_json
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


def evaluate_on_test(model, data, batch_size=256):
    """Predictions, probabilities and the metrics dict of ``model`` on the test split."""
    probs = model.predict_proba(data.x_test, batch_size=batch_size)
    pred = probs.argmax(axis=1)
    metrics = classification_metrics(data.y_test, pred, class_names=list(data.class_names))
    metrics["test_loss"] = model.evaluate(data.x_test, data.y_test, batch_size=batch_size)["loss"]
    return pred, probs, metrics


def write_run_outputs(run_dir, model, data, cfg, train_seconds=None, interrupted=False, history=None,
                      code_path=None):
    """Write metrics.json, history.csv / .json, the pictures and report.md; return the metrics.

    ``model`` is the model evaluated (the best checkpoint); ``history`` the whole run's History
    (default: the model's own); ``code_path``: "textbook" or "fast kernels", the code that trained it."""
    history = history if history is not None else model.history
    pred, probs, metrics = evaluate_on_test(model, data)
    metrics["train_seconds"] = train_seconds
    metrics["interrupted"] = interrupted
    metrics["code_path"] = code_path
    metrics["epochs_run"] = len(history.epoch) if history else 0
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
    path = metrics.get("code_path")
    if path:
        lines += [f"Trained on the **{path}** path: " + (
            "every layer ran its own plain forward / backward, the code a reader reads (no fast kernels)."
            if path == "textbook" else
            "the layers chose their fast kernels (scratchcnn.kernels) where one applies; "
            "`scratchcnn train --textbook` runs the plain layer code instead."), ""]
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
              + (f", training time {secs:.1f} s" if secs else ""), "",
              "```", report_text.rstrip(), "```", ""]
    lines += ["## Pictures", ""]
    for key, (title, fname) in pictures.items():
        lines += [f"### {title}", "", f"![{title}]({fname})", ""]
    text = "\n".join(lines)
    atomic_write(os.path.join(run_dir, "report.md"), lambda f: f.write(text), mode="w")
