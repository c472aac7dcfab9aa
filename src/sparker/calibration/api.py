"""The calibrated test and calibrations: :func:`test`, :func:`calibrate`, :func:`expand_settings`.

Both functions take the options of :class:`~sparker.config.NullConfig` (how toys
are made) and :class:`~sparker.config.RunConfig` (how they run) as keywords,
with those dataclasses' defaults, and check them with
:func:`~sparker.config.validate_options` before any training.  Settings given
as lists span several configurations, run on the same toys and aggregated
(``docs/method.md``, "Calibration").
"""

from __future__ import annotations

import itertools
import json
from dataclasses import fields, replace

import numpy as np

from .._validation import (
    check_array, check_device, check_feature_names, check_int, check_n_features, check_weights, column_names,
)
from ..config import SCALE_SETTINGS, SCALES, NullConfig, RunConfig, TrainingConfig, validate_options
from ..core.nulls import NullSpec, check_resample_weights, resolve_null_mode
from ..core.streaming import fingerprint, standardized_pool
from ..core.pool import preprocessing
from ..estimator import SparKer
from ..interpret import rename_features
from ..model.ensemble import resolve_widths
from ..results import TestResult
from .calibration import Calibration, assemble_result, fit_observed, unit_data_weight
from .checkpoint import run_id
from .toys import WIDTH_KEY, ToyProblem, child_seed, run_toys

__all__ = ["calibrate", "test", "expand_settings", "fixed_mismatches", "resolve_scales", "training_configs",
           "check_scales"]

_NULL, _RUN = NullConfig(), RunConfig()  # the defaults, written once in config.py


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


def resolve_scales(scales: str, settings: dict) -> str:
    """The scale preset that ``scales`` means with these settings: ``auto`` is ``single``
    when a setting of :data:`~sparker.config.SCALE_SETTINGS` is given, else ``multi``."""
    if scales != "auto":
        return scales
    return "single" if any(name in settings for name in SCALE_SETTINGS) else "multi"


def training_configs(settings: dict, scales: str = "auto") -> list[TrainingConfig]:
    """The configurations of a calibrated test, in order: every configuration of
    :func:`expand_settings` at every scale of :data:`~sparker.config.SCALES` (duplicates once).
    A scale's own value of a setting outside :data:`~sparker.config.SCALE_SETTINGS` (the
    widest scale's ``a_max``) applies unless ``settings`` gives that setting.

    Raises
    ------
    ValueError
        Naming ``scales``, for ``multi`` together with ``layers`` (a stack sets its own scales).
    """
    preset = resolve_scales(scales, settings)
    if preset != "single" and settings.get("layers"):
        raise ValueError(f"scales: {preset!r} sets the widths of a single block; with layers "
                         "(a stack of its own scales) use scales='single'")
    configs = []
    for base in expand_settings(settings):
        for changes in SCALES[preset]:
            cfg = replace(base, **{k: v for k, v in changes.items() if k in SCALE_SETTINGS or k not in settings})
            if cfg not in configs:
                configs.append(cfg)
    return configs


def check_scales(calibration: Calibration, scales: str, settings: dict, *, name: str) -> None:
    """Refuse ``scales`` (other than ``auto``) that give another number of configurations than
    the calibration has (the settings named are compared one by one elsewhere)."""
    if scales == "auto":
        return
    wanted, have = len(training_configs(settings, scales)), len(calibration.configs)
    if wanted != have:
        raise ValueError(f"{name}: {scales!r} gives {wanted} configuration(s), the calibration "
                         f"has {have}; leave it out or calibrate again")


def _check_several(configs, n_null) -> None:
    if len(configs) > 1 and n_null < 2:
        raise ValueError(f"n_null: aggregating {len(configs)} configurations needs at least 2 toys")


