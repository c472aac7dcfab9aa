"""Array checks shared by the statistics modules (private).

Each helper converts its input to ``float64`` and raises a ``ValueError`` (``TypeError``
for non-numeric input) whose message starts with the argument's name.  Scalar settings
are checked by :mod:`sparker._validation` instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

def as_float_array(x: Any, *, name: str) -> np.ndarray:
    """Convert to a float64 ndarray, raising a named TypeError for non-numeric input."""
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected real numbers, got {type(x).__name__}: {error}") from error
    return array


def check_sample(x: Any, *, name: str, allow_inf: bool = False, min_size: int = 1) -> np.ndarray:
    """Validate a 1-D sample of statistics (null or signal toys).

    Returns a contiguous float64 array of shape (n,); raises ValueError naming ``name`` if it
    is not 1-D, has fewer than ``min_size`` entries, or contains NaN (or infinities unless
    ``allow_inf``).
    """
    array = as_float_array(x, name=name)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of statistics, got shape {array.shape}")
    if array.size < min_size:
        raise ValueError(
            f"{name}: has {array.size} value(s) but at least {min_size} "
            f"{'is' if min_size == 1 else 'are'} required"
        )
    check_no_nan(array, name=name, allow_inf=allow_inf)
    return np.ascontiguousarray(array)


def check_no_nan(array: np.ndarray, *, name: str, allow_inf: bool) -> None:
    """Raise ValueError naming ``name`` if ``array`` has NaN (or inf unless ``allow_inf``)."""
    bad_nan = np.isnan(array)
    bad_inf = np.zeros_like(bad_nan) if allow_inf else np.isinf(array)
    n_nan, n_inf = int(np.count_nonzero(bad_nan)), int(np.count_nonzero(bad_inf))
    if n_nan or n_inf:
        first = int(np.argmax((bad_nan | bad_inf).ravel()))
        index = np.unravel_index(first, array.shape) if array.ndim > 1 else first
        allowed = "NaN is" if allow_inf else "NaN and infinities are"
        raise ValueError(
            f"{name}: contains {n_nan} NaN and {n_inf} infinite value(s) (first at index "
            f"{index}); {allowed} not allowed"
        )


def check_probability(p: Any, *, name: str, low_open: bool, high_open: bool) -> np.ndarray:
    """Validate probabilities in (0, 1], [0, 1] etc.; returns a float64 array of any shape."""
    array = as_float_array(p, name=name)
    too_low = array <= 0 if low_open else array < 0
    too_high = array >= 1 if high_open else array > 1
    bad = np.isnan(array) | too_low | too_high
    if np.any(bad):
        first = float(np.asarray(array)[bad].flat[0])
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name}: values must lie in {interval}, got {first!r}")
    return array


def scalar_or_array(array: np.ndarray) -> float | np.ndarray:
    """Return a Python float for a 0-d array, else the array itself."""
    return float(array) if array.ndim == 0 else array
