r"""Calibrated significance: null toys as batched replicas, p-values, reusable calibrations.

The test statistic :math:`t = -2 L[\hat f]` has no closed-form null
distribution, so it is calibrated with ``B`` null toys retrained from scratch
with the same settings (``SPEC.md`` section 4; toys are made by
:mod:`sparker.nulls`).  Toys train in fixed blocks of :data:`REPLICA_BLOCK`
replicas, each block one batched training run over a shared pool; chunks of
``replica_chunk`` toys (whole blocks) go to a back end (:mod:`sparker.backends`).

p-value and significance:

.. math::

    p = \frac{1 + \#\{b : t_0^{(b)} \ge t\}}{1 + B}, \qquad Z = \Phi^{-1}(1 - p),

never 0, resolution :math:`1/(B+1)`.  A :math:`\chi^2` with free degrees of
freedom is fitted to the null for asymptotic p and Z beyond the toys, with a
KS goodness-of-fit p-value.

Several configurations (settings given as lists) run on the *same* toys; their
per-configuration p-values are aggregated (min-p by default, see
:data:`sparker.stats.AGGREGATIONS`) and the aggregated statistic is calibrated
on those same toys.

Reproducibility: toy ``b`` draws its pseudo-experiment from the child seed
``(seed, 2, b, 0)`` and its starting centres from ``(seed, 2, b, 1)``; widths
come from ``(seed, 0)`` exactly as in :meth:`SparKer.fit`.  A toy is therefore
the same whatever chunk or back end computes it, bit for bit: toys always
train in the same fixed blocks of :data:`REPLICA_BLOCK` replicas.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import logging
import math
import numbers
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from .._version import __version__
from ..core.streaming import StandardizedRows, fingerprint, standardized_pool
from .._validation import check_array, check_device, check_n_features, check_weights
from ..core.backends import backend_options, check_backend, get_backend, run_all
from ..config import TrainingConfig
from ..model.ensemble import fit_stack, resolve_widths
from ..config import validate_config
from ..core.standardize import Standardizer
from ..estimator import SparKer
from ..results import TestResult
from ..io import read_archive, write_archive
from ..core.nulls import NullSpec, resolve_null_mode, toy_weights
from ..stats import AGGREGATIONS, aggregate, empirical_pvalue, fit_chi2, zscore

__all__ = ["TestResult", "Calibration", "test", "calibrate", "expand_settings"]

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "sparker-calibration"
CALIBRATION_VERSION = 1
_CHECKPOINT_FORMAT = "sparker-checkpoint"
_CHECKPOINT_VERSION = 1

# spawn keys of the independent random streams of a run (widths as in SparKer.fit)
_WIDTH_KEY, _TOY_KEY = 0, 2


# ------------------------------------------------------------------ settings
def expand_settings(settings: dict) -> list[TrainingConfig]:
    """Training configurations from settings; list values span a grid.

    ``expand_settings({"n_kernels": [4, 8], "sigma_end_quantile": 0.003})``
    gives two configurations.  ``layers`` is never expanded.
    """
    base = SparKer().get_params()
    known = set(base) - {"n_expected", "seed", "device"}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"settings: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    fixed, grid = {}, {}
    for k, v in settings.items():
        if k != "layers" and isinstance(v, (list, tuple)):
            if not v:
                raise ValueError(f"{k}: an empty list of values")
            grid[k] = list(v)
        else:
            fixed[k] = v
    configs = []
    for values in itertools.product(*grid.values()):
        params = {**fixed, **dict(zip(grid, values))}
        configs.append(SparKer(**params).training_config())
    return configs


def _fingerprint(R: np.ndarray, w: np.ndarray | None) -> str:
    """SHA-256 of the reference (shape, float64 values) and its weights, read in row chunks."""
    return fingerprint([R], w)


def _seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


# ------------------------------------------------------------------ the work
@dataclass(frozen=True)
class _ToyProblem:
    """What every chunk of toys shares (plain arrays: cheap to ship to workers once)."""

    pool: np.ndarray  # (N, d) float32, standardised
    spec: NullSpec
    ref_weight: np.ndarray | None  # (N_R,) user reference weights (resample draws)
    configs: tuple  # TrainingConfig per configuration
    widths: tuple  # per configuration: list of (sigma_start, sigma_end) per layer
    seed: int
    device: str = "cpu"


#: Toys ``[16 j, 16 (j + 1))`` are always trained together as the replicas of one
#: batched run, whatever the chunk size or back end: the float32 products of a
#: batch round differently with its width, so a fixed grouping is what makes every
#: toy bit-identical across chunkings.  Chunks are whole blocks.
REPLICA_BLOCK = 16


def _blocks(toy_ids: tuple[int, ...]) -> list[tuple[int, ...]]:
    """``toy_ids`` split at multiples of :data:`REPLICA_BLOCK`."""
    out: dict[int, list[int]] = {}
    for b in toy_ids:
        out.setdefault(b // REPLICA_BLOCK, []).append(b)
    return [tuple(v) for _, v in sorted(out.items())]


def _run_chunk(problem: _ToyProblem, k: int, toy_ids: tuple[int, ...]) -> np.ndarray:
    """Statistics of toys ``toy_ids`` under configuration ``k``: (n,) float64.

    Each block of :data:`REPLICA_BLOCK` toys is one batched training run over
    ``problem.pool``.
    """
    return np.concatenate([_run_block(problem, k, ids) for ids in _blocks(toy_ids)])


def _run_block(problem: _ToyProblem, k: int, toy_ids: tuple[int, ...]) -> np.ndarray:
    device = torch.device(problem.device)
    X = torch.as_tensor(problem.pool, device=device)  # (N, d)
    rs, ds = [], []
    for b in toy_ids:
        r, d = toy_weights(problem.spec, _seq(problem.seed, _TOY_KEY, b, 0), problem.ref_weight)
        rs.append(r)
        ds.append(d)
    r = torch.as_tensor(np.stack(rs, 1), dtype=torch.float32, device=device)  # (N, n)
    d = torch.as_tensor(np.stack(ds, 1), dtype=torch.float32, device=device)  # (N, n)
    seeds = [_seq(problem.seed, _TOY_KEY, b, 1) for b in toy_ids]
    fit = fit_stack(X, r, d, problem.configs[k], problem.widths[k], seeds, record_replicas=())
    return np.asarray(fit.statistic, dtype=np.float64)


def _chunks(n_null: int, size: int) -> list[tuple[int, ...]]:
    """Toy ids in chunks of ``size`` rounded up to whole :data:`REPLICA_BLOCK` blocks."""
    size = -(-size // REPLICA_BLOCK) * REPLICA_BLOCK
    return [tuple(range(lo, min(n_null, lo + size))) for lo in range(0, n_null, size)]


class _Checkpoint:
    """Finished toys of one run, on disk (``.npz``: arrays + JSON header, no pickle).

    The file is rewritten atomically after every finished chunk, so a run
    killed at any moment leaves either the previous or the new state, never a
    torn file.  ``run_id`` hashes everything the toys depend on (reference or
    pool, settings, widths, seed, number of toys, null-mode options) but not
    the chunk size or back end, so a resumed run may use other ones.
    """

    def __init__(self, path, run_id: str, shape: tuple[int, int]):
        self.path = None if path is None else os.fspath(path)
        self.run_id = run_id
        self.values = np.full(shape, np.nan)  # (n_null, K)
        self.done = np.zeros(shape, dtype=bool)
        if self.path is None:
            return
        if os.path.exists(self.path):
            self._load()
        else:
            try:
                self._write()  # a bad path fails now, not after the first chunk
            except OSError as exc:
                raise type(exc)(f"checkpoint: cannot write {self.path}: {exc}") from exc

    @staticmethod
    def read(path) -> tuple[dict, np.ndarray, np.ndarray]:
        """(header, values (n_null, K), done (n_null, K)) of a checkpoint file."""
        arrays, meta = read_archive(path, kind="SparKer checkpoint", format_name=_CHECKPOINT_FORMAT,
                                    version=_CHECKPOINT_VERSION, name="checkpoint")
        try:
            values = np.asarray(arrays["values"], dtype=np.float64)
            done = np.asarray(arrays["done"], dtype=bool)
        except KeyError as exc:
            raise ValueError(f"checkpoint: {os.fspath(path)} lacks the array {exc}") from None
        return meta, values, done

    def _load(self):
        meta, values, done = self.read(self.path)
        if meta.get("run_id") != self.run_id:
            raise ValueError(
                f"checkpoint: {self.path} belongs to a different run (other reference, data, "
                "settings, seed, n_null or null-mode options); choose another path or delete it"
            )
        if values.shape != self.values.shape or done.shape != self.values.shape:
            raise ValueError(f"checkpoint: {self.path} has arrays of shape {values.shape}, "
                             f"expected {self.values.shape}")
        if not np.isfinite(values[done]).all():
            raise ValueError(f"checkpoint: {self.path} has non-finite finished toys")
        self.values, self.done = values, done
        log.info("resuming from %s: %d of %d toy fits done", self.path, int(done.sum()), done.size)

    def _write(self):
        meta = {"format": _CHECKPOINT_FORMAT, "format_version": _CHECKPOINT_VERSION,
                "run_id": self.run_id, "sparker_version": __version__}
        write_archive(self.path, {"values": self.values, "done": self.done}, meta, overwrite=True)

    def record(self, k: int, ids, values):
        ids = list(ids)
        self.values[ids, k] = values
        self.done[ids, k] = True
        if self.path is not None:
            self._write()


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        log.info("progress: install tqdm for progress bars")
        return None
    return tqdm(total=total, desc="null toys", unit="toy")


def _run_toys(problem: _ToyProblem, n_null: int, *, replica_chunk: int, backend: str,
              backend_options: dict, checkpoint, progress: bool, run_id: str) -> np.ndarray:
    """Null statistics of every toy and configuration: (n_null, K) float64.

    Toys are cut into chunks ``[0, c), [c, 2c), ...`` per configuration; a
    chunk found finished in the checkpoint is skipped, a partly finished one
    (possible only after a change of chunk size) runs its missing toys only.
    """
    K = len(problem.configs)
    ck = _Checkpoint(checkpoint, run_id, (n_null, K))
    tasks = []
    for k in range(K):
        for ids in _chunks(n_null, replica_chunk):
            todo = tuple(b for b in ids if not ck.done[b, k])
            if todo:
                tasks.append((k, todo))
    if not tasks:
        return ck.values
    bar = _progress_bar(sum(len(ids) for _, ids in tasks), progress)
    log.info("training %d null toy fits in %d chunks on the %r back end",
             sum(len(ids) for _, ids in tasks), len(tasks), backend)

    def on_result(i, values):
        k, ids = tasks[i]
        values = np.asarray(values, dtype=np.float64)
        assert values.shape == (len(ids),), "a chunk returned the wrong number of statistics"
        bad = ~np.isfinite(values)
        if bad.any():  # never a silent NaN in the null distribution (finished toys stay saved)
            raise ValueError(
                f"statistic: null toy {ids[int(np.argmax(bad))]} (configuration {k}) diverged to a "
                f"non-finite value; try a smaller lr_amplitudes, lr_centres or a_max"
            )
        ck.record(k, ids, values)
        if bar is not None:
            bar.update(len(ids))

    try:
        run_all(get_backend(backend, **backend_options), _run_chunk, problem, tasks, on_result)
    finally:
        if bar is not None:
            bar.close()
    assert ck.done.all(), "some null toys were not computed"
    return ck.values


# ------------------------------------------------------------------ calibration
@dataclass(repr=False, eq=False)
class Calibration:
    """Null distribution of a reference, reusable for many inspected samples.

    Create with :func:`calibrate`; test samples with :meth:`test` (or
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
        How several configurations are combined (``minp``, ``fisher``, ``meanp``).
    data_tolerance : float
        With Poisson toys, samples whose (weighted) size lies within
        ``data_tolerance * sqrt(N_0)`` of ``N_0`` are accepted.
    reference, reference_weight : ndarray or None
        The calibrated reference (kept in memory only; not saved) and its
        weights (saved).
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
    aggregation: str = "minp"
    data_tolerance: float = 3.0
    reference: np.ndarray | None = field(default=None, compare=False)
    reference_weight: np.ndarray | None = field(default=None, compare=False)

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

    def accepts(self, n_rows: int, n_weighted: float | None = None) -> bool:
        """Whether an inspected sample of this size matches the calibration.

        Exact-count toys accept exactly ``n_data`` rows.  Poisson toys accept
        a (weighted) count within ``data_tolerance`` standard deviations of
        ``N_0``: ``|n - N_0| <= data_tolerance * sqrt(N_0)``.
        """
        if not self.poisson:
            return int(n_rows) == self.n_data
        n = float(n_rows if n_weighted is None else n_weighted)
        return abs(n - self.n0) <= self.data_tolerance * math.sqrt(self.n0)

    def _size_message(self, n_rows: int, n_weighted: float | None) -> str:
        if not self.poisson:
            return (f"data: has {n_rows} points but the calibration's toys have exactly "
                    f"{self.n_data}; calibrate for this size")
        return (f"data: has {n_rows if n_weighted is None else n_weighted:g} (weighted) points, outside "
                f"the {self.n0:g} +- {self.data_tolerance:g} * sqrt({self.n0:g}) the Poisson toys cover; "
                "calibrate for this size")

    def settings_dicts(self) -> list[dict]:
        return [c.to_dict() for c in self.configs]

    def test(self, data, reference=None, *, reference_weight=None, data_weight=None,
             device=None) -> TestResult:
        """Test an inspected sample against this calibration.

        Parameters
        ----------
        data : array-like of shape (n_data, n_features)
        reference : array-like of shape (n_reference, n_features), optional
            The calibrated reference; needed after :meth:`load` (its
            fingerprint is checked).
        reference_weight : array-like of shape (n_reference,), optional
            Default: the calibration's reference weights.
        data_weight : array-like of shape (n_data,), optional
        device : str or torch.device, optional

        Returns
        -------
        TestResult

        Raises
        ------
        ValueError
            If the reference (or its weights) differs from the calibrated one,
            or the data size is not covered (see :meth:`accepts`).
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
        if _fingerprint(R, wr) != self.fingerprint:
            raise ValueError("reference: differs from the reference (or reference_weight) "
                             "this calibration was made with")
        D, _, dev = check_array(data, name="data", min_samples=1, lean=True)
        check_n_features(R.shape[1], D.shape[1], name="data")
        wd = check_weights(data_weight, D.shape[0], name="data_weight")
        n_weighted = None if wd is None else float(wd.sum())
        if not self.accepts(D.shape[0], n_weighted):
            raise ValueError(self._size_message(D.shape[0], n_weighted))
        return self._evaluate(R, wr, D, wd, device if device is not None else dev)

    def _evaluate(self, R, wr, D, wd, device) -> TestResult:
        """Observed fits and the result (no checks)."""
        t_obs, models = _fit_observed(R, D, wr, wd, self.configs, self.seed, self.n_expected, device)
        return _result(t_obs, self.null, models, self.configs, self.seed, self.aggregation, self.null_mode)

    # ---------------------------------------------------------------- files
    def save(self, path, *, overwrite: bool = False) -> None:
        """Write to a ``.npz`` file (arrays + JSON header, no pickle), atomically.

        The reference itself is not stored (only its fingerprint): pass it to
        :meth:`test` after :meth:`load`.
        """
        meta = {
            "format": CALIBRATION_FORMAT,
            "format_version": CALIBRATION_VERSION,
            "sparker_version": __version__,
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
            fingerprint = meta["fingerprint"]
            if not (isinstance(fingerprint, str) and len(fingerprint) == 64):
                raise ValueError("bad fingerprint")
            if meta["null_mode"] != "resample" or meta["aggregation"] not in AGGREGATIONS:
                raise ValueError("unknown null mode or aggregation")
            n_expected = meta["n_expected"]
            cal = cls(
                null=null, configs=configs, widths=widths, fingerprint=fingerprint,
                n_features=int(meta["n_features"]), n_data=int(meta["n_data"]),
                n_expected=None if n_expected is None else float(n_expected),
                poisson=bool(meta["poisson"]), null_mode="resample", seed=int(meta["seed"]),
                aggregation=str(meta["aggregation"]), data_tolerance=float(meta["data_tolerance"]),
                reference_weight=None if wr is None else np.asarray(wr, dtype=np.float64),
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


# ------------------------------------------------------------------ helpers
def _fit_observed(R, D, wr, wd, configs, seed, n_expected, device):
    """Fit every configuration on the observed samples.

    ``SparKer.fit`` draws its widths from ``(seed, 0)`` on the standardised
    reference, exactly as the toys' widths were drawn.
    """
    t, models = [], []
    for cfg in configs:
        params = cfg.to_dict()
        params["layers"] = params["layers"] or None
        model = SparKer(**params, n_expected=n_expected, seed=seed, device=device)
        model.fit(R, D, reference_weight=wr, data_weight=wd)
        t.append(model.statistic_)
        models.append(model)
    return np.asarray(t, dtype=np.float64), models


def _result(t_obs, null, models, configs, seed, aggregation, null_mode) -> TestResult:
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
    per_config = {
        "aggregation": aggregation,
        "statistics": [float(x) for x in t_obs],
        "pvalues": [float(x) for x in agg.per_config_pvalues],
        "null_statistics": np.asarray(null, dtype=float).tolist(),
    }
    return TestResult(
        statistic=float(agg.statistic), pvalue=float(agg.pvalue), zscore=float(agg.zscore),
        null_distribution=np.asarray(agg.null_distribution), null_mode=null_mode, n_null=null.shape[0],
        settings=settings, seed=seed, chi2=None, per_config=per_config, model=models[0],
        converged=converged,
    )


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_run(*, n_null, replica_chunk, seed, aggregation, backend, backend_options, n_expected,
               poisson) -> None:
    """Validate the arguments shared by :func:`test` and :func:`calibrate` (before any work)."""
    if not _is_int(n_null) or n_null < 1:
        raise ValueError(f"n_null: must be a positive integer, got {n_null!r}")
    if not _is_int(replica_chunk) or replica_chunk < 1:
        raise ValueError(f"replica_chunk: must be a positive integer, got {replica_chunk!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if not isinstance(aggregation, str) or aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation: unknown aggregation {aggregation!r}; "
                         f"choose one of {sorted(AGGREGATIONS)}")
    if n_expected is not None and not (
        isinstance(n_expected, numbers.Real) and not isinstance(n_expected, bool)
        and math.isfinite(n_expected) and n_expected > 0
    ):
        raise ValueError(f"n_expected: must be a positive number, got {n_expected!r}")
    if poisson is not None and not isinstance(poisson, (bool, np.bool_)):
        raise TypeError(f"poisson: must be True, False or None, got {poisson!r}")
    check_backend(backend, **backend_options)


def _check_several(configs, n_null) -> None:
    if len(configs) > 1 and n_null < 2:
        raise ValueError(f"n_null: aggregating {len(configs)} configurations needs at least 2 toys")


def _run_id(fp, configs, widths, seed, n_null, spec: NullSpec, ref_weight) -> str:
    blob = json.dumps({
        "fp": fp, "configs": [c.to_dict() for c in configs], "widths": [[list(p) for p in w] for w in widths],
        "seed": int(seed), "n_null": int(n_null), "mode": spec.mode, "n_reference": spec.n_reference,
        "n_data": spec.n_data, "n_expected": spec.n_expected, "poisson": bool(spec.poisson),
        "weighted": ref_weight is not None, "version": _CHECKPOINT_VERSION,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------ public API
def calibrate(
    reference,
    n_data: int,
    *,
    n_null: int = 100,
    seed: int = 0,
    reference_weight=None,
    n_expected: float | None = None,
    poisson: bool | None = None,
    aggregation: str = "minp",
    data_tolerance: float = 3.0,
    replica_chunk: int = 64,
    backend: str = "batched",
    scheduler=None,
    n_workers: int | None = None,
    checkpoint=None,
    progress: bool = False,
    device=None,
    **settings,
) -> Calibration:
    """Calibrate the SparKer statistic for a reference and a data size (resampling toys).

    Each toy draws its pseudo-data from the reference (``N_D' ~ Poisson(N_0)``
    rows when ``poisson``, else exactly ``n_data``) and uses the remaining rows,
    re-weighted, as its reference (:mod:`sparker.nulls`, ``resample``).  Toys
    never see an inspected sample, so one calibration serves every sample of
    that size tested against this reference.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
        Needs ``n_reference >= 2 n_data``.
    n_data : int
        Size of the inspected samples to be tested.
    n_null : int, default=100
        Number of null toys (p-value resolution ``1 / (n_null + 1)``).
    seed : int, default=0
        Same meaning as :class:`SparKer`'s ``seed``; toy ``b`` uses child seeds
        of ``(seed, b)`` only.
    reference_weight : array-like of shape (n_reference,), optional
    n_expected : float, optional
        ``N_0``, the expected data count; default: the toy's own count.
    poisson : bool, optional
        Poisson toy counts; default: True when ``n_expected`` is given.
    aggregation : {"minp", "fisher", "meanp"}, default="minp"
        How configurations given as lists of settings are combined.
    data_tolerance : float, default=3
        With Poisson toys, :meth:`Calibration.test` accepts samples whose
        (weighted) size is within ``data_tolerance * sqrt(N_0)`` of ``N_0``;
        exact-count toys accept exactly ``n_data`` points.
    replica_chunk : int, default=64
        Toys per task of the back end, rounded up to a multiple of
        :data:`REPLICA_BLOCK` (16).  Within a task, each block of 16 toys
        (ids ``[16 j, 16 j + 16)``) trains as one batch of replicas, so every
        toy is bit-identical whatever the chunk size or back end.
    backend : {"batched", "processes", "dask"}, default="batched"
        Where chunks run: in this process, in local processes (``n_workers``)
        or on a Dask cluster (``scheduler``); see :mod:`sparker.backends`.
    scheduler : distributed.Client, cluster or str, optional
        For ``backend="dask"``.
    n_workers : int, optional
        For ``backend="processes"``.
    checkpoint : path, optional
        ``.npz`` file where finished toys are stored as chunks complete.  A
        rerun with the same arguments (any chunk size or back end) resumes
        from it and recomputes only unfinished chunks; a file from another
        run is refused.  The file is kept after completion, so rerunning
        returns at once; delete it when the calibration is saved.
    progress : bool, default=False
        Progress bar (tqdm) over the toys.
    device : str or torch.device, optional
        Default: the reference's device if it is a tensor, else CPU.
    **settings
        :class:`SparKer` parameters (``n_kernels=8``, ``epochs=...``); list
        values define several configurations, run on the same toys.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        Naming the offending argument, before any training.
    """
    _check_run(n_null=n_null, replica_chunk=replica_chunk, seed=seed, aggregation=aggregation,
               backend=backend, backend_options=backend_options(scheduler, n_workers),
               n_expected=n_expected, poisson=poisson)
    if not (isinstance(data_tolerance, numbers.Real) and data_tolerance >= 0):
        raise ValueError(f"data_tolerance: must be a non-negative number, got {data_tolerance!r}")
    R, _, dev = check_array(reference, name="reference", min_samples=2, lean=True)  # memory maps stay
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    if not _is_int(n_data) or n_data < 1:
        raise ValueError(f"n_data: must be a positive integer, got {n_data!r}")
    resolve_null_mode("resample", R.shape[0], int(n_data))
    configs = expand_settings(settings)
    _check_several(configs, n_null)
    poisson = (n_expected is not None) if poisson is None else bool(poisson)
    n_expected = None if n_expected is None else float(n_expected)

    Rs = StandardizedRows(R, Standardizer.fit(R))  # as in SparKer.fit, chunk by chunk
    widths = [resolve_widths(Rs, c, _seq(seed, _WIDTH_KEY)) for c in configs]
    spec = NullSpec("resample", R.shape[0], int(n_data), n_expected, poisson)
    fp = _fingerprint(R, wr)
    pool = standardized_pool([Rs], augmented=False).numpy()  # (N_R, d) float32
    problem = _ToyProblem(pool, spec, wr, tuple(configs), tuple(widths), int(seed),
                          str(check_device(device, dev)))
    null = _run_toys(problem, n_null, replica_chunk=replica_chunk, backend=backend,
                     backend_options=backend_options(scheduler, n_workers),
                     checkpoint=checkpoint, progress=progress,
                     run_id=_run_id(fp, configs, widths, seed, n_null, spec, wr))
    return Calibration(
        null=null, configs=configs, widths=widths, fingerprint=fp, n_features=R.shape[1],
        n_data=int(n_data), n_expected=n_expected, poisson=poisson, null_mode="resample",
        seed=int(seed), aggregation=aggregation, data_tolerance=float(data_tolerance),
        reference=R, reference_weight=wr,
    )


def _check_reuse(calibration: Calibration, *, n_null, seed, aggregation, null, n_expected, poisson,
                 settings) -> None:
    """Arguments of :func:`test` that a calibration fixes: left at default, or agreeing."""
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration: expected a Calibration, got {type(calibration).__name__}")
    given = {"n_null": n_null, "seed": seed, "aggregation": aggregation}
    for name, value in given.items():
        if value != _TEST_FIXED_DEFAULTS[name] and value != getattr(calibration, name):
            raise ValueError(f"{name}: {value!r} differs from the calibration's "
                             f"{getattr(calibration, name)!r}; leave it out or calibrate again")
    if null not in ("auto", calibration.null_mode):
        raise ValueError(f"null: the calibration's toys are {calibration.null_mode!r}, not {null!r}")
    if n_expected is not None and (calibration.n_expected is None
                                   or float(n_expected) != calibration.n_expected):
        raise ValueError(f"n_expected: {n_expected!r} differs from the calibration's "
                         f"{calibration.n_expected!r}")
    if poisson is not None and bool(poisson) != calibration.poisson:
        raise ValueError(f"poisson: {poisson!r} differs from the calibration's {calibration.poisson!r}")
    if settings:
        expand_settings(settings)  # validates names and values
        configs = calibration.settings_dicts()
        for name, value in settings.items():
            given = list(value) if isinstance(value, (list, tuple)) and name != "layers" else [value]
            if name == "layers":  # compared in the normalised form of the configurations
                given = [expand_settings({"layers": value})[0].to_dict()["layers"]]
            used = list(dict.fromkeys(json.dumps(c[name], sort_keys=True) for c in configs))
            if [json.dumps(v, sort_keys=True) for v in given] != used:
                raise ValueError(f"settings: {name}={value!r} differs from the calibration's "
                                 f"{[json.loads(u) for u in used]}; leave it out or calibrate again")


def test(
    reference,
    data,
    *,
    n_null: int = 100,
    null: str = "auto",
    seed: int = 0,
    calibration: Calibration | None = None,
    reference_weight=None,
    data_weight=None,
    n_expected: float | None = None,
    poisson: bool | None = None,
    aggregation: str = "minp",
    replica_chunk: int = 64,
    backend: str = "batched",
    scheduler=None,
    n_workers: int | None = None,
    checkpoint=None,
    progress: bool = False,
    device=None,
    **settings,
) -> TestResult:
    """Calibrated SparKer test: is ``data`` different from ``reference``, and how significant?

    Fits the observed samples and ``n_null`` null toys with the same settings
    (the toys as batched replicas) and returns the empirical p-value and Z,
    plus a chi-square fit of the null.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    n_null : int, default=100
        Number of null toys (p-value resolution ``1 / (n_null + 1)``).
    null : {"auto", "resample", "permutation"}, default="auto"
        How toys are made (see :mod:`sparker.nulls`); ``auto`` resamples the
        reference when ``n_reference >= 5 n_data``, else permutes the pooled
        samples.  ``TestResult.null_mode`` says which was used.
    seed : int, default=0
    calibration : Calibration, optional
        Reuse a calibration (:func:`calibrate`) instead of running toys.  It
        must have been made with this reference (fingerprint), these settings
        and a matching data size; arguments it fixes (``n_null``, ``seed``,
        ``aggregation``, ``n_expected``, ``poisson``, ``null``, and every
        setting named) must be left at their defaults or agree with it; those
        that only steer how toys run (``replica_chunk``, ``backend``, ...) are
        ignored.
    reference_weight, data_weight : array-like, optional
        Per-point weights (``resample`` toys only).
    n_expected : float, optional
        ``N_0``; default: the data count.
    poisson : bool, optional
        ``resample`` toys with Poisson(``N_0``) data counts; default: True when
        ``n_expected`` is given.
    aggregation : {"minp", "fisher", "meanp"}, default="minp"
    replica_chunk, backend, scheduler, n_workers, checkpoint, progress, device
        As in :func:`calibrate`.  With ``permutation`` toys the checkpoint
        belongs to this (reference, data) pair.
    **settings
        :class:`SparKer` parameters (``n_kernels=8``, ``epochs=...``); lists of
        values give several configurations aggregated with ``aggregation``.

    Returns
    -------
    TestResult

    Raises
    ------
    ValueError
        Naming the offending argument, before any training.
    """
    if calibration is not None:
        _check_reuse(calibration, n_null=n_null, seed=seed, aggregation=aggregation, null=null,
                     n_expected=n_expected, poisson=poisson, settings=settings)
        return calibration.test(data, reference, reference_weight=reference_weight,
                                data_weight=data_weight, device=device)
    _check_run(n_null=n_null, replica_chunk=replica_chunk, seed=seed, aggregation=aggregation,
               backend=backend, backend_options=backend_options(scheduler, n_workers),
               n_expected=n_expected, poisson=poisson)
    R, _, dev_r = check_array(reference, name="reference", min_samples=2, lean=True)  # memory maps stay
    D, _, dev_d = check_array(data, name="data", min_samples=1, lean=True)
    check_n_features(R.shape[1], D.shape[1], name="data")
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    wd = check_weights(data_weight, D.shape[0], name="data_weight")
    mode = resolve_null_mode(null, R.shape[0], D.shape[0])
    device = check_device(device, dev_r, dev_d)
    if mode == "resample":
        cal = calibrate(
            R, D.shape[0], n_null=n_null, seed=seed, reference_weight=wr, n_expected=n_expected,
            poisson=poisson, aggregation=aggregation, replica_chunk=replica_chunk, backend=backend,
            scheduler=scheduler, n_workers=n_workers, checkpoint=checkpoint, progress=progress,
            device=device, **settings,
        )
        # the toys were made for this very sample: no size check
        return cal._evaluate(R, wr, D, wd, device)

    if wr is not None or wd is not None:
        raise ValueError("null: 'permutation' toys assume exchangeable, unweighted samples; "
                         "use null='resample' with weights")
    if poisson:
        raise ValueError("poisson: Poisson toy counts need null='resample'")
    configs = expand_settings(settings)
    _check_several(configs, n_null)
    n_expected = None if n_expected is None else float(n_expected)
    std = Standardizer.fit(R)
    Rs, Ds = StandardizedRows(R, std), StandardizedRows(D, std)  # as in SparKer.fit, chunk by chunk
    widths = [resolve_widths(Rs, c, _seq(seed, _WIDTH_KEY)) for c in configs]
    spec = NullSpec("permutation", R.shape[0], D.shape[0], n_expected, False)
    pool = standardized_pool([Rs, Ds], augmented=False).numpy()  # (N_R + N_D, d): reference, then data
    problem = _ToyProblem(pool, spec, None, tuple(configs), tuple(widths), int(seed), str(device))
    fp = fingerprint([R, D], None)  # of the stacked samples
    null_t = _run_toys(problem, n_null, replica_chunk=replica_chunk, backend=backend,
                       backend_options=backend_options(scheduler, n_workers),
                       checkpoint=checkpoint, progress=progress,
                       run_id=_run_id(fp, configs, widths, seed, n_null, spec, None))
    t_obs, models = _fit_observed(R, D, None, None, configs, seed, n_expected, device)
    return _result(t_obs, null_t, models, configs, int(seed), aggregation, "permutation")


#: defaults of the arguments of :func:`test` that a calibration fixes
_TEST_FIXED_DEFAULTS = {name: inspect.signature(test).parameters[name].default
                        for name in ("n_null", "seed", "aggregation")}

# pytest would otherwise collect these public names when a test module imports them
test.__test__ = False
TestResult.__test__ = False
