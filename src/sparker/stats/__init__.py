r"""Calibration of test statistics: empirical p-values, Z-scores, chi^2 fits, aggregation, power.

Everything here is a pure NumPy/SciPy function of the observed statistic(s) and the null
toys ``t_0^(1..B)`` (``SPEC.md`` section 4); nothing trains or draws random numbers.

Empirical p-value (never 0, resolution :math:`1/(B+1)`):

.. math::

    p(t) = \frac{1 + \#\{b : t_0^{(b)} \ge t\}}{1 + B}, \qquad Z = \Phi^{-1}(1 - p).

Asymptotic p-value from a :math:`\chi^2_k` fitted to the toys (free ``k``, ``loc = 0``,
``scale = 1``, maximum likelihood), for observations beyond the toys:
:math:`p_{\chi^2}(t) = Q(k/2, t/2)` (regularised upper incomplete gamma function).

Aggregation across ``K`` configurations evaluated on the same toys (MMDAgg / NPLM min-p):
the observation and every toy get, per configuration, a leave-one-out empirical p-value
against the other members of the pool, the ``K`` p-values are combined by a rule of
:data:`AGGREGATIONS` (larger = more significant), and the combined statistic is calibrated
on the same toys.

Power (for benchmarks): the fraction of signal toys rejected at level :math:`\alpha`, with
a Clopper-Pearson interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import optimize, special
from scipy import stats as _st

__all__ = [
    "AGGREGATIONS",
    "AggregateResult",
    "Chi2Fit",
    "MedianZ",
    "PowerResult",
    "aggregate",
    "binomial_interval",
    "empirical_pvalue",
    "fit_chi2",
    "median_z",
    "per_config_pvalues",
    "power",
    "power_at_z",
    "zscore",
]

# Below this log-survival value chi2.logsf (computed as log(sf)) loses precision in the
# subnormal range and then underflows to -inf; the continued fraction takes over there.
_LOGSF_SWITCH = -700.0
_CF_MAX_ITER = 500
_CF_EPS = 1e-15
_CF_TINY = 1e-300


# ----------------------------------------------------------------------------- validation


def _as_float_array(x: Any, *, name: str) -> np.ndarray:
    """Convert to a float64 ndarray, raising a named TypeError for non-numeric input."""
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected real numbers, got {type(x).__name__}: {error}") from error
    return array


def _check_sample(x: Any, *, name: str, allow_inf: bool = False, min_size: int = 1) -> np.ndarray:
    """Validate a 1-D sample of statistics (null or signal toys).

    Returns a contiguous float64 array of shape (n,); raises ValueError naming ``name`` if it
    is not 1-D, has fewer than ``min_size`` entries, or contains NaN (or infinities unless
    ``allow_inf``).
    """
    array = _as_float_array(x, name=name)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of statistics, got shape {array.shape}")
    if array.size < min_size:
        raise ValueError(
            f"{name}: has {array.size} value(s) but at least {min_size} "
            f"{'is' if min_size == 1 else 'are'} required"
        )
    _check_no_nan(array, name=name, allow_inf=allow_inf)
    return np.ascontiguousarray(array)


def _check_no_nan(array: np.ndarray, *, name: str, allow_inf: bool) -> None:
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


def _check_probability(p: Any, *, name: str, low_open: bool, high_open: bool) -> np.ndarray:
    """Validate probabilities in (0, 1], [0, 1] etc.; returns a float64 array of any shape."""
    array = _as_float_array(p, name=name)
    too_low = array <= 0 if low_open else array < 0
    too_high = array >= 1 if high_open else array > 1
    bad = np.isnan(array) | too_low | too_high
    if np.any(bad):
        first = float(np.asarray(array)[bad].flat[0])
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name}: values must lie in {interval}, got {first!r}")
    return array


def _scalar_or_array(array: np.ndarray) -> float | np.ndarray:
    """Return a Python float for a 0-d array, else the array itself."""
    return float(array) if array.ndim == 0 else array


# ------------------------------------------------------------------ empirical p and Z


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
    null = _check_sample(null, name="null")
    t = _as_float_array(t_obs, name="t_obs")
    _check_no_nan(t, name="t_obs", allow_inf=True)
    return _scalar_or_array(_pvalue_sorted(t, np.sort(null)))


def _pvalue_sorted(t: np.ndarray, sorted_null: np.ndarray) -> np.ndarray:
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
    p = _check_probability(p, name="p", low_open=True, high_open=False)
    return _scalar_or_array(np.asarray(_st.norm.isf(p), dtype=np.float64))


# ------------------------------------------------------------------------- chi^2 fit


def _chi2_logsf(t: np.ndarray, dof: float) -> np.ndarray:
    """log P(chi^2_dof > t) for any shape of ``t``, finite for arbitrarily large ``t``."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logsf = np.asarray(_st.chi2.logsf(t, dof), dtype=np.float64)
    deep = ~(logsf > _LOGSF_SWITCH) & np.isfinite(t) & (t > 0)
    if np.any(deep):
        logsf = logsf.copy()
        logsf[deep] = _log_upper_gamma_cf(0.5 * dof, 0.5 * t[deep])
    return logsf


