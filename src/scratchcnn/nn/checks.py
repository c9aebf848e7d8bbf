"""Argument checks shared by the layers' constructors: each raises ConfigError naming the layer,
the argument and what was expected, before anything is allocated."""
import math

import numpy as np

from ..errors import ConfigError
from ..kernels.im2col import normalize_padding, pair
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


def number(who, name, value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` as a float (or int with ``integer``), checked: a real, finite number (not a bool,
    a string or NaN) within ``[low, high]`` (``low_open`` / ``high_open``: the bound excluded);
    else ConfigError naming ``who`` and ``name``. The one number check of the library (optim,
    losses, the layers and the command line's settings call it)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok and integer and not isinstance(value, (int, np.integer)):
        ok = False
    if ok:
        try:
            ok = math.isfinite(value)      # False for NaN and infinities
        except OverflowError:             # an int too large for a float
            ok = False
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
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{who}: {name} must be {kind}{' ' + ' and '.join(where) if where else ''}, "
                          f"got {value!r}")
    return int(value) if integer else float(value)


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


def conv_arguments(who, in_channels, out_channels, kernel_size, stride, padding, dilation, groups):
    """Conv2D's geometry, checked: ``(in_channels, out_channels, kernel_size, stride, padding,
    pads, dilation, groups)`` with the pairs as tuples, ``padding`` as given (a string) or a
    pair, and ``pads`` as ``(top, bottom, left, right)``. ``groups`` must divide both channel
    counts (PyTorch's rule); kernel_size, stride and dilation must be >= 1."""
    cin, cout = positive_int(who, "in_channels", in_channels), positive_int(who, "out_channels", out_channels)
    pairs = {}
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        pairs[name] = pair(value, f"{who} {name}")
        if min(pairs[name]) < 1:
            raise ConfigError(f"{who}: {name} must be >= 1, got {value!r}")
    groups = positive_int(who, "groups", groups)
    if cin % groups or cout % groups:
        raise ConfigError(f"{who}: groups={groups} must divide in_channels ({cin}) and out_channels ({cout}); "
                          f"depthwise convolution is groups=in_channels")
    padding = padding if isinstance(padding, str) else pair(padding, f"{who} padding")
    pads = normalize_padding(padding, pairs["kernel_size"], pairs["stride"], who, pairs["dilation"])
    return cin, cout, pairs["kernel_size"], pairs["stride"], padding, pads, pairs["dilation"], groups
