r"""Width (scale-annealing) schedules and data-driven default widths.

The shared kernel width is scheduled, not trained.  A schedule maps the epoch
``e`` in ``0 .. epochs-1`` to a width that starts at ``sigma_start`` and reaches
``sigma_end`` at the fraction ``reach`` (default 0.9) of the epochs, after which
it is held:

.. math::

    u(e) = \min\left(1, \frac{e}{\lfloor \mathrm{reach}\cdot \mathrm{epochs}\rfloor}\right)

``linear``: :math:`\sigma = \sigma_0 + u (\sigma_1 - \sigma_0)`;
``geometric``: :math:`\sigma = \sigma_0 (\sigma_1/\sigma_0)^u`;
``constant``: :math:`\sigma = \sigma_1` throughout (no annealing, ablation).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["SCHEDULES", "width_schedule", "pairwise_distance_quantiles"]


#: Smallest kernel width (standardised units) the trainer uses: about the float32
#: resolution of standardised features; narrower widths only make ``1 / sigma^2``
#: overflow.  Narrower scheduled widths are raised to it (with a warning).
MIN_WIDTH = 1e-6


#: Default fraction of the epochs at which a schedule reaches its end width.
REACH = 0.9


def _progress(epochs: int, reach: float) -> np.ndarray:
    stop = max(1, int(np.floor(reach * epochs)))
    return np.minimum(1.0, np.arange(epochs) / stop)


SCHEDULES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "linear": lambda u, s0, s1: s0 + u * (s1 - s0),
    "geometric": lambda u, s0, s1: s0 * (s1 / s0) ** u,
    "constant": lambda u, s0, s1: np.full_like(u, s1),
}


def width_schedule(
    name: str, epochs: int, sigma_start: float, sigma_end: float, *, reach: float = REACH
) -> np.ndarray:
    """Width at every epoch.

    Parameters
    ----------
    name : {"linear", "geometric", "constant"}
    epochs : int
    sigma_start, sigma_end : float
        Positive widths (standardised units).
    reach : float
        Fraction of the epochs at which ``sigma_end`` is reached.

    Returns
    -------
    ndarray of shape (epochs,)
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule: unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    if not (sigma_start > 0 and sigma_end > 0 and np.isfinite(sigma_start) and np.isfinite(sigma_end)):
        raise ValueError(
            f"sigma_start/sigma_end: widths must be positive and finite, got {sigma_start}, {sigma_end}"
        )
    if not 0.0 < reach <= 1.0:
        raise ValueError(f"reach: must lie in (0, 1], got {reach}")
    return SCHEDULES[name](_progress(epochs, reach), float(sigma_start), float(sigma_end))


def pairwise_distance_quantiles(
    X: np.ndarray, quantiles, *, max_points: int = 2000, rng: np.random.Generator
) -> np.ndarray:
    """Quantiles of the pairwise Euclidean distances of ``X``.

    Estimated on a random subsample of at most ``max_points`` rows (distinct
    pairs only, zero distances between duplicate points ignored).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    quantiles : float or sequence of float in [0, 1]
    max_points : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray with the shape of ``quantiles``
    """
    n = X.shape[0]
    if n > max_points:
        X = X[np.sort(rng.choice(n, size=max_points, replace=False))]
    X = np.asarray(X, dtype=np.float64)
    sq = (X * X).sum(1)
    D2 = sq[:, None] + sq[None, :] - 2.0 * X @ X.T
    iu = np.triu_indices(X.shape[0], k=1)
    d = np.sqrt(np.clip(D2[iu], 0.0, None))
    d = d[d > 1e-12 * max(1.0, float(d.max(initial=0.0)))]
    if d.size == 0:
        raise ValueError("reference: all points coincide, so no kernel width can be derived from it")
    return np.quantile(d, quantiles)
