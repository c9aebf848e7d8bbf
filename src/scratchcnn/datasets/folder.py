"""A folder of class folders as a data set (torchvision's ``ImageFolder`` / Keras'
``image_dataset_from_directory`` layout), decoded once and cached.

::

    pets/cat/001.png            pets/train/cat/001.png      (train/ + test/: the split; a val/
    pets/cat/002.jpg     or     pets/train/dog/...           folder joins train/, or is the
    pets/dog/a.bmp              pets/test/cat/...            test set when there is no test/)

Class names are the folder names, sorted; images may sit deeper inside a class folder.
PNG, JPEG, BMP, GIF (first frame), TIFF, PPM/PGM and WebP (where Pillow reads it) are read;
other files, and hidden ones, are ignored and counted. Every image is fitted to one size
(``image_size``; by default the most common size when it is at most :data:`SMALL` pixels a
side, else 28x28 when every file is stored gray, 32x32 otherwise) by :func:`scratchcnn.images.image_to_uint8`,
the function that also prepares a photo for the trained model, in gray or RGB (by default
RGB when any image has colour).

The decoded images are kept as uint8 ``(N, C, H, W)`` arrays (decoded into one preallocated
array, so memory stays at the uint8 size of the data) in an ``.npz`` in
``cache_dir()/image-folders``, keyed by a SHA-256 of every file's relative path, size and
modification time and the reading options: the second load reads that file and decodes
nothing; any change in the folder makes a new one (the old one is deleted).
"""
import collections
import hashlib
import json
import os

import numpy as np
from PIL import Image, features
from tqdm.auto import tqdm

from ..errors import DatasetError
from ..fileio import atomic_write
from ..images import RESIZE_MODES, ImageError, image_to_uint8
from .arrays import RawData, parse_image_size
from .sources import cache_dir

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
if features.check("webp"):
    IMAGE_EXTENSIONS.add(".webp")
SMALL = 64                 # images at most this many pixels a side are trained at their own size
DEFAULT_SIDE = {1: 28, 3: 32}
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test",
               "val": "val", "valid": "val", "validation": "val"}
CACHE_VERSION = 1


def _visible(name):
    return not name.startswith(".") and name not in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _subdirs(folder):
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and _visible(e.name))


def _walk_class(folder):
    """``(image files, other files)`` under a class folder, relative to it, sorted."""
    images, others = [], []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(here, f), folder)
            if not _visible(f):
                continue
            (images if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS else others).append(rel)
    return images, others


