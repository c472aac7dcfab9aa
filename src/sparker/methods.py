"""One registry of two-sample methods: SparKer and every baseline, by name.

Each :class:`Method` pairs

- a calibrated **test**, ``test(reference, data, *, n_null, seed, null, ...)``
  returning a :class:`~sparker.TestResult` whose ``method`` is the name
  (:func:`sparker.test` for SparKer, :data:`sparker.baselines.BASELINES` for
  the others), with
- a single-fit **statistic**, ``statistic(reference, data, *, seed, **options)``
  returning the observed statistic as a float, without calibration (for power
  studies whose null distribution comes from fresh draws of a null scenario).

The command line (``sparker test --method NAME``) and the power study
(:mod:`sparker.app.bench`) pick every method, SparKer included, from
:data:`METHODS`; what a method accepts from the command line is said by its
``options``, ``settings`` and ``calibration`` (``docs/method.md``, "Baselines").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .baselines import BASELINES
from .baselines.c2st import c2st_statistic
from .calibration import test as sparker_test
from .calibration.api import training_configs
from .estimator import from_config
from .results import TestResult

__all__ = ["Method", "METHODS", "BASELINE_OPTIONS"]


@dataclass(frozen=True)
class Method:
    """A two-sample method: its calibrated test and its single-fit statistic.

    Attributes
    ----------
    name : str
    test : callable
        ``(reference, data, **keywords) -> TestResult``.
    statistic : callable
        ``(reference, data, *, seed, **options) -> float``: the observed
        statistic of one fit (SparKer's: an array of shape (K,) when its
        test runs K configurations, which a power study aggregates).
    options : frozenset of str
        Keywords of ``test`` the command line may pass (null-toy and run
        options, per-point weights).
    settings : bool
        Whether ``test`` takes SparKer's training settings (``**settings``).
    calibration : bool
        Whether ``test`` reuses a saved calibration (``calibration=``).
    """

    name: str
    test: Callable[..., TestResult]
    statistic: Callable[..., float]
    options: frozenset
    settings: bool = False
    calibration: bool = False


def _sparker_statistic(reference, data, *, seed: int, scales: str = "auto", **settings):
    """One fit per configuration of the calibrated test with these settings: a float for
    one, an array (K,) for several (scales); a power study combines them as the test does."""
    t = [from_config(cfg, seed=seed).fit(reference, data).statistic_
         for cfg in training_configs(settings, scales)]
    return t[0] if len(t) == 1 else np.asarray(t, dtype=np.float64)


def _observed(test: Callable[..., TestResult], **fixed) -> Callable[..., float]:
    """The statistic of ``test`` run with ``fixed`` options (one toy, or the few it needs)."""

    def statistic(reference, data, *, seed: int, **options) -> float:
        return test(reference, data, seed=seed, **{**fixed, **options}).statistic

    return statistic


#: the options every baseline's test shares (and the command line passes on)
BASELINE_OPTIONS = frozenset({"n_null", "seed", "null"})

#: baseline -> its observed statistic alone.  The baselines without a statistic-only
#: function run one permutation toy besides (``nplm_kernel`` re-solves on the observed
#: basis, ``mmd`` adds one column to the kernel pass); ``mmd_agg`` studentises by its
#: permutations, so it keeps 100.
_BASELINE_STATISTICS: dict[str, Callable[..., float]] = {
    "nplm_kernel": _observed(BASELINES["nplm_kernel"], n_null=1, null="permutation"),
    "mmd": _observed(BASELINES["mmd"], n_null=1),
    "mmd_agg": _observed(BASELINES["mmd_agg"], n_null=100),
    "c2st": c2st_statistic,
}

#: the keyword arguments of :func:`sparker.test` but the calibration: null-toy and run
#: options, per-point weights
_SPARKER_OPTIONS = frozenset(
    name for name, p in inspect.signature(sparker_test).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "calibration"
)

#: method name -> Method: SparKer first, then the baselines in the order of BASELINES
METHODS: dict[str, Method] = {
    "sparker": Method("sparker", sparker_test, _sparker_statistic, _SPARKER_OPTIONS,
                      settings=True, calibration=True),
    **{name: Method(name, test, _BASELINE_STATISTICS[name], BASELINE_OPTIONS)
       for name, test in BASELINES.items()},
}