# ------------------------------------------------------------------ reusing a calibration
def fixed_mismatches(calibration: Calibration, given: dict) -> list[tuple[str, object, object]]:
    """The options a calibration fixes that ``given`` contradicts.

    Parameters
    ----------
    calibration : Calibration
    given : dict
        :class:`~sparker.config.NullConfig` field name -> value; fields the
        calibration does not fix are ignored, and a field's ``any_value``
        (``null="auto"``) agrees with every calibration.

    Returns
    -------
    list of (name, given value, the calibration's value)
    """
    out = []
    for f in fields(NullConfig):
        if not f.metadata.get("fixed") or f.name not in given:
            continue
        value, theirs = given[f.name], getattr(calibration, f.metadata.get("attribute", f.name))
        if value != theirs and not ("any_value" in f.metadata and value == f.metadata["any_value"]):
            out.append((f.name, value, theirs))
    return out


def _check_reuse(calibration: Calibration, nulls: NullConfig, settings: dict) -> None:
    """Options of :func:`test` that a calibration fixes: left at default, or agreeing."""
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration: expected a Calibration, got {type(calibration).__name__}")
    given = {f.name: getattr(nulls, f.name) for f in fields(nulls) if getattr(nulls, f.name) != f.default}
    for name, value, theirs in fixed_mismatches(calibration, given):
        raise ValueError(f"{name}: {value!r} differs from the calibration's {theirs!r}; "
                         "leave it out or calibrate again")
    check_scales(calibration, nulls.scales, settings, name="scales")
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


# ------------------------------------------------------------------ the toys of a checked problem
def _expected(nulls: NullConfig) -> float | None:
    return None if nulls.n_expected is None else float(nulls.n_expected)


def _calibrate(R, wr, n_data: int, nulls: NullConfig, run: RunConfig, configs, device) -> Calibration:
    """Resample toys of a checked reference (``R`` lean, ``wr`` checked, ``device`` resolved)."""
    poisson = (nulls.n_expected is not None) if nulls.poisson is None else bool(nulls.poisson)
    n_expected, seed = _expected(nulls), int(nulls.seed)
    std, Rs = preprocessing(R, None, wr, "reference")  # as in SparKer.fit: rows in canonical order
    widths = [resolve_widths(Rs, c, child_seed(seed, WIDTH_KEY)) for c in configs]
    spec = NullSpec("resample", R.shape[0], n_data, n_expected, poisson)
    fp = fingerprint([R], wr)
    pool = standardized_pool([Rs], augmented=False).numpy()  # (N_R, d) float32, canonical order
    wr_pool = None if wr is None else wr[Rs.order]  # the weights of the pool's rows
    problem = ToyProblem(pool, spec, wr_pool, tuple(configs), tuple(widths), seed, str(device))
    null = run_toys(problem, nulls.n_null, run, run_id(fp, configs, widths, seed, nulls.n_null, spec, wr))
    return Calibration(
        null=null, configs=configs, widths=widths, fingerprint=fp, n_features=R.shape[1],
        n_data=n_data, n_expected=n_expected, poisson=poisson, null_mode="resample",
        seed=seed, aggregation=nulls.aggregation, data_tolerance=float(nulls.data_tolerance),
        reference=R, reference_weight=wr,
    )


def _permutation_null(R, D, nulls: NullConfig, run: RunConfig, configs, device) -> np.ndarray:
    """Null statistics (n_null, K) of permutation toys over the pooled, checked samples."""
    seed = int(nulls.seed)
    # label-free, as the observed fit with standardize="pooled": moments and widths of the
    # stacked samples, rows in an order of their values alone
    std, Ps = preprocessing(R, D, None, "pooled")
    widths = [resolve_widths(Ps, c, child_seed(seed, WIDTH_KEY)) for c in configs]
    spec = NullSpec("permutation", R.shape[0], D.shape[0], _expected(nulls), False)
    pool = standardized_pool([Ps], augmented=False).numpy()  # (N_R + N_D, d), canonical order
    problem = ToyProblem(pool, spec, None, tuple(configs), tuple(widths), seed, str(device))
    fp = fingerprint([R, D], None)  # of the stacked samples
    return run_toys(problem, nulls.n_null, run, run_id(fp, configs, widths, seed, nulls.n_null, spec, None))


