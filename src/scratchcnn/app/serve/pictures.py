"""Arrays -> small PNG pictures (as ``data:`` URLs) for the web page, with Pillow.

Each picture is contrast-stretched to 0..255 (the page shows patterns, not values)
and enlarged with nearest-neighbour sampling so a 7 x 7 map stays crisp.
"""
import base64
import io
import math

import numpy as np
from PIL import Image


def png_data_url(pixels):
    """``pixels``: (H, W) or (H, W, 3) uint8 -> ``"data:image/png;base64,..."``."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def stretch(a, axes=None, symmetric=False):
    """Scale ``a`` to 0..255 uint8 over ``axes`` (min -> 0, max -> 255; a constant array -> 0).

    symmetric: map -m..m (m = max |a|) so that zero is mid-grey (for filters, whose sign matters)."""
    a = np.asarray(a, dtype=np.float32)
    if symmetric:
        m = np.abs(a).max(axis=axes, keepdims=True)
        lo, span = -m, 2 * m
    else:
        lo = a.min(axis=axes, keepdims=True)
        span = a.max(axis=axes, keepdims=True) - lo
    out = np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.5 if symmetric else 0.0)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def enlarge(pixels, min_size):
    """Repeat the pixels of one (H, W[, 3]) image so its shorter side is at least ``min_size``."""
    return _enlarge_all(pixels[None], min_size)[0]


def tile(maps, columns, gap=1, fill=255):
    """Lay out ``maps``: (N, h, w) or (N, h, w, 3) uint8 on a grid ``columns`` wide with ``gap``
    pixels of ``fill`` between them -> one (H, W[, 3]) image. No loop: pad, reshape, transpose."""
    n, h, w = maps.shape[:3]
    rest = maps.shape[3:]
    rows = math.ceil(n / columns)
    padded = np.full((rows * columns, h + gap, w + gap) + rest, fill, dtype=np.uint8)
    padded[:n, :h, :w] = maps
    grid = padded.reshape((rows, columns, h + gap, w + gap) + rest)
    grid = grid.swapaxes(1, 2).reshape((rows * (h + gap), columns * (w + gap)) + rest)
    return grid[:-gap, :-gap] if gap else grid


def model_input_picture(x, min_size=112):
    """The prepared input ``x``: (C, H, W) as the model sees it (C = 1 grey, 3 RGB, else channel 0)."""
    x = np.asarray(x)
    if x.shape[0] == 3:
        pixels = stretch(np.moveaxis(x, 0, -1))
    else:
        pixels = stretch(x[0])
    return png_data_url(enlarge(pixels, min_size))


def feature_map_grid(a, max_maps=32, columns=8, min_size=40):
    """One example's activations ``a``: (C, H, W) -> ``(data URL, maps shown)``; each map is
    stretched on its own so weak and strong channels are equally visible."""
    a = np.asarray(a)[:max_maps]
    if a.ndim == 1:                      # e.g. GlobalAvgPool2D: one number per channel
        a = a[:, None, None]
    a = a.reshape(a.shape[0], a.shape[-2], a.shape[-1])
    maps = stretch(a, axes=(1, 2))
    return png_data_url(tile(_enlarge_all(maps, min_size), min(columns, len(maps)), gap=2)), len(a)


def _enlarge_all(maps, min_size):
    """(N, h, w[, 3]) -> each map's pixels repeated by one integer factor (shorter side >= min_size)."""
    h, w = maps.shape[1:3]
    k = max(1, math.ceil(min_size / max(min(h, w), 1)))
    return maps.repeat(k, axis=1).repeat(k, axis=2)


def filter_grid(weights, max_filters=64, columns=8, min_size=32):
    """First-layer filters ``weights``: (out, in, kh, kw) -> ``(data URL, filters shown)``.

    3 input channels are shown as colour, otherwise the first input channel in grey;
    each filter is scaled on its own with zero as mid-grey (dark = negative weight)."""
    w = np.asarray(weights)[:max_filters]
    if w.shape[1] == 3:
        maps = stretch(np.moveaxis(w, 1, -1), axes=(1, 2, 3), symmetric=True)
    else:
        maps = stretch(w[:, 0], axes=(1, 2), symmetric=True)
    return png_data_url(tile(_enlarge_all(maps, min_size), min(columns, len(maps)), gap=2)), len(w)
