"""Classification metrics computed with NumPy: accuracy, precision, recall, F1, confusion matrix.

Everything is derived from the confusion matrix ``cm`` (rows = true class, columns =
predicted class), built in one ``np.bincount`` over ``true * K + pred``. For class k:

- true positives  ``tp[k] = cm[k, k]``
- false positives ``fp[k] = cm[:, k].sum() - tp[k]``  (predicted k, was something else)
- false negatives ``fn[k] = cm[k, :].sum() - tp[k]``  (was k, predicted something else)
- precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``,
  F1 (their harmonic mean) ``2 tp / (2 tp + fp + fn)``; support ``tp + fn``.

A ratio whose denominator is 0 (a class never predicted, or absent from ``y_true``) is 0,
scikit-learn's default value, without a warning. The classes are always ``0 .. K-1``, and
every one of them counts in the macro average, as scikit-learn does when given
``labels=range(K)``. ``K`` is ``num_classes``, else ``len(class_names)``, else the largest
label seen plus one.

Labels are 1-D integer arrays (N,); a 2-D array (N, K) of scores or one-hot rows is
turned into labels with ``argmax(axis=1)``. A two-class model with one sigmoid output gives
its class probabilities as the two columns ``[1 - p, p]`` (``predict_proba``), which work here
as any (N, 2) scores; its single column of logits (N, 1) is refused, since its arg-max is always 0.
"""
import numpy as np

from .errors import LabelError

AVERAGES = (None, "macro", "weighted")


def _as_labels(y, name):
    """y: (N,) integer labels, or (N, K) scores / one-hot -> (N,) int64 labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        raise LabelError(f"{name} has one score per example (N, 1), the output of a two-class model with one "
                         f"sigmoid unit: pass its labels (model.predict(x): 1 where the logit is > 0) or its "
                         f"probabilities [1 - p, p] (model.predict_proba(x), (N, 2))")
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise LabelError(f"{name} must be labels of shape (N,) or scores (N, K), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise LabelError(f"{name} must hold whole class indices, got non-integer values")
    elif y.dtype.kind not in "iub":
        raise LabelError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


def _check(y_true, y_pred, num_classes=None):
    """Validate a pair of label arrays; returns ``(y_true, y_pred, K)``."""
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise LabelError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise LabelError("y_true and y_pred are empty: no predictions to score")
    low = min(y_true.min(), y_pred.min())
    if low < 0:
        raise LabelError(f"class labels must be >= 0, got {low}")
    high = int(max(y_true.max(), y_pred.max()))
    if num_classes is None:
        num_classes = high + 1
    else:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise LabelError(f"num_classes must be a positive int, got {num_classes!r}")
        num_classes = int(num_classes)
        if high >= num_classes:
            which = "y_true" if y_true.max() == high else "y_pred"
            raise LabelError(f"{which} holds label {high}, out of range for {num_classes} classes "
                             f"(0..{num_classes - 1})")
    return y_true, y_pred, num_classes


def _divide(num, den):
    """num / den element-wise, 0 where den == 0 (float64)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion_matrix(y_true, y_pred, num_classes=None):
    """cm: (K, K) int64, ``cm[i, j]`` = number of examples of true class i predicted as j.

    y_true, y_pred: (N,) integer labels. One ``np.bincount`` of the flat cell index
    ``i * K + j`` counts every cell at once.
    """
    y_true, y_pred, k = _check(y_true, y_pred, num_classes)
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.int64)


