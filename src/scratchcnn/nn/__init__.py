"""Layers: each a Module with a hand-written forward and backward pass."""
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, log_softmax, softmax
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .dropout import Dropout
from .linear import Dense, Flatten
from .module import LAYER_REGISTRY, Module, Parameter, is_grad_enabled, no_grad
from .norm import GroupNorm, LayerNorm
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .residual import Residual, basic_block
from .sequential import Sequential

__all__ = ["AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Conv2D", "Dense", "Dropout", "Flatten",
           "GlobalAvgPool2D", "GroupNorm", "LAYER_REGISTRY", "LayerNorm", "LeakyReLU", "MaxPool2D", "Module", "Parameter", "ReLU",
           "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "is_grad_enabled", "log_softmax", "no_grad",
           "softmax", "basic_block"]
