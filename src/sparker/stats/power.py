r"""Power of a calibrated test estimated from signal toys, with exact binomial intervals.

For benchmarks (section "Calibration" of ``docs/method.md``): the fraction of signal toys
rejected at a level :math:`\alpha` (or a significance Z), with a Clopper-Pearson
interval, and the median significance of the signal toys.  Levels beyond the toys'
resolution use the :math:`\chi^2` fit of :mod:`sparker.stats.chi2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import special
from scipy import stats as _st

from .._validation import check_fraction
from ._checks import as_float_array, check_probability, check_sample, scalar_or_array
from .chi2 import Chi2Fit, chi2_logsf, fit_chi2
from .pvalues import pvalue_sorted

__all__ = ["MedianZ", "PowerResult", "binomial_interval", "median_z", "power", "power_at_z"]


def binomial_interval(k: Any, n: Any, level: float = 0.99) -> tuple[Any, Any]:
    r"""Clopper-Pearson (exact) interval for a binomial proportion.

    Parameters
    ----------
    k : int or array-like of int
        Number of successes, ``0 <= k <= n``.
    n : int or array-like of int
        Number of trials, ``n >= 1`` (broadcast against ``k``).
    level : float, default=0.99
        Confidence level in (0, 1).

    Returns
    -------
    low, high : float or ndarray
        Interval bounds (floats for scalar input).

    Raises
    ------
    ValueError
        If ``k``, ``n`` or ``level`` is out of range.

    Notes
    -----
    With :math:`a = 1 - \mathrm{level}`,
    :math:`\mathrm{low} = B^{-1}(a/2;\, k, n - k + 1)` (0 when :math:`k = 0`) and
    :math:`\mathrm{high} = B^{-1}(1 - a/2;\, k + 1, n - k)` (1 when :math:`k = n`), with
    :math:`B^{-1}` the Beta quantile (``scipy.stats.beta.ppf``). Coverage is at least
    ``level`` for every true proportion.
    """
    k_arr = as_float_array(k, name="k")
    n_arr = as_float_array(n, name="n")
    if np.any(~np.isfinite(n_arr) | (n_arr < 1) | (n_arr != np.round(n_arr))):
        raise ValueError(f"n: must be integer(s) >= 1, got {n!r}")
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    if np.any(~np.isfinite(k_arr) | (k_arr < 0) | (k_arr > n_arr) | (k_arr != np.round(k_arr))):
        raise ValueError(f"k: must be integer(s) with 0 <= k <= n, got {k!r}")
    level = check_fraction(level, name="level", open_interval=True)
    return _clopper_pearson(k_arr, n_arr, level)


def _clopper_pearson(k: np.ndarray, n: np.ndarray, level: float) -> tuple[Any, Any]:
    """Clopper-Pearson bounds on validated, broadcast float arrays."""
    tail = 0.5 * (1.0 - level)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, _st.beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, _st.beta.ppf(1.0 - tail, k + 1, np.maximum(n - k, 1)), 1.0)
    return scalar_or_array(np.asarray(low, dtype=np.float64)), scalar_or_array(
        np.asarray(high, dtype=np.float64)
    )


@dataclass(frozen=True)
class PowerResult:
    r"""Power of a test at several levels, estimated from signal toys.

    All array attributes have shape (n_levels,), one entry per requested level, even for a
    single level.

    Attributes
    ----------
    alpha : ndarray
        Test levels (p-value thresholds).
    z : ndarray
        The same levels as significances, :math:`\Phi^{-1}(1 - \alpha)`.
    threshold : ndarray
        Critical values: a signal toy is rejected iff its statistic is strictly above.
        ``+inf`` where nothing can be rejected.
    method : tuple of str
        How each threshold was obtained: ``"empirical"`` (order statistic of the null
        toys) or ``"chi2"`` (fitted :math:`\chi^2`, levels beyond the toys' resolution).
    n_rejected : ndarray of int
        Number of signal toys rejected.
    power : ndarray
        ``n_rejected / n_alt``.
    ci_low, ci_high : ndarray
        Clopper-Pearson interval of the power at level ``confidence``.
    confidence : float
        Confidence level of the interval.
    n_null : int
        Number of null toys.
    n_alt : int
        Number of signal toys.
    chi2_fit : Chi2Fit or None
        The :math:`\chi^2` fit of the null toys, when one was made (:func:`power_at_z`).
    """

    alpha: np.ndarray
    z: np.ndarray
    threshold: np.ndarray
    method: tuple[str, ...]
    n_rejected: np.ndarray
    power: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float
    n_null: int
    n_alt: int
    chi2_fit: Chi2Fit | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (arrays as lists)."""
        return {
            "alpha": [float(v) for v in self.alpha],
            "z": [float(v) for v in self.z],
            "threshold": [float(v) for v in self.threshold],
            "method": list(self.method),
            "n_rejected": [int(v) for v in self.n_rejected],
            "power": [float(v) for v in self.power],
            "ci_low": [float(v) for v in self.ci_low],
            "ci_high": [float(v) for v in self.ci_high],
            "confidence": float(self.confidence),
            "n_null": int(self.n_null),
            "n_alt": int(self.n_alt),
            "chi2_fit": None if self.chi2_fit is None else self.chi2_fit.to_dict(),
        }


def _empirical_threshold(sorted_null: np.ndarray, alpha: float) -> float:
    """Largest statistic not rejected at level ``alpha`` by the empirical p-value.

    With ``m`` the largest count ``c`` in ``0..B`` such that ``(1 + c)/(1 + B) <= alpha``,
    ``p(t) <= alpha`` iff ``#{null >= t} <= m`` iff ``t`` is strictly above the
    ``(m + 1)``-th largest toy. Returns ``+inf`` if ``m < 0`` (level below the resolution)
    and ``-inf`` if ``m = B``.
    """
    n_toys = sorted_null.shape[0]
    grid = (1.0 + np.arange(n_toys + 1)) / (1.0 + n_toys)  # attainable p-values, same arithmetic
    m = int(np.count_nonzero(grid <= alpha)) - 1
    if m < 0:
        return np.inf
    if m >= n_toys:
        return -np.inf
    return float(sorted_null[n_toys - 1 - m])  # (m+1)-th largest


def _power_from_thresholds(
    alt: np.ndarray,
    null: np.ndarray,
    alpha: np.ndarray,
    threshold: np.ndarray,
    method: tuple[str, ...],
    confidence: float,
    chi2_fit: Chi2Fit | None,
) -> PowerResult:
    """Count signal toys strictly above each threshold and wrap up a PowerResult."""
    n_rejected = np.count_nonzero(alt[None, :] > threshold[:, None], axis=1)  # (L,)
    n_alt = alt.shape[0]
    ci_low, ci_high = _clopper_pearson(
        n_rejected.astype(np.float64), np.full(alpha.shape, float(n_alt)), confidence
    )
    return PowerResult(
        alpha=alpha,
        z=np.asarray(_st.norm.isf(alpha), dtype=np.float64),
        threshold=threshold,
        method=method,
        n_rejected=n_rejected.astype(np.int64),
        power=n_rejected / n_alt,
        ci_low=np.atleast_1d(ci_low),
        ci_high=np.atleast_1d(ci_high),
        confidence=float(confidence),
        n_null=int(null.shape[0]),
        n_alt=int(n_alt),
        chi2_fit=chi2_fit,
    )


def power(
    null: Any, alt: Any, alpha: float | Sequence[float] = 0.05, *, confidence: float = 0.6827
) -> PowerResult:
    r"""Empirical power: fraction of signal toys rejected by the toy-calibrated test.

    Parameters
    ----------
    null : array-like of shape (n_null,)
        Statistics of the null toys (finite).
    alt : array-like of shape (n_alt,)
        Statistics of the signal toys (NaN rejected, ``+inf`` allowed).
    alpha : float or sequence of float, default=0.05
        Level(s) in (0, 1].
    confidence : float, default=0.6827
        Level of the Clopper-Pearson interval (0.6827 = 1 sigma).

    Returns
    -------
    PowerResult
        Arrays of shape (n_levels,), also for a single ``alpha``; ``method`` is always
        ``"empirical"`` and ``chi2_fit`` None.

    Raises
    ------
    ValueError
        Naming the invalid argument.

    Notes
    -----
    A signal toy with statistic :math:`t` is rejected at level :math:`\alpha` iff its
    empirical p-value (:func:`empirical_pvalue`) satisfies :math:`p(t) \le \alpha`. As
    :math:`p(t) = (1 + \#\{t_0 \ge t\})/(1 + B)`, this is equivalent to :math:`t > t_c`
    where the critical value :math:`t_c` is the :math:`(m+1)`-th largest null toy and
    :math:`m = \lfloor \alpha (1 + B) \rfloor - 1` (computed on the grid of attainable
    p-values to avoid round-off); the power is :math:`\#\{t_1 > t_c\} / B_1`. For
    :math:`\alpha < 1/(B+1)` nothing can be rejected (:math:`t_c = +\infty`, power 0): use
    :func:`power_at_z` there. The interval is Clopper-Pearson (:func:`binomial_interval`).
    """
    null = check_sample(null, name="null")
    alt = check_sample(alt, name="alt", allow_inf=True)
    alpha_arr = np.atleast_1d(check_probability(alpha, name="alpha", low_open=True, high_open=False))
    if alpha_arr.ndim != 1:
        raise ValueError(f"alpha: expected a float or a 1-D sequence, got shape {alpha_arr.shape}")
    confidence = check_fraction(confidence, name="confidence", open_interval=True)
    sorted_null = np.sort(null)
    threshold = np.array([_empirical_threshold(sorted_null, a) for a in alpha_arr])  # (L,)
    method = ("empirical",) * alpha_arr.shape[0]
    return _power_from_thresholds(alt, null, alpha_arr, threshold, method, confidence, None)


def power_at_z(
    null: Any,
    alt: Any,
    z: float | Sequence[float] = (2.0, 3.0, 5.0),
    *,
    confidence: float = 0.6827,
    fit: Chi2Fit | None = None,
) -> PowerResult:
    r"""Power at significance thresholds Z, using the chi^2 fit beyond the toys' resolution.

    Parameters
    ----------
    null : array-like of shape (n_null,)
        Statistics of the null toys (finite, at least 2).
    alt : array-like of shape (n_alt,)
        Statistics of the signal toys (NaN rejected, ``+inf`` allowed).
    z : float or sequence of float, default=(2, 3, 5)
        Significance thresholds (finite).
    confidence : float, default=0.6827
        Level of the Clopper-Pearson interval.
    fit : Chi2Fit, optional
        A fit of ``null`` to reuse; by default :func:`fit_chi2` is called on ``null``.

    Returns
    -------
    PowerResult
        ``alpha = norm.sf(z)``; ``chi2_fit`` holds the fit (check its ``poor_fit``).

    Raises
    ------
    ValueError
        Naming the invalid argument.

    Notes
    -----
    For each :math:`z`, :math:`\alpha = 1 - \Phi(z)`.

    * If :math:`\alpha \ge 1/(B+1)` (the level is resolved by the toys) the threshold is the
      empirical one of :func:`power` (``method = "empirical"``).
    * Otherwise (``method = "chi2"``) the threshold is
      :math:`t_c = \max(\max_b t_0^{(b)},\ F^{-1}_{\chi^2_{\hat k}}(1 - \alpha))`: the
      :math:`\chi^2` quantile, but never below the largest toy, since a statistic inside
      the toys' range has an empirical p-value above :math:`\alpha`.

    In both cases a signal toy is rejected iff :math:`t > t_c`. The rule is the same as
    :func:`median_z`'s: :math:`t` is rejected iff its Z there is at least :math:`z` (up to
    ties at the threshold).
    """
    null = check_sample(null, name="null", min_size=2)
    alt = check_sample(alt, name="alt", allow_inf=True)
    z_arr = np.atleast_1d(as_float_array(z, name="z"))
    if z_arr.ndim != 1 or not np.all(np.isfinite(z_arr)):
        raise ValueError(f"z: expected finite float(s) as a float or 1-D sequence, got {z!r}")
    confidence = check_fraction(confidence, name="confidence", open_interval=True)
    if fit is None:
        fit = fit_chi2(null)
    elif not isinstance(fit, Chi2Fit):
        raise TypeError(f"fit: expected a Chi2Fit or None, got {type(fit).__name__}")
    alpha = np.asarray(_st.norm.sf(z_arr), dtype=np.float64)  # (L,)
    sorted_null = np.sort(null)
    thresholds, methods = [], []
    for a in alpha:
        empirical = _empirical_threshold(sorted_null, a)
        if empirical != np.inf:  # level resolved by the toys
            thresholds.append(empirical)
            methods.append("empirical")
        else:
            t_chi2 = float(_st.chi2.isf(a, fit.dof)) if a > 0 else np.inf
            thresholds.append(max(float(sorted_null[-1]), t_chi2))
            methods.append("chi2")
    return _power_from_thresholds(
        alt, null, alpha, np.asarray(thresholds), tuple(methods), confidence, fit
    )


class MedianZ(NamedTuple):
    """Median and 16/84 % quantiles of the significance of signal toys."""

    median: float
    q16: float
    q84: float


def median_z(null: Any, alt: Any, *, fit: Chi2Fit | None = None) -> MedianZ:
    r"""Median significance of signal toys with 16 % and 84 % quantiles.

    Parameters
    ----------
    null : array-like of shape (n_null,)
        Statistics of the null toys (finite, at least 2).
    alt : array-like of shape (n_alt,)
        Statistics of the signal toys (NaN rejected, ``+inf`` allowed).
    fit : Chi2Fit, optional
        A fit of ``null`` to reuse; by default :func:`fit_chi2` is called on ``null``.

    Returns
    -------
    MedianZ
        Named tuple ``(median, q16, q84)`` of floats.

    Notes
    -----
    The Z of a signal toy with statistic :math:`t` is

    * empirical, :math:`Z = \Phi^{-1}(1 - p(t))` with :func:`empirical_pvalue`, when
      :math:`t \le \max_b t_0^{(b)}` (at least one toy at or above it, so the p-value is
      resolved); this is ``-inf`` for :math:`t` below every toy (:math:`p = 1`);
    * otherwise :math:`Z = \max(Z_{\chi^2}(t),\ \Phi^{-1}(1 - 1/(B+1)))`: the asymptotic Z of
      :meth:`Chi2Fit.zscore`, but never below the empirical Z of a statistic above every
      toy, which keeps Z non-decreasing in :math:`t`.

    Quantiles are empirical order statistics (``numpy.quantile(..., method="inverted_cdf")``,
    no interpolation), so they are well defined with infinite Z and commute with the
    monotone map :math:`t \mapsto Z`: the median Z is the Z of the (lower) median signal
    toy. Check ``fit.poor_fit`` before trusting values beyond the toys.
    """
    null = check_sample(null, name="null", min_size=2)
    alt = check_sample(alt, name="alt", allow_inf=True)
    if fit is None:
        fit = fit_chi2(null)
    elif not isinstance(fit, Chi2Fit):
        raise TypeError(f"fit: expected a Chi2Fit or None, got {type(fit).__name__}")
    sorted_null = np.sort(null)
    z_emp = _st.norm.isf(pvalue_sorted(alt, sorted_null))  # (n_alt,)
    beyond = alt > sorted_null[-1]
    z = np.asarray(z_emp, dtype=np.float64).copy()
    if np.any(beyond):
        z_floor = float(_st.norm.isf(1.0 / (1.0 + sorted_null.shape[0])))
        z[beyond] = np.maximum(-special.ndtri_exp(chi2_logsf(alt[beyond], fit.dof)), z_floor)
    q50, q16, q84 = np.quantile(z, [0.5, 0.16, 0.84], method="inverted_cdf")
    return MedianZ(float(q50), float(q16), float(q84))
