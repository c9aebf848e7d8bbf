"""Pictures of training and of what a model learned, saved as PNG files.

Every function draws on its own :class:`matplotlib.figure.Figure` rendered by the Agg
(headless, raster) backend -- pyplot is never imported, so no window opens, no global
figure list grows, and the functions are safe to call from a server thread. The PNG goes
to a temporary file renamed over ``path`` (:func:`scratchcnn.serialization.atomic_write`),
and the function returns ``path``. A function that has nothing to draw (no Conv2D layer,
no misclassified image) writes nothing and returns None.

Images are (N, C, H, W) arrays as the model sees them; each is rescaled to 0..1 on its
own for display (``(x - min) / (max - min)``), shown grey for C = 1 and in colour for
C = 3 (other channel counts: the channel mean, in grey).
"""
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import ConfigError, LabelError, ShapeError
from .introspect import activations, first_conv_filters
from ..nn import Conv2D, Residual
from ..fileio import atomic_write

DPI = 100


# ---- helpers -------------------------------------------------------------
def _new_figure(width, height):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write ``fig`` as PNG to ``path`` atomically; return ``path``."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI), mode="wb")
    fig.clear()
    return path


def _rescale(a, axes=None):
    """(a - min) / (max - min) over ``axes`` (all by default), into 0..1; a constant -> 0."""
    a = np.asarray(a, dtype=np.float64)
    lo = a.min(axis=axes, keepdims=True)
    span = a.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1.0), 0.0)


def _display_image(img):
    """img: (C, H, W) or (H, W) -> ``(pixels, cmap)`` for ``imshow``: (H, W) grey for C = 1,
    (H, W, 3) RGB for C = 3, the channel mean for other C; rescaled to 0..1."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return _rescale(img), "gray"
    if img.ndim != 3:
        raise ShapeError(f"an image must be (C, H, W) or (H, W), got shape {img.shape}")
    if img.shape[0] == 3:
        return _rescale(np.moveaxis(img, 0, -1)), None
    return _rescale(img.mean(axis=0)), "gray"


def _grid(n, max_columns=None):
    """(rows, columns) of a near-square grid holding ``n`` panels."""
    cols = max(1, math.ceil(math.sqrt(n)))
    if max_columns:
        cols = min(cols, max_columns)
    return math.ceil(n / cols), cols


def _show(ax, pixels, cmap, title=None, fontsize=8):
    ax.imshow(pixels, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)


# ---- training curves -----------------------------------------------------
def _history_dict(history):
    """A History, ``History.to_dict()`` or a plain ``{"loss": [...], ...}`` dict ->
    ``(epochs, metrics)`` with 1-based epoch numbers."""
    if hasattr(history, "history") and not isinstance(history, dict):
        metrics, epochs = history.history, getattr(history, "epoch", None)
    elif isinstance(history, dict) and isinstance(history.get("history"), dict):
        metrics, epochs = history["history"], history.get("epoch")
    elif isinstance(history, dict):
        metrics, epochs = history, None
    else:
        raise ConfigError(f"plot_history: expected a History or its dict, got {type(history).__name__}")
    n = max((len(v) for v in metrics.values()), default=0)
    if epochs and len(epochs) == n:
        epochs = [int(e) + 1 for e in epochs]
    else:
        epochs = list(range(1, n + 1))
    return epochs, metrics


def plot_history(history, path):
    """Loss (left) and accuracy (right) per epoch, training and validation curves.

    history: a :class:`scratchcnn.History` (``model.history``), its ``to_dict()``, or its
    ``.history`` dict ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``.
    """
    epochs, metrics = _history_dict(history)
    fig = _new_figure(10, 4)
    axes = fig.subplots(1, 2)
    marker = "o" if len(epochs) <= 30 else None
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        drawn = False
        for prefix, name in (("", "train"), ("val_", "validation")):
            values = metrics.get(prefix + key)
            if values:
                values = np.asarray(values, dtype=np.float64)
                ax.plot(epochs[:len(values)], values, marker=marker, markersize=3, label=name)
                drawn = True
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


# ---- confusion matrix ----------------------------------------------------
def plot_confusion_matrix(cm, class_names, path, normalize=False):
    """cm: (K, K) counts, rows = true class, columns = predicted class (see
    :func:`scratchcnn.metrics.confusion_matrix`). normalize: divide each row by its total,
    so a cell shows the fraction of that true class predicted as each class (the diagonal
    is the recall); an empty row stays 0. Cells are annotated when K <= 20.
    class_names: K names, or None for the indices."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ShapeError(f"plot_confusion_matrix: cm must be a square (K, K) array, got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise LabelError(f"plot_confusion_matrix: {len(names)} class names for a {k} x {k} matrix")
    values = cm.astype(np.float64)
    if normalize:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    size = min(4 + 0.5 * k, 20)
    fig = _new_figure(size + 1.5, size)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if k <= 20:
        threshold = values.max() / 2 if values.size else 0
        for (i, j), v in np.ndenumerate(values):   # K*K <= 400 labels, not a hot path
            text = f"{v:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if v > threshold else "black")
    fig.tight_layout()
    return _save(fig, path)


