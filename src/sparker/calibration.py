r"""Calibrated significance: null toys as batched replicas, p-values, reusable calibrations.

The test statistic :math:`t = -2 L[\hat f]` has no closed-form null
distribution, so it is calibrated with null toys retrained from scratch with
the same settings (:mod:`sparker.nulls`).  All toys of a chunk are replicas
of one batched training run; chunks go to a back end
(:mod:`sparker.backends`).

p-value: :math:`p = (1 + \#\{t_0 \ge t\}) / (1 + B)`, never 0, resolution
:math:`1/(B+1)`; :math:`Z = \Phi^{-1}(1 - p)`.  A :math:`\chi^2` with free
degrees of freedom is fitted to the null for asymptotic p and Z beyond the
toys, with a KS goodness-of-fit p-value.

Several configurations (settings given as lists) run on the same toys and
are aggregated (min-p by default) and calibrated on those same toys.
"""

from __future__ import annotations

import hashlib
import io as _io
import itertools
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from . import __version__
from ._validation import check_array, check_n_features, check_weights
from .backends import get_backend, run_all
from .config import TrainingConfig
from .ensemble import fit_stack, resolve_widths
from .estimator import SparKer, Standardizer, reference_weights, validate_config
from .io import atomic_write_bytes
from .nulls import NullSpec, resolve_null_mode, toy_weights
from .stats import aggregate, empirical_pvalue, fit_chi2, zscore

__all__ = ["TestResult", "Calibration", "test", "calibrate", "expand_settings"]

log = logging.getLogger(__name__)

CALIBRATION_FORMAT = "sparker-calibration"
CALIBRATION_VERSION = 1
_CHECKPOINT_FORMAT = "sparker-checkpoint"

# spawn keys of the three independent random streams of a test
_WIDTH_KEY, _OBS_KEY, _TOY_KEY = 0, 1, 2

_ESTIMATOR_ONLY = ("n_expected", "seed", "device")


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class TestResult:
    """Outcome of a calibrated two-sample test.

    Attributes
    ----------
    statistic : float
        Observed statistic (the aggregated one when several configurations ran).
    pvalue : float
        Empirical p-value, ``(1 + #{t0 >= t}) / (1 + n_null)``; never 0.
    zscore : float
        ``norm.isf(pvalue)``.
    null_distribution : ndarray of shape (n_null,)
        Null statistics (aggregated ones when several configurations ran).
    null_mode : str
        ``resample`` or ``permutation`` (what ``auto`` chose).
    n_null : int
    method : str
        ``sparker`` or a baseline name.
    settings : list of dict
        One training configuration per entry (several when aggregating).
    seed : int
    chi2 : dict or None
        Chi-square fit of the null (``dof``, ``ks_pvalue``, ``poor_fit``,
        ``pvalue``, ``zscore`` of the observation); None when aggregating.
    per_config : dict or None
        With several configurations: ``statistics`` (K,), ``pvalues`` (K,),
        ``aggregation``.
    model : SparKer or None
        The fitted observed model (first configuration).
    converged : bool
        Whether the observed fit's loss settled.
    """

    statistic: float
    pvalue: float
    zscore: float
    null_distribution: np.ndarray
    null_mode: str
    n_null: int
    method: str = "sparker"
    settings: list = field(default_factory=list)
    seed: int = 0
    chi2: dict | None = None
    per_config: dict | None = None
    model: object = None
    converged: bool = True

    @property
    def resolution(self) -> float:
        """Smallest reachable p-value, ``1 / (n_null + 1)``."""
        return 1.0 / (self.n_null + 1)

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "statistic": float(self.statistic),
            "pvalue": float(self.pvalue),
            "zscore": float(self.zscore),
            "pvalue_resolution": self.resolution,
            "null_mode": self.null_mode,
            "n_null": int(self.n_null),
            "null_distribution": np.asarray(self.null_distribution, dtype=float).tolist(),
            "chi2": self.chi2,
            "per_config": self.per_config,
            "settings": self.settings,
            "seed": self.seed,
            "converged": bool(self.converged),
            "sparker_version": __version__,
        }
        if self.model is not None and hasattr(self.model, "kernels_"):
            out["kernels"] = self.model.kernels_
        return out