def standardization(configs: list[TrainingConfig], mode: str) -> list[TrainingConfig]:
    """The configurations with the standardisation the null mode needs.

    Permutation toys need preprocessing that ignores which rows are data, so every
    configuration is fitted with ``standardize="pooled"``, and on the whole pool
    (``reference_batch`` and ``data_batch`` of "auto" become None, a number of rows is refused); resample
    toys see the reference alone, so ``"pooled"`` is refused there.
    """
    if mode == "permutation":
        for name in ("reference_batch", "data_batch"):
            if any(getattr(c, name) not in (None, "all", "auto") for c in configs):
                raise ValueError(f"{name}: needs resample toys (a reference at least 5 times the data, or "
                                 "null='resample'); with permutation toys the observed fit could not slice its "
                                 "rows the way the toys slice theirs")
        # "auto": permutation toys read the whole pool (see the message above)
        return [replace(c, standardize="pooled", reference_batch=None, data_batch=None) for c in configs]
    if any(c.standardize == "pooled" for c in configs):
        raise ValueError("standardize: 'pooled' is for permutation toys (null='permutation'); resample "
                         "toys see only the reference, so leave standardize at 'reference'")
    return configs


def _resample_spec(n_reference: int, n_data: int, nulls: NullConfig) -> NullSpec:
    """The :class:`NullSpec` of resample toys (as :func:`_calibrate` builds it)."""
    poisson = (nulls.n_expected is not None) if nulls.poisson is None else bool(nulls.poisson)
    return NullSpec("resample", n_reference, n_data, _expected(nulls), poisson)


def _check_permutation(wr, wd, poisson) -> None:
    if wr is not None or wd is not None:
        raise ValueError("null: 'permutation' toys assume exchangeable, unweighted samples; "
                         "use null='resample' with weights")
    if poisson:
        raise ValueError("poisson: Poisson toy counts need null='resample'")