# ---- what the network learned ------------------------------------------
def plot_filters(model, path, max_filters=64):
    """The first Conv2D layer's filters, weight (O, C, kh, kw), as a grid of small images.

    Each filter is rescaled to 0..1 on its own (over all its channels, so an RGB filter
    keeps its colour balance): shown in colour when C == 3, grey when C == 1, and as the
    channel mean otherwise. At most ``max_filters`` filters. Returns None (and writes
    nothing) for a model without a Conv2D layer.
    """
    w = first_conv_filters(model)
    if w is None:
        return None
    w = w[:max_filters]
    o, c = w.shape[:2]
    rows, cols = _grid(o)
    fig = _new_figure(1.1 * cols + 0.4, 1.1 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[o:]:
        ax.axis("off")
    for i in range(o):   # one panel per filter (at most max_filters)
        _show(axes[i], *_display_image(w[i]))
    kind = "RGB" if c == 3 else ("grey" if c == 1 else f"mean of {c} channels")
    fig.suptitle(f"first Conv2D filters: {w.shape[0]} x {c} x {w.shape[2]} x {w.shape[3]} ({kind})",
                 fontsize=10)
    return _save(fig, path)


def plot_feature_maps(model, x, path, max_maps=16, layers=None):
    """Feature maps for one input: the input on the first row, then one row per Conv2D layer or
    Residual block showing its first ``max_maps`` output channels, each rescaled to 0..1 on its own.

    x: (C, H, W) one example (or (1, C, H, W)). layers: as in
    :func:`scratchcnn.app.introspect.activations`; None means every Conv2D layer and block. Returns None
    (and writes nothing) when there is no layer to show.
    """
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ShapeError(f"plot_feature_maps: x must be one example (C, H, W), got shape {x.shape}")
    if layers is None:
        layers = [i for i, layer in enumerate(model.layers) if isinstance(layer, (Conv2D, Residual))]
        if not layers:
            return None
    acts = [(i, name, a[0]) for i, name, a in activations(model, x[None], layers=layers) if a.ndim == 4]
    if not acts:
        return None
    cols = max(min(a.shape[0], max_maps) for _, _, a in acts)
    rows = len(acts) + 1
    fig = _new_figure(1.0 * cols + 1.0, 1.15 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    _show(axes[0, 0], *_display_image(x), title="input")
    for r, (index, name, a) in enumerate(acts, start=1):
        shown = min(a.shape[0], max_maps)
        maps = _rescale(a[:shown], axes=(1, 2))     # each map on its own scale
        for j in range(shown):   # one panel per channel (at most max_maps)
            axes[r, j].axis("on")
            _show(axes[r, j], maps[j], "viridis")
        axes[r, 0].set_ylabel(f"{index}: {name}\n{a.shape[0]}x{a.shape[1]}x{a.shape[2]}", fontsize=7)
    fig.suptitle(f"feature maps (first {max_maps} channels of each layer at most)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def worst_misclassified(y_true, y_pred, probs=None, max_images=None):
    """Indices (int64) of the misclassified examples (``y_true != y_pred``), worst first.

    y_true, y_pred: (N,) labels; probs: optional (N, K) probabilities -- the examples are
    then sorted by the probability given to the wrong prediction, most confident first
    (ties keep the data set's order); otherwise they stay in the data set's order.
    At most ``max_images`` indices (all when None).
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    wrong = np.flatnonzero(y_true != y_pred)
    if probs is not None and wrong.size:
        confidence = np.asarray(probs)[wrong, y_pred[wrong]]
        wrong = wrong[np.argsort(-confidence, kind="stable")]
    return wrong[:max_images]


def plot_misclassified(x, y_true, y_pred, class_names, path, probs=None, max_images=25):
    """A grid of up to ``max_images`` misclassified images titled ``"true / pred"``.

    x: (N, C, H, W) (or (N, H, W) grey) images; y_true, y_pred: (N,) labels;
    class_names: names indexed by label, or None for the indices; probs: optional (N, K)
    predicted probabilities -- then the most confident mistakes (highest probability given
    to the wrong class) come first and the title shows that probability; otherwise the
    mistakes keep the data set's order. Returns None (and writes nothing) when no image is
    misclassified.
    """
    x = np.asarray(x)
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if x.ndim not in (3, 4) or not len(x) == len(y_true) == len(y_pred):
        raise ShapeError(f"plot_misclassified: x must be (N, C, H, W) with N labels in y_true and "
                         f"y_pred, got x {x.shape}, y_true {y_true.shape}, y_pred {y_pred.shape}")
    if probs is not None:
        probs = np.asarray(probs)
        if probs.ndim != 2 or len(probs) != len(x):
            raise ShapeError(f"plot_misclassified: probs must be (N, K) with N = {len(x)}, got {probs.shape}")
    wrong = worst_misclassified(y_true, y_pred, probs, max_images)
    if wrong.size == 0:
        return None
    confidence = None if probs is None else probs[wrong, y_pred[wrong]]

    def name(label):
        return str(class_names[label]) if class_names is not None else str(label)

    rows, cols = _grid(len(wrong))
    fig = _new_figure(1.7 * cols + 0.3, 1.9 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(wrong):]:
        ax.axis("off")
    for k, i in enumerate(wrong):   # one panel per shown image (at most max_images)
        title = f"{name(y_true[i])} / {name(y_pred[i])}"
        if confidence is not None:
            title += f"\n({confidence[k]:.2f})"
        _show(axes[k], *_display_image(x[i]), title=title, fontsize=7)
    fig.suptitle(f"misclassified: true / predicted ({np.count_nonzero(y_true != y_pred)} of {len(x)})",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# ---- diagnostics: gradient norms, update ratios, the learning-rate range test ------
def _positive(values):
    """Values as float64 with NaN where a log axis cannot show them (None, NaN, inf, <= 0)."""
    v = np.array([np.nan if a is None else a for a in values], dtype=np.float64)
    v[~np.isfinite(v) | (v <= 0)] = np.nan
    return v


def plot_diagnostics(history, path):
    """Per-layer gradient norm (left) and update-to-weight ratio (right) per epoch, on log axes,
    as :class:`scratchcnn.diagnostics.GradientDiagnostics` records them (``grad_norm/<layer>``,
    ``update_ratio/<layer>`` in the history); the band 1e-4..1e-2 around the healthy ratio 1e-3 is
    shaded. history: a History, its ``to_dict()`` or its ``.history`` dict. Returns None (and
    writes nothing) when no diagnostics were recorded."""
    from ..diagnostics import diagnostics_of
    diag = diagnostics_of(history)
    if not diag["grad_norm"] and not diag["update_ratio"]:
        return None
    fig = _new_figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "grad_norm", "gradient norm of the last batch"),
                           (axes[1], "update_ratio", "update / weight ratio of the last step")):
        drawn = False
        for layer, values in diag[key].items():
            v = _positive(values)
            if np.isfinite(v).any():
                ax.plot(np.arange(1, len(v) + 1), v, marker="o" if len(v) <= 30 else None, markersize=3, label=layer)
                drawn = True
        if key == "update_ratio":
            ax.axhspan(1e-4, 1e-2, color="tab:green", alpha=0.08)
            ax.axhline(1e-3, color="tab:green", linestyle="--", linewidth=1, label="1e-3 (healthy)")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3, which="both")
        if drawn:
            ax.legend(fontsize=7)
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_range(lr_range, path):
    """The learning-rate range test of ``scratchcnn doctor``: the loss (raw and smoothed) against
    the learning rate on a log axis, with the chosen rate, the suggested one and where the loss
    blows up marked. lr_range: :attr:`scratchcnn.doctor.DoctorReport.lr_range`, a dict with
    ``lrs``, ``losses``, ``smoothed`` and optionally ``chosen``, ``suggested``, ``blow_up``."""
    if not isinstance(lr_range, dict) or not lr_range.get("lrs"):
        raise ConfigError("plot_lr_range: expected the doctor's lr_range dict with 'lrs' and 'losses'")
    lrs = np.asarray(lr_range["lrs"], dtype=np.float64)
    raw = np.array([np.nan if a is None else a for a in lr_range.get("losses", [])], dtype=np.float64)
    smooth = np.array([np.nan if a is None else a for a in lr_range.get("smoothed", [])], dtype=np.float64)
    fig = _new_figure(7, 4.2)
    ax = fig.subplots()
    if len(raw):
        ax.plot(lrs[:len(raw)], raw, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    if len(smooth):
        ax.plot(lrs[:len(smooth)], smooth, color="tab:blue", linewidth=2, label="smoothed loss")
    finite = smooth[np.isfinite(smooth)] if len(smooth) else raw[np.isfinite(raw)]
    if finite.size:
        top = min(float(np.nanmax(finite)), 3 * float(finite[0]) if finite[0] > 0 else float(np.nanmax(finite)))
        ax.set_ylim(0, max(top, float(np.nanmin(finite))) * 1.05 or 1.0)
    for key, color, style, label in (("suggested", "tab:green", "-", "suggested"),
                                     ("chosen", "tab:red", "--", "chosen"),
                                     ("blow_up", "tab:orange", ":", "loss blows up")):
        value = lr_range.get(key)
        if value:
            ax.axvline(value, color=color, linestyle=style, linewidth=1.5, label=f"{label} {value:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    what = ", ".join(str(lr_range[k]) if k == "optimizer" else f"batch {lr_range[k]}"
                     for k in ("optimizer", "batch_size") if lr_range.get(k))
    ax.set_title("learning-rate range test" + (f" ({what})" if what else ""))
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_confusion_matrix", "plot_diagnostics", "plot_feature_maps", "plot_filters", "plot_history",
           "plot_lr_range", "plot_misclassified", "worst_misclassified"]