def scan_folder(path):
    """The layout of an image folder: ``(splits, class names, ignored files)`` with
    ``splits = {"train": [(path, class index), ...], "test": [...] or None}``."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: not a folder (expected class folders: {path}/CLASS/image.png)")
    top = _subdirs(path)
    split_dirs = collections.defaultdict(list)
    for d in top:
        if d.lower() in SPLIT_NAMES:
            split_dirs[SPLIT_NAMES[d.lower()]].append(os.path.join(path, d))
    ignored = []
    if "train" in split_dirs and ("test" in split_dirs or "val" in split_dirs):
        if "test" in split_dirs:        # train/ val/ test/: val/ joins train/ (val_split holds out its own)
            roots = {"train": split_dirs["train"] + split_dirs["val"], "test": split_dirs["test"]}
        else:                           # train/ val/: val/ is the held-out set
            roots = {"train": split_dirs["train"], "test": split_dirs["val"]}
        others = [os.path.join(path, d) for d in top if d.lower() not in SPLIT_NAMES]
        ignored += [os.path.join(here, f) for d in others for here, _, files in os.walk(d) for f in files]
    elif "train" in split_dirs and top == [os.path.basename(split_dirs["train"][0])]:
        roots = {"train": split_dirs["train"]}          # only train/: the classes are inside
    else:
        roots = {"train": [path]}
    per_split = {}
    for split, dirs in roots.items():
        classes = {}
        for root in dirs:
            ignored += [e.path for e in os.scandir(root) if e.is_file() and _visible(e.name)]
            for cls in _subdirs(root):
                images, others = _walk_class(os.path.join(root, cls))
                ignored += [os.path.join(root, cls, o) for o in others]
                if not images:
                    raise DatasetError(f"{os.path.join(root, cls)}: empty class folder (expected image files: "
                                       f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
                classes.setdefault(cls, []).extend(os.path.join(root, cls, i) for i in images)
        per_split[split] = classes
    train = per_split["train"]
    where = roots["train"][0]
    if not train:
        raise DatasetError(f"{where}: no class folders (expected {where}/CLASS_A/*.png, {where}/CLASS_B/*.jpg, ...; "
                           f"or train/ and test/ folders holding them)")
    names = sorted(train)
    if len(names) < 2:
        raise DatasetError(f"{where}: only one class folder ({names[0]!r}): a classifier needs at least two "
                           f"(one folder per class)")
    splits = {"train": [(p, names.index(c)) for c in names for p in train[c]], "test": None}
    if "test" in per_split:
        extra = sorted(set(per_split["test"]) - set(names))
        if extra:
            raise DatasetError(f"{roots['test'][0]}: class folder(s) {', '.join(extra)} are not in "
                               f"{roots['train'][0]} (expected the training classes: {', '.join(names)})")
        splits["test"] = [(p, names.index(c)) for c in names for p in per_split["test"].get(c, [])]
        if not splits["test"]:
            raise DatasetError(f"{roots['test'][0]}: no test images (expected class folders of images)")
    return splits, names, ignored


def folder_key(path, splits, ignored, options):
    """SHA-256 of every file's relative path, size and mtime, and the reading options."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "options": options}, sort_keys=True).encode())
    files = [p for items in splits.values() if items for p, _ in items] + list(ignored)
    for p in sorted(files):
        try:
            st = os.stat(p)
        except OSError as exc:
            raise DatasetError(f"{p}: cannot read: {exc}") from None
        h.update(f"{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _cache_file(path, options, key):
    """``cache_dir()/image-folders/NAME-WHERE-KEY.npz``: WHERE hashes the folder's path and the
    options, so a newer entry for the same folder and options replaces the older one."""
    where = hashlib.sha256(json.dumps([os.path.abspath(path), options], sort_keys=True).encode(
        "utf-8", "surrogateescape")).hexdigest()[:12]
    return os.path.join(cache_dir(), "image-folders", f"{os.path.basename(path) or 'data'}-{where}-{key[:24]}.npz")


def _header(path):
    """``((H, W) as displayed, mode)`` from the file's header, without decoding the pixels."""
    with Image.open(path) as im:
        w, h = im.size
        try:
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):   # EXIF rotation by 90 degrees
                w, h = h, w
        except Exception:
            pass
        return (h, w), im.mode


def _bad(path, exc):
    text = str(exc)
    return text if os.path.basename(path) in text else f"{path}: {text}"


