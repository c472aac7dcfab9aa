"""Real tabular data shipped inside installed packages: ``digits_novelty``, ``shuttle_intrusion``.

``digits_novelty`` needs scikit-learn and ``shuttle_intrusion`` needs river (extra
``sparker[scenarios]``); see :mod:`sparker.scenarios` for the conventions every generator
follows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import check_fraction, check_int
from ._common import as_f64, load_sklearn, require_module, split_novelty, make_truth
from .registry import register

__all__ = ["digits_novelty", "shuttle_intrusion"]

_RIVER_INSTALL = "pip install 'sparker[scenarios]' (river >= 0.26 bundles the Shuttle data)"


@register("digits_novelty")
def digits_novelty(
    seed: int = 0,
    *,
    held_out: int = 0,
    eps: float = 0.05,
    n_data: int = 300,
    n_reference: int | None = None,
):
    """Open-world novelty on scikit-learn digits: one class is unseen in the reference.

    Parameters
    ----------
    seed : int, default=0
    held_out : int, default=0
        The novel class (0-9), absent from the reference.
    eps : float, default=0.05
        Fraction of data rows taken from the held-out class (``round(eps * n_data)``
        rows, at most the ~180 rows of that class); 0 gives a null sample.
    n_data : int, default=300
        Data rows.
    n_reference : int or None, default=None
        Reference rows; None takes every nominal row not used in the data
        (1,334 with the defaults: 1,619 nominal rows minus 285).

    Returns
    -------
    reference : ndarray of shape (n_reference, 64)
    data : ndarray of shape (n_data, 64)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` has one row, the mean of the whole
        held-out class. Extra key ``labels``: digit class of each data row.

    Notes
    -----
    The 1,797 images of 8 x 8 pixels (values 0-16) ship with scikit-learn.
    Rows are split without replacement: reference and data share no row, and
    with ``eps=0`` both are random disjoint subsets of the same nominal rows.
    """
    held_out = check_int(held_out, name="held_out", minimum=0, maximum=9)
    eps = check_fraction(eps, name="eps")
    n_data = check_int(n_data, name="n_data", minimum=1)
    X, y, names = load_sklearn("load_digits", "digits_novelty")
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = split_novelty(
        rng,
        np.flatnonzero(y != held_out),
        np.flatnonzero(y == held_out),
        n_reference,
        n_data,
        eps,
        available=f"rows of class {held_out}",
    )
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    centres = X[y == held_out].mean(axis=0, keepdims=True) if n_anom else np.empty((0, X.shape[1]))
    params = {"held_out": held_out, "eps": eps, "n_data": n_data, "n_reference": len(ref_idx)}
    truth = make_truth(is_anomaly, centres, params, names, labels=y[data_idx].astype(np.int64))
    return as_f64(X[ref_idx]), as_f64(X[data_idx]), truth


@register("shuttle_intrusion")
def shuttle_intrusion(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_data: int = 2_000,
    eps: float = 0.01,
):
    """Intrusion-style detection on the Statlog Shuttle data bundled with river.

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference rows, all normal.
    n_data : int, default=2_000
        Data rows.
    eps : float, default=0.01
        Fraction of anomalous data rows (``round(eps * n_data)``, at most 3,511);
        0 gives a null sample.

    Returns
    -------
    reference : ndarray of shape (n_reference, 9)
    data : ndarray of shape (n_data, 9)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` is empty, shape (0, 9): the
        anomalies merge several rare classes and have no single location.

    Notes
    -----
    river ships the file (``river.datasets.Shuttle``, 49,097 rows, nine integer
    sensor readings; ODDS version: 45,586 normal rows and 3,511 anomalies from
    the rare classes, the second-largest class removed); nothing is downloaded.
    Rows are split without replacement, so reference and data share no row;
    the readings are integers, though, and distinct rows often hold identical
    values.
    """
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_data = check_int(n_data, name="n_data", minimum=1)
    eps = check_fraction(eps, name="eps")
    X, is_anomalous_row, names = _load_shuttle()
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = split_novelty(
        rng,
        np.flatnonzero(~is_anomalous_row),
        np.flatnonzero(is_anomalous_row),
        n_reference,
        n_data,
        eps,
        available="anomalous rows",
    )
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    params = {"n_reference": n_reference, "n_data": n_data, "eps": eps}
    truth = make_truth(is_anomaly, np.empty((0, X.shape[1])), params, names)
    return as_f64(X[ref_idx]), as_f64(X[data_idx]), truth


def _load_shuttle():
    """Return (X, is_anomalous_row, feature_names) of river's bundled Shuttle file."""
    datasets = require_module(
        "river.datasets", scenario="shuttle_intrusion", package="river", install=_RIVER_INSTALL
    )
    if not hasattr(datasets, "Shuttle"):
        raise ImportError(
            f"scenario 'shuttle_intrusion' needs a river release that bundles the Shuttle data: "
            f"{_RIVER_INSTALL}"
        )
    path = Path(datasets.Shuttle().path)
    if not path.is_file():
        raise FileNotFoundError(f"river's Shuttle file is missing at {path}; reinstall river")
    import pandas as pd

    frame = pd.read_csv(path)
    names = [c for c in frame.columns if c != "anomaly"]
    return as_f64(frame[names].to_numpy()), frame["anomaly"].to_numpy() == 1, names
