"""``load_dataset``: a data set as model-ready arrays, with the recipe to prepare new images.

The steps, in order (each seeded by ``seed`` alone, so a run is repeatable and the data
do not depend on how many random numbers the model used before):

1. read the raw images ``(N, C, H, W)`` uint8 and labels (see :mod:`.registry`; a user's own
   files: :mod:`.files`, then the same steps, :func:`build_dataset`);
2. ``classes``: keep those classes only, relabelled ``0..k-1`` in the order given;
3. ``per_class`` / ``test_per_class``: a random subset of that many examples per class;
4. ``grayscale``: RGB -> luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601);
5. ``val_split``: hold out that fraction of the training set for validation (stratified:
   the same fraction of each class; or uniformly at random);
6. ``normalize``: ``"scale"`` divides by the raw maximum (255, or 16 for the 8x8 digits)
   so pixels lie in 0..1; ``"standardize"`` then subtracts each channel's mean and divides
   by its standard deviation, both measured on the training split only; ``None`` keeps
   the raw values (as float32).
"""
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .digits import stratified_split
from .registry import get_info, load_raw

NORMALIZE = ("scale", "standardize", None)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")


@dataclass
class Dataset:
    """A loaded data set: x float32 ``(N, C, H, W)``, y int64 ``(N,)`` for each split
    (``x_val``/``y_val`` are empty arrays when ``val_split`` is 0).

    preprocessing: JSON-friendly recipe (channels, height, width, max_value, normalize,
    mean, std, white_on_black, center_box, grayscale; ``resize`` for data read from the user's
    files) for :func:`scratchcnn.images.prepare_image`.
    source: for data read from files (:func:`scratchcnn.datasets.load_data`), where they came
    from and how they were read (path, format, options, images skipped / files ignored, cache);
    empty for the data sets known by name.
    """
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    preprocessing: dict
    source: dict = field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train {self.x_train.shape}, val {self.x_val.shape}, "
                f"test {self.x_test.shape}, classes {self.class_names})")


def to_grayscale(x):
    """x: (N, 3, H, W) -> (N, 1, H, W) float32 luma; one-channel input is returned as float32."""
    if x.shape[1] == 1:
        return x.astype(np.float32)
    if x.shape[1] != 3:
        raise ConfigError(f"grayscale: expected 1 or 3 channels, got {x.shape[1]}")
    r, g, b = (np.float32(w) * x[:, i] for i, w in enumerate(LUMA))
    return (r + g + b)[:, None]


def _resolve_classes(classes, names, dataset):
    """Class indices from ints or class names, checked."""
    out = []
    for c in classes:
        if isinstance(c, str) and not c.lstrip("-").isdigit():
            if c not in names:
                raise ConfigError(f"{dataset}: unknown class {c!r}; classes are {list(names)}")
            c = names.index(c)
        c = int(c)
        if not 0 <= c < len(names):
            raise ConfigError(f"{dataset}: class {c} out of range 0..{len(names) - 1}")
        out.append(c)
    if len(set(out)) != len(out) or not out:
        raise ConfigError(f"{dataset}: classes must be distinct and at least one, got {list(classes)}")
    return out


def select_classes(x, y, classes, num_classes):
    """Keep examples of ``classes`` and relabel class ``classes[i]`` as ``i``."""
    lookup = np.full(num_classes, -1, dtype=np.int64)
    lookup[classes] = np.arange(len(classes))
    new = lookup[y]
    keep = new >= 0
    return x[keep], new[keep]


def take_per_class(x, y, n, rng, what, dataset):
    """A random subset of ``n`` examples of each class (in their original order)."""
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < n:
            raise ConfigError(f"{dataset}: asked for {n} {what} examples per class, but class {c} has "
                              f"only {len(idx)}")
        picked.append(rng.choice(idx, size=n, replace=False))
    idx = np.sort(np.concatenate(picked))
    return x[idx], y[idx]


def split_validation(x, y, fraction, rng, stratify=True):
    """``(x_train, y_train, x_val, y_val)`` holding out ``fraction`` of the examples."""
    if stratify:
        keep, held = stratified_split(y, fraction, rng)
    else:
        perm = rng.permutation(len(y))
        n_val = int(round(fraction * len(y)))
        keep, held = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    return x[keep], y[keep], x[held], y[held]


def check_options(normalize="scale", val_split=0.0, per_class=None, test_per_class=None):
    """The loader options every source takes, checked; returns ``(normalize, val_split)``
    with ``"none"`` read as None and a missing val_split as 0."""
    if normalize == "none":
        normalize = None
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize must be 'scale', 'standardize' or None, got {normalize!r}")
    val_split = 0.0 if val_split is None else val_split
    if not 0.0 <= float(val_split) < 1.0:
        raise ConfigError(f"val_split must be in [0, 1), got {val_split!r}")
    for key, n in (("per_class", per_class), ("test_per_class", test_per_class)):
        if n is not None and (not isinstance(n, (int, np.integer)) or n < 1):
            raise ConfigError(f"{key} must be a positive int, got {n!r}")
    return normalize, float(val_split)