def read_image_folder(path, image_size=None, channels=None, resize="stretch", skip_bad=False, cache=True,
                      progress=True):
    """A folder of class folders -> :class:`~.arrays.RawData` of uint8 images (see the module doc).

    image_size: ``N`` or ``(H, W)``; None: the most common size, or 28 / 32 for large photos.
    channels: 1 (gray), 3 (RGB) or None (RGB if any image has colour). resize: ``stretch``,
    ``crop`` or ``pad`` (see :func:`scratchcnn.images.fit_image`). skip_bad: skip unreadable or
    truncated images (counted in ``info["skipped"]``) instead of stopping at the first one.
    cache: read / write the decoded arrays in the cache directory."""
    path = os.path.abspath(os.fspath(path))
    size = parse_image_size(image_size)
    if channels not in (None, 1, 3):
        raise DatasetError(f"{path}: channels must be 1 (gray), 3 (RGB) or None (from the images), got {channels!r}")
    if resize not in RESIZE_MODES:
        raise DatasetError(f"{path}: resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    splits, names, ignored = scan_folder(path)
    options = {"image_size": size, "channels": channels, "resize": resize, "skip_bad": bool(skip_bad)}
    key = folder_key(path, splits, ignored, options)
    cache_file = _cache_file(path, options, key)
    name = os.path.basename(path) or "images"
    if cache:
        cached = _read_cache(cache_file, path, name)
        if cached is not None:
            return cached

    # 1. headers: sizes and modes, cheaply (no pixels decoded)
    skipped, headers = [], {}
    for split, items in splits.items():
        for p, _ in items or []:
            try:
                headers[p] = _header(p)
            except Exception as exc:
                if not skip_bad:
                    raise DatasetError(f"{p}: cannot read image (not an image, or corrupted): {exc}; pass "
                                       f"--skip-bad (skip_bad=True) to leave such files out") from None
                skipped.append(_bad(p, exc))
    if not headers:
        raise DatasetError(f"{path}: no readable images")
    colour_modes = any(mode not in GRAY_MODES for _, mode in headers.values())
    decode_channels = channels or (3 if colour_modes else 1)
    if size is None:
        (h, w), _count = collections.Counter(s for s, _ in headers.values()).most_common(1)[0]
        size = (h, w) if max(h, w) <= SMALL else (DEFAULT_SIDE[decode_channels],) * 2

    # 2. decode into one preallocated uint8 array per split
    arrays, has_colour = {}, False
    total = sum(1 for items in splits.values() for p, _ in items or [] if p in headers)
    with tqdm(total=total, desc=f"decoding {name}", unit="img", disable=not progress, leave=False) as bar:
        for split, items in splits.items():
            if items is None:
                arrays[split] = None
                continue
            todo = [(p, c) for p, c in items if p in headers]
            x = np.empty((len(todo), decode_channels) + tuple(size), np.uint8)
            y = np.empty(len(todo), np.int64)
            n = 0
            for p, c in todo:
                bar.update(1)
                try:
                    x[n] = image_to_uint8(p, decode_channels, size, resize)
                except (ImageError, OSError, ValueError) as exc:
                    if not skip_bad:
                        raise DatasetError(f"{_bad(p, exc)}; pass --skip-bad (skip_bad=True) to leave such "
                                           f"files out") from None
                    skipped.append(_bad(p, exc))
                    continue
                if channels is None and decode_channels == 3 and not has_colour:
                    has_colour = bool((x[n, 0] != x[n, 1]).any() or (x[n, 1] != x[n, 2]).any())
                y[n] = c
                n += 1
            arrays[split] = (x[:n], y[:n])
    if channels is None and decode_channels == 3 and not has_colour:
        # every image is gray, whatever its file's mode: one channel (channel 0 equals Pillow's "L")
        arrays = {k: None if v is None else (np.ascontiguousarray(v[0][:, :1]), v[1]) for k, v in arrays.items()}
    x_train, y_train = arrays["train"]
    x_test, y_test = arrays["test"] if arrays["test"] is not None else (None, None)
    if len(np.unique(y_train)) < 2:
        raise DatasetError(f"{path}: fewer than two classes left with readable images")
    info = {"images": int(len(x_train) + (0 if x_test is None else len(x_test))), "skipped": skipped,
            "ignored": len(ignored), "ignored_examples": [os.path.relpath(p, path) for p in ignored[:5]],
            "image_size": list(size), "channels": int(x_train.shape[1]), "resize": resize,
            "cache": "off" if not cache else "written", "cache_file": cache_file if cache else None}
    raw = RawData(name, path, "folder", x_train, y_train, x_test, y_test, names, 255, info)
    if cache:
        _write_cache(cache_file, raw)
    return raw


def _read_cache(cache_file, path, name):
    if not os.path.isfile(cache_file):
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            names = [str(n) for n in z["class_names"]]
            x_test = z["x_test"] if bool(z["has_test"]) else None
            y_test = z["y_test"] if x_test is not None else None
            raw = RawData(name, path, "folder", z["x_train"], z["y_train"], x_test, y_test, names, 255, info)
    except Exception:       # a damaged cache file is simply decoded again
        return None
    raw.info["cache"] = "hit"
    raw.info["cache_file"] = cache_file
    return raw


def _write_cache(cache_file, raw):
    folder = os.path.dirname(cache_file)
    prefix = os.path.basename(cache_file).rsplit("-", 1)[0] + "-"
    empty = np.zeros((0,) + raw.x_train.shape[1:], np.uint8)
    try:
        atomic_write(cache_file, lambda f: np.savez(
            f, x_train=raw.x_train, y_train=raw.y_train,
            x_test=raw.x_test if raw.x_test is not None else empty,
            y_test=raw.y_test if raw.y_test is not None else np.zeros(0, np.int64),
            has_test=np.array(raw.x_test is not None), class_names=np.array(raw.class_names, dtype=str),
            info=np.array(json.dumps(raw.info))))
        for old in os.listdir(folder):        # the same folder's earlier versions (same options)
            if old.startswith(prefix) and old.endswith(".npz") and os.path.join(folder, old) != cache_file:
                os.remove(os.path.join(folder, old))
    except OSError as exc:       # a read-only cache: the data are fine, only not kept
        raw.info["cache"] = f"not written ({exc})"
