"""What every reader of a user's data returns, :class:`RawData`, and the checks that turn the
arrays of any file into images ``(N, C, H, W)`` and labels ``0..k-1``.

Image arrays may come

* flat, ``(N, D)``: one row per image, ``D = H * W`` (gray) or ``3 * H * W`` (RGB, the three
  planes one after the other, as CIFAR-10's python files); the side is inferred when ``D`` is a
  square (or three times one), else given by ``image_size``;
* ``(N, H, W)`` (gray), ``(N, H, W, C)`` (NHWC, Keras / TensorFlow) or ``(N, C, H, W)``
  (NCHW, PyTorch), ``C`` 1 or 3;

as uint8, any integer type (kept as uint8 when the values fit 0..255) or float (0..1 or
0..255; kept as float32). Labels are ``(N,)``, ``(N, 1)`` or one-hot ``(N, k)``, integers
(floats holding whole numbers are accepted). Without class names, the distinct labels become
the classes, in increasing order (labels ``0..k-1`` stay as they are; ``1..26`` become
``0..25`` named ``"1"``..``"26"``).
"""
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError


@dataclass
class RawData:
    """A data set as read from a user's files, before the loader's steps.

    x_train / x_test: ``(N, C, H, W)`` uint8 (``max_value`` 255) or float32 (``max_value`` the
    pixel scale, 1.0 for 0..1 data); x_test / y_test are None when the source has no test set
    (:func:`scratchcnn.datasets.load_data` then holds out a stratified ``test_split``).
    y_*: int64 ``(N,)`` in ``0..len(class_names)-1``. info: what the reader did (files read,
    images skipped, files ignored, cache use, ...), printed in the summary.
    """
    name: str
    path: str
    format: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    max_value: float = 255
    info: dict = field(default_factory=dict)

    def __repr__(self):
        test = None if self.x_test is None else self.x_test.shape
        return (f"RawData({self.name!r}, {self.format}, train {self.x_train.shape} {self.x_train.dtype}, "
                f"test {test}, classes {self.class_names})")


def parse_image_size(size):
    """``None``, ``28``, ``"28"``, ``"28x32"``, ``"28,32"`` or ``(28, 32)`` -> ``(H, W)`` or None."""
    if size is None:
        return None
    try:
        if isinstance(size, str):
            parts = [p for p in size.lower().replace("x", ",").split(",") if p.strip()]
            size = [int(p) for p in parts]
        elif isinstance(size, (int, np.integer)):
            size = [int(size)]
        size = [int(v) for v in size]
    except (TypeError, ValueError):
        size = []
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"image size must be N or HxW with positive integers, got {size!r}")
    return tuple(size)


def _square(n):
    side = math.isqrt(n)
    return side if side * side == n else None


