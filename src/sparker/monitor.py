r"""Monitoring a stream of windows against one reference: :class:`Monitor` (``docs/monitor.md``).

A :class:`~sparker.calibration.Calibration` with exact-count toys serves one data size; a
stream has one reference and many windows of varying size.  The monitor calibrates once on
a geometric **grid of sizes**, :math:`n_1 = n_{\min}`,
:math:`n_{k+1} = \max(n_k + 1, \lfloor r\, n_k \rfloor)` while below :math:`n_{\max}`, then
:math:`n_{\max}` (``r = grid_ratio``; seeds :func:`grid_seed`).

**Test of a window** of :math:`n` points: take the largest :math:`n_k \le n`, draw
:math:`n_k` of its rows uniformly without replacement (:func:`subsample_rows`) and test them
with the calibration of :math:`n_k`.  Under :math:`H_0` the window is an i.i.d. sample of
the reference law, and a random subset chosen independently of the values is again one, of
size :math:`n_k`: exactly what the toys of :math:`n_k` simulate, so the p-value is exact
(:math:`P(p \le \alpha) \le \alpha`).  As :math:`n_{k+1} \le r\, n_k`, a window drops less
than a fraction :math:`1 - 1/r` of its points (13 % at :math:`r = 1.15`).  Interpolating the
null between grid sizes would use every point but is approximate, and an error in the tail
of the null is an error in the p-value: the monitor trades a few points for exactness.

**Effect size.**  The observed fit :math:`f` is applied to *every* point of the window.
With :math:`e^{f} = p_D / p_R`, :math:`1 - e^{-f(x)}` is the probability that a data point
at :math:`x` is in excess of the reference (:mod:`sparker.interpret`), and

.. math::

    \hat n_{\text{excess}} = \sum_{x \in W} \max\!\big(0, 1 - e^{-f(x)}\big)\,
        \mathbb 1\big[\text{region}(x) \text{ is an active kernel with } a > 0\big]

estimates the number of anomalous points: where the window's density is :math:`p_R + s`,
:math:`E \sum_x (1 - p_R / p_D)(x) = n \int s`.  The *excess fraction* is
:math:`\hat n_{\text{excess}} / n`.  Only active kernels count (local :math:`|Z| \ge 3`, a
sizeable amplitude), so a null window usually has none and a faint excess reads 0.  It
describes; the p-value is the calibrated statement.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import (
    check_array, check_feature_names, check_int, check_n_features, check_real, check_weights,
)
from ._version import __version__
from ._warnings import SparKerWarning
from .calibration import Calibration, calibrate
from .config import NullConfig
from .core.order import canonical_order
from .core.streaming import fingerprint
from .interpret import rename_features
from .io import check_format, write_json
from .results import TestResult

__all__ = [
    "Monitor", "WindowResult", "MonitorRun", "size_grid", "grid_seed", "subsample_rows", "excess_events",
    "GRID_RATIO", "MONITOR_FORMAT", "MONITOR_VERSION", "HEADER_FILE",
]

log = logging.getLogger(__name__)

#: Default ratio of consecutive grid sizes: a window drops less than 1 - 1/1.15 = 13 % of its points.
GRID_RATIO = 1.15
#: Streams of the monitor's seed: the calibration seed of each grid size, the subsample of each window.
GRID_KEY, SUBSAMPLE_KEY = 0, 1
MONITOR_FORMAT = "sparker-monitor"
MONITOR_VERSION = 1
#: The header of a saved monitor, beside one calibration file per grid size.
HEADER_FILE = "sparker-monitor.json"
#: Options of :func:`sparker.calibrate` that a monitor sets itself or cannot honour, and why.
REFUSED_OPTIONS = dict.fromkeys(("n_expected", "poisson", "data_tolerance"),
                                "the monitor's toys have exact counts (one calibration per size)")
REFUSED_OPTIONS.update(checkpoint="one checkpoint file cannot hold the toys of several grid sizes",
                       n_data="the grid sizes come from min_size, max_size and grid_ratio")

_MISSING = object()  # no label left for a window
_NULL = NullConfig()  # the defaults of the null-toy options, written once in config.py


# ------------------------------------------------------------------ the grid and the subsample
def size_grid(min_size: int, max_size: int, ratio: float) -> tuple[int, ...]:
    r"""The calibrated sizes, from ``min_size`` to ``max_size`` in steps of at most ``ratio``.

    :math:`n_1 =` ``min_size``, :math:`n_{k+1} = \max(n_k + 1, \lfloor r\, n_k \rfloor)` while below
    ``max_size``, then ``max_size``.  Every size ``n`` in ``[min_size, max_size]`` then has a
    grid size ``n_k <= n`` with ``n_k > n / ratio`` (or ``n_k = n``).
    """
    sizes = [int(min_size)]
    while True:
        following = max(sizes[-1] + 1, math.floor(sizes[-1] * ratio))
        if following >= max_size:
            break
        sizes.append(following)
    if sizes[-1] < max_size:
        sizes.append(int(max_size))
    return tuple(sizes)


def grid_seed(seed: int, size: int) -> int:
    """Seed of the calibration of one grid size: stream ``(GRID_KEY, size)`` of ``seed``, as an int.

    Keyed by the size rather than its position, so a size calibrates alike in every grid.
    """
    return int(np.random.SeedSequence(seed, spawn_key=(GRID_KEY, int(size))).generate_state(1)[0])


def subsample_rows(window: np.ndarray, size: int, seed: int, index: int) -> np.ndarray:
    """Rows of ``window`` tested at grid size ``size``: ``size`` rows uniformly without replacement.

    Positions are drawn from stream ``(SUBSAMPLE_KEY, index)`` of ``seed`` and taken in the
    window's canonical row order (:func:`~sparker.core.order.canonical_order`), so the points
    chosen do not depend on the order of the window's rows.  A uniformly random set of
    positions of any permutation is a uniformly random set of rows, independent of the values.

    Returns
    -------
    ndarray of shape (size,), int64
        Sorted row indices; every row when ``size`` is the window's size.
    """
    n = window.shape[0]
    if size == n:
        return np.arange(n, dtype=np.int64)
    order = canonical_order([window])  # (n,)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SUBSAMPLE_KEY, int(index))))
    return np.sort(order[rng.choice(n, size=size, replace=False)])


def excess_events(model, window: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Estimated number of excess points of ``window`` and its share per kernel (module docstring).

    Parameters
    ----------
    model : SparKer
        A fitted model (the observed fit of the window's test).
    window : ndarray of shape (n, n_features)

    Returns
    -------
    excess : float
        :math:`\sum_x \max(0, 1 - e^{-f(x)})` over the points whose region is an active
        kernel of positive amplitude.
    per_kernel : ndarray of shape (n_kernels,)
        The same sum over the points of each kernel's region (0 for the other kernels).
    """
    explanation = model.explain(window)
    kernels = model.kernels_
    carries = np.array([bool(k["active"]) and k["amplitude"] > 0 for k in kernels])  # (M,)
    counted = carries[explanation.region]  # (n,)
    share = np.clip(explanation.excess_fraction, 0.0, None) * counted  # (n,)
    per_kernel = np.bincount(explanation.region, weights=share, minlength=len(kernels))  # (M,)
    return float(share.sum()), per_kernel


