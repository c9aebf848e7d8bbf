"""Exception types raised by scratchcnn.

Every error a user can cause is a subclass of :class:`ScratchCNNError`, so one
``except scratchcnn.ScratchCNNError`` catches them all, and each message names the
layer, file or data set involved and what was expected.
"""


class ScratchCNNError(Exception):
    """Base class of every error scratchcnn raises on purpose."""


class ShapeError(ScratchCNNError, ValueError):
    """An array has the wrong shape, dtype or number of dimensions for a layer."""


class ConfigError(ScratchCNNError, ValueError):
    """A layer, optimizer or model was built with invalid arguments."""


class LabelError(ScratchCNNError, ValueError):
    """Targets do not match the model's output (out of range, wrong length)."""


class TrainingDivergedError(ScratchCNNError, FloatingPointError):
    """The loss became NaN or infinite during training."""

    def __init__(self, message, epoch=None, batch=None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch


class ModelFileError(ScratchCNNError, OSError):
    """A model file is missing, truncated, corrupted or of an unknown format."""


class DatasetError(ScratchCNNError, OSError):
    """A data set is unknown, missing, or its files are corrupted."""


class ExportError(ScratchCNNError, ValueError):
    """A model cannot be exported (a layer the format has no operator for), or the package an
    export needs (onnx, onnxruntime, torch) is not installed."""
