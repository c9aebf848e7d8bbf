"""Data augmentation for training batches, vectorised over the batch.

Each transform is a callable ``f(x) -> x'`` on ``x: (N, C, H, W)``, drawing its random
numbers from :func:`scratchcnn.random.get_rng` (so ``scratchcnn.manual_seed`` makes it
repeatable), with a ``config()`` dict for saving and :func:`augment_from_config` to rebuild.

- :class:`RandomCrop` pads the batch with zeros by ``padding`` pixels on each side, then
  cuts an ``(h, w)`` window at an independent random offset for each sample. All windows
  are a strided view (``sliding_window_view``) of the padded batch; one fancy index picks
  each sample's window, so there is no Python loop over samples.
- :class:`RandomShift` is a crop of the input's own size after padding by ``max_shift``:
  content moves by up to ``max_shift`` pixels in each direction, zeros fill the gap.
- :class:`RandomHorizontalFlip` mirrors each sample left-right with probability ``p``.
- :class:`RandomErasing` (Zhong et al., 2017) blanks a random rectangle of each sample with
  probability ``p``: one boolean mask built by comparing row and column indices with each
  sample's rectangle, so again no loop over samples.
"""
import re

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, ShapeError
from ..optim import check_number
from ..random import get_rng


def _check(x, who):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ShapeError(f"{who}: expected x of shape (N, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")


def _pair(v, what):
    v = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(v) != 2 or any(not isinstance(i, (int, np.integer)) or i < 0 for i in v):
        raise ConfigError(f"{what} must be a non-negative int or a pair of them, got {v!r}")
    return int(v[0]), int(v[1])


def crop_at(x, top, left, size):
    """Windows of ``size = (h, w)`` cut from ``x: (N, C, H, W)`` at per-sample offsets
    ``top, left: (N,)`` int: returns ``(N, C, h, w)`` with ``out[n] = x[n, :, top[n]:top[n]+h,
    left[n]:left[n]+w]``."""
    h, w = size
    windows = sliding_window_view(x, (h, w), axis=(2, 3))  # (N, C, H-h+1, W-w+1, h, w), no copy
    n = np.arange(len(x))
    # advanced indices (n, top, left) split by the C slice: their dimension comes first -> (N, C, h, w)
    return windows[n, :, top, left]


class RandomCrop:
    """Zero-pad by ``padding`` then crop ``size`` at a random offset per sample.

    size: int or (h, w) of the output (default: the input's own size); padding: int or
    (pad_h, pad_w) added on each side.
    """

    def __init__(self, size=None, padding=0):
        self.size = None if size is None else _pair(size, "RandomCrop size")
        self.padding = _pair(padding, "RandomCrop padding")

    def __call__(self, x):
        _check(x, type(self).__name__)
        ph, pw = self.padding
        h, w = self.size or x.shape[2:]
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        H, W = x.shape[2:]
        if h > H or w > W:
            raise ShapeError(f"{type(self).__name__}: crop {(h, w)} larger than the padded input {(H, W)}")
        rng = get_rng()
        top = rng.integers(0, H - h + 1, size=len(x))
        left = rng.integers(0, W - w + 1, size=len(x))
        return crop_at(x, top, left, (h, w))

    def config(self):
        return {"name": "RandomCrop", "size": None if self.size is None else list(self.size),
                "padding": list(self.padding)}

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomShift(RandomCrop):
    """Move each sample's content by a random (dy, dx) in ``[-max_shift, max_shift]``,
    filling with zeros; the output has the input's shape."""

    def __init__(self, max_shift=2):
        super().__init__(None, max_shift)
        self.max_shift = int(max_shift)

    def config(self):
        return {"name": "RandomShift", "max_shift": self.max_shift}

    def __repr__(self):
        return f"RandomShift({self.max_shift})"


