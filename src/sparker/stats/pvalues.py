r"""Empirical p-values of observed statistics against null toys, and their Z-scores.

Section "Calibration" of ``docs/method.md``.  With ``B`` null toys
:math:`t_0^{(1..B)}` the p-value is never 0 and has resolution :math:`1/(B+1)`:

.. math::

    p(t) = \frac{1 + \#\{b : t_0^{(b)} \ge t\}}{1 + B}, \qquad Z = \Phi^{-1}(1 - p).

Reaching a significance ``Z`` therefore takes at least :func:`toys_needed` toys.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as _st

from .._validation import check_real
from ._checks import as_float_array, check_no_nan, check_probability, check_sample, scalar_or_array

__all__ = ["empirical_pvalue", "toys_needed", "zscore"]

#: log of the largest float: beyond it 1 / p overflows
_LOG_FLOAT_MAX = math.log(np.finfo(np.float64).max)


def empirical_pvalue(t_obs: Any, null: Any) -> float | np.ndarray:
    r"""Monte-Carlo p-value of observed statistic(s) against null toys.

    Parameters
    ----------
    t_obs : float or array-like of shape (...)
        Observed statistic(s); larger means more anomalous. ``+inf``/``-inf`` are allowed,
        NaN is not.
    null : array-like of shape (n_toys,)
        Statistics of the null toys (finite).

    Returns
    -------
    pvalue : float or ndarray of shape (...)
        A float for a scalar ``t_obs``, else an array of the shape of ``t_obs``; every value
        lies in :math:`[1/(B+1), 1]`.

    Raises
    ------
    ValueError
        If ``null`` is empty, not 1-D or has non-finite values, or ``t_obs`` has NaN.

    Notes
    -----
    .. math::

        p(t) = \frac{1 + \#\{b : t_0^{(b)} \ge t\}}{1 + B}

    Ties count against the observation (``>=``), and the ``+1`` in numerator and denominator
    makes the test valid at every level and the p-value never 0. The count is done on the
    sorted toys (``searchsorted``), in :math:`O((B + n) \log B)`.
    """
    null = check_sample(null, name="null")
    t = as_float_array(t_obs, name="t_obs")
    check_no_nan(t, name="t_obs", allow_inf=True)
    return scalar_or_array(pvalue_sorted(t, np.sort(null)))


def pvalue_sorted(t: np.ndarray, sorted_null: np.ndarray) -> np.ndarray:
    """Empirical p-value of ``t`` (any shape) against ascending ``sorted_null`` (B,)."""
    n_toys = sorted_null.shape[0]
    n_above = n_toys - np.searchsorted(sorted_null, t, side="left")  # #{null >= t}
    return (1.0 + n_above) / (1.0 + n_toys)


def zscore(p: Any) -> float | np.ndarray:
    r"""One-sided Gaussian significance of p-value(s).

    Parameters
    ----------
    p : float or array-like
        p-values in :math:`(0, 1]`.

    Returns
    -------
    z : float or ndarray
        Same shape as ``p`` (a float for a scalar); ``Z(0.5) = 0`` and ``Z(1) = -inf``.

    Raises
    ------
    ValueError
        If any ``p`` is NaN or outside :math:`(0, 1]`.

    Notes
    -----
    :math:`Z = \Phi^{-1}(1 - p)`, computed as ``scipy.stats.norm.isf(p)``, which stays
    accurate for tiny ``p`` (no ``1 - p`` cancellation).
    """
    p = check_probability(p, name="p", low_open=True, high_open=False)
    return scalar_or_array(np.asarray(_st.norm.isf(p), dtype=np.float64))


def toys_needed(z: float) -> int:
    r"""Fewest null toys whose empirical p-value can reach the significance ``z``.

    Parameters
    ----------
    z : float
        One-sided Gaussian significance, :math:`p = 1 - \Phi(z)`.

    Returns
    -------
    int
        The smallest ``B`` with :math:`1/(B+1) \le p`, i.e.
        :math:`B = \lceil 1/p - 1 \rceil` (at least 1): 19 toys for ``z = 1.64``
        (``p = 0.05``), 740 for ``z = 3``, about 3.5 million for ``z = 5``.

    Raises
    ------
    ValueError
        If ``z`` is not a finite number, or so large (above about 37.5) that the count
        overflows a float.

    Notes
    -----
    This is the count at which an observation beyond every toy gets ``p = 1/(B+1)``
    and so ``Z >= z``; an observation among the toys needs more.  :math:`1/p` is
    computed as :math:`\exp(-\log(1 - \Phi(z)))` (``scipy.stats.norm.logsf``), so it
    stays accurate in the far tail.
    """
    z = check_real(z, name="z")
    log_inverse_p = -float(_st.norm.logsf(z))  # log(1 / p)
    if log_inverse_p > _LOG_FLOAT_MAX:
        raise ValueError(f"z: {z!r} is too large: the number of toys overflows")
    inverse_p = math.exp(log_inverse_p)
    # a relative tolerance keeps p = 0.05 at 19 toys, not 20, despite rounding in 1/p
    return max(1, math.ceil(inverse_p * (1.0 - 1e-12) - 1.0))
