"""Data sets, ready for a model, and data augmentation.

    >>> from scratchcnn.datasets import load_dataset
    >>> data = load_dataset("mnist", classes=(0, 1, 2), per_class=25, test_per_class=10)
    >>> data.x_train.shape, data.class_names
    ((75, 1, 28, 28), ['0', '1', '2'])

Known data sets: ``mnist``, ``fashion-mnist``, ``cifar10`` (RGB; ``grayscale=True`` for one
channel), ``digits`` (scikit-learn's 8x8 copy) and ``optdigits`` (the full UCI set).
Files are found in ``data_dir`` / ``$SCRATCHCNN_DATA``, the cache, system copies, or
downloaded and checked against SHA-256 digests (see :mod:`.sources`).
"""
from .augment import (Compose, RandomCrop, RandomHorizontalFlip, RandomShift, augment_from_config,
                      augment_from_name)
from .loaders import Dataset, load_dataset
from .registry import DATASETS, available_datasets
from .sources import CHECKSUMS, MIRRORS, cache_dir

__all__ = ["CHECKSUMS", "Compose", "DATASETS", "Dataset", "MIRRORS", "RandomCrop", "RandomHorizontalFlip",
           "RandomShift", "augment_from_config", "augment_from_name", "available_datasets", "cache_dir",
           "load_dataset"]
