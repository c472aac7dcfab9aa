r"""Calibration of test statistics: empirical p-values, Z-scores, chi^2 fits, aggregation, power.

Everything here is a pure NumPy/SciPy function of the observed statistic(s) and the null
toys :math:`t_0^{(1..B)}` (section "Calibration" of ``docs/method.md``); nothing trains or
draws random numbers.

=========================  =========================================================
:mod:`.pvalues`            empirical p-value :math:`(1 + \#\{t_0 \ge t\})/(1 + B)`,
                           :math:`Z = \Phi^{-1}(1 - p)` and the toys a Z needs
:mod:`.chi2`               maximum-likelihood :math:`\chi^2_k` fit of the toys and
                           asymptotic p-values and Z beyond them
:mod:`.aggregation`        several configurations on the same toys combined into
                           one calibrated test (min-p, Fisher, mean-p, both min-p
                           and Fisher on smooth p-values)
:mod:`.power`              power and median significance from signal toys, with
                           Clopper-Pearson intervals
=========================  =========================================================

Every public name is importable from :mod:`sparker.stats` itself.
"""

from __future__ import annotations

from .aggregation import (AGGREGATIONS, DEFAULT_AGGREGATION, PVALUE_RULES, AggregateResult, aggregate,
                          per_config_pvalues, smooth_log_pvalues)
from .chi2 import Chi2Fit, fit_chi2
from .power import MedianZ, PowerResult, binomial_interval, median_z, power, power_at_z
from .pvalues import empirical_pvalue, toys_needed, zscore

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_AGGREGATION",
    "PVALUE_RULES",
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
    "smooth_log_pvalues",
    "toys_needed",
    "zscore",
]