# ------------------------------------------------------------------ results
def _json_label(label):
    """A window label as JSON: numbers and strings as they are, anything else as text."""
    label = label.item() if isinstance(label, np.generic) else label
    return label if isinstance(label, (str, int, float, bool)) else str(label)


@dataclass(frozen=True, eq=False, repr=False)
class WindowResult:
    """The test of one window (:meth:`Monitor.test`).

    Attributes
    ----------
    index : int
        Position of the window in the stream (seeds its subsample).
    label : object
        The window's name (default: ``index``).
    n_points : int
        Points in the window.
    grid_size : int
        Points tested: the largest grid size ``<= n_points``.
    rows : ndarray of shape (grid_size,)
        The window's rows that were tested (sorted).
    statistic, pvalue, zscore : float
        Of the calibrated test of those rows (``pvalue`` never 0, resolution ``1 / (n_null + 1)``).
    excess : float
        Estimated number of anomalous points of the whole window (:func:`excess_events`).
    excess_fraction : float
        ``excess / n_points``.
    kernels : tuple of dict
        The active kernels of positive amplitude that carry the excess: ``index`` (row of
        the model's ``kernels_``), ``layer``, ``centre`` (feature -> value, original units),
        ``amplitude``, ``local_z`` and ``excess`` (their share of it), largest share first.
    result : TestResult
        The full calibrated test, with the fitted model.
    """

    index: int
    label: object
    n_points: int
    grid_size: int
    rows: np.ndarray
    statistic: float
    pvalue: float
    zscore: float
    excess: float
    excess_fraction: float
    kernels: tuple
    result: TestResult

    @property
    def n_null(self) -> int:
        return int(self.result.n_null)

    def __repr__(self) -> str:
        return (f"WindowResult(label={self.label!r}, n_points={self.n_points}, grid_size={self.grid_size}, "
                f"pvalue={self.pvalue:.4g}, zscore={self.zscore:.3g}, excess={self.excess:.3g})")

    def to_dict(self) -> dict:
        """JSON-ready summary (the full test, with its null distribution, is in ``result``)."""
        return {
            "index": int(self.index), "label": _json_label(self.label), "n_points": int(self.n_points),
            "grid_size": int(self.grid_size), "statistic": float(self.statistic),
            "pvalue": float(self.pvalue), "zscore": float(self.zscore),
            "pvalue_resolution": 1.0 / (self.n_null + 1), "n_null": self.n_null,
            "excess": float(self.excess), "excess_fraction": float(self.excess_fraction),
            "kernels": list(self.kernels), "converged": bool(self.result.converged),
        }


