"""Configuration dataclasses: one per concern, saved beside every result.

- :class:`TrainingConfig` (and :class:`LayerConfig`): how one model is trained.
- :class:`NullConfig`: how the null toys of a calibrated test are made and
  combined; a saved calibration fixes these (``fixed`` in the metadata).
- :class:`RunConfig`: where and how the toys run; never changes a number.

Field metadata drives both the checks and the command line
(:mod:`sparker.app.flags`): every field has a one-line ``help``; a field of
:class:`NullConfig` or :class:`RunConfig` also has a ``kind`` (a key of
:data:`OPTION_CHECKS`, which says how :func:`validate_options` checks it and
what the flag parses) and may have

``choices``
    the registry whose keys are the accepted values;
``fixed``
    a saved calibration fixes it (``attribute``: the :class:`Calibration`
    attribute it is compared with, default the field name; ``any_value``: a
    value that stands for whatever the calibration has);
``toys_only``
    it only matters while null toys run;
``backend``
    the one back end that uses it;
``commands``
    the commands that have its flag (default: every command with null-toy flags);
``metavar``, ``default_text``
    how its flag is shown (``default_text`` None: no default shown);
``tty``
    on the command line its default is whether stderr is a terminal.

See ``docs/method.md``, sections "The model", "The loss and training",
"Width annealing" and "Calibration".
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ._validation import check_bool, check_choice, check_int, check_real, is_int, is_real
from .core.backends import BACKENDS, backend_options, check_backend
from .core.kernels import COMPETITIONS
from .core.nulls import NULL_MODES
from .core.standardize import STANDARDIZE_MODES
from .core.schedules import MIN_WIDTH, SCHEDULES
from .stats import AGGREGATIONS, DEFAULT_AGGREGATION

__all__ = [
    "TrainingConfig", "LayerConfig", "NullConfig", "RunConfig", "validate_config", "validate_options",
    "option_values", "OPTION_CHECKS", "A_MAX_LIMIT", "SCALES", "SCALE_SETTINGS", "AUTO_BATCH_ROWS",
    "REFERENCE_BATCH_WORDS", "AUTO_BATCH_MAX", "resolve_reference_batch", "resolve_data_batch",
]

#: Largest accepted ``a_max``: with ``|f| <= a_max`` (one layer, softmax gates), exp(f)
#: and its sums over many points stay finite in float32.
A_MAX_LIMIT = 50.0


@dataclass(frozen=True)
class LayerConfig:
    """Overrides for one block of a multi-scale stack (None = inherit)."""

    n_kernels: int | None = None
    epochs: int | None = None
    schedule: str | None = None
    sigma_start: float | None = None
    sigma_end: float | None = None
    sigma_start_quantile: float | None = None
    sigma_end_quantile: float | None = None
    sigma_end_contrast: float | None = None


#: ``reference_batch`` words: ``"auto"`` (:func:`resolve_reference_batch`) and ``"all"`` (= None)
REFERENCE_BATCH_WORDS = ("auto", "all")
#: ``reference_batch="auto"`` slices the reference from this many reference rows on ...
AUTO_BATCH_ROWS = 50_000
#: ... in slices of this fraction of them, at most :data:`AUTO_BATCH_MAX` rows; ``data_batch="auto"``
#: reads every data row up to that many, and slices of that many above
AUTO_BATCH_FRACTION = 0.1
#: the most rows ``"auto"`` reads per epoch from the reference, and from each replica's data
AUTO_BATCH_MAX = 10_000


def resolve_reference_batch(value, n_reference_rows: int) -> int | None:
    """Rows per reference slice for a fit over ``n_reference_rows`` reference rows (None: all).

    ``"auto"``: a tenth of the rows from :data:`AUTO_BATCH_ROWS` on, at most
    :data:`AUTO_BATCH_MAX`; every row below (small problems keep the exact full-batch step;
    docs/defaults.md, "Reference batches").  It depends on the reference alone, so the
    observed fit and its resample toys, which slice the same reference, resolve it alike.
    """
    if value is None or value == "all":
        return None
    if value == "auto":
        if n_reference_rows < AUTO_BATCH_ROWS:
            return None
        return min(int(n_reference_rows * AUTO_BATCH_FRACTION), AUTO_BATCH_MAX)
    return int(value)


def resolve_data_batch(value, n_data_rows: int) -> int | None:
    """Data rows per epoch for a replica with ``n_data_rows`` data rows (None: all of them).

    ``"auto"``: every row up to :data:`AUTO_BATCH_MAX`, slices of that many above.  It is a
    function of the replica's own data size, so the observed fit and each toy apply the
    same rule to their own rows.
    """
    if value is None or value == "all":
        return None
    m = AUTO_BATCH_MAX if value == "auto" else int(value)
    return m if m < n_data_rows else None


def _setting(default, help: str, **metadata):
    """A field of :class:`TrainingConfig` with its one-line help (the command line shows it)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class TrainingConfig:
    """How one SparKer model is trained (``docs/method.md``, "The model" to "Re-seeding").

    Widths are in standardised units (features scaled by the reference's
    standard deviation).  ``sigma_start``/``sigma_end`` of None are derived from
    pairwise-distance quantiles of the standardised reference.  Each field's
    ``help`` metadata is its one-line description (``sparker fit --help``);
    ``choices`` names the registry of a setting that takes a name.
    """

    n_kernels: int = _setting(8, "Number of kernels M")
    competition: str = _setting("kernel-softmax", "How kernels combine", choices=COMPETITIONS)
    epochs: int = _setting(1000, "Full-batch Adam steps")
    schedule: str = _setting(
        "geometric", "Width annealing schedule; the end width is reached at 90% of the epochs",
        choices=SCHEDULES)
    sigma_start: float | None = _setting(
        None, "Start width in standardised units; by default the sigma_start_quantile "
              "quantile of pairwise reference distances")
    sigma_end: float | None = _setting(
        None, "End width in standardised units; by default the sigma_end_quantile "
              "quantile of pairwise reference distances")
    sigma_start_quantile: float = _setting(
        0.9, "Quantile of pairwise distances of the standardised reference that sets the "
             "default start width")
    sigma_end_quantile: float = _setting(
        0.003, "Quantile of pairwise distances of the standardised reference that sets the "
               "default end width")
    sigma_end_contrast: float = _setting(
        1e-2, "Caps the default end width where distances concentrate (high dimensions): a "
              "kernel centred on a reference point must weight a point at the median pairwise "
              "distance at most this fraction of one at the sigma_end_quantile distance")
    lr_centres: float = _setting(
        0.07, "Adam step of the centres, in units of the current width: a centre moves by about "
              "lr_centres * sigma per step in any dimension (the per-coordinate step is "
              "lr_centres * sigma / sqrt(d); 0.07 is the square2d-tuned step of 0.05 per "
              "coordinate at d = 2)")
    lr_amplitudes: float = _setting(0.05, "Adam step of the amplitudes")
    a_max: float = _setting(
        10.0, "Amplitudes are clipped to [-a_max, a_max] after every step; at most 50, so that "
              "exp(f) stays finite in float32")
    l1: float = _setting(
        0.5, "L1 penalty on the amplitudes, in loss units per unit amplitude (the statistic "
             "itself is always the unpenalised -2 L)")
    reseed: bool = _setting(
        True, "Re-seed the least useful kernel onto the largest unexplained excess or deficit "
              "at fixed points of the schedule")
    solve_amplitudes: bool = _setting(
        False, "Where the width schedule ends, solve the amplitudes for the current centres and "
               "width (the loss is convex in them: projected Newton steps) instead of leaving them "
               "where Adam's fixed step had got them, so that the loss settles; on in every scale "
               "of the calibrated test's default")
    standardize: str = _setting(
        "reference", "What the standardisation and default widths come from: the reference, or "
                     "the reference and data pooled (permutation tests use pooled)",
        choices=STANDARDIZE_MODES)
    reference_batch: int | str | None = _setting(
        "auto", "Reference rows per epoch: each epoch reads a fresh slice of this many reference rows "
                "(an unbiased estimate of the reference term); the statistic and the settling check "
                "still use the whole reference, and the scores of kernel moves up to 100,000 of its "
                "rows. 'auto': a tenth of the reference from 50,000 reference rows on (at most 10,000 "
                "rows), all rows below; 'all': every row",
        flag_type="rows_or_auto")
    data_batch: int | str | None = _setting(
        "auto", "Data rows per epoch and replica: each epoch reads a fresh slice of this many of its "
                "data rows (an unbiased estimate of the data term); the statistic, the settling "
                "check and the scores of kernel moves still use every row. 'auto': every row up to "
                "10,000, slices of 10,000 above; 'all': every row",
        flag_type="rows_or_auto")
    chunk_rows: int | None = _setting(
        None, "Rows per chunk of the full-batch gradient (memory bound); default ~1 MB of "
              "activations per chunk")
    record_every: int = _setting(
        10, "Stride of the recorded training trajectory (history_); 0 = off")
    layers: tuple[LayerConfig, ...] = field(default_factory=tuple, metadata={
        "help": "Multi-scale stack as JSON: a list of per-block override objects (keys among "
                "n_kernels, epochs, schedule, sigma_start, sigma_end, sigma_start_quantile, "
                "sigma_end_quantile, sigma_end_contrast), trained in order, broad first",
        "default_text": "one block",
    })

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"settings: unknown training settings {sorted(unknown)}")
        d = dict(d)
        d["layers"] = tuple(LayerConfig(**layer) for layer in d.get("layers", ()))
        # settings written before reference_batch existed (SparKer < 0.3) trained on the whole
        # pool: a saved calibration's toys must be matched by observed fits trained the same way
        d.setdefault("reference_batch", None)
        # ... and before data_batch existed (SparKer < 0.4) on every data row
        d.setdefault("data_batch", None)
        return cls(**d)

    def layer_configs(self) -> list["TrainingConfig"]:
        """One flat config per layer (a single layer when ``layers`` is empty)."""
        if not self.layers:
            return [self]
        out = []
        for layer in self.layers:
            over = {k: v for k, v in asdict(layer).items() if v is not None}
            out.append(replace(self, layers=(), **over))
        return out


