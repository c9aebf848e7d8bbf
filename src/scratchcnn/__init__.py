"""scratchcnn: convolutional neural networks from scratch in NumPy.

    >>> import scratchcnn as sc
    >>> model = sc.Sequential(sc.Conv2D(1, 8, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2),
    ...                       sc.Flatten(), sc.Dense(8 * 14 * 14, 10), input_shape=(1, 28, 28))

The package in floors, each importing only from the floors below it (docs/reading-guide.md
walks through them): ``errors``, ``random``, ``fileio``, ``threads``; the layers ``nn`` and the
fast ``kernels``; ``losses`` and ``optim``; ``callbacks``, ``training``, ``summary``,
``gradcheck``, ``serialization`` and ``model`` (the ``Sequential`` with ``fit``); ``datasets``,
``images``, ``metrics``; and the application wing ``scratchcnn.app`` (command line, runs,
reports, plots, presets, spec strings, introspection, export, web page).
"""
from . import optim
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, TimeBudget
from .errors import (ConfigError, DatasetError, ExportError, LabelError, ModelFileError, ScratchCNNError,
                     ShapeError, TrainingDivergedError)
from .diagnostics import GradientDiagnostics
from .doctor import doctor
from .gradcheck import gradcheck
from .kernels import textbook, textbook_enabled, use_textbook
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, MultiMarginLoss
from .optim import clip_grad_norm_
from .model import Sequential, load
from .nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                 LeakyReLU, MaxPool2D, Module, Parameter, ReLU, Sigmoid, Softmax, Tanh, no_grad)
from .nn import Residual, basic_block
from .nn import GroupNorm, LayerNorm
from .random import get_rng, manual_seed
from .serialization import save
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "AvgPool2D", "GroupNorm", "LayerNorm", "BatchNorm1D", "BatchNorm2D", "Callback", "ConfigError", "Conv2D", "CrossEntropyLoss",
    "DatasetError", "Dense", "Dropout", "ExportError", "EarlyStopping", "Flatten", "GlobalAvgPool2D", "History",
    "LabelError", "LeakyReLU", "MSELoss", "MaxPool2D", "ModelCheckpoint", "ModelFileError", "Module",
    "Parameter", "ReLU", "Residual", "ScratchCNNError", "Sequential", "ShapeError", "Sigmoid", "Softmax", "Tanh",
    "TimeBudget",
    "BCEWithLogitsLoss", "MultiMarginLoss", "clip_grad_norm_",
    "TrainingDivergedError", "doctor", "GradientDiagnostics", "get_num_threads", "get_rng", "gradcheck", "load", "manual_seed", "no_grad",
    "basic_block", "optim", "save", "set_num_threads", "textbook", "textbook_enabled", "use_textbook",
]
