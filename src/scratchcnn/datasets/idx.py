"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

An IDX file is a 4-byte magic number ``00 00 TT D`` (``TT`` the element type, ``D``
the number of dimensions), then ``D`` big-endian uint32 sizes, then the elements in
C order, big-endian. MNIST's images are ``(N, 28, 28)`` uint8, its labels ``(N,)`` uint8.
"""
import math
import os
import zlib

import numpy as np

from ..errors import DatasetError

#: an IDX file (decompressed) larger than this is refused (EMNIST's largest is about 550 MB)
MAX_IDX_BYTES = 2 << 30
#: IDX type code -> NumPy dtype (big-endian where it matters).
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx_bytes(data, source="<bytes>"):
    """Parse the bytes of an (uncompressed) IDX file into an array of its stored shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DatasetError(f"{source}: not an IDX file (bad magic number {data[:4].hex()!r})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DatasetError(f"{source}: IDX file of 0 dimensions (a file of examples has at least one)")
    if len(data) < header:
        raise DatasetError(f"{source}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if 0 in shape:
        raise DatasetError(f"{source}: IDX file of shape {shape} holds nothing (a size of 0: no examples, or "
                           f"images with no pixels)")
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(f"{source}: IDX file of shape {shape} should be {expected} bytes, but it is "
                           f"{len(data)} bytes (truncated or corrupted)")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path):
    """Read an IDX file (``.gz`` or not): returns a NumPy array of its stored shape and type."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IDX_BYTES + 1)
        if data[:2] == b"\x1f\x8b":
            data = _gunzip(data, path)
        elif len(data) > MAX_IDX_BYTES:
            raise DatasetError(f"{path}: larger than {MAX_IDX_BYTES >> 20} MiB, more than an IDX data set holds")
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read IDX file (truncated or corrupted gzip?): {exc}") from None
    return read_idx_bytes(data, path)


def _gunzip(data, source):
    """Decompress gzip ``data`` (every member), at most :data:`MAX_IDX_BYTES`; a truncated or
    corrupted stream (its CRC is checked) raises DatasetError."""
    out, rest = [], data
    total = 0
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = d.decompress(rest, MAX_IDX_BYTES + 1 - total)
        total += len(chunk)
        if total > MAX_IDX_BYTES:
            raise DatasetError(f"{source}: decompresses to more than {MAX_IDX_BYTES >> 20} MiB, more than an IDX "
                               f"data set holds")
        if not d.eof:
            raise DatasetError(f"{source}: the gzip stream is truncated")
        out.append(chunk)
        rest = d.unused_data.lstrip(b"\x00")
    return b"".join(out)


def read_idx_pair(images_path, labels_path):
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 from two IDX files, checked: the
    images (N, H, W) uint8, the labels (N,) integers, as many of them as images."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected (N, H, W) uint8 images, got {images.shape} {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(f"{labels_path}: expected {len(images)} labels for {images_path}, "
                           f"got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{labels_path}: labels must be integers, got IDX type {labels.dtype}")
    return images[:, None], labels.astype(np.int64)