# ------------------------------------------------------------------ settings
def expand_settings(settings: dict) -> list[TrainingConfig]:
    """Training configurations from settings; list values span a grid.

    ``expand_settings({"n_kernels": [4, 8], "sigma_end_quantile": 0.003})``
    gives two configurations.  ``layers`` is never expanded.
    """
    base = SparKer().get_params()
    unknown = set(settings) - set(base)
    if unknown:
        raise ValueError(f"settings: unknown settings {sorted(unknown)}; known: {sorted(base)}")
    fixed, grid = {}, {}
    for k, v in settings.items():
        if k != "layers" and isinstance(v, (list, tuple)):
            if not v:
                raise ValueError(f"{k}: an empty list of values")
            grid[k] = list(v)
        else:
            fixed[k] = v
    configs = []
    for values in itertools.product(*grid.values()) if grid else [()]:
        params = {**fixed, **dict(zip(grid, values))}
        est = SparKer(**{k: v for k, v in params.items()})
        configs.append(est.training_config())
    return configs


def _fingerprint(R: np.ndarray, w: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(R.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(R, dtype=np.float64).tobytes())
    if w is not None:
        h.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
    return h.hexdigest()


def _seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


# ------------------------------------------------------------------ the work
@dataclass(frozen=True)
class _ToyProblem:
    """What every chunk of toys shares (plain arrays: cheap to ship to workers)."""

    pool: np.ndarray  # (N, d) float32, standardised
    spec: NullSpec
    ref_weight: np.ndarray | None  # user reference weights (resample draws)
    configs: tuple  # TrainingConfig per configuration
    widths: tuple  # per configuration: list of (sigma_start, sigma_end)
    seed: int
    device: str = "cpu"


def _run_chunk(problem: _ToyProblem, k: int, toy_ids: tuple[int, ...]) -> np.ndarray:
    """Statistics of toys ``toy_ids`` under configuration ``k``: (n,) float64."""
    device = torch.device(problem.device)
    X = torch.as_tensor(problem.pool, device=device)
    rs, ds = [], []
    for b in toy_ids:
        r, d = toy_weights(problem.spec, _seq(problem.seed, _TOY_KEY, b, 0), problem.ref_weight)
        rs.append(r)
        ds.append(d)
    r = torch.as_tensor(np.stack(rs, 1), dtype=torch.float32, device=device)  # (N, n)
    d = torch.as_tensor(np.stack(ds, 1), dtype=torch.float32, device=device)
    seeds = [_seq(problem.seed, _TOY_KEY, b, 1) for b in toy_ids]
    fit = fit_stack(X, r, d, problem.configs[k], problem.widths[k], seeds, record_replicas=())
    return fit.statistic


def _chunks(n_null: int, size: int) -> list[tuple[int, ...]]:
    return [tuple(range(lo, min(n_null, lo + size))) for lo in range(0, n_null, size)]


class _Checkpoint:
    """Finished toys on disk, rewritten atomically after every chunk."""

    def __init__(self, path, run_id: str, shape: tuple[int, int]):
        self.path = None if path is None else os.fspath(path)
        self.run_id = run_id
        self.values = np.full(shape, np.nan)
        self.done = np.zeros(shape, dtype=bool)
        if self.path and os.path.exists(self.path):
            self._load()

    def _load(self):
        try:
            with np.load(self.path, allow_pickle=False) as z:
                meta = json.loads(z["__meta__"].tobytes().decode())
                values, done = z["values"], z["done"]
        except Exception as exc:
            raise ValueError(f"checkpoint: {self.path} is not a readable SparKer checkpoint ({exc})") from None
        if meta.get("format") != _CHECKPOINT_FORMAT or meta.get("run_id") != self.run_id:
            raise ValueError(
                f"checkpoint: {self.path} belongs to a different calibration (other reference, "
                "settings, seed or size); choose another path or delete it"
            )
        if values.shape != self.values.shape:
            raise ValueError(f"checkpoint: {self.path} has the wrong shape {values.shape}")
        self.values, self.done = values, done
        log.info("resuming from %s: %d of %d toys done", self.path, int(done.sum()), done.size)

    def record(self, k: int, ids, values):
        self.values[list(ids), k] = values
        self.done[list(ids), k] = True
        if self.path:
            meta = {"format": _CHECKPOINT_FORMAT, "run_id": self.run_id}
            buf = _io.BytesIO()
            np.savez(buf, values=self.values, done=self.done,
                     __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
            atomic_write_bytes(self.path, buf.getvalue(), overwrite=True)


def _run_toys(problem: _ToyProblem, n_null: int, *, replica_chunk: int, backend: str,
              backend_options: dict, checkpoint, progress: bool, run_id: str) -> np.ndarray:
    """Null statistics of every toy and configuration: (n_null, K)."""
    K = len(problem.configs)
    ck = _Checkpoint(checkpoint, run_id, (n_null, K))
    tasks, keys = [], []
    for k in range(K):
        for ids in _chunks(n_null, replica_chunk):
            if not ck.done[list(ids), k].all():
                tasks.append((problem, k, ids))
                keys.append((k, ids))
    bar = None
    if progress and tasks:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(ids) for _, ids in keys), desc="null toys", unit="toy")
        except ImportError:  # progress bars are optional
            bar = None

    def on_result(i, values):
        k, ids = keys[i]
        ck.record(k, ids, values)
        if bar is not None:
            bar.update(len(ids))

    if tasks:
        run_all(get_backend(backend, **backend_options), _run_chunk, tasks, on_result)
    if bar is not None:
        bar.close()
    return ck.values