# ------------------------------------------------------------------ public API
def calibrate(
    reference, n_data: int, *, n_null: int = _NULL.n_null, seed: int = _NULL.seed, reference_weight=None,
    n_expected: float | None = _NULL.n_expected, poisson: bool | None = _NULL.poisson,
    aggregation: str = _NULL.aggregation, data_tolerance: float = _NULL.data_tolerance,
    scales: str = _NULL.scales, replica_chunk: int = _RUN.replica_chunk, backend: str = _RUN.backend,
    scheduler=_RUN.scheduler,
    n_workers: int | None = _RUN.n_workers, checkpoint=_RUN.checkpoint, progress: bool = _RUN.progress,
    device=_RUN.device, **settings,
) -> Calibration:
    """Calibrate the SparKer statistic for a reference and a data size (resampling toys).

    Each toy draws its pseudo-data from the reference (``N_D' ~ Poisson(N_0)``
    rows when ``poisson``, else exactly ``n_data``) and uses the remaining rows,
    re-weighted, as its reference (:mod:`sparker.core.nulls`, ``resample``).
    Toys never see an inspected sample, so one calibration serves every sample
    of that size tested against this reference.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
        Needs ``n_reference >= 2 n_data``.
    n_data : int
        Size of the inspected samples to be tested.
    reference_weight : array-like of shape (n_reference,), optional
    n_null, seed, n_expected, poisson, aggregation, data_tolerance, scales
        How toys are made and combined: :class:`~sparker.config.NullConfig`
        (100 toys, seed 0, exact counts unless ``n_expected`` is given; by
        default three scales aggregated with ``minp-fisher``, see :data:`~sparker.config.SCALES`).
    replica_chunk, backend, scheduler, n_workers, checkpoint, progress, device
        How toys run: :class:`~sparker.config.RunConfig` (in this process by
        default; a ``checkpoint`` file makes a killed run resumable).
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
    nulls = NullConfig(n_null=n_null, null="resample", seed=seed, n_expected=n_expected, poisson=poisson,
                       aggregation=aggregation, data_tolerance=data_tolerance, scales=scales)
    run = RunConfig(replica_chunk=replica_chunk, backend=backend, scheduler=scheduler, n_workers=n_workers,
                    checkpoint=checkpoint, progress=progress, device=device)
    validate_options(nulls)
    validate_options(run)
    R, _, dev = check_array(reference, name="reference", min_samples=2, lean=True)  # memory maps stay
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    n_data = check_int(n_data, name="n_data", minimum=1)
    resolve_null_mode("resample", R.shape[0], n_data)
    check_resample_weights(_resample_spec(R.shape[0], n_data, nulls), wr)
    configs = standardization(training_configs(settings, scales), "resample")
    _check_several(configs, n_null)
    return _calibrate(R, wr, n_data, nulls, run, configs, check_device(device, dev))


def test(
    reference, data, *, n_null: int = _NULL.n_null, null: str = _NULL.null, seed: int = _NULL.seed,
    calibration: Calibration | None = None, reference_weight=None, data_weight=None,
    n_expected: float | None = _NULL.n_expected, poisson: bool | None = _NULL.poisson,
    aggregation: str = _NULL.aggregation, scales: str = _NULL.scales, replica_chunk: int = _RUN.replica_chunk,
    backend: str = _RUN.backend, scheduler=_RUN.scheduler, n_workers: int | None = _RUN.n_workers,
    checkpoint=_RUN.checkpoint, progress: bool = _RUN.progress, device=_RUN.device, **settings,
) -> TestResult:
    """Calibrated SparKer test: is ``data`` different from ``reference``, and how significant?

    Fits the observed samples and ``n_null`` null toys with the same settings
    (the toys as batched replicas) and returns the empirical p-value and Z,
    plus a chi-square fit of the null.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    n_null, null, seed, n_expected, poisson, aggregation, scales
        How toys are made and combined: :class:`~sparker.config.NullConfig`
        (100 toys; ``null="auto"`` resamples the reference when
        ``n_reference >= 5 n_data``, else permutes the pooled samples;
        ``TestResult.null_mode`` says which was used).  Unless a width,
        kernel-count, epochs or layers setting is given, the test runs three
        scales on the same toys (the default narrow ensemble and two broader
        four-kernel ones, :data:`~sparker.config.SCALES`) and combines their
        p-values with ``aggregation``; ``scales="single"`` runs one.
    calibration : Calibration, optional
        Reuse a calibration (:func:`calibrate`) instead of running toys.  It
        must have been made with this reference (fingerprint), these settings
        and a matching data size; the options it fixes (``n_null``, ``seed``,
        ``aggregation``, ``n_expected``, ``poisson``, ``null``, and every
        setting named) must be left at their defaults or agree with it; those
        that only steer how toys run are ignored.  (The same test as
        ``calibration.test(data, reference=reference)``, whose data come first:
        pass its reference by keyword.)
    reference_weight : array-like, optional
        Per-point reference weights (``resample`` toys only); toys draw their data
        from the reference in proportion to them.
    data_weight : array-like, optional
        Only all-ones weights are accepted: the toys' data are unweighted rows,
        so weighted data would be tested against the wrong null.  Use
        :meth:`SparKer.fit` for the statistic of weighted data (uncalibrated).
    replica_chunk, backend, scheduler, n_workers, checkpoint, progress, device
        How toys run: :class:`~sparker.config.RunConfig`.  With
        ``permutation`` toys the checkpoint belongs to this (reference, data) pair.
    **settings
        :class:`SparKer` parameters (``n_kernels=8``, ``epochs=...``); lists of
        values give several configurations aggregated with ``aggregation``.

    Returns
    -------
    TestResult
        Its model has the reference's feature names when the reference is a
        DataFrame (the data's must then match them), and ``n_flagged`` counts the
        data points that model flags.

    Raises
    ------
    ValueError
        Naming the offending argument, before any training.
    """
    nulls = NullConfig(n_null=n_null, null=null, seed=seed, n_expected=n_expected, poisson=poisson,
                       aggregation=aggregation, scales=scales)
    if calibration is not None:
        _check_reuse(calibration, nulls, settings)
        D, names_d, dev = check_array(data, name="data", min_samples=1, lean=True)
        names = _feature_names(column_names(reference), names_d)
        result = calibration.test(D, reference=reference, reference_weight=reference_weight,
                                  data_weight=data_weight, device=device if device is not None else dev)
        return _described(result, names, D)
    run = RunConfig(replica_chunk=replica_chunk, backend=backend, scheduler=scheduler, n_workers=n_workers,
                    checkpoint=checkpoint, progress=progress, device=device)
    validate_options(nulls)
    validate_options(run)
    return _run_test(reference, data, reference_weight, data_weight, nulls, run, settings)


def _run_test(reference, data, reference_weight, data_weight, nulls: NullConfig, run: RunConfig,
              settings: dict) -> TestResult:
    """:func:`test` without a calibration, once the options are checked."""
    R, names, dev_r = check_array(reference, name="reference", min_samples=2, lean=True)  # memory maps stay
    D, names_d, dev_d = check_array(data, name="data", min_samples=1, lean=True)
    check_n_features(R.shape[1], D.shape[1], name="data")
    names = _feature_names(names, names_d)
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    unit_data_weight(data_weight, D.shape[0])  # toys' data are unweighted: so must the data be
    mode = resolve_null_mode(nulls.null, R.shape[0], D.shape[0])
    device = check_device(run.device, dev_r, dev_d)
    if mode == "permutation":
        _check_permutation(wr, None, nulls.poisson)
    configs = standardization(training_configs(settings, nulls.scales), mode)
    _check_several(configs, nulls.n_null)
    widths = None  # permutation: the observed fit derives them as the toys did
    if mode == "resample":
        check_resample_weights(_resample_spec(R.shape[0], D.shape[0], nulls), wr)
        cal = _calibrate(R, wr, D.shape[0], nulls, run, configs, device)
        null_t, widths = cal.null, cal.widths
    else:
        null_t = _permutation_null(R, D, nulls, run, configs, device)
    t_obs, models = fit_observed(R, D, wr, None, configs, int(nulls.seed), _expected(nulls), device,
                                 widths=widths, holdout=mode == "resample")
    result = assemble_result(t_obs, null_t, models, configs, int(nulls.seed), nulls.aggregation, mode)
    return _described(result, names, D)


def _feature_names(reference_names: list[str] | None, data_names: list[str] | None) -> list[str] | None:
    """The reference's feature names, checked as :meth:`SparKer.fit` checks them, before any toy."""
    check_feature_names(reference_names, data_names, name="data")
    if reference_names is not None and len(set(reference_names)) != len(reference_names):
        dup = sorted({n for n in reference_names if reference_names.count(n) > 1})
        raise ValueError(f"reference: duplicate feature names {dup}; every column needs its own name")
    return reference_names


#: rows of the data flagged at a time by :func:`_described` (bounded memory on large data)
_FLAG_ROWS = 65536


def _described(result: TestResult, names: list[str] | None, D) -> TestResult:
    """The result with its model's feature names and the number of data points it flags.

    The observed fits (:func:`~sparker.calibration.calibration.fit_observed`) are made on
    arrays; the names are labels that do not change a fit, so they are set afterwards.
    """
    model = result.model
    if names is not None:
        model.feature_names_in_ = list(names)
        model.kernels_ = rename_features(model.kernels_, list(names))
    n_flagged = sum(int(np.count_nonzero(model.flag(D[lo:lo + _FLAG_ROWS])))
                    for lo in range(0, D.shape[0], _FLAG_ROWS))
    return replace(result, n_flagged=n_flagged)


# pytest would otherwise collect this public name when a test module imports it
test.__test__ = False
