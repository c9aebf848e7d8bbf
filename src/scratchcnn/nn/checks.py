"""Argument checks shared by the layers' constructors: each raises ConfigError naming the layer,
the argument and what was expected, before anything is allocated."""
import math

import numpy as np

from ..errors import ConfigError
from .sizes import check_parameters


def positive_int(who, name, value):
    """``value`` as an int >= 1 (a bool, a float or a string is refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def flag(who, name, value):
    """``value`` as a bool: True or False only (not "no", 2 or None)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)


def number(who, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds given (``*_open``: the bound excluded)."""
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        where = []
        if low is not None:
            where.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            where.append(f"{'<' if high_open else '<='} {high}")
        raise ConfigError(f"{who}: {name} must be a finite number{' ' + ' and '.join(where) if where else ''}, "
                          f"got {value!r}")
    return float(value)


def float_dtype(who, dtype):
    """``dtype`` as a NumPy floating dtype (float16, float32, float64)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.kind != "f":
        raise ConfigError(f"{who}: dtype must be a floating point type such as np.float32, got {dtype!r}")
    return dt


def weights_fit(who, count, dtype):
    """Refuse, before they are drawn, weights that would not fit in memory (see :mod:`.sizes`)."""
    check_parameters(who, count, np.dtype(dtype).itemsize)
