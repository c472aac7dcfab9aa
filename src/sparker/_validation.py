"""Input validation shared by the estimator, the test functions and the command line.

Every public function of SparKer that accepts user data passes it through these helpers
first, so that the computational code can assume clean input: a C-contiguous ``float64``
array of shape ``(n_samples, n_features)`` with finite entries, and optional non-negative
per-point weights of shape ``(n_samples,)``.  Settings (counts, seeds, widths, fractions,
names from a registry, switches) go through the scalar checks at the end of the module,
which every layer shares.

Error messages always start with the name of the offending argument (for example
``"reference: ..."``) and say what was expected, so that the same messages serve the
Python API and the command line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "InvalidParameterError",
    "check_bool",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_real",
    "check_seed",
    "is_int",
    "is_real",
    "check_device",
    "check_array",
    "check_feature_names",
    "check_n_features",
    "column_names",
    "check_weights",
]

# numpy dtype kinds accepted as numeric and converted to float64:
# b = bool, i = signed integer, u = unsigned integer, f = floating point.
_NUMERIC_KINDS = frozenset("biuf")
# Kinds that may hold numbers in disguise (Python objects, text): try to convert.
_CONVERTIBLE_KINDS = frozenset("OUS")


def check_array(
    X: Any, *, name: str, min_samples: int = 1, lean: bool = False
) -> tuple[np.ndarray, list[str] | None, torch.device | None]:
    """Validate a 2-D sample and convert it to a float64 NumPy array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy array, torch tensor (on any device), pandas DataFrame or nested sequence of
        numbers. Boolean, integer and any floating dtype are accepted. A pandas Series
        or any 1-D input is rejected: reshape a single feature with ``reshape(-1, 1)``.
    name : str
        Name of the argument, used as the prefix of every error message.
    min_samples : int, default=1
        Minimum number of rows required.
    lean : bool, default=False
        For large inputs: a NumPy array of real numbers (a memory map included), a
        float32/float64 torch tensor or a DataFrame of one float dtype is returned as
        it is (any such dtype, maybe read-only or not contiguous; a tensor moved to
        the CPU) instead of as a float64 copy.  The caller reads it in row chunks
        (:mod:`sparker.core.streaming`).

    Returns
    -------
    array : numpy.ndarray of shape (n_samples, n_features)
        C-contiguous, writable ``float64`` array with finite entries. It may share memory
        with ``X`` when ``X`` already is such an array.  With ``lean``, a real array with
        finite entries, possibly ``X`` itself.
    feature_names : list of str or None
        Column names of a DataFrame input (converted with ``str``), else None.
    device : torch.device or None
        Device of a torch tensor input, else None.

    Raises
    ------
    TypeError
        If ``X`` is None, a scalar, a sparse matrix, or holds non-numeric or complex
        values (for a DataFrame, the first such column is named).
    ValueError
        If ``X`` is not 2-D, has no feature, has fewer than ``min_samples`` rows, or
        contains NaN or infinite entries (their number and the first bad row are given).
    """
    array, feature_names, device = _convert(X, name=name, lean=lean)

    if array.ndim != 2:
        raise ValueError(_ndim_message(array, name=name))
    n_samples, n_features = array.shape
    if n_features == 0:
        raise ValueError(f"{name}: has 0 features; at least one feature (column) is required")
    if n_samples < min_samples:
        raise ValueError(
            f"{name}: has {n_samples} sample(s) but at least {min_samples} "
            f"{'is' if min_samples == 1 else 'are'} required"
        )
    _check_finite(array, name=name, what="entries", where="first in row")

    if lean:
        return array, feature_names, device
    array = np.ascontiguousarray(array, dtype=np.float64)
    if not array.flags.writeable:
        array = array.copy()
    return array, feature_names, device


def _convert(X: Any, *, name: str, lean: bool) -> tuple[np.ndarray, list[str] | None, torch.device | None]:
    """Turn any accepted 2-D input into a NumPy array, its column names and its device.

    The array is float64 unless ``lean`` keeps a real dtype (see :func:`check_array`); its
    shape and entries are not checked yet.
    """
    feature_names: list[str] | None = None
    device: torch.device | None = None
    if X is None:
        raise TypeError(
            f"{name}: expected a 2-D array-like of shape (n_samples, n_features), got None"
        )
    if _is_pandas(X, "DataFrame"):
        feature_names = [str(column) for column in X.columns]
        array = frame_to_array(X, name=name, lean=lean)
    elif _is_pandas(X, "Series"):
        raise ValueError(
            f"{name}: expected a 2-D array-like of shape (n_samples, n_features), got a pandas "
            "Series; use series.to_frame() if it is a single feature"
        )
    elif lean and isinstance(X, torch.Tensor) and X.layout == torch.strided \
            and X.dtype in (torch.float32, torch.float64):
        array, device = X.detach().cpu().numpy(), X.device  # no float64 copy of a float32 tensor
    else:
        array, device = _to_numpy(X, name=name)
        if not (lean and array.dtype.kind in _NUMERIC_KINDS):
            array = _to_float64(array, name=name)
    return array, feature_names, device


def check_weights(w: Any, n_samples: int, *, name: str) -> np.ndarray | None:
    """Validate optional per-point weights.

    Parameters
    ----------
    w : array-like of shape (n_samples,) or None
        NumPy array, torch tensor, pandas Series or sequence of non-negative numbers.
        None means unit weights and is returned unchanged.
    n_samples : int
        Number of samples the weights belong to.
    name : str
        Name of the argument, used as the prefix of every error message.

    Returns
    -------
    weights : numpy.ndarray of shape (n_samples,) or None
        Contiguous, writable ``float64`` copy-or-view of ``w``; None if ``w`` is None.

    Raises
    ------
    TypeError
        If ``w`` is a scalar or holds non-numeric or complex values.
    ValueError
        If ``w`` is not 1-D, its length differs from ``n_samples``, or it has NaN,
        infinite or negative entries, or all entries are zero.
    """
    if w is None:
        return None
    if _is_pandas(w, "Series") or _is_pandas(w, "DataFrame"):
        w = _pandas_to_numpy(w)
    array, _ = _to_numpy(w, name=name)
    array = _to_float64(array, name=name)
    if array.ndim != 1:
        raise ValueError(
            f"{name}: expected a 1-D array of shape (n_samples,), got shape {array.shape}"
        )
    if array.shape[0] != n_samples:
        raise ValueError(
            f"{name}: has {array.shape[0]} weights but the sample has {n_samples} points"
        )
    _check_finite(array, name=name, what="weights", where="first at index")
    negative = array < 0
    n_negative = int(np.count_nonzero(negative))
    if n_negative:
        first = int(np.argmax(negative))
        raise ValueError(
            f"{name}: weights must be >= 0, found {n_negative} negative "
            f"(first at index {first}: {float(array[first])})"
        )
    if n_samples > 0 and not np.any(array > 0):
        raise ValueError(f"{name}: all weights are zero; at least one must be positive")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if not array.flags.writeable:
        array = array.copy()
    return array


def check_n_features(n_expected: int, n_got: int, *, name: str) -> None:
    """Check that a sample has as many features as the reference.

    Parameters
    ----------
    n_expected : int
        Number of features of the reference (or of the fitted model).
    n_got : int
        Number of features of the sample being checked.
    name : str
        Name of the argument, used as the prefix of the error message.

    Raises
    ------
    ValueError
        If the two numbers differ.
    """
    if n_got != n_expected:
        raise ValueError(f"{name}: has {n_got} features but the reference has {n_expected}")


def check_feature_names(
    expected: Sequence[str] | None, got: Sequence[str] | None, *, name: str
) -> None:
    """Check that a sample's feature names match the reference's.

    Nothing is checked when either side has no names (for example a NumPy array
    compared with a DataFrame).

    Parameters
    ----------
    expected : sequence of str or None
        Feature names of the reference.
    got : sequence of str or None
        Feature names of the sample being checked.
    name : str
        Name of the argument, used as the prefix of the error message.

    Raises
    ------
    ValueError
        If both are given and differ; the first mismatching position is reported.
    """
    if expected is None or got is None:
        return
    expected = [str(feature) for feature in expected]
    got = [str(feature) for feature in got]
    if expected == got:
        return
    for position, (want, have) in enumerate(zip(expected, got)):
        if want != have:
            raise ValueError(
                f"{name}: feature names differ from the reference's; first mismatch at "
                f"column {position}: got {have!r}, expected {want!r}"
            )
    raise ValueError(
        f"{name}: has {len(got)} feature names but the reference has {len(expected)}; "
        f"the first {min(len(got), len(expected))} agree"
    )


def column_names(X: Any) -> list[str] | None:
    """The column names of a DataFrame (as :func:`check_array` gives them), else None; nothing is read."""
    return [str(column) for column in X.columns] if _is_pandas(X, "DataFrame") else None


def _is_pandas(obj: Any, class_name: str) -> bool:
    """Tell whether ``obj`` is a pandas object of the given class, without importing pandas."""
    cls = type(obj)
    return cls.__module__.split(".")[0] == "pandas" and any(
        base.__name__ == class_name and base.__module__.split(".")[0] == "pandas"
        for base in cls.__mro__
    )


def frame_to_array(frame: Any, *, name: str, lean: bool = False) -> np.ndarray:
    """Convert a pandas DataFrame with numeric or boolean columns to a float64 array.

    Parameters
    ----------
    frame : pandas.DataFrame of shape (n_samples, n_features)
        The table to convert; nullable integer columns with missing values give NaN.
    name : str
        Prefix of the error messages.
    lean : bool, default=False
        Columns that all have one NumPy float dtype (e.g. float32) keep it.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_features)
        float64 array (with ``lean``, maybe of the columns' float dtype).

    Raises
    ------
    TypeError
        Naming the first column that is neither numeric nor boolean, or is complex.
    """
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    if frame.shape[0] == 0 or frame.shape[1] == 0:
        return np.empty(frame.shape, dtype=np.float64)  # nothing to convert; shape checked later
    for position, column in enumerate(frame.columns):
        series = frame.iloc[:, position]
        if is_complex_dtype(series.dtype):
            raise TypeError(
                f"{name}: column {column!r} is complex; only real numbers are supported"
            )
        if not (is_numeric_dtype(series.dtype) or is_bool_dtype(series.dtype)):
            raise TypeError(
                f"{name}: column {column!r} is not numeric (dtype {series.dtype})"
                f"{_first_non_numeric(series)}"
            )
    dtypes = set(frame.dtypes)
    if lean and len(dtypes) == 1 and isinstance(next(iter(dtypes)), np.dtype) \
            and next(iter(dtypes)).kind == "f":
        return frame.to_numpy(dtype=next(iter(dtypes)))  # float32 columns stay float32
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _pandas_to_numpy(obj: Any) -> np.ndarray:
    """Convert a pandas Series or DataFrame to NumPy, missing numeric values becoming NaN."""
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    dtypes = [obj.dtype] if obj.ndim == 1 else list(obj.dtypes)
    if all(
        (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not is_complex_dtype(dtype)
        for dtype in dtypes
    ):
        return obj.to_numpy(dtype=np.float64, na_value=np.nan)
    return obj.to_numpy()


def _first_non_numeric(series: Any) -> str:
    """Describe the first value of a pandas Series that is not a number, if any."""
    import pandas as pd

    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna().to_numpy() & series.notna().to_numpy()
    if not bad.any():
        return ""
    row = int(np.argmax(bad))
    return f", e.g. {series.iloc[row]!r} in row {row}"


def _to_numpy(X: Any, *, name: str) -> tuple[np.ndarray, torch.device | None]:
    """Turn a tensor, array or nested sequence into a NumPy array of any dtype."""
    if isinstance(X, torch.Tensor):
        if X.layout != torch.strided:
            raise TypeError(f"{name}: sparse tensors are not supported; call .to_dense() first")
        if X.is_complex():
            raise TypeError(f"{name}: complex values are not supported, got dtype {X.dtype}")
        return X.detach().to(device="cpu", dtype=torch.float64).numpy(), X.device
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name}: sparse matrices are not supported; call .toarray() first")
    if isinstance(X, np.ma.MaskedArray) and X.dtype.kind in _NUMERIC_KINDS:
        X = np.ma.filled(X.astype(np.float64), np.nan)  # masked entries become NaN
    try:
        array = np.asarray(X)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name}: cannot be converted to an array (ragged nested sequence?): {error}"
        ) from error
    if array.ndim == 0:
        raise TypeError(
            f"{name}: expected an array-like, got a scalar or non-sequence of type "
            f"{type(X).__name__}"
        )
    return array, None


def _to_float64(array: np.ndarray, *, name: str) -> np.ndarray:
    """Convert a numeric NumPy array to float64, rejecting non-numeric content."""
    kind = array.dtype.kind
    if kind in _NUMERIC_KINDS:
        return array.astype(np.float64, copy=False)
    if kind == "c":
        raise TypeError(f"{name}: complex values are not supported, got dtype {array.dtype}")
    if kind in _CONVERTIBLE_KINDS:
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name}: contains non-numeric values (dtype {array.dtype}): {error}"
            ) from error
        except OverflowError as error:
            raise ValueError(
                f"{name}: contains a number too large for float64: {error}"
            ) from error
    raise TypeError(f"{name}: expected numeric values, got dtype {array.dtype}")


def _ndim_message(array: np.ndarray, *, name: str) -> str:
    """Explain why an array that is not 2-D is rejected."""
    message = (
        f"{name}: expected a 2-D array of shape (n_samples, n_features), got {array.ndim}-D "
        f"with shape {array.shape}"
    )
    if array.ndim == 1:
        message += "; if it is a single feature, reshape it with X.reshape(-1, 1)"
    return message


#: Bytes of one row chunk of :func:`_check_finite` (a memory map is read, never held whole).
_FINITE_CHUNK_BYTES = 16 << 20


def _check_finite(array: np.ndarray, *, name: str, what: str, where: str) -> None:
    """Raise ValueError if ``array`` has NaN or infinite entries, locating the first one.

    Reads ``array`` in row chunks, so that no array-sized temporary is made.
    """
    if array.dtype.kind in "biu":
        return  # booleans and integers are always finite
    row_bytes = array.dtype.itemsize * max(1, int(np.prod(array.shape[1:], dtype=np.int64)))
    step = max(1, _FINITE_CHUNK_BYTES // row_bytes)
    starts = range(0, array.shape[0], step)
    if all(np.isfinite(array[lo:lo + step]).all() for lo in starts):
        return
    n_nan = n_bad = 0
    first = -1
    for lo in starts:
        bad = ~np.isfinite(array[lo:lo + step])
        n_nan += int(np.count_nonzero(np.isnan(array[lo:lo + step])))
        n_bad += int(np.count_nonzero(bad))
        rows = bad.reshape(bad.shape[0], -1).any(axis=1)
        if first < 0 and rows.any():
            first = lo + int(np.argmax(rows))
    n_inf = n_bad - n_nan
    raise ValueError(
        f"{name}: contains {n_nan + n_inf} non-finite {what} ({n_nan} NaN, {n_inf} inf); "
        f"{where} {first}"
    )


def check_device(device, *inputs) -> torch.device:
    """The device to compute on: ``device`` if given, else the first input's, else the CPU.

    ``inputs`` are devices returned by :func:`check_array` (None for non-tensor
    inputs).  An unknown or unusable ``device`` (e.g. ``"cuda"`` without a GPU)
    raises ValueError naming ``device`` before any work starts.
    """
    if device is not None:
        try:
            dev = torch.device(device)
            torch.empty(0, device=dev)  # fails here, not mid-fit, if the device is unusable
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
            raise ValueError(f"device: cannot use {device!r} ({type(exc).__name__}: {exc})") from None
        return dev
    for d in inputs:
        if d is not None:
            return d
    return torch.device("cpu")


class InvalidParameterError(ValueError, TypeError):
    """A setting of the wrong type: both a ``TypeError`` and a ``ValueError``.

    Raised by the scalar checks below when a value is not even of the right kind
    (a string where a number is expected, ``True`` for a count), so that callers
    catching either exception type see it (as scikit-learn's parameter checks do).
    """


def is_real(v) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def is_int(v) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _bounds(minimum, maximum) -> str:
    """``" >= a"``, ``" <= b"``, ``" in [a, b]"`` or ``""``: the range in a message."""
    if minimum is None:
        return "" if maximum is None else f" <= {maximum}"
    return f" >= {minimum}" if maximum is None else f" in [{minimum}, {maximum}]"


def check_int(value, *, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound optional).

    Parameters
    ----------
    value : object
        The setting to check: a Python or NumPy integer (not a bool).
    name : str
        Name of the argument, the prefix of the error message.
    minimum, maximum : int, optional
        Inclusive bounds.

    Returns
    -------
    int

    Raises
    ------
    InvalidParameterError
        If ``value`` is not an integer (bools included).
    ValueError
        If it is out of range.
    """
    expected = f"{name}: expected an integer{_bounds(minimum, maximum)}, got {value!r}"
    if not is_int(value):
        raise InvalidParameterError(expected)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(expected)
    return int(value)


def check_seed(seed, *, allow_none: bool = False) -> int | None:
    """A random seed: an integer >= 0 (or None when ``allow_none``), checked by :func:`check_int`."""
    if seed is None and allow_none:
        return None
    return check_int(seed, name="seed", minimum=0)


def check_real(value, *, name: str, positive: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> float:
    """``value`` as a finite ``float`` (> 0 when ``positive``; within the closed bounds given).

    Raises :class:`InvalidParameterError` for a value that is not a real number (bools
    included) and ``ValueError`` for NaN, infinities, a non-positive value when
    ``positive`` or one out of bounds, both starting with ``name``.
    """
    if not is_real(value):
        raise InvalidParameterError(f"{name}: expected a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name}: expected a finite {'positive ' if positive else ''}number, got {value!r}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name}: expected a number{_bounds(minimum, maximum)}, got {value!r}")
    return v


def check_fraction(value, *, name: str, open_interval: bool = False) -> float:
    """``value`` as a ``float`` in ``[0, 1]``, or in ``(0, 1)`` when ``open_interval``.

    The open interval suits quantiles, levels and held-out shares.  Raises
    :class:`InvalidParameterError` for a value that is not a real number (bools included)
    and ``ValueError`` for one outside the interval (NaN included), both starting with
    ``name``.
    """
    if not is_real(value):
        raise InvalidParameterError(f"{name}: expected a real number, got {value!r}")
    v = float(value)
    inside = 0.0 < v < 1.0 if open_interval else 0.0 <= v <= 1.0
    if not inside:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name}: expected a fraction in {interval}, got {value!r}")
    return v


def check_choice(value, choices, *, name: str):
    """``value`` if it is one of ``choices`` (a registry or any container).

    Raises
    ------
    ValueError
        Naming ``name`` and listing the sorted choices, also for an unhashable value.
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value


def check_bool(value, *, name: str, allow_none: bool = False) -> bool | None:
    """``True`` or ``False`` (NumPy bools too), or None when ``allow_none``.

    Raises
    ------
    InvalidParameterError
        For any other value.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name}: expected True or False{' or None' if allow_none else ''}, "
                                    f"got {value!r}")
    return bool(value)