def build_dataset(name, x_train, y_train, x_test, y_test, class_names, max_value, *, white_on_black=False,
                  center_box=20 / 28, classes=None, per_class=None, test_per_class=None, val_split=0.0,
                  normalize="scale", grayscale=False, seed=0, stratify=True, mean=None, std=None,
                  extra=None, source=None):
    """Steps 2-6 of the module docstring on raw arrays (x ``(N, C, H, W)``, uint8 or float, raw
    pixel scale ``max_value``; y int64 in ``0..len(class_names)-1``): the one path every data
    source, known by name or read from the user's files, goes through to its :class:`Dataset`.

    mean / std: fixed per-channel statistics for ``normalize="standardize"`` (a trained model's,
    so new data are prepared as its training data were) instead of measuring them.
    extra: more entries for the ``preprocessing`` recipe; source: the :attr:`Dataset.source` record.
    """
    normalize, val_split = check_options(normalize, val_split, per_class, test_per_class)
    rng_train, rng_test, rng_val = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    names = list(class_names)
    if classes is not None:
        classes = _resolve_classes(classes, names, name)
        x_train, y_train = select_classes(x_train, y_train, classes, len(names))
        x_test, y_test = select_classes(x_test, y_test, classes, len(names))
        names = [names[c] for c in classes]
    if per_class is not None:
        x_train, y_train = take_per_class(x_train, y_train, per_class, rng_train, "training", name)
    if test_per_class is not None:
        x_test, y_test = take_per_class(x_test, y_test, test_per_class, rng_test, "test", name)
    raw_channels = x_train.shape[1]
    if grayscale:
        x_train, x_test = to_grayscale(x_train), to_grayscale(x_test)
    else:
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if val_split > 0:
        x_train, y_train, x_val, y_val = split_validation(x_train, y_train, float(val_split), rng_val, stratify)
    else:
        x_val, y_val = x_train[:0], y_train[:0]

    if normalize is not None:
        scale = np.float32(1.0 / max_value)
        for arr in (x_train, x_val, x_test):
            arr *= scale
    if normalize == "standardize":
        if mean is None or std is None:
            mean = x_train.mean(axis=(0, 2, 3), dtype=np.float64)
            std = x_train.std(axis=(0, 2, 3), dtype=np.float64)
            std[std == 0] = 1.0
        mean, std = np.asarray(mean, np.float64).reshape(-1), np.asarray(std, np.float64).reshape(-1)
        if len(mean) != x_train.shape[1] or len(std) != x_train.shape[1]:
            raise ConfigError(f"{name}: standardize: {len(mean)} means for {x_train.shape[1]}-channel images")
        m, s = mean.astype(np.float32)[:, None, None], std.astype(np.float32)[:, None, None]
        for arr in (x_train, x_val, x_test):
            arr -= m
            arr /= s
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    else:
        mean = std = None
    c, h, w = x_train.shape[1:]
    preprocessing = {"dataset": name, "channels": int(c), "height": int(h), "width": int(w),
                     "max_value": max_value, "normalize": normalize, "mean": mean, "std": std,
                     "white_on_black": white_on_black, "center_box": center_box,
                     "grayscale": bool(grayscale and raw_channels == 3)}
    preprocessing.update(extra or {})
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, names, preprocessing, dict(source or {}))


def load_dataset(name, data_dir=None, classes=None, per_class=None, test_per_class=None, val_split=0.0,
                 normalize="scale", grayscale=False, seed=0, download=True, stratify=True, progress=True):
    """Load data set ``name`` (see :func:`available_datasets`) as a :class:`Dataset`.

    data_dir: a folder holding the data set's files (searched first; then
    ``$SCRATCHCNN_DATA``, the cache, system copies, then a download if ``download``).
    classes: e.g. ``(0, 1, 2)`` keeps those classes, relabelled 0..k-1 (class names remapped).
    per_class / test_per_class: keep that many random training / test examples per class.
    val_split: fraction of the training examples held out as ``x_val``/``y_val``
    (``stratify=True``: the same fraction from each class).
    normalize: ``"scale"`` (to 0..1), ``"standardize"`` (per-channel mean/std of the
    training split) or ``None`` (raw values). grayscale: RGB -> one luma channel.
    seed: draws the subsets and the validation split. download: allow fetching missing
    files; progress: show a progress bar while downloading.

    Your own files (a folder of class folders, CSV, .npz, IDX, a pickle, HDF5):
    :func:`scratchcnn.datasets.load_data`, the same steps after reading.
    """
    info = get_info(name)
    check_options(normalize, val_split, per_class, test_per_class)
    x_train, y_train, x_test, y_test = load_raw(info, data_dir=data_dir, download=download, progress=progress)
    return build_dataset(info.name, x_train, y_train, x_test, y_test, info.class_names, info.max_value,
                         white_on_black=info.white_on_black, center_box=info.center_box, classes=classes,
                         per_class=per_class, test_per_class=test_per_class, val_split=val_split,
                         normalize=normalize, grayscale=grayscale, seed=seed, stratify=stratify)