def _log_upper_gamma_cf(a: float, x: np.ndarray) -> np.ndarray:
    r"""log Q(a, x) by the continued fraction of the upper incomplete gamma function.

    Valid (and fast) for ``x > a + 1``, which holds wherever ``Q`` underflows:

    .. math::

        \Gamma(a, x) = \frac{e^{-x} x^a}{x + 1 - a - \dfrac{1 (1 - a)}{x + 3 - a -
        \dfrac{2 (2 - a)}{x + 5 - a - \cdots}}},

    evaluated by the modified Lentz algorithm, so that
    :math:`\log Q = -x + a \log x - \log\Gamma(a) + \log h`.
    """
    x = np.asarray(x, dtype=np.float64)
    b = x + 1.0 - a
    c = np.full_like(x, 1.0 / _CF_TINY)
    d = 1.0 / b
    h = d.copy()
    for i in range(1, _CF_MAX_ITER + 1):
        an = -i * (i - a)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < _CF_TINY, _CF_TINY, d)
        c = b + an / c
        c = np.where(np.abs(c) < _CF_TINY, _CF_TINY, c)
        d = 1.0 / d
        delta = d * c
        h = h * delta
        if np.all(np.abs(delta - 1.0) < _CF_EPS):
            break
    return -x + a * np.log(x) - special.gammaln(a) + np.log(h)


