"""Per-point anomaly detectors for localisation comparisons.

Each detector is fitted on the reference alone and scores the data points,
with SparKer's sign convention: **higher = more anomalous** (compare with
``SparKer.log_ratio(data)``).  Both standardise the features with the
reference mean and standard deviation first (a no-op for the isolation
forest, whose splits are scale-free per feature; it matters for LOF's
distances).

- ``isolation_forest_scores``: minus scikit-learn's
  ``IsolationForest.score_samples`` (the negated mean path-length score).
- ``lof_scores``: minus ``LocalOutlierFactor(novelty=True).score_samples``,
  i.e. the local outlier factor of each data point relative to the reference
  (about 1 inside the reference, larger in sparse or foreign regions).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_array, check_int, check_n_features, check_seed
from ..core.standardize import Standardizer

__all__ = ["DETECTORS", "isolation_forest_scores", "lof_scores"]


def _inputs(reference, data):
    R, _, _ = check_array(reference, name="reference", min_samples=2)
    D, _, _ = check_array(data, name="data", min_samples=1)
    check_n_features(R.shape[1], D.shape[1], name="data")
    std = Standardizer.fit(R)
    return std.transform(R), std.transform(D)


def isolation_forest_scores(reference, data, *, seed: int = 0, n_estimators: int = 100,
                            **options) -> np.ndarray:
    """Isolation-forest anomaly scores of the data points, fitted on the reference.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    seed : int
        ``random_state`` of the forest.
    n_estimators : int
    **options
        Further :class:`~sklearn.ensemble.IsolationForest` arguments.

    Returns
    -------
    ndarray of shape (n_data,)
        Higher = more anomalous.
    """
    from sklearn.ensemble import IsolationForest

    Rs, Ds = _inputs(reference, data)
    seed = check_seed(seed)
    n_estimators = check_int(n_estimators, name="n_estimators", minimum=1)
    forest = IsolationForest(n_estimators=n_estimators, random_state=seed, **options).fit(Rs)
    return -forest.score_samples(Ds).astype(np.float64)


def lof_scores(reference, data, *, n_neighbors: int = 20, **options) -> np.ndarray:
    """Local-outlier-factor scores of the data points relative to the reference.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    n_neighbors : int
        Capped at ``n_reference - 1``.
    **options
        Further :class:`~sklearn.neighbors.LocalOutlierFactor` arguments
        (``novelty`` is always True).

    Returns
    -------
    ndarray of shape (n_data,)
        The local outlier factor (higher = more anomalous).
    """
    from sklearn.neighbors import LocalOutlierFactor

    Rs, Ds = _inputs(reference, data)
    k = min(check_int(n_neighbors, name="n_neighbors", minimum=1), Rs.shape[0] - 1)
    if "novelty" in options:
        raise ValueError("novelty: always True here (fitted on the reference, scored on the data)")
    lof = LocalOutlierFactor(n_neighbors=k, novelty=True, **options).fit(Rs)
    return -lof.score_samples(Ds).astype(np.float64)


#: per-point detectors by name, each ``(reference, data, **options) -> scores (n_data,)``
DETECTORS = {"isolation_forest": isolation_forest_scores, "lof": lof_scores}
