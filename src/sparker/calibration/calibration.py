"""Reusable calibrations: the null distribution of one reference, saved and loaded.

A :class:`Calibration` holds the null statistics of a reference for one data
size and everything they depend on, so that many inspected samples are tested
against the same toys (``docs/method.md``, "Calibration").  Also here: the
observed fits of a calibrated test and the assembly of its :class:`TestResult`
(p-value, Z, chi-square fit of the null, aggregation of several configurations).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from .._version import __version__
from .._validation import check_array, check_n_features, check_weights
from .._warnings import SparKerWarning
from ..config import NullConfig, TrainingConfig, validate_config
from ..core.nulls import NullSpec, toy_weights
from ..core.order import canonical_order
from ..core.schedules import MIN_WIDTH
from ..core.streaming import fingerprint
from ..estimator import from_config
from ..io import read_archive, write_archive
from ..results import TestResult
from ..stats import AGGREGATIONS, aggregate, empirical_pvalue, fit_chi2, zscore
from .toys import HOLDOUT_KEY, child_seed

__all__ = ["Calibration", "CALIBRATION_FORMAT", "CALIBRATION_VERSION", "fit_observed", "assemble_result",
           "unit_data_weight"]

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "sparker-calibration"
CALIBRATION_VERSION = 1

_NULL = NullConfig()  # the defaults of the null-toy options

@dataclass(repr=False, eq=False)
class Calibration:
    """Null distribution of a reference, reusable for many inspected samples.

    Create with :func:`sparker.calibrate`; test samples with :meth:`test` (or
    ``sparker.test(..., calibration=cal)``); store with :meth:`save` and
    :meth:`load`.  Holds the null statistics and everything they depend on: the
    reference fingerprint, the data size, the null-mode options, the training
    configurations, the widths and the seed.

    Attributes
    ----------
    null : ndarray of shape (n_null, n_configs)
        Null statistics of every toy and configuration.
    configs : list of TrainingConfig
    widths : list
        Per configuration, ``(sigma_start, sigma_end)`` of every layer
        (standardised units).
    fingerprint : str
        SHA-256 of the reference and its weights.
    n_features, n_data : int
    n_expected : float or None
        ``N_0`` of the toys (None: the toy's own data count, shape only).
    poisson : bool
        Toy data counts drawn from Poisson(``N_0``) rather than exactly ``n_data``.
    null_mode : str
        ``resample``.
    seed : int
    aggregation : str
        How several configurations are combined (a key of :data:`sparker.stats.AGGREGATIONS`).
    data_tolerance : float
        With shape-only Poisson toys (no ``n_expected``), samples whose size
        lies within ``data_tolerance * sqrt(N_0)`` of ``N_0`` are accepted.
    reference, reference_weight : ndarray or None
        The calibrated reference (kept in memory only; not saved) and its
        weights (saved).
    sparker_version : str
        The SparKer version that ran the toys (a calibration loaded from another
        version warns: its null may differ from what this version computes).
    """

    null: np.ndarray
    configs: list
    widths: list
    fingerprint: str
    n_features: int
    n_data: int
    n_expected: float | None
    poisson: bool
    null_mode: str
    seed: int
    aggregation: str = _NULL.aggregation
    data_tolerance: float = _NULL.data_tolerance
    reference: np.ndarray | None = field(default=None, compare=False)
    reference_weight: np.ndarray | None = field(default=None, compare=False)
    sparker_version: str = __version__

    def __repr__(self) -> str:
        return (f"Calibration(n_null={self.n_null}, n_data={self.n_data}, n_expected={self.n_expected}, "
                f"poisson={self.poisson}, null_mode={self.null_mode!r}, n_configs={len(self.configs)}, "
                f"aggregation={self.aggregation!r}, seed={self.seed})")

    @property
    def n_null(self) -> int:
        return int(self.null.shape[0])

    @property
    def n0(self) -> float:
        """``N_0``: ``n_expected``, else ``n_data``."""
        return float(self.n_expected if self.n_expected is not None else self.n_data)

    def accepts(self, n_rows: int) -> bool:
        """Whether an inspected sample of ``n_rows`` points matches the calibration.

        Exact-count toys accept exactly ``n_data`` rows.  Poisson toys with
        ``n_expected`` test the count itself (their counts are Poisson(``N_0``)
        draws), so they accept any count: a count far from ``N_0`` is evidence,
        not a mismatch.  Shape-only Poisson toys (no ``n_expected``) accept a
        count within ``data_tolerance`` standard deviations of ``N_0``:
        ``|n - N_0| <= data_tolerance * sqrt(N_0)``.
        """
        if not self.poisson:
            return int(n_rows) == self.n_data
        if self.n_expected is not None:
            return True
        return abs(float(n_rows) - self.n0) <= self.data_tolerance * math.sqrt(self.n0)

    def _size_message(self, n_rows: int) -> str:
        if not self.poisson:
            return (f"data: has {n_rows} points but the calibration's toys have exactly "
                    f"{self.n_data}; calibrate for this size")
        return (f"data: has {n_rows} points, outside the {self.n0:g} +- {self.data_tolerance:g} * "
                f"sqrt({self.n0:g}) the shape-only Poisson toys cover; calibrate for this size "
                "(or with n_expected, to test the count as well)")

    def settings_dicts(self) -> list[dict]:
        """The training configurations as dicts, in order."""
        return [c.to_dict() for c in self.configs]

    def test(self, data, *, reference=None, reference_weight=None, data_weight=None,
             device=None) -> TestResult:
        """Test an inspected sample against this calibration.

        Parameters
        ----------
        data : array-like of shape (n_data, n_features)
        reference : array-like of shape (n_reference, n_features), optional
            The calibrated reference; needed after :meth:`load` (its
            fingerprint is checked).  Keyword-only: a calibration already holds
            its reference, so the one sample it tests comes first, and
            ``cal.test(data, ref)`` cannot be mistaken for ``sparker.test(reference, data)``.
        reference_weight : array-like of shape (n_reference,), optional
            Default: the calibration's reference weights.
        data_weight : array-like of shape (n_data,), optional
            Only all-ones weights are accepted: the toys' data are unweighted
            (:func:`unit_data_weight`).
        device : str or torch.device, optional

        Returns
        -------
        TestResult

        Raises
        ------
        ValueError
            If the reference (or its weights) differs from the calibrated one,
            the data are weighted, or the data size is not covered (see
            :meth:`accepts`).
        """
        if reference is None:
            if self.reference is None:
                raise ValueError("reference: this calibration was loaded from disk; "
                                 "pass the reference it was made with")
            R = self.reference
        else:
            R, _, _ = check_array(reference, name="reference", min_samples=2, lean=True)
        wr = self.reference_weight if reference_weight is None else check_weights(
            reference_weight, R.shape[0], name="reference_weight")
        if fingerprint([R], wr) != self.fingerprint:
            raise ValueError("reference: differs from the reference (or reference_weight) "
                             "this calibration was made with")
        D, _, dev = check_array(data, name="data", min_samples=1, lean=True)
        check_n_features(R.shape[1], D.shape[1], name="data")
        unit_data_weight(data_weight, D.shape[0])
        if not self.accepts(D.shape[0]):
            raise ValueError(self._size_message(D.shape[0]))
        return self._evaluate(R, wr, D, device if device is not None else dev)

    def _evaluate(self, R, wr, D, device) -> TestResult:
        """Observed fits, with the calibration's widths, and the result (no checks)."""
        t_obs, models = fit_observed(R, D, wr, None, self.configs, self.seed, self.n_expected, device,
                                     widths=self.widths, holdout=True)
        return assemble_result(t_obs, self.null, models, self.configs, self.seed, self.aggregation,
                               self.null_mode)

    # ---------------------------------------------------------------- files
    def save(self, path, *, overwrite: bool = False) -> None:
        """Write to a ``.npz`` file (arrays + JSON header, no pickle), atomically.

        The reference itself is not stored (only its fingerprint): pass it to
        :meth:`test` after :meth:`load`.
        """
        meta = {
            "format": CALIBRATION_FORMAT,
            "format_version": CALIBRATION_VERSION,
            "sparker_version": self.sparker_version,
            "configs": self.settings_dicts(),
            "widths": [[list(p) for p in w] for w in self.widths],
            "fingerprint": self.fingerprint,
            "n_features": int(self.n_features),
            "n_data": int(self.n_data),
            "n_expected": None if self.n_expected is None else float(self.n_expected),
            "poisson": bool(self.poisson),
            "null_mode": self.null_mode,
            "seed": int(self.seed),
            "aggregation": self.aggregation,
            "data_tolerance": float(self.data_tolerance),
        }
        arrays = {"null": np.asarray(self.null, dtype=np.float64)}
        if self.reference_weight is not None:
            arrays["reference_weight"] = np.asarray(self.reference_weight, dtype=np.float64)
        write_archive(path, arrays, meta, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a calibration written by :meth:`save` (executes nothing from the file).

        Warns
        -----
        SparKerWarning
            If another SparKer version made it: its null toys may differ from
            what this version computes (and from its observed fits).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a readable SparKer calibration of this format
            version, or is inconsistent.
        """
        path = os.fspath(path)
        arrays, meta = read_archive(path, kind="SparKer calibration", format_name=CALIBRATION_FORMAT,
                                    version=CALIBRATION_VERSION)
        made_by = _check_version(path, meta.get("sparker_version"))
        try:
            configs = [TrainingConfig.from_dict(c) for c in meta["configs"]]
            for c in configs:
                validate_config(c)
            widths = [[tuple(float(x) for x in p) for p in w] for w in meta["widths"]]
            if len(widths) != len(configs) or any(
                len(w) != len(c.layer_configs()) or any(len(p) != 2 for p in w)
                for w, c in zip(widths, configs)
            ):
                raise ValueError("widths do not match the configurations")
            if not all(math.isfinite(x) and x > 0 for w in widths for p in w for x in p):
                raise ValueError("widths must be positive and finite")
            null = np.asarray(arrays["null"], dtype=np.float64)
            if null.ndim != 2 or null.shape[1] != len(configs) or null.shape[0] < 1 \
                    or not np.isfinite(null).all():
                raise ValueError("null statistics have the wrong shape or non-finite values")
            wr = arrays.get("reference_weight")
            if wr is not None and (wr.ndim != 1 or not np.isfinite(wr).all() or (wr < 0).any()):
                raise ValueError("reference_weight is not a 1-D array of non-negative weights")
            fp = meta["fingerprint"]
            if not (isinstance(fp, str) and len(fp) == 64):
                raise ValueError("bad fingerprint")
            if meta["null_mode"] != "resample" or meta["aggregation"] not in AGGREGATIONS:
                raise ValueError("unknown null mode or aggregation")
            n_expected = meta["n_expected"]
            cal = cls(
                null=null, configs=configs, widths=widths, fingerprint=fp,
                n_features=int(meta["n_features"]), n_data=int(meta["n_data"]),
                n_expected=None if n_expected is None else float(n_expected),
                poisson=bool(meta["poisson"]), null_mode="resample", seed=int(meta["seed"]),
                aggregation=str(meta["aggregation"]), data_tolerance=float(meta["data_tolerance"]),
                reference_weight=None if wr is None else np.asarray(wr, dtype=np.float64),
                sparker_version=made_by,
            )
            if cal.n_data < 1 or cal.n_features < 1 or cal.seed < 0 or not cal.data_tolerance >= 0:
                raise ValueError("n_data, n_features, seed or data_tolerance out of range")
            if cal.n_expected is not None and not (math.isfinite(cal.n_expected) and cal.n_expected > 0):
                raise ValueError("n_expected must be a positive number")
            if wr is not None and not (wr > 0).any():
                raise ValueError("reference_weight is all zero")
            return cal
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise ValueError(f"path: {path} is an incomplete or inconsistent calibration ({exc})") from None


def _check_version(path: str, version) -> str:
    """The version that made a calibration; warns when it is not this one."""
    if version != __version__:
        made_by = version if version is not None else "(unknown)"
        warnings.warn(
            f"path: {path} is a calibration made by SparKer {made_by} and this is SparKer {__version__}: "
            "its null distribution may differ from the one this version computes, so its p-values "
            "may be off; calibrate again with this version",
            SparKerWarning, stacklevel=3)
    return str(version)


# ------------------------------------------------------------------ observed fits
def unit_data_weight(data_weight, n_data: int) -> None:
    """Refuse data weights in a calibrated test (all-ones weights are accepted).

    Null toys take their data as unweighted rows, so a weighted observed sample
    would be compared with the null of another statistic.

    Raises
    ------
    ValueError
        Naming ``data_weight``, for invalid weights or any weight other than 1.
    """
    wd = check_weights(data_weight, n_data, name="data_weight")
    if wd is None or bool(np.all(wd == 1.0)):
        return
    raise ValueError(
        f"data_weight: calibrated tests take unweighted data (got weights from {wd.min():g} to "
        f"{wd.max():g}): the null toys' data are unweighted rows, so weighted data would be tested "
        "against the wrong null; test the unweighted data, put the weights on the reference "
        "(reference_weight) if they describe it, or use SparKer.fit ('sparker fit') for the "
        "uncalibrated statistic")


def with_widths(cfg: TrainingConfig, widths) -> TrainingConfig:
    """``cfg`` with every layer's ``(sigma_start, sigma_end)`` set to ``widths``.

    Widths below :data:`~sparker.core.schedules.MIN_WIDTH` (which a setting may
    not hold) stay unset: the fit derives the same value from the same stream.
    """
    def pair(layer, w):
        s0, s1 = (float(x) if x >= MIN_WIDTH else None for x in w)
        return replace(layer, sigma_start=s0 if s0 is not None else layer.sigma_start,
                       sigma_end=s1 if s1 is not None else layer.sigma_end)

    if len(widths) != len(cfg.layer_configs()):
        raise ValueError(f"widths: {len(widths)} layers of widths for {len(cfg.layer_configs())} layers")
    if not cfg.layers:
        return pair(cfg, widths[0])
    return replace(cfg, layers=tuple(pair(layer, w) for layer, w in zip(cfg.layers, widths)))


def observed_reference_weight(R, wr, n_data: int, n_expected, seed: int) -> np.ndarray:
    """Reference weights of the observed fit against resample toys: (N_R,) float64.

    A resample toy takes its ``k`` data rows out of the reference, so it is fitted
    against ``N_R - k`` reference rows; an observation fitted against all ``N_R``
    would see less reference noise than its toys, and its p-value would be
    conservative (by a factor about ``(1 + N_D / N_R) / (1 + N_D / (N_R - N_D))``
    in the scale of the null).  The observed fit therefore leaves out of its
    reference the rows a toy with ``n_data`` data points would take (drawn with the
    calibration's seed, independent of the data, the same way as the toys' draws:
    uniformly, or by accept/reject on weighted rows), and weights the rest as a
    toy does.  Observation and toys are then fitted on references of the same
    size and law.
    """
    order = canonical_order([R], [wr])  # the draw does not depend on the reference's row order
    spec = NullSpec("resample", R.shape[0], int(n_data), n_expected, False)
    r, _ = toy_weights(spec, child_seed(seed, HOLDOUT_KEY), None if wr is None else wr[order])
    out = np.empty(R.shape[0])
    out[order] = r
    return out


def fit_observed(R, D, wr, wd, configs, seed, n_expected, device, widths=None, holdout: bool = False):
    """Fit every configuration on the observed samples.

    ``widths`` (per configuration, ``(sigma_start, sigma_end)`` of every layer)
    are those of the toys: set explicitly, so that the observed fit and its null
    use the same kernels whatever the fit would derive.  None lets
    ``SparKer.fit`` derive them (from ``(seed, 0)``, as the toys did).  With
    ``holdout`` (resample toys) the reference is weighted by
    :func:`observed_reference_weight`.
    """
    if holdout:
        wr = observed_reference_weight(R, wr, D.shape[0], n_expected, seed)
    t, models = [], []
    for k, cfg in enumerate(configs):
        if widths is not None:
            cfg = with_widths(cfg, widths[k])
        model = from_config(cfg, n_expected=n_expected, seed=seed, device=device)
        model.fit(R, D, reference_weight=wr, data_weight=wd)
        t.append(model.statistic_)
        models.append(model)
    return np.asarray(t, dtype=np.float64), models


def assemble_result(t_obs, null, models, configs, seed, aggregation, null_mode) -> TestResult:
    """Assemble a TestResult from observed (K,) and null (B, K) statistics."""
    K = len(t_obs)
    settings = [c.to_dict() for c in configs]
    converged = bool(all(getattr(m, "converged_", True) for m in models))
    if K == 1:
        t, t0 = float(t_obs[0]), np.asarray(null[:, 0], dtype=np.float64)
        p = float(empirical_pvalue(t, t0))
        chi2 = None
        if len(t0) >= 2:
            fit = fit_chi2(t0)
            chi2 = {**fit.to_dict(), "pvalue": float(fit.pvalue(t)), "zscore": float(fit.zscore(t))}
            if fit.poor_fit:
                log.info("the chi2 fit to the null is poor (KS p = %.3g)", fit.ks_pvalue)
        return TestResult(
            statistic=t, pvalue=p, zscore=float(zscore(p)), null_distribution=t0,
            null_mode=null_mode, n_null=len(t0), settings=settings, seed=seed,
            chi2=chi2, model=models[0], converged=converged,
        )
    agg = aggregate(t_obs, null, method=aggregation)
    # the model shown is the configuration that saw the most (smallest p; ties: the first)
    best = int(np.argmin(agg.per_config_pvalues))
    per_config = {
        "aggregation": aggregation,
        "statistics": [float(x) for x in t_obs],
        "pvalues": [float(x) for x in agg.per_config_pvalues],
        "null_statistics": np.asarray(null, dtype=float).tolist(),
    }
    return TestResult(
        statistic=float(agg.statistic), pvalue=float(agg.pvalue), zscore=float(agg.zscore),
        null_distribution=np.asarray(agg.null_distribution), null_mode=null_mode, n_null=null.shape[0],
        settings=settings, seed=seed, chi2=None, per_config={**per_config, "shown": best},
        model=models[best], converged=converged,
    )