@dataclass(frozen=True)
class Chi2Fit:
    r"""Maximum-likelihood :math:`\chi^2_k` fit of null toys (``loc = 0``, ``scale = 1``).

    Attributes
    ----------
    dof : float
        Fitted degrees of freedom :math:`\hat k`.
    loc : float
        Location, fixed at 0.
    ks_statistic : float
        Kolmogorov-Smirnov distance between the (clipped) toys and the fitted law.
    ks_pvalue : float
        KS goodness-of-fit p-value (conservative, see :func:`fit_chi2`).
    poor_fit : bool
        ``ks_pvalue < threshold``: do not trust the asymptotic p-values.
    n : int
        Number of toys fitted.
    n_clipped : int
        Number of toys below ``floor`` that were raised to it before fitting.
    threshold : float
        KS p-value below which the fit is flagged as poor.
    floor : float
        Clipping value used for zero or negative toys.
    """

    dof: float
    loc: float
    ks_statistic: float
    ks_pvalue: float
    poor_fit: bool
    n: int
    n_clipped: int
    threshold: float
    floor: float

    def pvalue(self, t: Any) -> float | np.ndarray:
        r"""Asymptotic p-value :math:`P(\chi^2_{\hat k} > t)` (``scipy.stats.chi2.sf``).

        Parameters
        ----------
        t : float or array-like
            Statistic(s); NaN is rejected.

        Returns
        -------
        float or ndarray
            Same shape as ``t``. It underflows to 0 for very large ``t``; use
            :meth:`zscore` (computed in log space) for significances.
        """
        t = _as_float_array(t, name="t")
        _check_no_nan(t, name="t", allow_inf=True)
        return _scalar_or_array(np.asarray(_st.chi2.sf(t, self.dof), dtype=np.float64))

    def logpvalue(self, t: Any) -> float | np.ndarray:
        r"""Natural log of :meth:`pvalue`, finite even where the p-value underflows.

        Notes
        -----
        ``scipy.stats.chi2.logsf`` while it is above -700; below, where it loses precision
        and then underflows to ``-inf`` (from about ``t = 1500`` for small ``k``), the
        continued fraction of the upper incomplete gamma function :math:`Q(k/2, t/2)`
        (modified Lentz) is used instead.
        """
        t = _as_float_array(t, name="t")
        _check_no_nan(t, name="t", allow_inf=True)
        return _scalar_or_array(_chi2_logsf(t, self.dof))

    def zscore(self, t: Any) -> float | np.ndarray:
        r"""Asymptotic significance :math:`Z = \Phi^{-1}(1 - p_{\chi^2}(t))`, finite for large t.

        Parameters
        ----------
        t : float or array-like
            Statistic(s); NaN is rejected.

        Returns
        -------
        float or ndarray
            Same shape as ``t``; ``-inf`` for ``t <= 0`` (p = 1), ``+inf`` only for
            ``t = +inf``.

        Notes
        -----
        Computed entirely in log space, :math:`Z = -\Phi^{-1}(\exp(\log p))` with
        ``scipy.special.ndtri_exp`` applied to :meth:`logpvalue`, so ``Z`` stays finite and
        accurate where ``p`` itself underflows (e.g. ``t = 1e4``); for large ``Z``,
        :math:`Z \approx \sqrt{-2 \log p}`.
        """
        t = _as_float_array(t, name="t")
        _check_no_nan(t, name="t", allow_inf=True)
        return _scalar_or_array(-special.ndtri_exp(_chi2_logsf(t, self.dof)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary of the fit."""
        return {
            "dof": float(self.dof),
            "loc": float(self.loc),
            "ks_statistic": float(self.ks_statistic),
            "ks_pvalue": float(self.ks_pvalue),
            "poor_fit": bool(self.poor_fit),
            "n": int(self.n),
            "n_clipped": int(self.n_clipped),
            "threshold": float(self.threshold),
            "floor": float(self.floor),
        }


def fit_chi2(null: Any, *, threshold: float = 0.01, floor: float = 1e-8) -> Chi2Fit:
    r"""Fit a :math:`\chi^2` law with free degrees of freedom to null toys.

    Parameters
    ----------
    null : array-like of shape (n_toys,)
        Finite statistics of at least 2 null toys.
    threshold : float, default=0.01
        The fit is flagged ``poor_fit`` when the KS p-value is below this value.
    floor : float, default=1e-8
        Toys below ``floor`` (exact zeros when the model learnt nothing, tiny negatives
        from round-off) are raised to ``floor`` before fitting and testing.

    Returns
    -------
    Chi2Fit

    Raises
    ------
    ValueError
        If ``null`` has fewer than 2 values or non-finite values, or ``threshold`` is not
        in (0, 1) or ``floor`` is not positive.

    Notes
    -----
    With ``loc = 0`` and ``scale = 1`` the log-likelihood of :math:`k` is

    .. math::

        \ell(k) = \sum_b \left[(k/2 - 1)\log t_b - t_b/2 \right]
                  - n \left[(k/2)\log 2 + \log\Gamma(k/2)\right],

    whose stationarity condition :math:`\psi(k/2) = \overline{\log(t/2)}` (:math:`\psi` the
    digamma function) has exactly one root because :math:`\psi` increases from
    :math:`-\infty` to :math:`\infty`; it is found by Brent's method on :math:`\log(k/2)`.
    This is the maximiser ``scipy.stats.chi2.fit(null, floc=0, fscale=1)`` searches for,
    without its numerical optimiser. Because :math:`\log t` enters the likelihood, the
    clipping ``floor`` matters when many toys are 0: they pull :math:`\hat k` down, and such
    a null is not :math:`\chi^2`-like anyway (the KS test will usually say so).

    The KS p-value (``scipy.stats.kstest`` against the fitted law) ignores that
    :math:`k` was estimated from the same toys, so it is conservative: a flagged fit is
    certainly poor, an unflagged one is not proven good.
    """
    null = _check_sample(null, name="null", min_size=2)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must lie in (0, 1), got {threshold!r}")
    if not (np.isfinite(floor) and floor > 0.0):
        raise ValueError(f"floor: must be a positive finite number, got {floor!r}")
    n_clipped = int(np.count_nonzero(null < floor))
    x = np.maximum(null, floor)  # (B,)
    target = float(np.mean(np.log(0.5 * x)))  # psi(k/2) = mean log(t/2)
    log_half_dof = optimize.brentq(
        lambda u: special.digamma(np.exp(u)) - target, -700.0, 700.0, xtol=1e-13, rtol=1e-15
    )
    dof = float(2.0 * np.exp(log_half_dof))
    ks = _st.kstest(x, _st.chi2(dof).cdf)
    ks_pvalue = float(ks.pvalue)
    return Chi2Fit(
        dof=dof,
        loc=0.0,
        ks_statistic=float(ks.statistic),
        ks_pvalue=ks_pvalue,
        poor_fit=bool(ks_pvalue < threshold),
        n=int(null.shape[0]),
        n_clipped=n_clipped,
        threshold=float(threshold),
        floor=float(floor),
    )


# ------------------------------------------------------------------------ aggregation


def _agg_minp(p: np.ndarray) -> np.ndarray:
    """min-p: ``-log(min_k p_k)``."""
    return -np.log(np.min(p, axis=-1))


def _agg_fisher(p: np.ndarray) -> np.ndarray:
    """Fisher: ``-sum_k log p_k``."""
    return -np.sum(np.log(p), axis=-1)


def _agg_meanp(p: np.ndarray) -> np.ndarray:
    """mean-p: ``-mean_k p_k``."""
    return -np.mean(p, axis=-1)


AGGREGATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "minp": _agg_minp,
    "fisher": _agg_fisher,
    "meanp": _agg_meanp,
}
"""Aggregation rules: each maps p-values of shape (..., K) to a statistic of shape (...).

Larger values are more significant for every rule: ``minp`` is :math:`-\\log \\min_k p_k`,
``fisher`` is :math:`-\\sum_k \\log p_k`, ``meanp`` is :math:`-\\bar p`.
"""


def _check_configs(t_obs: Any, null: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``t_obs`` (K,) and ``null`` (B, K) for the aggregation functions."""
    null = _as_float_array(null, name="null")
    if null.ndim != 2:
        raise ValueError(
            f"null: expected shape (n_toys, n_configs), got {null.ndim}-D with shape "
            f"{null.shape}; for a single configuration use null.reshape(-1, 1)"
        )
    n_toys, n_configs = null.shape
    if n_configs < 1:
        raise ValueError("null: has 0 configurations (columns); at least one is required")
    if n_toys < 2:
        raise ValueError(
            f"null: has {n_toys} toy(s) but at least 2 are required for leave-one-out p-values"
        )
    _check_no_nan(null, name="null", allow_inf=False)
    t_obs = _as_float_array(t_obs, name="t_obs")
    if t_obs.shape != (n_configs,):
        raise ValueError(
            f"t_obs: expected shape ({n_configs},), one value per configuration (column of "
            f"null), got shape {t_obs.shape}"
        )
    _check_no_nan(t_obs, name="t_obs", allow_inf=True)
    return t_obs, np.ascontiguousarray(null)


def per_config_pvalues(t_obs: Any, null: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-configuration p-values of the observation and of every toy (leave-one-out).

    Parameters
    ----------
    t_obs : array-like of shape (n_configs,)
        Observed statistic of each configuration.
    null : array-like of shape (n_toys, n_configs)
        Statistics of the same null toys under every configuration (finite, at least
        2 toys).

    Returns
    -------
    p_obs : ndarray of shape (n_configs,)
        Empirical p-value of the observation against all toys of its configuration.
    p_null : ndarray of shape (n_toys, n_configs)
        Empirical p-value of each toy, scored like an observation against all the other
        members of its configuration: the other toys and the observation.

    Raises
    ------
    ValueError
        If the shapes do not match or values are NaN (infinite toys are rejected too).

    Notes
    -----
    For configuration :math:`k` with toys :math:`t_{bk}` and observation :math:`t_k`, the
    :math:`B + 1` values form one pool and each member's p-value is computed against the
    :math:`B` others (leave-one-out):

    .. math::

        p^{\mathrm{obs}}_k = \frac{1 + \#\{b : t_{bk} \ge t_k\}}{1 + B},
        \qquad
        p_{bk} = \frac{1 + \#\{b' \ne b : t_{b'k} \ge t_{bk}\}
                       + \mathbb{1}[t_k \ge t_{bk}]}{1 + B}.

    Under :math:`H_0` the :math:`B + 1` rows (observation and toys) are exchangeable, and so
    are their p-value vectors: ``p_obs`` and every row of ``p_null`` have exactly the same
    (discrete uniform) law on the grid :math:`\{1, \dots, B+1\}/(B+1)`, which makes the
    aggregated test of :func:`aggregate` exactly valid. The simpler choice of scoring the
    toys against the other toys only, :math:`\#\{b' : t_{b'k} \ge t_{bk}\}/B`, puts them
    on the grid :math:`1/B` instead of :math:`1/(B+1)`; the observation then wins every tie
    by a small margin and the min-p test becomes anti-conservative (about 1.8 % rejections
    at a nominal 1 % for ``B = 199``, ``K = 4``). The raw toys do not depend on the
    observation, so a calibration is still computed once and reused: only this
    :math:`O(K B \log B)` step is repeated per observation. Ties count against the member
    being scored (``>=``).
    """
    t_obs, null = _check_configs(t_obs, null)
    return _per_config_pvalues(t_obs, null)


def _per_config_pvalues(t_obs: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Computation of :func:`per_config_pvalues` on validated input."""
    n_toys, n_configs = null.shape
    sorted_null = np.sort(null, axis=0)  # (B, K)
    p_obs = np.empty(n_configs)
    p_null = np.empty((n_toys, n_configs))
    for k in range(n_configs):
        column = sorted_null[:, k]  # (B,)
        p_obs[k] = _pvalue_sorted(t_obs[k], column)
        n_at_or_above = n_toys - np.searchsorted(column, null[:, k], side="left")  # (B,) incl. self
        p_null[:, k] = (n_at_or_above + (t_obs[k] >= null[:, k])) / (1.0 + n_toys)
    return p_obs, p_null


@dataclass(frozen=True)
class AggregateResult:
    """Result of :func:`aggregate`.

    Attributes
    ----------
    statistic : float
        Aggregated statistic of the observation (larger = more significant).
    pvalue : float
        Empirical p-value of ``statistic`` against ``null_distribution``, in
        :math:`[1/(B+1), 1]`.
    zscore : float
        :math:`\\Phi^{-1}(1 - p)`.
    null_distribution : ndarray of shape (n_toys,)
        Aggregated statistic of every null toy.
    per_config_pvalues : ndarray of shape (n_configs,)
        Empirical p-value of the observation in each configuration.
    method : str
        Key of :data:`AGGREGATIONS` used.
    """

    statistic: float
    pvalue: float
    zscore: float
    null_distribution: np.ndarray
    per_config_pvalues: np.ndarray
    method: str

    @property
    def resolution(self) -> float:
        """Smallest attainable p-value, :math:`1/(B+1)`."""
        return 1.0 / (1.0 + self.null_distribution.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (arrays as lists)."""
        return {
            "statistic": float(self.statistic),
            "pvalue": float(self.pvalue),
            "zscore": float(self.zscore),
            "resolution": self.resolution,
            "null_distribution": [float(v) for v in self.null_distribution],
            "per_config_pvalues": [float(v) for v in self.per_config_pvalues],
            "method": self.method,
        }


def aggregate(t_obs: Any, null: Any, method: str = "minp") -> AggregateResult:
    r"""Combine K configurations evaluated on the same toys into one calibrated test.

    Parameters
    ----------
    t_obs : array-like of shape (n_configs,)
        Observed statistic of each configuration.
    null : array-like of shape (n_toys, n_configs)
        Statistics of the same null toys under every configuration.
    method : str, default="minp"
        Key of :data:`AGGREGATIONS`: ``"minp"``, ``"fisher"`` or ``"meanp"``.

    Returns
    -------
    AggregateResult

    Raises
    ------
    ValueError
        If ``method`` is not in :data:`AGGREGATIONS`, or the inputs are invalid (see
        :func:`per_config_pvalues`).

    Notes
    -----
    With the per-configuration p-values of :func:`per_config_pvalues` and the rule
    :math:`g` of ``method``, :math:`S^{\mathrm{obs}} = g(p^{\mathrm{obs}})` and
    :math:`S_b = g(p_{b\cdot})`; the reported p-value is calibrated on the same toys,

    .. math::

        P = \frac{1 + \#\{b : S_b \ge S^{\mathrm{obs}}\}}{1 + B},

    which accounts for the correlation between configurations (no Bonferroni factor). Since
    :math:`S^{\mathrm{obs}}, S_1, \dots, S_B` are exchangeable under :math:`H_0` (see
    :func:`per_config_pvalues`), :math:`P(P \le \alpha) \le \alpha` exactly. The
    statistics are discrete and ties count against the observation, so the test is
    conservative where many toys share the top value: with ``minp`` every toy that is the
    largest of some configuration has :math:`S = \log(B+1)`, so levels below about
    :math:`K/(B+1)` are rarely reached.
    """
    if method not in AGGREGATIONS:
        raise ValueError(
            f"method: unknown aggregation {method!r}; choose one of {sorted(AGGREGATIONS)}"
        )
    t_obs, null = _check_configs(t_obs, null)
    p_obs, p_null = _per_config_pvalues(t_obs, null)  # (K,), (B, K)
    rule = AGGREGATIONS[method]
    statistic = float(rule(p_obs))
    null_distribution = np.asarray(rule(p_null), dtype=np.float64)  # (B,)
    pvalue = float(_pvalue_sorted(np.asarray(statistic), np.sort(null_distribution)))
    return AggregateResult(
        statistic=statistic,
        pvalue=pvalue,
        zscore=float(_st.norm.isf(pvalue)),
        null_distribution=null_distribution,
        per_config_pvalues=p_obs,
        method=method,
    )


# ----------------------------------------------------------------------------- power


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
    k_arr = _as_float_array(k, name="k")
    n_arr = _as_float_array(n, name="n")
    if np.any(~np.isfinite(n_arr) | (n_arr < 1) | (n_arr != np.round(n_arr))):
        raise ValueError(f"n: must be integer(s) >= 1, got {n!r}")
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    if np.any(~np.isfinite(k_arr) | (k_arr < 0) | (k_arr > n_arr) | (k_arr != np.round(k_arr))):
        raise ValueError(f"k: must be integer(s) with 0 <= k <= n, got {k!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must lie in (0, 1), got {level!r}")
    return _clopper_pearson(k_arr, n_arr, level)


def _clopper_pearson(k: np.ndarray, n: np.ndarray, level: float) -> tuple[Any, Any]:
    """Clopper-Pearson bounds on validated, broadcast float arrays."""
    tail = 0.5 * (1.0 - level)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, _st.beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
        high = np.where(k < n, _st.beta.ppf(1.0 - tail, k + 1, np.maximum(n - k, 1)), 1.0)
    return _scalar_or_array(np.asarray(low, dtype=np.float64)), _scalar_or_array(
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


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must lie in (0, 1), got {confidence!r}")
    return float(confidence)


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
    null = _check_sample(null, name="null")
    alt = _check_sample(alt, name="alt", allow_inf=True)
    alpha_arr = np.atleast_1d(_check_probability(alpha, name="alpha", low_open=True, high_open=False))
    if alpha_arr.ndim != 1:
        raise ValueError(f"alpha: expected a float or a 1-D sequence, got shape {alpha_arr.shape}")
    confidence = _check_confidence(confidence)
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
    null = _check_sample(null, name="null", min_size=2)
    alt = _check_sample(alt, name="alt", allow_inf=True)
    z_arr = np.atleast_1d(_as_float_array(z, name="z"))
    if z_arr.ndim != 1 or not np.all(np.isfinite(z_arr)):
        raise ValueError(f"z: expected finite float(s) as a float or 1-D sequence, got {z!r}")
    confidence = _check_confidence(confidence)
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
    null = _check_sample(null, name="null", min_size=2)
    alt = _check_sample(alt, name="alt", allow_inf=True)
    if fit is None:
        fit = fit_chi2(null)
    elif not isinstance(fit, Chi2Fit):
        raise TypeError(f"fit: expected a Chi2Fit or None, got {type(fit).__name__}")
    sorted_null = np.sort(null)
    z_emp = _st.norm.isf(_pvalue_sorted(alt, sorted_null))  # (n_alt,)
    beyond = alt > sorted_null[-1]
    z = np.asarray(z_emp, dtype=np.float64).copy()
    if np.any(beyond):
        z_floor = float(_st.norm.isf(1.0 / (1.0 + sorted_null.shape[0])))
        z[beyond] = np.maximum(-special.ndtri_exp(_chi2_logsf(alt[beyond], fit.dof)), z_floor)
    q50, q16, q84 = np.quantile(z, [0.5, 0.16, 0.84], method="inverted_cdf")
    return MedianZ(float(q50), float(q16), float(q84))