def to_nchw(x, source, image_size=None):
    """An image array of any layout above -> ``(N, C, H, W)`` (a view or the array itself)."""
    x = np.asarray(x)
    if x.ndim == 2:
        n, d = x.shape
        if image_size is not None:
            h, w = image_size
            c = d // (h * w) if d % (h * w) == 0 else 0
            if c not in (1, 3):
                raise DatasetError(f"{source}: rows of {d} values do not make {h}x{w} images "
                                   f"(expected {h * w} or {3 * h * w} values per row)")
        elif _square(d):
            c, h = 1, _square(d)
            w = h
        elif d % 3 == 0 and _square(d // 3):
            c, h = 3, _square(d // 3)
            w = h
        else:
            raise DatasetError(f"{source}: cannot tell the image side from {d} values per row (not a square, "
                               f"nor 3 times one): give the image size (--image-size HxW)")
        return x.reshape(n, c, h, w)
    if x.ndim == 3:
        out = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            out = x.transpose(0, 3, 1, 2)
        elif x.shape[1] in (1, 3):
            out = x
        else:
            raise DatasetError(f"{source}: images of shape {x.shape[1:]}: expected NCHW or NHWC with 1 "
                               f"(gray) or 3 (RGB) channels")
    else:
        raise DatasetError(f"{source}: expected images as (N, H*W), (N, H, W), (N, H, W, C) or (N, C, H, W), "
                           f"got an array of shape {x.shape}")
    if image_size is not None and tuple(out.shape[2:]) != tuple(image_size):
        raise DatasetError(f"{source}: the images are {out.shape[2]}x{out.shape[3]}, not "
                           f"{image_size[0]}x{image_size[1]} (the image size only shapes flat rows here)")
    return out


def pixels(arrays, source):
    """Image arrays -> ``(list of uint8 or float32 arrays, max_value)``, one scale for all."""
    arrays = [a for a in arrays]
    for a in arrays:
        if a.dtype.kind not in "uifb":
            raise DatasetError(f"{source}: pixel values must be numbers, got dtype {a.dtype}")
        if a.size and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DatasetError(f"{source}: pixel values include NaN or infinity")
    lo = min((float(a.min()) for a in arrays if a.size), default=0.0)
    hi = max((float(a.max()) for a in arrays if a.size), default=0.0)
    if lo < 0:
        raise DatasetError(f"{source}: pixel values must not be negative (found {lo:g}): expected raw "
                           f"pixels, 0..255 or 0..1")
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= {"u", "i", "b"} and hi <= 255:
        return [a if a.dtype == np.uint8 else a.astype(np.uint8) for a in arrays], 255
    if kinds <= {"u", "i", "b"}:
        return [a.astype(np.float32) for a in arrays], float(hi)
    if hi > 255:
        return [a.astype(np.float32) for a in arrays], float(hi)
    # floats in 0..1 (or 0..255), each array judged alone: a 0..1 test set beside 0..255 training
    # images is brought to 0..255
    unit = [a.dtype.kind == "f" and (not a.size or float(a.max()) <= 1.0) for a in arrays]
    if all(unit):
        return [a if a.dtype == np.float32 else a.astype(np.float32) for a in arrays], 1.0
    return [a.astype(np.float32) * np.float32(255) if u else a.astype(np.float32) for a, u in zip(arrays, unit)], 255


def labels(y, n, source, what="labels"):
    """Labels as int64 ``(n,)``: from ``(n,)``, ``(n, 1)`` or one-hot ``(n, k)``, checked."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "uifb" and len(y):
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise DatasetError(f"{source}: {what} of shape {y.shape}: expected (N,) class indices or one-hot rows")
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise DatasetError(f"{source}: expected {what} of shape (N,) or (N, 1), got {y.shape}")
    if len(y) != n:
        raise DatasetError(f"{source}: {n} images but {len(y)} {what}: expected one label per image")
    if y.dtype.kind not in "uifb":
        raise DatasetError(f"{source}: {what} must be integers (class indices), got values of dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y))) if len(y) else []
        if len(bad):
            raise DatasetError(f"{source}: {what} must be integers (class indices); {what[:-1]} {bad[0]} "
                               f"is {y[bad[0]]!r}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DatasetError(f"{source}: {what} must be class indices 0, 1, ...; found {int(y.min())}")
    return y


def class_names_for(y_train, y_test, names, source):
    """``(y_train, y_test, class names)``: the labels checked against ``names``, or, without
    names, the distinct labels as the classes (relabelled 0..k-1 when they are not already)."""
    ys = [y for y in (y_train, y_test) if y is not None]
    if names is not None:
        names = [str(n) for n in names]
        top = max((int(y.max()) for y in ys if len(y)), default=-1)
        if top >= len(names):
            raise DatasetError(f"{source}: label {top} but only {len(names)} class names ({', '.join(names)})")
    else:
        values = np.unique(np.concatenate(ys))
        if len(values) and (values != np.arange(len(values))).any():
            y_train = np.searchsorted(values, y_train)
            y_test = None if y_test is None else np.searchsorted(values, y_test)
        names = [str(int(v)) for v in values]
    present = np.unique(y_train)
    if len(present) < 2:
        which = f"class {names[present[0]]!r}" if len(present) else "no examples"
        raise DatasetError(f"{source}: the training data hold only {which}: a classifier needs at least "
                           f"two classes")
    return y_train, y_test, names


def raw_from_arrays(name, path, fmt, x_train, y_train, x_test=None, y_test=None, class_names=None,
                    image_size=None, source=None, info=None):
    """The checks every array source shares -> :class:`RawData`."""
    source = source or path
    x_train = to_nchw(x_train, f"{source} (training images)", image_size)
    y_train = labels(y_train, len(x_train), f"{source} (training labels)")
    if (x_test is None) != (y_test is None):
        raise DatasetError(f"{source}: test images without test labels (or the reverse): expected both or neither")
    if x_test is not None:
        x_test = to_nchw(x_test, f"{source} (test images)", image_size)
        y_test = labels(y_test, len(x_test), f"{source} (test labels)")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DatasetError(f"{source}: test images are {x_test.shape[1:]} but training images "
                               f"{x_train.shape[1:]}: expected the same (C, H, W)")
    if not len(x_train):
        raise DatasetError(f"{source}: no training images")
    arrays, max_value = pixels([x_train] + ([x_test] if x_test is not None else []), source)
    x_train, x_test = arrays[0], (arrays[1] if x_test is not None else None)
    y_train, y_test, names = class_names_for(y_train, y_test, class_names, source)
    return RawData(name, str(path), fmt, x_train, y_train, x_test, y_test, names, max_value, dict(info or {}))