#: Columns of :meth:`MonitorRun.to_frame`, in order.
FRAME_COLUMNS = ("index", "label", "n_points", "grid_size", "statistic", "pvalue", "zscore", "excess",
                 "excess_fraction", "n_kernels")


@dataclass(frozen=True, repr=False)
class MonitorRun(Sequence):
    """The results of :meth:`Monitor.run`, in stream order: a sequence of :class:`WindowResult`."""

    results: tuple

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, item):
        return self.results[item]

    def __repr__(self) -> str:
        return f"MonitorRun(n_windows={len(self)})"

    def to_frame(self):
        """One row per window: the columns of :data:`FRAME_COLUMNS` (pandas DataFrame)."""
        import pandas as pd

        rows = [{**{k: r.to_dict()[k] for k in FRAME_COLUMNS[:-1]}, "n_kernels": len(r.kernels)}
                for r in self.results]
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))

    def to_dict(self) -> dict:
        """JSON-ready: ``windows``, one :meth:`WindowResult.to_dict` each."""
        return {"windows": [r.to_dict() for r in self.results]}


# ------------------------------------------------------------------ the monitor
#: The monitor's parameters, as :func:`_check_params` returns them.
_PARAMS = ("min_size", "max_size", "grid_ratio", "n_null", "seed")


def _check_params(min_size, max_size, grid_ratio, n_null, seed) -> dict:
    """The checked parameters, by name (:data:`_PARAMS`)."""
    min_size = check_int(min_size, name="min_size", minimum=1)
    max_size = check_int(max_size, name="max_size", minimum=1)
    if max_size < min_size:
        raise ValueError(f"max_size: expected at least min_size = {min_size}, got {max_size}")
    grid_ratio = check_real(grid_ratio, name="grid_ratio")
    if not grid_ratio > 1.0:
        raise ValueError(f"grid_ratio: expected a number > 1, got {grid_ratio!r}")
    return dict(zip(_PARAMS, (min_size, max_size, grid_ratio, check_int(n_null, name="n_null", minimum=1),
                              check_int(seed, name="seed", minimum=0))))


def _check_options(options: dict) -> None:
    for name, why in REFUSED_OPTIONS.items():
        if name in options:
            raise ValueError(f"{name}: not an option of a Monitor: {why}")