# ------------------------------------------------------------------ calibration
@dataclass
class Calibration:
    """Null distribution of a reference, reusable for many inspected samples.

    Create with :func:`calibrate`; test samples with :meth:`test`.  Holds the
    null statistics (``null``, shape (n_null, K)) and everything they depend
    on: the reference fingerprint, the data size, the null-mode options, the
    training configurations, the widths and the seed.
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
    reference: np.ndarray | None = field(default=None, repr=False, compare=False)
    reference_weight: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_null(self) -> int:
        return int(self.null.shape[0])

    def accepts(self, n_data: float) -> bool:
        """Whether a data sample of this size matches the calibration.

        Exact-count toys accept only ``n_data`` itself; Poisson toys accept
        sizes within ``data_tolerance`` standard deviations of ``N_0``.
        """
        if not self.poisson:
            return abs(n_data - self.n_data) < 1e-9
        n0 = self.n_expected if self.n_expected is not None else self.n_data
        return abs(n_data - n0) <= self.data_tolerance * np.sqrt(n0)

    def settings_dicts(self) -> list[dict]:
        return [c.to_dict() for c in self.configs]

    def test(self, data, reference=None, *, data_weight=None, device=None) -> TestResult:
        """Test an inspected sample against this calibration.

        Parameters
        ----------
        data : array-like of shape (n_data, n_features)
        reference : array-like, optional
            The calibrated reference; needed after :meth:`load` (its
            fingerprint is checked).
        """
        if reference is None:
            if self.reference is None:
                raise ValueError("reference: this calibration was loaded from disk; pass the reference it was made with")
            R, wr = self.reference, self.reference_weight
        else:
            R, _, _ = check_array(reference, name="reference", min_samples=2)
            wr = self.reference_weight
        if _fingerprint(R, wr) != self.fingerprint:
            raise ValueError("reference: differs from the reference this calibration was made with")
        D, _, dev = check_array(data, name="data", min_samples=1)
        check_n_features(R.shape[1], D.shape[1], name="data")
        wd = check_weights(data_weight, D.shape[0], name="data_weight")
        n_obs = float(D.shape[0] if wd is None else wd.sum())
        if not self.accepts(n_obs):
            raise ValueError(
                f"data: has {n_obs:g} points but the calibration covers "
                + (f"exactly {self.n_data}" if not self.poisson else
                   f"{self.n_expected or self.n_data:g} +- {self.data_tolerance:g} sqrt(N0)")
            )
        t_obs, models = _fit_observed(R, D, wr, wd, self.configs, self.widths, self.seed,
                                      self.n_expected, device or dev)
        return _result(t_obs, self.null, models, self, self.null_mode)

    # ---------------------------------------------------------------- files
    def save(self, path, *, overwrite: bool = False) -> None:
        """Write to a ``.npz`` file (arrays + JSON header, no pickle), atomically."""
        meta = {
            "format": CALIBRATION_FORMAT,
            "format_version": CALIBRATION_VERSION,
            "sparker_version": __version__,
            "configs": self.settings_dicts(),
            "widths": [[list(p) for p in w] for w in self.widths],
            "fingerprint": self.fingerprint,
            "n_features": self.n_features,
            "n_data": self.n_data,
            "n_expected": self.n_expected,
            "poisson": self.poisson,
            "null_mode": self.null_mode,
            "seed": self.seed,
            "aggregation": self.aggregation,
            "data_tolerance": self.data_tolerance,
            "has_reference_weight": self.reference_weight is not None,
        }
        arrays = {"null": self.null, "__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        if self.reference_weight is not None:
            arrays["reference_weight"] = self.reference_weight
        buf = _io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a calibration written by :meth:`save` (executes nothing from the file)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"path: file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        except Exception as exc:
            raise ValueError(f"path: {path} is not a readable SparKer calibration ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"path: {path} is not a SparKer calibration file")
        if meta.get("format_version") != CALIBRATION_VERSION:
            raise ValueError(f"path: {path} has format version {meta.get('format_version')}, "
                             f"this SparKer reads version {CALIBRATION_VERSION}")
        try:
            configs = [TrainingConfig.from_dict(c) for c in meta["configs"]]
            for c in configs:
                validate_config(c)
            null = np.asarray(arrays["null"], dtype=np.float64)
            if null.ndim != 2 or null.shape[1] != len(configs) or not np.isfinite(null).all():
                raise ValueError("null statistics have the wrong shape or non-finite values")
            return cls(
                null=null, configs=configs,
                widths=[[tuple(float(x) for x in p) for p in w] for w in meta["widths"]],
                fingerprint=str(meta["fingerprint"]), n_features=int(meta["n_features"]),
                n_data=int(meta["n_data"]), n_expected=meta["n_expected"], poisson=bool(meta["poisson"]),
                null_mode=str(meta["null_mode"]), seed=int(meta["seed"]),
                aggregation=str(meta["aggregation"]), data_tolerance=float(meta["data_tolerance"]),
                reference_weight=arrays.get("reference_weight"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"path: {path} is an incomplete or inconsistent calibration ({exc})") from None


# ------------------------------------------------------------------ helpers
def _standardise(R, wr):
    return Standardizer.fit(R)


def _fit_observed(R, D, wr, wd, configs, widths, seed, n_expected, device):
    """Fit every configuration on the observed samples (same seeds as SparKer.fit)."""
    t, models = [], []
    for cfg in configs:
        params = {k: v for k, v in cfg.to_dict().items() if k != "layers"}
        params["layers"] = [dict(layer) for layer in cfg.to_dict()["layers"]] or None
        model = SparKer(**params, n_expected=n_expected, seed=seed, device=device)
        model.fit(R, D, reference_weight=wr, data_weight=wd)
        t.append(model.statistic_)
        models.append(model)
    return np.asarray(t), models


def _result(t_obs, null, models, cal_like, null_mode) -> TestResult:
    """Assemble a TestResult from observed (K,) and null (B, K) statistics."""
    K = len(t_obs)
    settings = [c.to_dict() for c in cal_like.configs]
    converged = bool(getattr(models[0], "converged_", True))
    if K == 1:
        t, t0 = float(t_obs[0]), null[:, 0]
        p = float(empirical_pvalue(t, t0))
        chi = fit_chi2(t0)
        chi2 = {**chi.to_dict(), "pvalue": float(chi.pvalue(t)), "zscore": float(chi.zscore(t))}
        if chi.poor_fit:
            log.info("the chi2 fit to the null is poor (KS p = %.3g)", chi.ks_pvalue)
        return TestResult(
            statistic=t, pvalue=p, zscore=float(zscore(p)), null_distribution=t0,
            null_mode=null_mode, n_null=len(t0), settings=settings, seed=cal_like.seed,
            chi2=chi2, model=models[0], converged=converged,
        )
    agg = aggregate(t_obs, null, method=cal_like.aggregation)
    per_config = {
        "aggregation": cal_like.aggregation,
        "statistics": [float(x) for x in t_obs],
        "pvalues": [float(x) for x in agg.per_config_pvalues],
    }
    return TestResult(
        statistic=float(agg.statistic), pvalue=float(agg.pvalue), zscore=float(agg.zscore),
        null_distribution=np.asarray(agg.null_distribution), null_mode=null_mode, n_null=null.shape[0],
        settings=settings, seed=cal_like.seed, chi2=None, per_config=per_config, model=models[0],
        converged=converged,
    )


def _check_common(n_null, replica_chunk):
    if not isinstance(n_null, (int, np.integer)) or isinstance(n_null, bool) or n_null < 1:
        raise ValueError(f"n_null: must be a positive integer, got {n_null!r}")
    if not isinstance(replica_chunk, (int, np.integer)) or replica_chunk < 1:
        raise ValueError(f"replica_chunk: must be a positive integer, got {replica_chunk!r}")


def _backend_options(backend, scheduler, n_workers):
    opts = {}
    if scheduler is not None:
        opts["scheduler"] = scheduler
    if n_workers is not None:
        opts["n_workers"] = n_workers
    return opts


def _run_id(fp, configs, widths, seed, n_null, chunk, spec: NullSpec) -> str:
    blob = json.dumps({
        "fp": fp, "configs": [c.to_dict() for c in configs], "widths": widths, "seed": seed,
        "n_null": n_null, "chunk": chunk, "spec": spec.__dict__,
    }, sort_keys=True, default=str)
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
    replica_chunk: int = 32,
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
    when ``poisson``, default when ``n_expected`` is given; else exactly
    ``n_data``) and uses the rest as reference; toys are trained as batched
    replicas in chunks of ``replica_chunk`` on the chosen ``backend``.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    n_data : int
        Size of the inspected samples to be tested.
    n_null : int
        Number of null toys.
    checkpoint : path, optional
        File where finished toys are stored as they complete; a rerun with
        the same arguments resumes from it.
    backend : {"batched", "processes", "dask"}
    scheduler : str or distributed.Client, optional
        For ``backend="dask"``.
    **settings
        SparKer parameters; list values define several configurations,
        aggregated with ``aggregation`` (``minp``, ``fisher``, ``meanp``).

    Returns
    -------
    Calibration
    """
    _check_common(n_null, replica_chunk)
    R, _, dev = check_array(reference, name="reference", min_samples=2)
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    if not isinstance(n_data, (int, np.integer)) or n_data < 1:
        raise ValueError(f"n_data: must be a positive integer, got {n_data!r}")
    resolve_null_mode("resample", R.shape[0], int(n_data))
    configs = expand_settings(settings)
    poisson = (n_expected is not None) if poisson is None else bool(poisson)
    std = Standardizer.fit(R)
    Rs = std.transform(R)
    widths = [resolve_widths(Rs, c, _seq(seed, _WIDTH_KEY)) for c in configs]
    spec = NullSpec("resample", R.shape[0], int(n_data), n_expected, poisson)
    fp = _fingerprint(R, wr)
    device = torch.device(device) if device is not None else (dev or torch.device("cpu"))
    problem = _ToyProblem(Rs.astype(np.float32), spec, wr, tuple(configs), tuple(widths), seed, str(device))
    null = _run_toys(problem, n_null, replica_chunk=replica_chunk, backend=backend,
                     backend_options=_backend_options(backend, scheduler, n_workers),
                     checkpoint=checkpoint, progress=progress,
                     run_id=_run_id(fp, configs, widths, seed, n_null, replica_chunk, spec))
    return Calibration(
        null=null, configs=configs, widths=widths, fingerprint=fp, n_features=R.shape[1],
        n_data=int(n_data), n_expected=n_expected, poisson=poisson, null_mode="resample", seed=seed,
        aggregation=aggregation, reference=R, reference_weight=wr,
    )


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
    replica_chunk: int = 32,
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
    and returns the empirical p-value and Z (plus a chi-square fit of the null).

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    n_null : int
        Number of null toys (p-value resolution ``1 / (n_null + 1)``).
    null : {"auto", "resample", "permutation"}
        How toys are made (see :mod:`sparker.nulls`); ``auto`` resamples the
        reference when ``n_reference >= 5 n_data``.
    seed : int
    calibration : Calibration, optional
        Reuse a calibration (same reference, settings and data size).
    **settings
        SparKer parameters (``n_kernels=8``, ``epochs=...``); lists of values
        give several configurations aggregated with ``aggregation``.

    Returns
    -------
    TestResult
    """
    if calibration is not None:
        if settings:
            given = expand_settings(settings)
            if [c.to_dict() for c in given] != calibration.settings_dicts():
                raise ValueError("settings: differ from the settings this calibration was made with")
        return calibration.test(data, reference, data_weight=data_weight, device=device)
    _check_common(n_null, replica_chunk)
    R, names, dev_r = check_array(reference, name="reference", min_samples=2)
    D, _, dev_d = check_array(data, name="data", min_samples=1)
    check_n_features(R.shape[1], D.shape[1], name="data")
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    wd = check_weights(data_weight, D.shape[0], name="data_weight")
    mode = resolve_null_mode(null, R.shape[0], D.shape[0])
    if mode == "resample":
        cal = calibrate(
            R, D.shape[0], n_null=n_null, seed=seed, reference_weight=wr, n_expected=n_expected,
            poisson=poisson, aggregation=aggregation, replica_chunk=replica_chunk, backend=backend,
            scheduler=scheduler, n_workers=n_workers, checkpoint=checkpoint, progress=progress,
            device=device or dev_r or dev_d, **settings,
        )
        if not cal.accepts(float(D.shape[0] if wd is None else wd.sum())):
            cal.data_tolerance = np.inf  # the observed size itself defines N0 here
        return cal.test(D, data_weight=wd, device=device)
    if wr is not None or wd is not None:
        raise ValueError("null: 'permutation' toys assume exchangeable, unweighted samples; "
                         "use null='resample' with weights")
    configs = expand_settings(settings)
    std = Standardizer.fit(R)
    Rs, Ds = std.transform(R), std.transform(D)
    widths = [resolve_widths(Rs, c, _seq(seed, _WIDTH_KEY)) for c in configs]
    device = torch.device(device) if device is not None else (dev_r or dev_d or torch.device("cpu"))
    spec = NullSpec("permutation", R.shape[0], D.shape[0], n_expected, False)
    pool = np.concatenate([Rs, Ds]).astype(np.float32)
    problem = _ToyProblem(pool, spec, None, tuple(configs), tuple(widths), seed, str(device))
    fp = _fingerprint(np.concatenate([R, D]), None)
    null_t = _run_toys(problem, n_null, replica_chunk=replica_chunk, backend=backend,
                       backend_options=_backend_options(backend, scheduler, n_workers),
                       checkpoint=checkpoint, progress=progress,
                       run_id=_run_id(fp, configs, widths, seed, n_null, replica_chunk, spec))
    t_obs, models = _fit_observed(R, D, None, None, configs, widths, seed, n_expected, device)
    holder = Calibration(null=null_t, configs=configs, widths=widths, fingerprint=fp,
                         n_features=R.shape[1], n_data=D.shape[0], n_expected=n_expected,
                         poisson=False, null_mode="permutation", seed=seed, aggregation=aggregation)
    return _result(t_obs, null_t, models, holder, "permutation")


# pytest would otherwise collect these public names when a test module imports them
test.__test__ = False
TestResult.__test__ = False
