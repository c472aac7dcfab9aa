"""The registry of benchmark scenarios and :func:`make`, the one way to build them.

Generators register themselves with :func:`register` when their module is imported
(:mod:`sparker.scenarios` imports them all); the command line and the benchmarks call
:func:`make` by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .._validation import check_seed

__all__ = ["SCENARIOS", "make", "register", "scenario_names"]

SCENARIOS: dict[str, Callable] = {}


def register(name: str):
    """Decorator adding a generator to :data:`SCENARIOS` under ``name``."""

    def deco(fn):
        SCENARIOS[name] = fn
        return fn

    return deco


def scenario_names() -> list[str]:
    """Names of the registered scenarios, sorted.

    Returns
    -------
    names : list of str
        Keys of :data:`SCENARIOS`; the first line of each generator's docstring
        (``SCENARIOS[name].__doc__``) describes it.
    """
    return sorted(SCENARIOS)


def make(name: str, seed: int = 0, **params):
    """Build a scenario by name.

    Parameters
    ----------
    name : str
        A key of :data:`SCENARIOS` (see :func:`scenario_names`).
    seed : int, default=0
        Non-negative seed; the same seed and parameters give the same arrays.
    **params
        Keyword parameters of the generator (see its docstring).

    Returns
    -------
    reference : ndarray of shape (n_reference, n_features)
    data : ndarray of shape (n_data, n_features)
    truth : dict
        ``is_anomaly`` (bool array over the data rows), ``centres`` (anomaly
        locations, shape (k, n_features), empty when unknown), ``params`` (the
        parameters used) and ``feature_names``.

    Raises
    ------
    ValueError
        If ``name`` is not a registered scenario, or a parameter value is invalid
        (the message names the parameter).
    TypeError
        If a parameter is not accepted by the generator, or has the wrong type.
    ImportError
        If the scenario needs an optional package that is not installed.
    """
    if name not in SCENARIOS:
        raise ValueError(f"name: unknown scenario {name!r}; choose one of {scenario_names()}")
    fn = SCENARIOS[name]
    accepted = [p for p in inspect.signature(fn).parameters if p != "seed"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"{unknown[0]}: unknown parameter of scenario {name!r} (got {unknown}); "
            f"accepted parameters are {accepted}"
        )
    return fn(seed=check_seed(seed), **params)
