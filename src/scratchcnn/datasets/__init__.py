"""Data sets, ready for a model, and data augmentation.

    >>> from scratchcnn.datasets import load_dataset
    >>> data = load_dataset("mnist", classes=(0, 1, 2), per_class=25, test_per_class=10)
    >>> data.x_train.shape, data.class_names
    ((75, 1, 28, 28), ['0', '1', '2'])

Known data sets: ``mnist``, ``fashion-mnist``, ``cifar10`` (RGB; ``grayscale=True`` for one
channel), ``digits`` (scikit-learn's 8x8 copy) and ``optdigits`` (the full UCI set).
Files are found in ``data_dir`` / ``$SCRATCHCNN_DATA``, the cache, system copies, or
downloaded and checked against SHA-256 digests (see :mod:`.sources`).

Your own data: :func:`load_data` (a folder of class folders, CSV, .npz, IDX, ``mnist.pkl.gz``,
HDF5; the format told from the path) returns the same :class:`Dataset`, through the same steps.
One reader per format returns the raw arrays (:class:`RawData`): :func:`read_image_folder`,
:func:`read_csv`, :func:`read_npz`, :func:`read_idx_dataset`, :func:`read_mnist_pickle`,
:func:`read_hdf5`.

    >>> data = load_data("pets/", image_size=32, val_split=0.1)   # pets/cat/*.jpg, pets/dog/*.png
"""
from .augment import (Compose, RandomCrop, RandomErasing, RandomHorizontalFlip, RandomShift, augment_from_config,
                      augment_from_name)
from .arrays import RawData
from .files import FORMATS, describe, detect_format, load_data
from .folder import read_image_folder
from .formats import read_csv, read_hdf5, read_idx_dataset, read_mnist_pickle, read_npz
from .loaders import Dataset, build_dataset, load_dataset
from .registry import DATASETS, available_datasets
from .sources import CHECKSUMS, MIRRORS, cache_dir

__all__ = ["CHECKSUMS", "Compose", "DATASETS", "Dataset", "FORMATS", "MIRRORS", "RandomCrop",
           "RandomErasing", "RandomHorizontalFlip", "RandomShift", "RawData", "augment_from_config", "augment_from_name",
           "available_datasets", "build_dataset", "cache_dir", "describe", "detect_format", "load_data",
           "load_dataset", "read_csv", "read_hdf5", "read_idx_dataset", "read_image_folder", "read_mnist_pickle",
           "read_npz"]
