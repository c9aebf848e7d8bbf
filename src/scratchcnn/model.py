"""The model class: ``scratchcnn.Sequential``, the layer container with a Keras-style API on top.

The layers (:mod:`scratchcnn.nn`) know only forward and backward; :class:`scratchcnn.nn.Sequential`
is their pure container, as ``torch.nn.Sequential`` is. This class adds what a user of Keras
expects of a model -- ``fit``, ``evaluate``, ``predict``, ``predict_proba``, ``summary``, ``save``
-- by calling the functions one floor up (:mod:`scratchcnn.training`, :mod:`scratchcnn.summary`,
:mod:`scratchcnn.serialization`), and keeps what a training run leaves on a model: its
``history``, its last ``optimizer`` and free-form ``metadata`` (class names, preprocessing),
all saved in the model file.

    >>> import scratchcnn as sc
    >>> model = sc.Sequential(sc.Conv2D(1, 8, 3, padding="same"), sc.ReLU(), sc.MaxPool2D(2),
    ...                       sc.Flatten(), sc.Dense(8 * 14 * 14, 10), input_shape=(1, 28, 28))
    >>> model.fit(x, y, epochs=2)                # doctest: +SKIP
"""
from . import serialization, training
from .nn import sequential
from .summary import summary as _summary


class Sequential(sequential.Sequential, register=False):
    """``Sequential(*layers, input_shape=None)``: the layers in order, and the training API.

    Everything of :class:`scratchcnn.nn.Sequential` (forward, backward, state_dict, ...), plus
    ``fit`` / ``evaluate`` / ``predict_logits`` / ``predict_proba`` / ``predict`` (see
    :mod:`scratchcnn.training`; a model with one output is a two-class sigmoid classifier:
    ``predict`` gives 0 / 1, ``predict_proba`` the columns ``[1 - p, p]``), ``summary`` and ``save``. It is saved as ``"Sequential"``, so
    model files do not depend on which of the two classes wrote them.
    """

    def __init__(self, *layers, input_shape=None):
        super().__init__(*layers, input_shape=input_shape)
        self.metadata = {}        # free-form JSON-friendly facts saved with the model
        self.history = None       # History of the last fit (kept across resumed fits)
        self.optimizer = None     # the optimizer last used by fit, saved with the model
        self.stop_training = False

    def fit(self, x, y, epochs=1, batch_size=32, optimizer=None, loss=None, validation_data=None,
            shuffle=True, callbacks=None, verbose=1, augment=None, initial_epoch=0, clip_grad_norm=None,
            workers=1):
        return training.fit(self, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                            loss=loss, validation_data=validation_data, shuffle=shuffle,
                            callbacks=callbacks, verbose=verbose, augment=augment,
                            initial_epoch=initial_epoch, clip_grad_norm=clip_grad_norm, workers=workers)

    def evaluate(self, x, y, batch_size=256, loss=None):
        return training.evaluate(self, x, y, batch_size=batch_size, loss=loss)

    def predict_logits(self, x, batch_size=256):
        return training.predict_logits(self, x, batch_size=batch_size)

    def predict_proba(self, x, batch_size=256):
        return training.predict_proba(self, x, batch_size=batch_size)

    def predict(self, x, batch_size=256):
        return training.predict(self, x, batch_size=batch_size)

    def summary(self, input_shape=None, print_fn=print):
        return _summary(self, input_shape=input_shape, print_fn=print_fn)

    def save(self, path, optimizer=None):
        return serialization.save(self, path, optimizer=optimizer)


def load(path, with_optimizer=True):
    """Load a model file written by :func:`scratchcnn.save` as a :class:`Sequential` that predicts
    exactly as the saved one did (the optimizer, if one was saved, as ``model.optimizer``)."""
    return serialization.load(path, with_optimizer=with_optimizer, model_class=Sequential)