class RandomHorizontalFlip:
    """Mirror each sample left-right (along W) with probability ``p``."""

    def __init__(self, p=0.5):
        self.p = check_number("RandomHorizontalFlip", "p", p, low=0, high=1)

    def __call__(self, x):
        _check(x, type(self).__name__)
        flip = get_rng().random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def config(self):
        return {"name": "RandomHorizontalFlip", "p": self.p}

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomErasing:
    """With probability ``p`` per sample, set a random rectangle to ``value`` (PyTorch's
    ``RandomErasing`` with its defaults): the rectangle covers a fraction ``scale = (lo, hi)`` of
    the image area and has an aspect ratio (h / w) drawn log-uniformly from ``ratio``; a
    rectangle that does not fit is not drawn again but clipped to the image."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        p = check_number("RandomErasing", "p", p, low=0, high=1)
        value = check_number("RandomErasing", "value", value)
        scale, ratio = _range("scale", scale, high=1), _range("ratio", ratio)
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def __call__(self, x):
        _check(x, type(self).__name__)
        n, _, H, W = x.shape
        rng = get_rng()
        area = rng.uniform(*self.scale, size=n) * H * W
        aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), size=n))
        h = np.clip(np.rint(np.sqrt(area * aspect)), 1, H).astype(np.int64)
        w = np.clip(np.rint(np.sqrt(area / aspect)), 1, W).astype(np.int64)
        top = (rng.random(n) * (H - h + 1)).astype(np.int64)
        left = (rng.random(n) * (W - w + 1)).astype(np.int64)
        erase = rng.random(n) < self.p
        rows = np.arange(H)[None, :, None]                               # (1, H, 1)
        cols = np.arange(W)[None, None, :]                               # (1, 1, W)
        inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
                  & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]))
        mask = (inside & erase[:, None, None])[:, None]                  # (N, 1, H, W)
        return np.where(mask, np.asarray(self.value, x.dtype), x)

    def config(self):
        return {"name": "RandomErasing", "p": self.p, "scale": list(self.scale), "ratio": list(self.ratio),
                "value": self.value}

    def __repr__(self):
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value})"


def _range(name, pair, high=None):
    """RandomErasing's ``(lo, hi)`` with ``0 < lo <= hi`` (``<= high``), else ConfigError."""
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise ConfigError(f"RandomErasing: {name} must be a pair (lo, hi), got {pair!r}")
    lo, hi = (check_number("RandomErasing", name, v, low=0, low_open=True, high=high) for v in pair)
    if lo > hi:
        raise ConfigError(f"RandomErasing: {name} must be (lo, hi) with lo <= hi, got {pair!r}")
    return lo, hi


class Compose:
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def config(self):
        return {"name": "Compose", "transforms": [t.config() for t in self.transforms]}

    def __repr__(self):
        return f"Compose({self.transforms})"


AUGMENTATIONS = {"RandomCrop": RandomCrop, "RandomShift": RandomShift,
                 "RandomHorizontalFlip": RandomHorizontalFlip, "RandomErasing": RandomErasing}


def augment_from_config(config):
    """Rebuild a transform from its ``config()`` dict."""
    config = dict(config)
    name = config.pop("name", None)
    if name == "Compose":
        return Compose([augment_from_config(c) for c in config["transforms"]])
    if name not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation {name!r}; known: Compose, {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](**config)


_PART = re.compile(r"^(shift|crop|flip|erase)(\d*)$")


def augment_from_name(name):
    """A transform from a short name, as on the command line: ``shiftN`` (RandomShift(N)),
    ``cropN`` (RandomCrop with padding N), ``flip`` (RandomHorizontalFlip(0.5)), ``erase``
    (RandomErasing(0.5)) or ``eraseP`` (probability P percent, e.g. ``erase25``), joined
    with ``-`` or ``+``, e.g. ``"crop4-flip"``; ``"none"`` or ``""`` gives ``None``."""
    if name is None or str(name).strip().lower() in ("", "none"):
        return None
    parts = []
    for token in re.split(r"[-+,]", str(name).strip().lower()):
        m = _PART.match(token)
        if not m or (m.group(1) == "flip" and m.group(2)) or (m.group(1) == "erase" and m.group(2)
                                                              and int(m.group(2)) > 100):
            raise ConfigError(f"unknown augmentation {token!r} in {name!r}: use shiftN, cropN, flip or erase[P], "
                              f"joined with '-', e.g. crop4-flip")
        kind = m.group(1)
        if kind == "erase":
            parts.append(RandomErasing(int(m.group(2)) / 100 if m.group(2) else 0.5))
            continue
        n = int(m.group(2) or 2)
        parts.append(RandomShift(n) if kind == "shift" else RandomCrop(padding=n) if kind == "crop"
                     else RandomHorizontalFlip(0.5))
    return parts[0] if len(parts) == 1 else Compose(parts)
