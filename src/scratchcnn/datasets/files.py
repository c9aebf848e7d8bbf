"""``load_data``: your own data, from any of the file formats learners have, as a :class:`Dataset`.

    >>> from scratchcnn.datasets import load_data
    >>> data = load_data("pets/")                    # pets/cat/*.jpg, pets/dog/*.png
    >>> data = load_data("mnist.pkl.gz", val_split=0.1)
    >>> data = load_data("train.csv", test_data="test.csv", classes=(0, 1, 2))

The format is told from the path (:func:`detect_format`) or given: ``folder`` (class folders,
:func:`~.folder.read_image_folder`), ``csv`` (:func:`~.formats.read_csv`), ``npz``
(:func:`~.formats.read_npz`), ``idx`` (:func:`~.formats.read_idx_dataset`), ``pickle``
(:func:`~.formats.read_mnist_pickle`) or ``hdf5`` (:func:`~.formats.read_hdf5`). A source
without a test set gets a stratified ``test_split`` (drawn from ``seed``). Then the steps of
:func:`~.loaders.load_dataset` follow, the same code (:func:`~.loaders.build_dataset`): class
subsets, per-class counts, validation split, normalisation; the ``preprocessing`` recipe also
keeps the ``resize`` mode, so :func:`scratchcnn.images.prepare_image` reads a photo the way the
training images were read.
"""
import os

import numpy as np

from ..errors import ConfigError, DatasetError
from ..images import RESIZE_MODES
from .arrays import parse_image_size
from .digits import stratified_split
from .folder import read_image_folder
from .formats import (data_name, idx_files, read_csv, read_hdf5, read_idx_dataset, read_mnist_pickle, read_npz,
                      sniff_file)
from .loaders import build_dataset, check_options

FORMATS = ("folder", "csv", "npz", "idx", "pickle", "hdf5")
DEFAULT_TEST_SPLIT = 0.2