class Monitor:
    """Exact calibrated tests of many windows of varying size against one reference.

    Calibrates :func:`sparker.calibrate` once per size of a geometric grid between
    ``min_size`` and ``max_size``; a window of ``n`` points is tested at the largest grid
    size ``<= n`` on a seeded random subset of its rows (module docstring, ``docs/monitor.md``).

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
        Needs ``n_reference >= 2 max_size``.
    min_size, max_size : int
        Sizes of the smallest and the largest window to test.
    n_null : int, default=100
        Toys per grid size (p-value resolution ``1 / (n_null + 1)``).
    grid_ratio : float, default=1.15
        Ratio of consecutive grid sizes, > 1: a window drops less than ``1 - 1/grid_ratio``
        of its points; the grid has about ``1 + log(max_size/min_size) / log(grid_ratio)``
        sizes, each calibrated once.
    seed : int, default=0
        Every calibration's seed (:func:`grid_seed`) and every window's subsample.
    reference_weight : array-like of shape (n_reference,), optional
    **options
        Passed to :func:`sparker.calibrate`: training settings (``n_kernels=4``,
        ``epochs=...``; lists aggregate several configurations) and how toys run
        (``backend``, ``progress``, ``device``, where windows are fitted too).  ``n_expected``,
        ``poisson``, ``data_tolerance`` and ``checkpoint`` are refused.

    Attributes
    ----------
    sizes_ : tuple of int
        The grid sizes.
    calibrations_ : dict
        Grid size -> its :class:`~sparker.calibration.Calibration`.
    fingerprint_ : str
        SHA-256 of the reference and its weights.
    n_features_in_ : int
    feature_names_in_ : list of str or None
        The reference's column names (a DataFrame); windows must then match them.

    Raises
    ------
    ValueError
        Naming the offending argument, before any toy runs.
    """

    def __init__(self, reference, min_size: int, max_size: int, *, n_null: int = _NULL.n_null,
                 grid_ratio: float = GRID_RATIO, seed: int = _NULL.seed, reference_weight=None, **options):
        R, names, _ = check_array(reference, name="reference", min_samples=2, lean=True)
        wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
        params = _check_params(min_size, max_size, grid_ratio, n_null, seed)
        if R.shape[0] < 2 * params["max_size"]:
            raise ValueError(f"max_size: windows of {params['max_size']} points need a reference of at "
                             f"least {2 * params['max_size']} points (resample toys take a window's worth "
                             f"of rows out of it); the reference has {R.shape[0]}")
        _check_options(options)
        sizes = size_grid(params["min_size"], params["max_size"], params["grid_ratio"])
        calibrations = {}
        for k, n in enumerate(reversed(sizes)):  # the largest first: size-dependent refusals come at once
            log.info("monitor: calibrating grid size %d (%d of %d)", n, k + 1, len(sizes))
            calibrations[n] = calibrate(R, n, n_null=params["n_null"], seed=grid_seed(params["seed"], n),
                                        reference_weight=wr, **options)
        self._assemble(R, wr, names, params, {n: calibrations[n] for n in sizes}, options.get("device"))

    def _assemble(self, R, wr, names, params: dict, calibrations: dict, device=None) -> None:
        for name in _PARAMS:
            setattr(self, name, params[name])
        self.sizes_ = tuple(calibrations)
        self.calibrations_ = calibrations
        first = calibrations[self.sizes_[0]]
        self.fingerprint_ = first.fingerprint
        self.n_features_in_ = int(first.n_features)
        self.feature_names_in_ = None if names is None else [str(n) for n in names]
        self._reference, self._reference_weight, self._device = R, wr, device

    def __repr__(self) -> str:
        return (f"Monitor(min_size={self.min_size}, max_size={self.max_size}, grid_ratio={self.grid_ratio:g},"
                f" n_sizes={len(self.sizes_)}, n_null={self.n_null}, seed={self.seed})")

    # ---------------------------------------------------------------- testing
    def grid_size(self, n_points: int) -> int:
        """The grid size a window of ``n_points`` is tested at: the largest one ``<= n_points``.

        Raises
        ------
        ValueError
            Naming ``window``, if ``n_points`` lies outside ``[min_size, max_size]``.
        """
        n = int(n_points)
        if not self.min_size <= n <= self.max_size:
            raise ValueError(f"window: has {n} points, outside the monitor's range [{self.min_size}, "
                             f"{self.max_size}] (min_size, max_size); build a Monitor that covers it")
        return max(s for s in self.sizes_ if s <= n)

    def test(self, window, *, index: int = 0, label=None) -> WindowResult:
        """Test one window.

        Parameters
        ----------
        window : array-like of shape (n_points, n_features)
            ``min_size <= n_points <= max_size``; unweighted points.
        index : int, default=0
            The window's position in the stream: seeds its subsample (same window and
            index, same result).
        label : object, optional
            A name for the window (default: ``index``).

        Returns
        -------
        WindowResult
        """
        index = check_int(index, name="index", minimum=0)
        if self._reference is None:
            raise ValueError("reference: this monitor was loaded without its reference; "
                             "load it with Monitor.load(path, reference=...)")
        D, names, dev = check_array(window, name="window", min_samples=1)
        check_n_features(self.n_features_in_, D.shape[1], name="window")
        check_feature_names(self.feature_names_in_, names, name="window")
        size = self.grid_size(D.shape[0])
        rows = subsample_rows(D, size, self.seed, index)
        result = self.calibrations_[size].test(D[rows], reference=self._reference, device=self._device or dev,
                                               reference_weight=self._reference_weight)
        excess, per_kernel = excess_events(result.model, D)
        return WindowResult(
            index=index, label=index if label is None else label, n_points=D.shape[0], grid_size=size,
            rows=rows, statistic=float(result.statistic), pvalue=float(result.pvalue),
            zscore=float(result.zscore), excess=excess, excess_fraction=excess / D.shape[0],
            kernels=self._carriers(result.model, per_kernel), result=result,
        )

    def _carriers(self, model, per_kernel: np.ndarray) -> tuple:
        """The kernels that carry the excess, as records (centres in original units, named)."""
        table = model.kernels_
        if self.feature_names_in_ is not None:
            table = rename_features(table, self.feature_names_in_)
        rows = [
            {"index": int(k["index"]), "layer": int(k["layer"]), "centre": dict(k["centre"]),
             "amplitude": float(k["amplitude"]), "local_z": k["local_z"], "excess": float(per_kernel[i])}
            for i, k in enumerate(table) if k["active"] and k["amplitude"] > 0 and per_kernel[i] > 0
        ]
        return tuple(sorted(rows, key=lambda r: -r["excess"]))

    def stream(self, windows: Iterable, labels: Iterable | None = None) -> Iterator[WindowResult]:
        """Test windows one at a time as they come (window ``i`` gets ``index=i``)."""
        labels = iter(labels) if labels is not None else None
        for i, window in enumerate(windows):
            label = i if labels is None else next(labels, _MISSING)
            if label is _MISSING:
                raise ValueError(f"labels: fewer labels than windows (none for window {i})")
            result = self.test(window, index=i, label=label)
            log.info("monitor: window %s, %d points (tested %d): p = %.4g, excess %.3g", result.label,
                     result.n_points, result.grid_size, result.pvalue, result.excess)
            yield result

    def run(self, windows: Iterable, labels: Iterable | None = None) -> MonitorRun:
        """Test every window of ``windows`` (window ``i`` gets ``index=i``); see :meth:`stream`.

        Returns
        -------
        MonitorRun
            The :class:`WindowResult` of each window; ``to_frame()`` gives one row per window.
        """
        return MonitorRun(tuple(self.stream(windows, labels)))

    def to_dict(self) -> dict:
        """JSON-ready description: parameters, grid, calibration seeds, settings, provenance."""
        first = self.calibrations_[self.sizes_[0]]
        return {
            "min_size": self.min_size, "max_size": self.max_size, "grid_ratio": self.grid_ratio,
            "n_null": self.n_null, "seed": self.seed, "sizes": list(self.sizes_),
            "calibration_seeds": {str(n): int(c.seed) for n, c in self.calibrations_.items()},
            "settings": first.settings_dicts(), "aggregation": first.aggregation,
            "fingerprint": self.fingerprint_, "n_features": self.n_features_in_,
            "feature_names": self.feature_names_in_, "sparker_version": first.sparker_version,
        }

    # ---------------------------------------------------------------- files
    def save(self, path, *, overwrite: bool = False) -> None:
        """Write the monitor into the folder ``path``: :data:`HEADER_FILE` and one calibration per size.

        Each grid size is a :meth:`Calibration.save` file (``calibration-n<size>.npz``, no
        pickle); the JSON header is written last.  The reference itself is not stored (only
        its fingerprint): pass it to :meth:`load`.

        Raises
        ------
        FileExistsError
            If any of these files exists and ``overwrite`` is False (nothing is written).
        NotADirectoryError
            If ``path`` exists and is not a folder.
        """
        folder = Path(os.fspath(path))
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"path: {folder} exists and is not a folder")
        files = {n: f"calibration-n{n}.npz" for n in self.sizes_}
        if not overwrite:
            for name in [HEADER_FILE, *files.values()]:
                if (folder / name).exists():
                    raise FileExistsError(f"path: {folder / name} already exists; pass overwrite=True "
                                          "to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        for n, name in files.items():
            self.calibrations_[n].save(folder / name, overwrite=overwrite)
        header = {"format": MONITOR_FORMAT, "format_version": MONITOR_VERSION, **self.to_dict(),
                  "files": {str(n): name for n, name in files.items()}}
        write_json(folder / HEADER_FILE, header, overwrite=overwrite)

    @classmethod
    def load(cls, path, reference=None, *, reference_weight=None) -> "Monitor":
        """Read a monitor written by :meth:`save` (executes nothing from the files).

        Parameters
        ----------
        path : str or os.PathLike
            The folder.
        reference : array-like of shape (n_reference, n_features), optional
            The reference it was made with (checked by fingerprint); needed to test windows.
        reference_weight : array-like of shape (n_reference,), optional
            Default: the weights stored with the calibrations.

        Warns
        -----
        SparKerWarning
            Once, if another SparKer version made it.

        Raises
        ------
        FileNotFoundError
            If the folder, its header or a calibration file does not exist.
        ValueError
            If it is not a monitor of this format version, is inconsistent, or ``reference``
            differs from the one it was made with.
        """
        folder = Path(os.fspath(path))
        header = _read_header(folder)
        made_by = header.get("sparker_version")
        if made_by != __version__:
            warnings.warn(f"path: {folder} is a monitor made by SparKer {made_by} and this is SparKer "
                          f"{__version__}: its null distributions may differ from the ones this version "
                          "computes, so its p-values may be off; build the monitor again with this version",
                          SparKerWarning, stacklevel=2)
        try:
            params = _header_params(header)
            with warnings.catch_warnings():  # the version was checked once, above
                warnings.simplefilter("ignore", SparKerWarning)
                calibrations = {n: Calibration.load(folder / header["files"][str(n)])
                                for n in params["sizes"]}
            _check_calibrations(calibrations, header, params)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise ValueError(f"path: {folder} is an incomplete or inconsistent monitor ({exc})") from None
        monitor = cls.__new__(cls)
        R, wr = _loaded_reference(reference, reference_weight, calibrations[params["sizes"][0]])
        monitor._assemble(R, wr, header["feature_names"], params, calibrations)
        return monitor


def _loaded_reference(reference, reference_weight, calibration: Calibration) -> tuple:
    """The reference given to :meth:`Monitor.load` and its weights, checked by fingerprint (or None)."""
    if reference is None:
        return None, None
    R, _, _ = check_array(reference, name="reference", min_samples=2, lean=True)
    wr = calibration.reference_weight if reference_weight is None else check_weights(
        reference_weight, R.shape[0], name="reference_weight")
    if fingerprint([R], wr) != calibration.fingerprint:
        raise ValueError("reference: differs from the reference (or reference_weight) of the monitor")
    return R, wr


def _read_header(folder: Path) -> dict:
    """The JSON header of a saved monitor, its format and format version checked."""
    path = folder / HEADER_FILE
    if not path.exists():
        raise FileNotFoundError(f"path: no saved monitor in {folder} ({HEADER_FILE} not found)")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"path: {path} is not a readable monitor header ({exc})") from None
    check_format(header, path, what="SparKer monitor header", format_name=MONITOR_FORMAT, version=MONITOR_VERSION)
    return header


def _header_params(header: dict) -> dict:
    """The monitor's parameters from its header, checked as the constructor checks them."""
    params = _check_params(*(header[name] for name in _PARAMS))
    params["sizes"] = size_grid(params["min_size"], params["max_size"], params["grid_ratio"])
    if [int(n) for n in header["sizes"]] != list(params["sizes"]):
        raise ValueError("the sizes do not follow from min_size, max_size and grid_ratio")
    names = header["feature_names"]
    if names is not None and (not isinstance(names, list) or len(names) != header["n_features"]):
        raise ValueError("feature_names do not match n_features")
    return params


def _check_calibrations(calibrations: dict, header: dict, params: dict) -> None:
    """Every calibration is the one its grid size needs."""
    for n, cal in calibrations.items():
        if cal.n_data != n or cal.poisson or cal.seed != grid_seed(params["seed"], n):
            raise ValueError(f"the calibration of size {n} is not this monitor's (size, counts or seed)")
        if cal.fingerprint != header["fingerprint"] or cal.n_features != header["n_features"]:
            raise ValueError(f"the calibration of size {n} was made with another reference")
        if cal.n_null != params["n_null"]:
            raise ValueError(f"the calibration of size {n} has {cal.n_null} toys, not {params['n_null']}")
