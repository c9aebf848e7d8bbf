"""Turn any image into a model input, exactly as the training data were prepared.

:func:`prepare_image` takes a file path, a PIL image or an array, of any size and mode
(L, RGB, RGBA, P, ...), and returns ``(C, H, W)`` float32 ready for ``model.predict``:

1. decode (transparent pixels are composited onto white, like a drawing on paper);
2. convert to the model's channels (``L`` uses ITU-R 601 luma, as the data sets do);
3. pixel values to 0..1; invert dark-on-light images for white-on-black data sets
   (MNIST-like: automatically when the mean brightness is above 0.5);
4. optionally centre a drawn digit MNIST-style (``center=True``);
5. resize (Pillow) to ``(H, W)``: box filter when shrinking, bilinear when enlarging;
6. scale like the training data: ``v * max_value`` (the raw scale), then the data set's
   normalisation: ``"scale"`` gives back ``v``, ``"standardize"`` ``(v - mean) / std``.

The ``preprocessing`` dict is the one :func:`scratchcnn.datasets.load_dataset` returns
(and a trained model keeps in ``model.metadata["preprocessing"]``).

A recipe with a ``"resize"`` entry (``"stretch"``, ``"crop"`` or ``"pad"``: the data came from
the user's own files, :func:`scratchcnn.datasets.load_data`) is followed the way those training
images were read: :func:`image_to_uint8` (the very function that decoded them: EXIF rotation,
the same gray/RGB conversion, the same uint8 resize to the training size), then the same
scaling, so a training image comes back as exactly its model input.
"""
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ConfigError, ScratchCNNError


class ImageError(ScratchCNNError, ValueError):
    """An image file cannot be read or an image array has an unusable shape."""


MNIST_BOX = 20     # MNIST digits fit a 20x20 box ...
MNIST_CANVAS = 28  # ... centred by centre of mass in a 28x28 image
INK_THRESHOLD = 0.1
#: how an image of another shape is fitted to the training size: ``stretch`` (resize, ignoring
#: the aspect ratio), ``crop`` (centre-crop to the target's aspect ratio, then resize), ``pad``
#: (resize to fit inside, keeping the aspect ratio, on a black border)
RESIZE_MODES = ("stretch", "crop", "pad")


def _open(image):
    """A PIL image from a path, a PIL image or an array (H, W), (H, W, C) or (C, H, W)."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, bytes, os.PathLike)):
        path = os.fspath(image)
        try:
            with Image.open(path) as im:
                im.load()
                return im
        except FileNotFoundError:
            raise ImageError(f"image file {path!r} does not exist") from None
        except Image.DecompressionBombError as exc:
            raise ImageError(f"image file {path!r} is too large to decode: {exc}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise ImageError(f"cannot read image file {path!r} (not an image, or corrupted): {exc}") from None
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or arr.size == 0:
        raise ImageError(f"image array must be (H, W), (H, W, 3|4) or (3|4, H, W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.integer):
        arr = (arr.astype(np.float64) * (255.0 / np.iinfo(arr.dtype).max)).round().astype(np.uint8)
    else:  # float: 0..1 if it looks like it, else 0..255
        arr = arr.astype(np.float64)
        arr = arr * 255.0 if np.nanmax(arr) <= 1.0 else arr
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def _to_mode(im, channels):
    """Composite transparency onto white, then convert to L (1 channel) or RGB (3)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode.startswith("I"):  # 16/32-bit integer gray: 0..65535 (0..255 if it fits) -> 0..255
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or arr.max() > 255:
            arr = arr / 257.0
        im = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))
    if channels == 1:
        return im.convert("L")
    if channels == 3:
        return im.convert("RGB")
    raise ConfigError(f"prepare_image: the model expects {channels} channels; only 1 or 3 are supported")


def _resize(arr, size):
    """arr: (C, h, w) float -> (C, H, W) float32 with Pillow, per channel (mode F)."""
    h, w = arr.shape[1:]
    H, W = size
    if (h, w) == (H, W):
        return arr.astype(np.float32)
    method = Image.Resampling.BOX if (H <= h and W <= w) else Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((W, H), method))
                     for c in arr]).astype(np.float32)


def _resample(src, dst):
    """Box filter when shrinking both sides, bilinear otherwise (as :func:`_resize`)."""
    return Image.Resampling.BOX if (dst[0] <= src[0] and dst[1] <= src[1]) else Image.Resampling.BILINEAR


