"""The UCI "Optical Recognition of Handwritten Digits" data: 8x8 images, values 0..16.

Each image is a 32x32 binary bitmap cut into 4x4 blocks, each pixel counting the ink
pixels of its block (hence 0..16).

- ``optdigits``: the full UCI set, ``optdigits.tra`` (3823 rows) and ``optdigits.tes``
  (1797 rows), 5620 in all; each row is 64 comma-separated pixel counts then the label.
- ``digits``: the copy inside scikit-learn (``sklearn.datasets.load_digits``): the 1797
  images of ``optdigits.tes``; it has no test split of its own, so a fixed stratified
  20% is held out as the test set (the same for every run, whatever the seed).
"""
import os

import numpy as np

from ..errors import DatasetError

OPTDIGITS_ROWS = {"optdigits.tra": 3823, "optdigits.tes": 1797}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def read_optdigits(path):
    """One optdigits CSV file: x ``(N, 1, 8, 8)`` uint8 in 0..16, y ``(N,)`` int64 in 0..9."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
        rows = [line.split(",") for line in text.split() if line.strip()]
        table = np.array(rows, dtype=np.int64)
    except (OSError, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{path}: not an optdigits file (expected rows of 65 comma-separated integers): "
                           f"{exc}") from None
    if table.ndim != 2 or table.shape[1] != 65:
        raise DatasetError(f"{path}: expected rows of 65 comma-separated integers (64 pixels, then the label)")
    expected = OPTDIGITS_ROWS.get(os.path.basename(path))
    if expected is not None and len(table) != expected:
        raise DatasetError(f"{path}: expected {expected} rows, found {len(table)} (truncated or corrupted?)")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: pixel values must be in 0..16 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 1, 8, 8), labels


def stratified_split(y, fraction, rng):
    """Indices ``(keep, held_out)`` holding out ``round(fraction * n_c)`` of each class c,
    chosen at random with ``rng``; both sorted."""
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        held.append(rng.permutation(idx)[:int(round(fraction * len(idx)))])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held)
    return keep, held


def load_sklearn_digits():
    """scikit-learn's 1797 digits split 80/20 (stratified, fixed): x uint8 (N, 1, 8, 8) in 0..16."""
    try:
        from sklearn.datasets import load_digits
        bunch = load_digits()
    except Exception as exc:  # missing or broken scikit-learn install
        raise DatasetError(f"digits: cannot load scikit-learn's copy (sklearn.datasets.load_digits): "
                           f"{exc}") from None
    x = bunch.images.astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, DIGITS_TEST_FRACTION, np.random.default_rng(DIGITS_SPLIT_SEED))
    return x[train], y[train], x[test], y[test]