def validate_config(cfg: TrainingConfig) -> None:
    """Raise a ValueError (TypeError for a wrong type) naming the offending setting."""
    if cfg.standardize not in STANDARDIZE_MODES:
        raise ValueError(f"standardize: unknown mode {cfg.standardize!r}; choose one of {sorted(STANDARDIZE_MODES)}")
    for layer in cfg.layer_configs():
        if not is_int(layer.n_kernels) or layer.n_kernels < 1:
            raise ValueError(f"n_kernels: must be a positive integer, got {layer.n_kernels!r}")
        if not is_int(layer.epochs) or layer.epochs < 1:
            raise ValueError(f"epochs: must be a positive integer, got {layer.epochs!r}")
        if layer.schedule not in SCHEDULES:
            raise ValueError(f"schedule: unknown schedule {layer.schedule!r}; choose one of {sorted(SCHEDULES)}")
        for name in ("sigma_start", "sigma_end"):
            v = getattr(layer, name)
            if v is not None and not (is_real(v) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite width, got {v!r}")
            if v is not None and v < MIN_WIDTH:
                raise ValueError(f"{name}: must be at least {MIN_WIDTH:g} (the float32 resolution of "
                                 f"standardised features), got {v!r}")
        for name in ("sigma_start_quantile", "sigma_end_quantile"):
            v = getattr(layer, name)
            if not (is_real(v) and 0.0 < v < 1.0):
                raise ValueError(f"{name}: must lie in (0, 1), got {v!r}")
        v = layer.sigma_end_contrast
        if not (is_real(v) and 0.0 < v <= 1.0):
            raise ValueError(f"sigma_end_contrast: must lie in (0, 1] (1 = no cap), got {v!r}")
    if cfg.competition not in COMPETITIONS:
        raise ValueError(f"competition: unknown mode {cfg.competition!r}; choose one of {sorted(COMPETITIONS)}")
    for name in ("lr_centres", "lr_amplitudes", "a_max"):
        v = getattr(cfg, name)
        if not (is_real(v) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}: must be a positive number, got {v!r}")
    if cfg.a_max > A_MAX_LIMIT:
        raise ValueError(f"a_max: must be at most {A_MAX_LIMIT:g} so that exp(f) stays finite in "
                         f"float32, got {cfg.a_max!r}")
    if not (is_real(cfg.l1) and math.isfinite(cfg.l1) and cfg.l1 >= 0):
        raise ValueError(f"l1: must be >= 0, got {cfg.l1!r}")
    for name in ("reseed", "solve_amplitudes"):
        if not isinstance(getattr(cfg, name), (bool, np.bool_)):
            raise TypeError(f"{name}: must be True or False, got {getattr(cfg, name)!r}")
    rb = cfg.reference_batch
    if rb is not None and rb not in REFERENCE_BATCH_WORDS and (not is_int(rb) or rb < 1):
        raise ValueError(f"reference_batch: must be a positive integer, 'auto', 'all' or None, got {rb!r}")
    db = cfg.data_batch
    if db is not None and db not in REFERENCE_BATCH_WORDS and (not is_int(db) or db < 1):
        raise ValueError(f"data_batch: must be a positive integer, 'auto', 'all' or None, got {db!r}")
    if cfg.chunk_rows is not None and (not is_int(cfg.chunk_rows) or cfg.chunk_rows < 1):
        raise ValueError(f"chunk_rows: must be a positive integer, got {cfg.chunk_rows!r}")
    if not is_int(cfg.record_every) or cfg.record_every < 0:
        raise ValueError(f"record_every: must be an integer >= 0, got {cfg.record_every!r}")


# ------------------------------------------------------------------ scales of the calibrated test
#: Scale presets of the calibrated test (:attr:`NullConfig.scales`): per preset, one dict
#: per configuration of the settings it changes.  The configurations run on the same
#: toys and their statistics are combined by ``aggregation`` (``minp-fisher`` by default), so the
#: test sees small dense clumps (the default narrow ensemble, 0.3% distance quantile, with
#: an L1 penalty of 1 so that its kernels do not climb onto lone null points),
#: moderate excesses (four kernels to the 2% quantile) and broad excesses and deficits
#: spanning a good part of the range (four kernels to the median distance, amplitudes
#: clipped at 5: its broad kernels otherwise drift in pairs of opposite amplitudes and
#: their loss does not settle), at a calibrated price; every scale solves its amplitudes
#: where its width schedule ends (``solve_amplitudes``), so that its loss settles.  A
#: scale's value of a setting that is not in :data:`SCALE_SETTINGS` (``solve_amplitudes``,
#: the narrow scale's ``l1``, the widest scale's ``a_max``) gives way to the user's.  The
#: studies behind the choice are in ``docs/defaults.md`` ("One test for every scale",
#: "Settling", "A stronger penalty on the narrow scale", "Amplitudes solved where the width
#: ends").
SCALES: dict[str, tuple[dict, ...]] = {
    "single": ({},),
    "multi": ({"l1": 1.0, "solve_amplitudes": True},
              {"n_kernels": 4, "sigma_end_quantile": 0.02, "epochs": 500, "solve_amplitudes": True},
              {"n_kernels": 4, "sigma_end_quantile": 0.5, "epochs": 300, "a_max": 5.0,
               "solve_amplitudes": True}),
}

#: Settings that choose the scale of the fit: given any of them, ``scales="auto"`` runs
#: exactly the configuration(s) they describe (``single``); else the ``multi`` preset.
SCALE_SETTINGS = ("n_kernels", "epochs", "sigma_end", "sigma_end_quantile", "sigma_start",
                  "sigma_start_quantile", "layers")


# ------------------------------------------------------------------ null toys and how they run
def _option(default, help: str, kind: str, **metadata):
    """A field of :class:`NullConfig` or :class:`RunConfig` (metadata keys: module notes)."""
    return field(default=default, metadata={"help": help, "kind": kind, **metadata})


def _check_choice(value, *, name: str, metadata: dict):
    return check_choice(value, metadata["choices"], name=name)


#: option ``kind`` -> check of a given value, ``(value, *, name, metadata)`` (raises naming ``name``)
OPTION_CHECKS: dict[str, Callable] = {
    "count": lambda value, *, name, metadata: check_int(value, name=name, minimum=1),
    "seed": lambda value, *, name, metadata: check_int(value, name=name, minimum=0),
    "positive": lambda value, *, name, metadata: check_real(value, name=name, positive=True),
    "non_negative": lambda value, *, name, metadata: check_real(value, name=name, minimum=0.0),
    "switch": lambda value, *, name, metadata: check_bool(value, name=name),
    "display": lambda value, *, name, metadata: value,  # presentation only: any truthy value turns it on
    "choice": _check_choice,
    "text": lambda value, *, name, metadata: value,  # names and clients, checked where used
    "path": lambda value, *, name, metadata: value,
}


@dataclass(frozen=True)
class NullConfig:
    """How the null toys of a calibrated test are made and combined (``docs/method.md``, "Calibration").

    The defaults of :func:`sparker.test` and :func:`sparker.calibrate`.  A
    saved :class:`~sparker.calibration.Calibration` fixes every field.

    Attributes
    ----------
    n_null : int, default=100
        Number of null toys (p-value resolution ``1 / (n_null + 1)``).
    null : {"auto", "resample", "permutation"}, default="auto"
        How toys are made (see :mod:`sparker.core.nulls`); ``auto`` resamples
        the reference when ``n_reference >= 5 n_data``, else permutes the
        pooled samples.  :func:`sparker.calibrate` always resamples.
    seed : int, default=0
        Same meaning as :class:`~sparker.SparKer`'s ``seed``; toy ``b`` uses
        child seeds of ``(seed, 2, b)`` only.
    n_expected : float, optional
        ``N_0``, the expected data count; default: the data count.
    poisson : bool, optional
        Resample toys with Poisson(``N_0``) data counts; default: True when
        ``n_expected`` is given.
    aggregation : {"minp-fisher", "minp", "fisher", "meanp"}, default="minp-fisher"
        How several configurations (scales, or settings given as lists) are
        combined (:data:`sparker.stats.AGGREGATIONS`): by default the stronger of
        min-p and Fisher over smooth per-configuration p-values.
    scales : {"auto", "multi", "single"}, default="auto"
        ``multi`` runs every configuration once per scale of :data:`SCALES`
        (the default narrow ensemble with an L1 penalty of 1 unless ``l1`` is
        given, plus two broader four-kernel ones, the broadest with amplitudes
        clipped at 5 unless ``a_max`` is given, on the same toys, aggregated);
        ``single`` runs the settings as given;
        ``auto`` is ``multi`` unless a setting of :data:`SCALE_SETTINGS` is
        given.
    data_tolerance : float, default=3
        With Poisson toys and no ``n_expected`` (a shape-only test), a
        calibration accepts samples whose size is within
        ``data_tolerance * sqrt(N_0)`` of ``N_0``; with ``n_expected`` the count
        is part of what is tested and any size is accepted; exact-count toys
        accept exactly ``n_data`` points (:func:`sparker.calibrate` only; data
        are unweighted in every calibrated test).
    """

    n_null: int = _option(100, "number of null toys; p-value resolution 1/(B+1)", "count",
                          fixed=True, metavar="B")
    null: str = _option("auto", "how toys are made: resample the reference, permute the pooled "
                        "samples, or auto: resample when n_reference >= 5 n_data", "choice",
                        choices=("auto", *NULL_MODES), fixed=True, attribute="null_mode",
                        any_value="auto", commands=("test",))
    seed: int = _option(0, "seed of every random choice", "seed", fixed=True)
    n_expected: float | None = _option(None, "N_0, data count expected under the reference", "positive",
                                       fixed=True, metavar="N0", default_text="the data count")
    poisson: bool | None = _option(None, "draw each toy's data count from Poisson(N_0)", "switch",
                                   fixed=True, default_text="yes when --n-expected is given")
    aggregation: str = _option(DEFAULT_AGGREGATION, "how configurations (scales, settings given as lists) are combined",
                               "choice", choices=AGGREGATIONS, fixed=True)
    scales: str = _option("auto", "multi: the default narrow ensemble and two broader ones on the same "
                          "toys, aggregated; single: the settings as given; auto: multi unless a "
                          "width, kernel-count, epochs or layers setting is given", "choice",
                          choices=("auto", *SCALES))
    data_tolerance: float = _option(3.0, "accepted distance of a sample's size from N_0, in units "
                                    "of sqrt(N_0) (Poisson toys without n_expected)", "non_negative", fixed=True,
                                    commands=())

    def check_together(self) -> None:
        """Checks that involve several fields (none: those need the samples)."""


@dataclass(frozen=True)
class RunConfig:
    """Where and how null toys run; never changes a number (``docs/method.md``, "Calibration").

    Attributes
    ----------
    replica_chunk : int, default=64
        Toys per task of the back end, rounded up to a multiple of
        ``REPLICA_BLOCK`` (16): each block of 16 toys (ids ``[16 j, 16 j + 16)``)
        trains as one batch of replicas, so every toy is bit-identical whatever
        the chunk size or back end.
    backend : {"batched", "processes", "dask"}, default="batched"
        Where chunks run: in this process, in local processes (``n_workers``)
        or on a Dask cluster (``scheduler``); see :mod:`sparker.core.backends`.
    scheduler : distributed.Client, cluster or str, optional
        For ``backend="dask"``.
    n_workers : int, optional
        For ``backend="processes"``; default: one per CPU.
    checkpoint : path, optional
        ``.npz`` file where finished toys are stored as chunks complete.  A
        rerun with the same arguments (any chunk size or back end) resumes
        from it and recomputes only unfinished chunks; a file from another
        run is refused.  The file is kept after completion, so rerunning
        returns at once; delete it when the calibration is saved.  With
        ``permutation`` toys it belongs to one (reference, data) pair.
    progress : bool, default=False
        Progress bar (tqdm) over the toys.
    device : str or torch.device, optional
        Where to train (toys and observed fits); default: the device of a
        tensor input, else CPU.
    """

    replica_chunk: int = _option(64, "toys per task, rounded up to whole blocks of 16 toys that train "
                                 "together", "count", metavar="N", toys_only=True)
    backend: str = _option("batched", "where chunks of toys run", "choice", choices=BACKENDS,
                           toys_only=True, default_text="batched, in this process")
    scheduler: object = _option(None, "Dask scheduler address, for --backend dask", "text",
                                metavar="ADDRESS", backend="dask", toys_only=True, default_text=None)
    n_workers: int | None = _option(None, "worker processes for --backend processes", "count",
                                    metavar="N", backend="processes", toys_only=True,
                                    default_text="one per CPU")
    checkpoint: str | os.PathLike | None = _option(
        None, "store finished toys here; rerunning the same command resumes from it", "path",
        metavar="FILE", toys_only=True, default_text=None)
    progress: bool = _option(False, "progress bar on stderr", "display", tty=True,
                             default_text="when stderr is a terminal")
    device: object = _option(None, "torch device to train on", "text", default_text="cpu")

    def backend_options(self) -> dict:
        """The back-end options given (``scheduler``, ``n_workers``), as keyword arguments."""
        return backend_options(self.scheduler, self.n_workers)

    def check_together(self) -> None:
        """The back end and the options it needs or refuses."""
        check_backend(self.backend, **self.backend_options())


def validate_options(options: NullConfig | RunConfig) -> None:
    """Check every field with the check of its ``kind``, then the fields together.

    A field whose default is None may be None (left out).

    Raises
    ------
    ValueError
        Naming the offending field (an :class:`~sparker._validation.InvalidParameterError`,
        also a TypeError, for a value of the wrong type).
    """
    for f in fields(options):
        value = getattr(options, f.name)
        if value is None and f.default is None:
            continue
        OPTION_CHECKS[f.metadata["kind"]](value, name=f.name, metadata=f.metadata)
    options.check_together()


def option_values(options: NullConfig | RunConfig, *, exclude=()) -> dict:
    """The fields as keyword arguments (values as they are: no copies, unlike ``asdict``)."""
    return {f.name: getattr(options, f.name) for f in fields(options) if f.name not in exclude}