def fit_image(im, size, resize="stretch"):
    """A PIL image (L or RGB) fitted to ``size = (H, W)`` by ``resize`` (see :data:`RESIZE_MODES`),
    in its own 8-bit mode. An image already of that size is returned as it is."""
    H, W = (int(v) for v in size)
    w, h = im.size
    if (h, w) == (H, W):
        return im
    if resize == "stretch":
        return im.resize((W, H), _resample((h, w), (H, W)))
    if resize == "crop":
        if w * H > h * W:      # wider than the target: keep the middle columns
            cw = h * W / H
            box = ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
            return im.resize((W, H), _resample((h, cw), (H, W)), box=box)
        ch = w * H / W
        box = (0.0, (h - ch) / 2, float(w), (h + ch) / 2)
        return im.resize((W, H), _resample((ch, w), (H, W)), box=box)
    if resize == "pad":
        scale = min(H / h, W / w)
        nh, nw = min(H, max(1, round(h * scale))), min(W, max(1, round(w * scale)))
        canvas = Image.new(im.mode, (W, H), 0)
        canvas.paste(im.resize((nw, nh), _resample((h, w), (nh, nw))), ((W - nw) // 2, (H - nh) // 2))
        return canvas
    raise ConfigError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")


def image_to_uint8(image, channels, size, resize="stretch"):
    """``image`` (path, PIL image or array) -> ``(C, H, W)`` uint8: EXIF rotation applied (phone
    photos), transparency onto white, converted to L (``channels=1``) or RGB (3), fitted to
    ``size = (H, W)`` by ``resize``. Reading a folder of images and preparing a photo for a
    model trained on it both go through here, so both see the same pixels."""
    im = _open(image)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a damaged EXIF block: keep the image as stored
        pass
    im = fit_image(_to_mode(im, channels), size, resize)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _prepare_like_files(image, preprocessing, channels, size, invert):
    """The recipe of data read from files (it has ``"resize"``): the training images' own
    decoding, then the loader's float32 arithmetic, step for step."""
    x = image_to_uint8(image, channels, size, preprocessing["resize"]).astype(np.float32)
    if invert is None:
        invert = bool(preprocessing.get("white_on_black")) and float(x.mean()) > 127.5
    if invert:
        x = np.float32(255.0) - x
    normalize = preprocessing.get("normalize", "scale")
    max_value = float(preprocessing.get("max_value") or 255.0)
    if normalize is None or normalize == "none":
        return np.ascontiguousarray(x * np.float32(max_value / 255.0), dtype=np.float32)
    x *= np.float32(1.0 / 255.0)
    mean, std = preprocessing.get("mean"), preprocessing.get("std")
    if mean is not None and std is not None:
        x -= np.asarray(mean, np.float64).astype(np.float32).reshape(-1, 1, 1)
        x /= np.asarray(std, np.float64).astype(np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def center_digit(arr, size=(MNIST_CANVAS, MNIST_CANVAS), box_fraction=MNIST_BOX / MNIST_CANVAS):
    """MNIST-style centring of a bright-on-dark drawing ``arr: (C, h, w)`` in 0..1.

    Crop to the ink's bounding box (pixels above 10% of the maximum), scale it to fit a
    20x20 box keeping its aspect ratio, paste it in a 28x28 canvas so that its centre of
    mass is the canvas centre, then resize to ``size``. A blank image is only resized.
    ``box_fraction``: the box's side over the canvas's (20/28 for MNIST; 1.0 for the UCI
    8x8 digits, whose 32x32 bitmaps were scaled to fill the frame).
    """
    box_side = max(1, min(MNIST_CANVAS, round(MNIST_CANVAS * float(box_fraction))))
    ink = arr.max(axis=0)
    mask = ink > INK_THRESHOLD * max(float(ink.max()), 1e-8)
    if not ink.max() > 0 or not mask.any():
        return _resize(arr, size)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = arr[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ch, cw = crop.shape[1:]
    scale = box_side / max(ch, cw)
    nh, nw = min(box_side, max(1, round(ch * scale))), min(box_side, max(1, round(cw * scale)))
    box = np.clip(_resize(crop, (nh, nw)), 0.0, None)
    weight = box.max(axis=0)
    total = weight.sum()
    cy = (weight.sum(axis=1) @ np.arange(nh)) / total if total > 0 else (nh - 1) / 2
    cx = (weight.sum(axis=0) @ np.arange(nw)) / total if total > 0 else (nw - 1) / 2
    top = int(round((MNIST_CANVAS - 1) / 2 - cy))
    left = int(round((MNIST_CANVAS - 1) / 2 - cx))
    top, left = min(max(top, 0), MNIST_CANVAS - nh), min(max(left, 0), MNIST_CANVAS - nw)
    canvas = np.zeros((arr.shape[0], MNIST_CANVAS, MNIST_CANVAS), np.float32)
    canvas[:, top:top + nh, left:left + nw] = box
    return _resize(canvas, size)


def prepare_image(image, preprocessing, center=False, invert=None):
    """``image`` (path, PIL image or array; any size and mode) -> ``(C, H, W)`` float32
    prepared as the training data described by ``preprocessing`` were.

    center: MNIST-style centring of a drawn digit (see :func:`center_digit`).
    invert: ``True``/``False`` forces inverting the brightness; ``None`` (default) inverts
    when the data set is white-on-black and the image's mean brightness is above 0.5.
    """
    try:
        channels, height, width = (int(preprocessing[k]) for k in ("channels", "height", "width"))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"prepare_image: preprocessing must give channels, height and width, got "
                          f"{preprocessing!r}") from None
    if preprocessing.get("resize") and not center:
        return _prepare_like_files(image, preprocessing, channels, (height, width), invert)
    im = _to_mode(_open(image), channels)
    arr = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, h, w), 0..1
    if invert is None:
        invert = bool(preprocessing.get("white_on_black")) and float(arr.mean()) > 0.5
    if invert:
        arr = 1.0 - arr
    if center:
        arr = center_digit(arr, (height, width), preprocessing.get("center_box", MNIST_BOX / MNIST_CANVAS))
    else:
        arr = _resize(arr, (height, width))
    arr = np.clip(arr, 0.0, 1.0)
    normalize = preprocessing.get("normalize", "scale")
    mean, std = preprocessing.get("mean"), preprocessing.get("std")
    if normalize is None or normalize == "none":
        arr = arr * np.float32(preprocessing.get("max_value") or 1.0)
    elif mean is not None and std is not None:
        m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        s = np.asarray(std, np.float32).reshape(-1, 1, 1)
        arr = (arr - m) / s
    return np.ascontiguousarray(arr, dtype=np.float32)