def accuracy(y_true, y_pred):
    """Fraction of examples whose predicted label equals the true one (a float in [0, 1])."""
    y_true, y_pred, _ = _check(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def _scores_from_cm(cm):
    """Per-class ``precision, recall, f1`` (float64 (K,)) and ``support`` (int64 (K,)) of cm."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)          # tp + fp
    support = cm.sum(axis=1)            # tp + fn
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * tp, predicted + support)   # 2tp / (2tp + fp + fn)
    return precision, recall, f1, support.astype(np.int64)


def _average(values, support, average):
    if average == "macro":
        return float(np.mean(values))
    weights = support / support.sum()
    return float(np.sum(values * weights))


def precision_recall_f1(y_true, y_pred, num_classes=None, average=None):
    """Precision, recall and F1 of each class, or their average.

    Returns ``(precision, recall, f1, support)``:

    - ``average=None``: per-class float64 arrays (K,) and support, int64 (K,), the number
      of true examples of each class;
    - ``average="macro"``: three floats, the unweighted mean over the K classes, and the
      support total N;
    - ``average="weighted"``: three floats, the mean weighted by each class's support, and N.
    """
    if average not in AVERAGES:
        raise LabelError(f"average must be one of {AVERAGES}, got {average!r}")
    cm = confusion_matrix(y_true, y_pred, num_classes)
    precision, recall, f1, support = _scores_from_cm(cm)
    if average is None:
        return precision, recall, f1, support
    return (_average(precision, support, average), _average(recall, support, average),
            _average(f1, support, average), int(support.sum()))


def _class_names(class_names, k):
    if class_names is None:
        return [str(i) for i in range(k)]
    names = [str(c) for c in class_names]
    if len(names) != k:
        raise LabelError(f"class_names has {len(names)} names but there are {k} classes")
    return names


def _num_classes(num_classes, class_names):
    if num_classes is None and class_names is not None:
        return len(class_names)
    return num_classes


def classification_report(y_true, y_pred, class_names=None, digits=2, num_classes=None):
    """A text table in scikit-learn's ``classification_report`` layout::

                      precision    recall  f1-score   support

                 cat       0.50      1.00      0.67         1
                 dog       0.00      0.00      0.00         1
                bird       1.00      0.67      0.80         3

            accuracy                           0.60         5
           macro avg       0.50      0.56      0.49         5
        weighted avg       0.70      0.60      0.61         5

    One row per class (named by ``class_names``, else by index), then accuracy and the
    macro and weighted averages, with ``digits`` decimals.
    """
    y_true, y_pred, k = _check(y_true, y_pred, _num_classes(num_classes, class_names))
    names = _class_names(class_names, k)
    cm = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1, support = _scores_from_cm(cm)
    total = int(support.sum())

    headers = ["precision", "recall", "f1-score", "support"]
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = "{:>{width}s} ".format("", width=width) + "".join(" {:>9}".format(h) for h in headers)
    text += "\n\n"
    for i, name in enumerate(names):
        text += row_fmt.format(name, precision[i], recall[i], f1[i], int(support[i]),
                               width=width, digits=digits)
    text += "\n"
    acc = float(np.trace(cm)) / total
    text += ("{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", acc, total, width=width, digits=digits)
    for label, avg in (("macro avg", "macro"), ("weighted avg", "weighted")):
        text += row_fmt.format(label, _average(precision, support, avg), _average(recall, support, avg),
                               _average(f1, support, avg), total, width=width, digits=digits)
    return text


def classification_metrics(y_true, y_pred, class_names=None, num_classes=None):
    """Every metric above as a JSON-friendly dict (plain floats, ints, lists)::

        {"accuracy": float, "num_examples": N, "num_classes": K, "class_names": [...],
         "per_class": [{"index", "name", "precision", "recall", "f1", "support"}, ...],
         "macro": {"precision", "recall", "f1", "support"},
         "weighted": {"precision", "recall", "f1", "support"},
         "confusion_matrix": [[int, ...], ...]}   # K x K, rows = true, columns = predicted
    """
    y_true, y_pred, k = _check(y_true, y_pred, _num_classes(num_classes, class_names))
    names = _class_names(class_names, k)
    cm = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1, support = _scores_from_cm(cm)
    total = int(support.sum())
    per_class = [{"index": i, "name": names[i], "precision": float(precision[i]),
                  "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
                 for i in range(k)]
    averages = {avg: {"precision": _average(precision, support, avg),
                      "recall": _average(recall, support, avg),
                      "f1": _average(f1, support, avg), "support": total}
                for avg in ("macro", "weighted")}
    return {"accuracy": float(np.trace(cm)) / total, "num_examples": total, "num_classes": k,
            "class_names": names, "per_class": per_class, "macro": averages["macro"],
            "weighted": averages["weighted"], "confusion_matrix": cm.tolist()}


__all__ = ["accuracy", "classification_metrics", "classification_report", "confusion_matrix",
           "precision_recall_f1"]
