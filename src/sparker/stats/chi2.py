r"""Maximum-likelihood :math:`\chi^2_k` fit of null toys, for p-values beyond the toys.

Section "Calibration" of ``docs/method.md``.  The degrees of freedom ``k`` are free,
``loc = 0`` and ``scale = 1``; the asymptotic p-value of a statistic ``t`` is
:math:`p_{\chi^2}(t) = Q(k/2, t/2)` (regularised upper incomplete gamma function), kept
finite in log space far beyond the toys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special
from scipy import stats as _st

from .._validation import check_fraction, check_real
from ._checks import as_float_array, check_no_nan, check_sample, scalar_or_array

__all__ = ["Chi2Fit", "fit_chi2"]

# Below this log-survival value chi2.logsf (computed as log(sf)) loses precision in the
# subnormal range and then underflows to -inf; the continued fraction takes over there.
_LOGSF_SWITCH = -700.0
_CF_MAX_ITER = 500
_CF_EPS = 1e-15
_CF_TINY = 1e-300


def chi2_logsf(t: np.ndarray, dof: float) -> np.ndarray:
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
        t = as_float_array(t, name="t")
        check_no_nan(t, name="t", allow_inf=True)
        return scalar_or_array(np.asarray(_st.chi2.sf(t, self.dof), dtype=np.float64))

    def logpvalue(self, t: Any) -> float | np.ndarray:
        r"""Natural log of :meth:`pvalue`, finite even where the p-value underflows.

        Notes
        -----
        ``scipy.stats.chi2.logsf`` while it is above -700; below, where it loses precision
        and then underflows to ``-inf`` (from about ``t = 1500`` for small ``k``), the
        continued fraction of the upper incomplete gamma function :math:`Q(k/2, t/2)`
        (modified Lentz) is used instead.
        """
        t = as_float_array(t, name="t")
        check_no_nan(t, name="t", allow_inf=True)
        return scalar_or_array(chi2_logsf(t, self.dof))

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
        t = as_float_array(t, name="t")
        check_no_nan(t, name="t", allow_inf=True)
        return scalar_or_array(-special.ndtri_exp(chi2_logsf(t, self.dof)))

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
    null = check_sample(null, name="null", min_size=2)
    threshold = check_fraction(threshold, name="threshold", open_interval=True)
    floor = check_real(floor, name="floor", positive=True)
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
