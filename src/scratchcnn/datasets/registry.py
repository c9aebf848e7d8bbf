"""The known data sets: their files, class names, pixel scale and how to read them raw."""
from dataclasses import dataclass, field

from ..errors import DatasetError
from . import sources
from .cifar import read_cifar10
from .digits import load_sklearn_digits, read_optdigits
from .idx import read_idx_pair

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetInfo:
    """What scratchcnn knows about one data set.

    files: the files to fetch (empty: the data ships with a Python package);
    max_value: the raw pixel scale (255, or 16 for the 8x8 digits);
    white_on_black: bright strokes on a dark background, as MNIST (drawn images are
    inverted to match); center_box: the side of the box a centred digit fits in, over
    the image side (MNIST: 20/28; the UCI digits fill their frame: 1.0).
    """
    name: str
    description: str
    class_names: tuple
    max_value: int
    white_on_black: bool
    files: list = field(default_factory=list)
    center_box: float = 20 / 28


DATASETS = {
    "mnist": DatasetInfo("mnist", "MNIST handwritten digits, 60000/10000, 28x28 gray", DIGIT_NAMES, 255, True,
                         MNIST_FILES),
    "fashion-mnist": DatasetInfo("fashion-mnist", "Zalando's Fashion-MNIST, 60000/10000, 28x28 gray",
                                 FASHION_NAMES, 255, True, MNIST_FILES),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10, 50000/10000, 32x32 RGB", CIFAR10_NAMES, 255, False,
                           ["cifar-10-python.tar.gz"]),
    "digits": DatasetInfo("digits", "scikit-learn's 1797 UCI digits, 8x8, 0..16 (fixed 80/20 split)",
                          DIGIT_NAMES, 16, True, center_box=1.0),
    "optdigits": DatasetInfo("optdigits", "UCI optdigits, 3823/1797, 8x8, 0..16", DIGIT_NAMES, 16, True,
                             ["optdigits.tra", "optdigits.tes"], center_box=1.0),
}
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar_10": "cifar10"}


def available_datasets():
    """Names accepted by :func:`scratchcnn.datasets.load_dataset`."""
    return list(DATASETS)


def get_info(name):
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def load_raw(info, data_dir=None, download=True, progress=True):
    """``(x_train, y_train, x_test, y_test)`` as stored: x (N, C, H, W) uint8, y int64."""
    if data_dir is not None and not info.files:
        sources.search_dirs(info.name, data_dir)      # a folder that is not there is refused all the same
        sources.note(f"note: {info.name} ships with scikit-learn: --data-dir {data_dir} is not used")
    paths = sources.fetch(info.name, info.files, data_dir=data_dir, download=download,
                          progress=progress) if info.files else {}
    if info.name in ("mnist", "fashion-mnist"):
        x_train, y_train = read_idx_pair(paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"])
        x_test, y_test = read_idx_pair(paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
    elif info.name == "cifar10":
        x_train, y_train, x_test, y_test = read_cifar10(paths["cifar-10-python.tar.gz"])
    elif info.name == "optdigits":
        x_train, y_train = read_optdigits(paths["optdigits.tra"])
        x_test, y_test = read_optdigits(paths["optdigits.tes"])
    else:
        x_train, y_train, x_test, y_test = load_sklearn_digits()
    for what, y in (("training", y_train), ("test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= len(info.class_names)):
            raise DatasetError(f"{info.name}: {what} labels outside 0..{len(info.class_names) - 1}")
    return x_train, y_train, x_test, y_test
