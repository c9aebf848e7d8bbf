"""Inverted dropout."""
import numpy as np

from ..random import get_rng
from .checks import number
from .module import Module


class Dropout(Module):
    """``Dropout(p=0.5)``: inverted dropout, a regulariser active in training only.

    Shape: x: (N, ...) float32 -> y: x's shape, float32 (a float64 x stays float64).
    Forward: training: ``y = x * mask``, ``mask = (u >= p) / (1 - p)`` with ``u`` uniform in [0, 1) per element
        (from :func:`scratchcnn.get_rng`): each element is zeroed with probability ``p`` and the survivors
        scaled so that ``E[y] = x``. Eval mode (or ``p = 0``): ``y = x``, the same array.
    Backward: y is x times a constant mask: ``dx = dy * mask`` in training, ``dx = dy`` in eval.
    Example:
        >>> import numpy as np; import scratchcnn as sc
        >>> drop = sc.Dropout(0.5)
        >>> sorted(set(drop(np.ones((1, 1000))).ravel().tolist()))
        [0.0, 2.0]
        >>> drop.eval()(np.ones((1, 2))).tolist()
        [[1.0, 1.0]]

    See also: no loop (random in training, identity in eval); :func:`scratchcnn.manual_seed` for repeatable masks.
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = number("Dropout", "p", p, low=0, high=1, high_open=True)   # "p must be in [0, 1)"
        self._mask = None     # the training mask times 1 / (1 - p); None: identity

    def config(self):
        return {"p": self.p}

    def forward(self, x):
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = get_rng().random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad_out):
        return grad_out if self._mask is None else grad_out * self._mask

    def _clear_cache(self):
        self._mask = None
