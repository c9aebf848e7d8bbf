"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

An IDX file is a 4-byte magic number ``00 00 TT D`` (``TT`` the element type, ``D``
the number of dimensions), then ``D`` big-endian uint32 sizes, then the elements in
C order, big-endian. MNIST's images are ``(N, 28, 28)`` uint8, its labels ``(N,)`` uint8.
"""
import gzip
import os
import zlib

import numpy as np

from ..errors import DatasetError

#: IDX type code -> NumPy dtype (big-endian where it matters).
IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx_bytes(data, source="<bytes>"):
    """Parse the bytes of an (uncompressed) IDX file into an array of its stored shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DatasetError(f"{source}: not an IDX file (bad magic number {data[:4].hex()!r})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
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
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read IDX file (truncated or corrupted gzip?): {exc}") from None
    return read_idx_bytes(data, path)


def read_idx_pair(images_path, labels_path):
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 from two IDX files, checked."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected (N, H, W) uint8 images, got {images.shape} {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(f"{labels_path}: expected {len(images)} labels for {images_path}, "
                           f"got shape {labels.shape}")
    return images[:, None], labels.astype(np.int64)
