"""scratchcnn: convolutional neural networks from scratch in NumPy.

    >>> import scratchcnn as sc
    >>> model = sc.Sequential(sc.Conv2D(1, 8, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2),
    ...                       sc.Flatten(), sc.Dense(8 * 14 * 14, 10), input_shape=(1, 28, 28))
"""
from . import optim
from .kernels.allocator import tune_on_import as _tune_allocator
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .errors import (ConfigError, DatasetError, LabelError, ModelFileError, ScratchCNNError, ShapeError,
                     TrainingDivergedError)
from .gradcheck import gradcheck
from .losses import CrossEntropyLoss, MSELoss
from .nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                 LeakyReLU, MaxPool2D, Module, Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh, no_grad)
from .random import get_rng, manual_seed
from .serialization import load, save
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

_tune_allocator()     # keep freed memory for reuse (see scratchcnn.kernels.allocator)

__all__ = [
    "AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Callback", "ConfigError", "Conv2D", "CrossEntropyLoss",
    "DatasetError", "Dense", "Dropout", "EarlyStopping", "Flatten", "GlobalAvgPool2D", "History",
    "LabelError", "LeakyReLU", "MSELoss", "MaxPool2D", "ModelCheckpoint", "ModelFileError", "Module",
    "Parameter", "ReLU", "ScratchCNNError", "Sequential", "ShapeError", "Sigmoid", "Softmax", "Tanh",
    "TrainingDivergedError", "get_num_threads", "get_rng", "gradcheck", "load", "manual_seed", "no_grad",
    "optim", "save", "set_num_threads",
]