def detect_format(path):
    """``folder``, ``csv``, ``npz``, ``idx``, ``pickle`` or ``hdf5`` for ``path``: a folder holding
    IDX files is ``idx``, any other folder ``folder``; a file by its name, else by its first bytes."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return "idx" if idx_files(path) else "folder"
    fmt = sniff_file(path)
    if fmt is None:
        raise DatasetError(f"{path}: cannot tell the data format from the name or the first bytes: expected a "
                           f"folder of class folders, .csv, .npz, IDX (-ubyte), .pkl(.gz) or .hdf5/.h5; "
                           f"name it with --data-format ({', '.join(FORMATS)})")
    return fmt


def read_data(path, format=None, test_data=None, image_size=None, channels=None, resize="stretch",
              skip_bad=False, hdf5_keys=None, cache=True, progress=True):
    """The :class:`~.arrays.RawData` of ``path`` in ``format`` (detected when None)."""
    path = os.fspath(path)
    fmt = (format or detect_format(path)).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {format!r}; choose {', '.join(FORMATS)}")
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such file or folder")
    if test_data is not None and fmt not in ("folder", "csv", "idx"):
        raise ConfigError(f"a separate test file (--test-data) is read for folder, csv and idx data; {fmt} files "
                          f"carry their own x_test / y_test")
    if fmt == "folder":
        raw = read_image_folder(path, image_size, channels, resize, skip_bad, cache, progress)
        if test_data is not None:
            test = read_image_folder(test_data, raw.info["image_size"], raw.x_train.shape[1], resize, skip_bad,
                                     cache, progress)
            unknown = sorted(set(test.class_names) - set(raw.class_names))
            if unknown:
                raise DatasetError(f"{test_data}: class folder(s) {', '.join(unknown)} are not in {path}")
            lookup = np.array([raw.class_names.index(n) for n in test.class_names], np.int64)
            test_x = test.x_train if test.x_test is None else np.concatenate([test.x_train, test.x_test])
            test_y = test.y_train if test.y_test is None else np.concatenate([test.y_train, test.y_test])
            raw.x_test, raw.y_test = test_x, lookup[test_y]
            raw.info["test_data"] = {k: test.info.get(k) for k in ("images", "skipped", "ignored", "cache")}
        return raw
    if fmt == "csv":
        return read_csv(path, test_data, image_size)
    if fmt == "npz":
        return read_npz(path, image_size)
    if fmt == "idx":
        return read_idx_dataset(path, test_data)
    if fmt == "pickle":
        return read_mnist_pickle(path, image_size)
    return read_hdf5(path, hdf5_keys, image_size)


def _dark_background(x, max_value):
    """Bright strokes on a dark ground (MNIST-like), judged by the images' border pixels."""
    if not len(x):
        return False
    sample = x[:: max(1, len(x) // 2000)].astype(np.float32).mean(axis=1)
    border = np.concatenate([sample[:, 0], sample[:, -1], sample[:, :, 0], sample[:, :, -1]], axis=1)
    return bool(np.median(border) <= 0.1 * max_value and sample.mean() < 0.5 * max_value)


def load_data(path, format=None, *, test_data=None, test_split=None, image_size=None, grayscale=False, rgb=False,
              resize="stretch", skip_bad=False, hdf5_keys=None, cache=True, classes=None, per_class=None,
              test_per_class=None, val_split=0.0, normalize="scale", seed=0, stratify=True, progress=True,
              preprocessing=None):
    """Your data at ``path`` as a :class:`~.loaders.Dataset` (see the module docstring).

    format: one of :data:`FORMATS`, detected when None. test_data: a second folder / CSV / IDX
    images file for the test set. test_split: the stratified fraction held out for testing
    when the source has no test set (default 0.2). image_size: ``N`` or ``(H, W)``: folders are
    resized to it (default: the most common size, or 28 / 32 for large photos); flat rows
    (CSV, npz, ...) are shaped by it (default: a square). grayscale / rgb: force one or three
    channels (default: as stored; folders: RGB when any image has colour). resize: how a folder's
    images (and later photos) of another shape are fitted: ``stretch``, ``crop`` or ``pad``.
    skip_bad: leave unreadable images out (counted) instead of stopping. hdf5_keys: the HDF5
    dataset names, ``"x_train,y_train[,x_test,y_test]"``. cache: keep a folder's decoded images.
    classes, per_class, test_per_class, val_split, normalize, seed, stratify: as
    :func:`~.loaders.load_dataset`. preprocessing: a trained model's recipe
    (``model.metadata["preprocessing"]``): read the data at its size, channels and resize mode,
    normalised with its mean / std, as for evaluating that model.
    """
    normalize, val_split = check_options(normalize, val_split, per_class, test_per_class)
    if grayscale and rgb:
        raise ConfigError("grayscale and rgb exclude each other")
    mean = std = None
    if preprocessing:
        p = preprocessing
        image_size = (int(p["height"]), int(p["width"]))
        grayscale, rgb = int(p["channels"]) == 1, int(p["channels"]) == 3
        resize = p.get("resize") or resize
        normalize = p.get("normalize")
        normalize = None if normalize == "none" else normalize
        mean, std = p.get("mean"), p.get("std")
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if test_split is not None and not 0.0 < float(test_split) < 1.0:
        raise ConfigError(f"test_split must be in (0, 1), got {test_split!r}")
    raw = read_data(path, format, test_data=test_data, image_size=image_size,
                    channels=1 if grayscale else 3 if rgb else None, resize=resize, skip_bad=skip_bad,
                    hdf5_keys=hdf5_keys, cache=cache, progress=progress)
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    split = None
    if x_test is None:
        split = float(DEFAULT_TEST_SPLIT if test_split is None else test_split)
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
        keep, held = stratified_split(y_train, split, rng)
        x_train, y_train, x_test, y_test = x_train[keep], y_train[keep], x_train[held], y_train[held]
        if not len(x_test):
            raise DatasetError(f"{raw.path}: too few images to hold out {split:g} of them for testing")
    if rgb and x_train.shape[1] == 1:
        x_train, x_test = np.repeat(x_train, 3, axis=1), np.repeat(x_test, 3, axis=1)
    gray = bool(grayscale and x_train.shape[1] == 3)
    white_on_black = (x_train.shape[1] == 1 or gray) and _dark_background(x_train, raw.max_value)
    options = {"format": raw.format, "test_data": None if test_data is None else os.path.abspath(test_data),
               "test_split": split, "image_size": None if image_size is None else list(parse_image_size(image_size)),
               "grayscale": bool(grayscale), "rgb": bool(rgb), "resize": resize,
               "skip_bad": bool(skip_bad), "hdf5_keys": hdf5_keys if hdf5_keys is None or isinstance(hdf5_keys, str)
               else ",".join(hdf5_keys), "classes": None if classes is None else list(classes), "seed": seed}
    source = {"path": os.path.abspath(raw.path), "format": raw.format, "options": options, "info": raw.info,
              "test_split": split}
    data = build_dataset(raw.name, x_train, y_train, x_test, y_test, raw.class_names, raw.max_value,
                         white_on_black=white_on_black, classes=classes, per_class=per_class,
                         test_per_class=test_per_class, val_split=val_split, normalize=normalize,
                         grayscale=gray, seed=seed, stratify=stratify, mean=mean, std=std,
                         extra={"resize": resize, "format": raw.format}, source=source)
    return data


def describe(data):
    """One line (two with problems) saying what was read: for the command line's summary."""
    src = data.source or {}
    info = src.get("info") or {}
    c, h, w = data.input_shape
    names = data.class_names
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    cache = info.get("cache")
    how = src.get("format", "?") + (", from the cache" if cache == "hit" else ", decoded and cached" if cache ==
                                    "written" else "")
    split = src.get("test_split")
    line = (f"data: {src.get('path', data.name)} ({how}): {len(names)} classes ({shown}); "
            f"{len(data.x_train)} training, {len(data.x_val)} validation, {len(data.x_test)} test images"
            + (f" (test: a stratified {split:g} held out)" if split else "")
            + f"; {c}x{h}x{w} ({'gray' if c == 1 else 'RGB'})")
    merged = info.get("validation images merged into training")
    if merged:
        line += f"; the file's {merged} validation images joined the training set"
    notes = []
    skipped = info.get("skipped") or []
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} "
                     f"({'; '.join(skipped[:3])}{'; ...' if len(skipped) > 3 else ''})")
    if info.get("ignored"):
        ex = info.get("ignored_examples") or []
        notes.append(f"ignored {info['ignored']} non-image file{'s' if info['ignored'] != 1 else ''}"
                     + (f" ({', '.join(ex)}{', ...' if info['ignored'] > len(ex) else ''})" if ex else ""))
    return line + ("\n  " + "; ".join(notes) if notes else "")


__all__ = ["DEFAULT_TEST_SPLIT", "FORMATS", "data_name", "describe", "detect_format", "load_data", "read_data"]
