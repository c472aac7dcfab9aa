"""Helpers shared by the scenario generators (private).

Random streams, the ``truth`` dictionary, optional imports and the disjoint split of
real rows into reference and data used by the novelty scenarios.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from .._validation import check_int

SKLEARN_INSTALL = "pip install scikit-learn"


def count_anomalous(eps: float, n_data: int) -> int:
    """Number of anomalous rows: ``eps * n_data`` rounded half up."""
    return math.floor(eps * n_data + 0.5)


def require_module(module: str, *, scenario: str, package: str, install: str):
    """Import an optional module or raise an ImportError naming the package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"scenario {scenario!r} needs the optional package {package!r} (import {module!r} failed): "
            f"install it with {install}"
        ) from err


def random_streams(seed: int, n: int) -> list[np.random.Generator]:
    """Independent generators, one per role (reference, background, signal, ...)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def make_truth(is_anomaly, centres, params: dict[str, Any], feature_names, **extra) -> dict[str, Any]:
    """The ``truth`` dictionary of a scenario (keys described in :mod:`sparker.scenarios`)."""
    n_features = len(feature_names)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, n_features)
    return {
        "is_anomaly": np.asarray(is_anomaly, dtype=bool),
        "centres": centres,
        "params": params,
        "feature_names": list(feature_names),
        **extra,
    }


def as_f64(x) -> np.ndarray:
    """``x`` as a C-contiguous float64 array."""
    return np.ascontiguousarray(x, dtype=np.float64)


def load_sklearn(loader: str, scenario: str):
    """Return (X, y, feature_names) of a scikit-learn bundled data set."""
    datasets = require_module(
        "sklearn.datasets", scenario=scenario, package="scikit-learn", install=SKLEARN_INSTALL
    )
    bunch = getattr(datasets, loader)()
    return as_f64(bunch.data), np.asarray(bunch.target), [str(n) for n in bunch.feature_names]


def split_novelty(rng, nominal_idx, anomalous_idx, n_reference, n_data, eps, *, available):
    """Disjoint row indices (reference, data) for a novelty scenario; anomalies last in data."""
    n_anom = count_anomalous(eps, n_data)
    if n_anom > len(anomalous_idx):
        raise ValueError(
            f"eps: {n_anom} anomalous rows requested (eps * n_data) but only "
            f"{len(anomalous_idx)} {available} are available"
        )
    n_nominal_data = n_data - n_anom
    if n_nominal_data >= len(nominal_idx):
        raise ValueError(
            f"n_data: at most {len(nominal_idx) + n_anom - 1} with these settings (one nominal row "
            f"at least must stay for the reference), got {n_data}"
        )
    n_left = len(nominal_idx) - n_nominal_data
    if n_left < 1:
        raise ValueError(f"n_data: no nominal row is left for the reference with n_data={n_data}")
    if n_reference is None:
        n_reference = n_left
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    if n_reference > n_left:
        raise ValueError(
            f"n_reference: only {n_left} nominal rows are left once the data rows are taken, "
            f"got {n_reference}"
        )
    nominal = rng.permutation(nominal_idx)
    anomalous = rng.permutation(anomalous_idx)[:n_anom]
    data_idx = np.concatenate([nominal[:n_nominal_data], anomalous])
    ref_idx = nominal[n_nominal_data : n_nominal_data + n_reference]
    return ref_idx, data_idx, n_anom
