"""Benchmark scenarios: generators of (reference, data, truth) with known anomalies.

Every generator is registered in :data:`SCENARIOS` and called through
:func:`make`, which the command line and the benchmarks share.  Generators use
only their ``seed`` (a local :class:`numpy.random.Generator`) and download
nothing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["SCENARIOS", "make", "register", "square2d"]

SCENARIOS: dict[str, Callable] = {}


def register(name: str):
    """Decorator adding a generator to :data:`SCENARIOS` under ``name``."""

    def deco(fn):
        SCENARIOS[name] = fn
        return fn

    return deco


def make(name: str, seed: int = 0, **params):
    """Build a scenario by name.

    Returns
    -------
    reference : ndarray of shape (n_reference, n_features)
    data : ndarray of shape (n_data, n_features)
    truth : dict
        ``is_anomaly`` (bool array over the data rows), ``centres`` (anomaly
        locations, shape (k, n_features), when known), and the parameters used.
    """
    if name not in SCENARIOS:
        raise ValueError(f"name: unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    return SCENARIOS[name](seed=seed, **params)


SQUARE2D_CENTRES = ((0.25, 0.3), (0.7, 0.75), (0.75, 0.25))


@register("square2d")
def square2d(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_background: int = 2_000,
    n_per_clump: int = 30,
    clump_std: float = 0.02,
    centres=SQUARE2D_CENTRES,
):
    """Uniform unit square; the data add small Gaussian clumps (paper, fig. 4).

    Defaults: 20,000 reference points, 2,000 background data points and three
    clumps of 30 points (std 0.02) at (0.25, 0.3), (0.7, 0.75) and (0.75, 0.25).
    ``n_per_clump=0`` gives a null sample.
    """
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    reference = rng.uniform(0.0, 1.0, size=(n_reference, 2))
    background = rng.uniform(0.0, 1.0, size=(n_background, 2))
    clumps = [c + clump_std * rng.standard_normal((n_per_clump, 2)) for c in centres]
    data = np.concatenate([background, *clumps]) if n_per_clump else background
    is_anomaly = np.zeros(len(data), dtype=bool)
    is_anomaly[n_background:] = True
    truth = {
        "is_anomaly": is_anomaly,
        "centres": centres if n_per_clump else np.empty((0, 2)),
        "params": dict(n_reference=n_reference, n_background=n_background,
                       n_per_clump=n_per_clump, clump_std=clump_std),
    }
    return reference, data, truth
