r"""The user-facing SparKer estimator.

``SparKer(...).fit(reference, data)`` standardises both samples with the
reference's mean and standard deviation, trains a sparse ensemble of
self-organising Gaussian kernels with the NPLM extended-likelihood loss, and
exposes the test statistic, the learned log density ratio and a per-kernel
summary in the original units of the features.

Conventions
-----------
- ``log_ratio(X)`` and ``score_samples(X)`` return
  :math:`f(x) = \log\big(n_D(x) / (w\, n_R(x))\big)` as learned: **higher means
  more anomalous** (data over-populate the reference there).  This is the
  opposite sign of scikit-learn's outlier detectors, whose ``score_samples``
  is higher for normal points.
- Reference points carry weight ``w = N_0 / N_R`` (``N_0 = N_D`` by default,
  a shape-only comparison); with user weights, the reference weights are
  rescaled to sum to ``N_0`` unless ``normalize_reference=False``.
- ``SparKer`` is a scikit-learn estimator (``get_params``, ``set_params``,
  ``clone``, ``repr``) whose ``fit`` takes two samples, ``fit(reference, data)``;
  an unfitted model raises :class:`NotFittedError` (also a ``RuntimeError``).
- The model is a :class:`~sparker.model.stack.KernelStack` (``stack_``;
  ``docs/method.md``, section "The model"); the per-kernel table and the
  explanations are computed by :mod:`sparker.interpret`, and the archive format
  of :meth:`SparKer.save` is that of :mod:`sparker._persist`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import fields

import numpy as np
import sklearn.exceptions
import torch
from sklearn.base import BaseEstimator

from ._persist import FORMAT_VERSION, load_model, save_model
from ._sklearn import like_input, refuse_pipeline_use
from ._validation import (
    check_array, check_device, check_feature_names, check_n_features, check_seed, check_weights, is_real,
)
from ._warnings import ConvergenceWarning
from .config import LayerConfig, TrainingConfig, validate_config
from .core.order import canonical_order
from .core.pool import preprocessing, weighted_pool
from .core.standardize import Standardizer
from .core.streaming import StandardizedRows
from .core.weights import check_weight_range, reference_weights
from .interpret import (
    MIN_EXCESS_FRACTION,
    Explanation,
    explain_points,
    flag_threshold,
    kernel_table,
    kernels_frame,
    top_candidates,
    top_points,
)
from .model.ensemble import fit_stack, resolve_widths
from .model.trainer import TrainResult

__all__ = ["SparKer", "FORMAT_VERSION", "NotFittedError", "from_config"]


#: The training defaults, written once in :class:`~sparker.config.TrainingConfig`.
_DEFAULT = TrainingConfig()
#: The parameters that make up a :class:`~sparker.config.TrainingConfig` (all its fields but ``layers``).
_CONFIG_PARAMS = tuple(f.name for f in fields(TrainingConfig) if f.name != "layers")
#: The parameters a saved model stores, in the order they are written.
_SAVED_PARAMS = _CONFIG_PARAMS + ("layers", "n_expected", "seed")


class NotFittedError(sklearn.exceptions.NotFittedError, RuntimeError):
    """A fitted attribute or a scoring method of an unfitted model was used.

    Both scikit-learn's :class:`~sklearn.exceptions.NotFittedError` (so that
    scikit-learn tools recognise it) and a :class:`RuntimeError` (what SparKer
    raised before it was a scikit-learn estimator).
    """


class SparKer(BaseEstimator):
    """Sparse, self-organising ensemble of local Gaussian kernels (SparKer).

    Parameters
    ----------
    n_kernels : int, default=8
        Number of kernels M.
    competition : {"kernel-softmax", "softmax", "none"}, default="kernel-softmax"
        How kernels combine (see :mod:`sparker.core.kernels`).
    epochs : int, default=1000
        Full-batch Adam steps.
    schedule : {"geometric", "linear", "constant"}, default="geometric"
        Width annealing schedule; the end width is reached at 90% of the epochs.
    sigma_start, sigma_end : float, optional
        Widths in standardised units.  By default the ``sigma_start_quantile`` (0.9) and
        ``sigma_end_quantile`` (0.003) quantiles of the standardised reference's distances.
    sigma_start_quantile, sigma_end_quantile : float
        Pairwise-distance quantiles that set the default start and end widths
        (0.003 localised the square2d clumps far better than 0.01: ``docs/defaults.md``).
    sigma_end_contrast : float, default=1e-2
        Caps the default end width where distances concentrate (high dimensions): a kernel
        must weight a point at the median pairwise distance at most this fraction of one at the
        ``sigma_end_quantile`` distance (:func:`sparker.model.ensemble.contrast_width`); 1: off.
    lr_centres : float, default=0.07
        Adam step of the centres, in units of the current width: a centre moves by about
        ``lr_centres * sigma`` per step in any dimension (per coordinate ``lr_centres * sigma /
        sqrt(d)``; 0.07 is the square2d-tuned step of 0.05 per coordinate at d = 2).
    lr_amplitudes : float, default=0.05
        Adam step of the amplitudes.
    a_max : float, default=10
        Amplitudes are clipped to ``[-a_max, a_max]`` after every step (the calibrated test's
        broadest scale clips at 5 unless this is given); at most 50 (``exp(f)`` in float32).
    l1 : float, default=0.5
        L1 penalty on the amplitudes, in loss units per unit amplitude (t is always the unpenalised
        ``-2 L``); it stops "dipoles" of opposite kernels forming while the width is broad. 0: off.
    reseed : bool, default=True
        Re-seed the least useful kernel onto the largest unexplained excess or deficit at
        fixed points of the schedule (see :mod:`sparker.model.reseed`).
    solve_amplitudes : bool, default=False
        Where the width schedule ends, set the amplitudes to the optimum for the current centres
        and width (convex in them; :mod:`sparker.model.polish`); the calibrated test's default.
    standardize : {"reference", "pooled"}, default="reference"
        Standardisation and default widths from the reference, or from reference
        and data stacked (label-free: what permutation toys require).
    layers : sequence of dict, optional
        Multi-scale stack: one dict of overrides (``n_kernels``, ``epochs``,
        ``schedule``, ``sigma_start``, ``sigma_end``, ``sigma_start_quantile``,
        ``sigma_end_quantile``) per block, trained in order (broad first).
    n_expected : float, optional
        ``N_0``, the number of data points expected under the reference
        hypothesis; default: the observed (weighted) data count.
    reference_batch, data_batch : int, "auto" or "all", default="auto"
        Reference and data rows per epoch (``docs/method.md``, "Reference and data batches").
    chunk_rows : int, optional
        Rows per chunk of the full-batch gradient (memory bound); default ~1 MB of activations.
    record_every : int, default=10
        Stride of the recorded training trajectory (``history_``); 0 = off.
    seed : int, default=0
        Controls every random choice (width subsample, starting centres).
    device : str or torch.device, optional
        Where to train; default: the device of a tensor input, else CPU.

    Attributes
    ----------
    stack_ : KernelStack
        The fitted model (:class:`~sparker.model.stack.KernelStack`): per layer the
        centres (standardised units), amplitudes and width.
    statistic_ : float
        Test statistic ``t = -2 L[f_hat]`` (float64).
    kernels_ : list of dict
        Per-kernel summary, in original units: soft counts, local Z, active flag,
        duplicates (see :meth:`kernels_frame` and :mod:`sparker.interpret`).
    history_ : dict
        Training trajectory: ``epoch``, ``sigma``, ``loss``, ``centres``
        (original units, shape (R, M, n_features)), ``amplitudes``; for a
        stack, one such dict per layer under ``layers``.
    n_features_in_ : int
    feature_names_in_ : list of str or None
    converged_ : bool
        Whether the loss settled over the last tenth of the epochs.

    Notes
    -----
    The model is :math:`f(x) = \\sum_i a_i \\phi_i(x)` with gates
    :math:`\\phi_i = k_i s_i` (kernel-softmax), trained to minimise
    :math:`L = \\sum_{R} w_x (e^{f} - 1) - \\sum_{D} f`.
    """

    def __init__(
        self,
        *,
        n_kernels: int = _DEFAULT.n_kernels,
        competition: str = _DEFAULT.competition,
        epochs: int = _DEFAULT.epochs,
        schedule: str = _DEFAULT.schedule,
        sigma_start: float | None = _DEFAULT.sigma_start,
        sigma_end: float | None = _DEFAULT.sigma_end,
        sigma_start_quantile: float = _DEFAULT.sigma_start_quantile,
        sigma_end_quantile: float = _DEFAULT.sigma_end_quantile,
        sigma_end_contrast: float = _DEFAULT.sigma_end_contrast,
        lr_centres: float = _DEFAULT.lr_centres,
        lr_amplitudes: float = _DEFAULT.lr_amplitudes,
        a_max: float = _DEFAULT.a_max,
        l1: float = _DEFAULT.l1,
        reseed: bool = _DEFAULT.reseed,
        solve_amplitudes: bool = _DEFAULT.solve_amplitudes,
        standardize: str = _DEFAULT.standardize,
        layers=None,
        n_expected: float | None = None,
        reference_batch: int | str | None = _DEFAULT.reference_batch,
        data_batch: int | str | None = _DEFAULT.data_batch,
        chunk_rows: int | None = _DEFAULT.chunk_rows,
        record_every: int = _DEFAULT.record_every,
        seed: int = 0,
        device=None,
    ):
        self.n_kernels = n_kernels
        self.competition = competition
        self.epochs = epochs
        self.schedule = schedule
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end
        self.sigma_start_quantile = sigma_start_quantile
        self.sigma_end_quantile = sigma_end_quantile
        self.sigma_end_contrast = sigma_end_contrast
        self.lr_centres = lr_centres
        self.lr_amplitudes = lr_amplitudes
        self.a_max = a_max
        self.l1 = l1
        self.reseed = reseed
        self.solve_amplitudes = solve_amplitudes
        self.standardize = standardize
        self.layers = layers
        self.n_expected = n_expected
        self.reference_batch = reference_batch
        self.data_batch = data_batch
        self.chunk_rows = chunk_rows
        self.record_every = record_every
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ params
    def set_params(self, **params) -> "SparKer":
        """Set parameters (scikit-learn convention); an unknown name raises a ValueError naming it."""
        known = self.get_params(deep=False)
        for name in params:
            if name not in known:
                raise ValueError(f"{name}: not a parameter of SparKer")
        return super().set_params(**params)

    def training_config(self) -> TrainingConfig:
        """Validated :class:`~sparker.config.TrainingConfig` from the parameters."""
        cfg = TrainingConfig(
            **{k: getattr(self, k) for k in _CONFIG_PARAMS},
            layers=_layer_configs(self.layers),
        )
        validate_config(cfg)
        return cfg

    # --------------------------------------------------------------------- fit
    def fit(self, reference, data, *, reference_weight=None, data_weight=None,
            normalize_reference: bool = True) -> "SparKer":
        """Fit the kernel ensemble to a reference and an inspected sample.

        Parameters
        ----------
        reference : array-like of shape (n_reference, n_features)
            Anomaly-free sample (NumPy, torch, pandas or nested lists).
        data : array-like of shape (n_data, n_features)
            Inspected sample.
        reference_weight : array-like of shape (n_reference,), optional
            Per-point reference weights (e.g. simulation event weights).
        data_weight : array-like of shape (n_data,), optional
            Per-point data weights (default 1).
        normalize_reference : bool, default=True
            Rescale ``reference_weight`` to sum to ``N_0``.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            If an input holds non-numeric values or a setting has the wrong type.
        ValueError
            Naming the argument: bad shapes, NaN or infinite values, too few rows,
            mismatched features, a reference whose points all coincide, weights
            outside ``WEIGHT_RANGE`` once scaled, invalid settings; or
            ``statistic:`` if training diverged to a non-finite value (never
            returned as a number).

        Notes
        -----
        Standardised values beyond ``Z_MAX`` reference standard deviations are
        clipped (with a warning), and widths below ``MIN_WIDTH`` are raised to it,
        so that float32 training stays finite; ``converged_`` is False (with a
        warning) when the loss had not settled.  Refused after transformers in a Pipeline.
        """
        refuse_pipeline_use(self)
        cfg = self.training_config()
        R, D, names, wr, wd, device = _check_fit_inputs(reference, data, reference_weight, data_weight, cfg,
                                                        self.n_expected, self.seed, self.device)
        std, width_rows = preprocessing(R, D, wr, cfg.standardize)
        Rs, Ds = StandardizedRows(R, std), StandardizedRows(D, std)  # standardised chunk by chunk
        width_seed, init_seed = np.random.SeedSequence(self.seed).spawn(2)
        widths = resolve_widths(width_rows, cfg, width_seed)
        wd = np.ones(D.shape[0]) if wd is None else wd
        w = reference_weights(R.shape[0], wd.sum(), wr, self.n_expected, normalize_reference)
        check_weight_range(wd, name="data_weight")
        check_weight_range(w, name="reference_weight" if wr is not None else "n_expected")
        # the pool in an order of its values alone: the fit does not depend on the input's row order
        order = canonical_order([R, D], None if cfg.standardize == "pooled" else [w, wd])
        Xa, r, dw = weighted_pool(Rs, Ds, w, wd, device, order)
        X = Xa[:, : R.shape[1]]  # (N, d) the pool: reference rows, then data rows
        is_ref = torch.as_tensor(order < R.shape[0], device=Xa.device)  # reference_batch slices these rows
        fit = fit_stack(X, r, dw, cfg, widths, [init_seed], augmented=Xa, reference_rows=is_ref)
        del X, Xa
        _check_finite_fit(float(fit.statistic[0]), fit.layers)
        self.standardizer_ = std
        self.feature_names_in_ = names
        self.n_features_in_ = R.shape[1]
        self.config_ = cfg
        self.stack_ = fit.kernel_stack(0)
        self.statistic_ = float(fit.statistic[0])
        self.converged_ = bool(fit.converged[0])
        if not self.converged_:
            warnings.warn("SparKer: the loss had not settled at the end of training, so t depends on the "
                          "number of epochs; compare it only with null toys trained the same way "
                          "(a calibrated test does)", ConvergenceWarning, stacklevel=2)
        # per-kernel soft counts need the samples: computed once here
        self.kernels_ = kernel_table(self.stack_, std, self._feature_names(), cfg.a_max, Rs, Ds, w, wd)
        self._fit_top_ = top_candidates(self.stack_, D, Ds)
        self.history_ = _fit_history(fit.layers, std)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "stack_")

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this SparKer instance is not fitted yet; call fit(reference, data) first")

    def _feature_names(self) -> list[str]:
        return list(self.feature_names_in_ or [f"x{j}" for j in range(self.n_features_in_)])

    def _standardised(self, X, name="X") -> np.ndarray:
        A, names, _ = check_array(X, name=name)
        check_n_features(self.n_features_in_, A.shape[1], name=name)
        check_feature_names(self.feature_names_in_, names, name=name)
        return self.standardizer_.transform(A)

    # ------------------------------------------------------------------ scores
    def log_ratio(self, X) -> np.ndarray:
        """Learned log density ratio ``f(x)`` at points ``X`` (higher = more anomalous).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        self._check_fitted()
        Z = torch.as_tensor(self._standardised(X), dtype=torch.float64)  # (n, d)
        return self.stack_.log_ratio(Z).numpy()

    def score_samples(self, X):
        """Anomaly score ``f(x)``; **higher = more anomalous** (unlike scikit-learn's detectors).

        A Series named ``score`` with the index of ``X`` when ``X`` is a DataFrame."""
        return like_input(self.log_ratio(X), X)

    # ---------------------------------------------------------------- summary
    def kernels_frame(self, *, min_zscore: float | None = None, amplitude_fraction: float | None = None):
        """The per-kernel summary ``kernels_`` as a pandas DataFrame, one row per kernel.

        Parameters
        ----------
        min_zscore, amplitude_fraction : float, optional
            Recompute the ``active`` column with these thresholds instead of the
            defaults of :mod:`sparker.interpret` (``ACTIVE_MIN_ZSCORE = 3``,
            ``ACTIVE_AMPLITUDE_FRACTION = 0.05``).

        Returns
        -------
        pandas.DataFrame
            Indexed by the kernel's global number (``index``, layer by layer), with
            columns ``layer``, ``kernel``, one ``centre[<feature>]`` column per feature
            (original units, feature names kept), ``amplitude``, ``width`` (standardised
            units), ``n_data``, ``n_reference``, ``log_ratio``, ``local_z``, ``active`` and
            ``duplicate_of`` (nullable integer).  Inactive kernels are included.

        Notes
        -----
        ``local_z`` is a local significance, not corrected for the look-elsewhere effect
        (see :mod:`sparker.interpret`).
        """
        self._check_fitted()
        return kernels_frame(self.kernels_, self.config_.a_max, min_zscore=min_zscore,
                             amplitude_fraction=amplitude_fraction)

    def explain(self, X, *, min_excess_fraction: float = MIN_EXCESS_FRACTION) -> Explanation:
        """Per-point explanation: ``f(x)``, owning kernel, each kernel's share, flag.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        min_excess_fraction : float, default=0.5
            A point is flagged when ``1 - exp(-f(x))`` exceeds this (``f > log 2`` by
            default) and its owner's region is an active kernel (see
            :mod:`sparker.interpret`).

        Returns
        -------
        Explanation
            ``log_ratio`` (n_samples,), ``owner`` and ``region`` (n_samples,) kernel
            indices (rows of ``kernels_``), ``contributions`` (n_samples, n_kernels) with
            ``f_i(x) = a_i phi_i(x)`` summing to ``f(x)``, ``flagged`` (n_samples,).
        """
        self._check_fitted()
        threshold = flag_threshold(min_excess_fraction)
        Z = torch.as_tensor(self._standardised(X), dtype=torch.float64)  # (n, d)
        return explain_points(self.stack_, Z, self.kernels_, threshold)

    def flag(self, X, *, min_excess_fraction: float = MIN_EXCESS_FRACTION) -> np.ndarray:
        """Which points are anomalous by the documented rule (see :meth:`explain`).

        Returns
        -------
        ndarray of shape (n_samples,), bool
        """
        return self.explain(X, min_excess_fraction=min_excess_fraction).flagged

    def top_points(self, k: int = 10, X=None, *, min_excess_fraction: float = MIN_EXCESS_FRACTION):
        """The ``k`` most anomalous points (highest ``f``), of the fitted data or of ``X``.

        Parameters
        ----------
        k : int, default=10
            How many points; at most 100 for the fitted data (the fit keeps only those).
        X : array-like of shape (n_samples, n_features), optional
            Points to rank; default: the data the model was fitted on.
        min_excess_fraction : float, default=0.5
            Flagging rule (see :meth:`explain`).

        Returns
        -------
        pandas.DataFrame
            ``k`` rows (fewer if fewer points), highest ``f`` first; columns ``row`` (row
            of the fitted data or of ``X``), ``log_ratio``, ``owner``, ``region``,
            ``flagged`` and one column per feature (original units).
        """
        self._check_fitted()
        return top_points(lambda points: self.explain(points, min_excess_fraction=min_excess_fraction),
                          k, X, getattr(self, "_fit_top_", None), self._feature_names())

    @property
    def centres_(self) -> np.ndarray:
        """Kernel centres in original units, shape (n_kernels_total, n_features)."""
        self._check_fitted()
        return np.concatenate([self.standardizer_.inverse(c.numpy()) for c in self.stack_.centres])

    @property
    def amplitudes_(self) -> np.ndarray:
        """Kernel amplitudes, shape (n_kernels_total,)."""
        self._check_fitted()
        return np.concatenate([a.numpy() for a in self.stack_.amplitudes])

    @property
    def layers_(self) -> list[dict]:
        """Per layer, copies of ``stack_``'s ``centres`` (M_l, d), ``amplitudes`` (M_l,) and ``sigma``."""
        self._check_fitted()
        return self.stack_.to_dicts()

    # ------------------------------------------------------------- save / load
    def save(self, path, *, overwrite: bool = False) -> None:
        """Save the fitted model to ``path`` (a ``.npz`` archive, no pickle).

        The archive holds the centres, amplitudes, widths, standardisation and
        trajectory as plain arrays plus a JSON header with the format version,
        parameters and summary.  Written atomically; an existing file is kept
        unless ``overwrite=True``.
        """
        self._check_fitted()
        save_model(self, path, {k: getattr(self, k) for k in _SAVED_PARAMS}, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "SparKer":
        """Load a model written by :meth:`save` (never executes code from the file)."""
        return load_model(cls, path)

    def to_dict(self) -> dict:
        """JSON-ready summary: statistic, kernels, settings."""
        self._check_fitted()
        return {"statistic": self.statistic_, "converged": self.converged_, "n_features": self.n_features_in_,
                "feature_names": self.feature_names_in_, "settings": self.config_.to_dict(), "seed": self.seed,
                "kernels": self.kernels_}


def from_config(config: TrainingConfig, **params) -> SparKer:
    """An unfitted model with the settings of ``config`` and further ``params`` (``seed``,
    ``n_expected``, ``device``): the inverse of :meth:`SparKer.training_config`."""
    settings = config.to_dict()
    settings["layers"] = settings["layers"] or None
    return SparKer(**settings, **params)


def _check_fit_inputs(reference, data, reference_weight, data_weight, cfg: TrainingConfig,
                      n_expected, seed, device):
    """Validated samples, feature names, weights and device of :meth:`SparKer.fit`.

    Returns ``(R, D, names, reference_weight, data_weight, device)``; the arrays and
    memory maps are kept as they are (no float64 copy; they are read in row chunks).
    """
    n_min = max(2, max(layer.n_kernels for layer in cfg.layer_configs()))
    R, names, dev_r = check_array(reference, name="reference", min_samples=n_min, lean=True)
    D, names_d, dev_d = check_array(data, name="data", min_samples=1, lean=True)
    check_n_features(R.shape[1], D.shape[1], name="data")
    check_feature_names(names, names_d, name="data")
    if names is not None and len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"reference: duplicate feature names {dup}; every column needs its own name")
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    wd = check_weights(data_weight, D.shape[0], name="data_weight")
    if n_expected is not None:
        if not is_real(n_expected):
            raise TypeError(f"n_expected: must be a positive number, got {n_expected!r}")
        if not (math.isfinite(n_expected) and n_expected > 0):
            raise ValueError(f"n_expected: must be a positive number, got {n_expected!r}")
    check_seed(seed, allow_none=True)
    return R, D, names, wr, wd, check_device(device, dev_r, dev_d)


def _fit_history(layers: list[TrainResult], standardizer: Standardizer) -> dict:
    """``history_`` of a fit: the recorded trajectory of replica 0, centres in original units."""
    out = []
    for layer in layers:
        h = dict(layer.history)
        if len(h.get("centres", ())):
            h["centres"] = standardizer.inverse(h["centres"][:, 0])
            h["amplitudes"] = h["amplitudes"][:, 0]
            h["loss"] = h["loss"][:, 0]
        h["loss_per_epoch"] = layer.loss[:, 0]
        h.pop("replicas", None)
        out.append(h)
    hist = dict(out[0])
    if len(out) > 1:
        hist["layers"] = out
    return hist


def _check_finite_fit(statistic: float, layers) -> None:
    """Refuse a fit whose statistic or parameters are not finite (never a silent NaN)."""
    params_ok = all(
        bool(torch.isfinite(layer.centres).all()) and bool(torch.isfinite(layer.amplitudes).all())
        for layer in layers
    )
    if not (math.isfinite(statistic) and params_ok):
        raise ValueError(
            f"statistic: training diverged to a non-finite value (t = {statistic}); try a smaller "
            "lr_amplitudes, lr_centres or a_max, or check reference_weight, data_weight and n_expected"
        )


def _layer_configs(layers) -> tuple[LayerConfig, ...]:
    """``layers`` (None, or a sequence of dicts or LayerConfig) as LayerConfig objects."""
    if layers is None:
        return ()
    if isinstance(layers, (str, bytes, Mapping, LayerConfig)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers: expected a sequence of dicts (one per block), got {type(layers).__name__}")
    known = {f.name for f in fields(LayerConfig)}
    out = []
    for k, layer in enumerate(layers):
        if isinstance(layer, LayerConfig):
            out.append(layer)
            continue
        if not isinstance(layer, Mapping):
            raise TypeError(f"layers: block {k} must be a dict or LayerConfig, got {type(layer).__name__}")
        unknown = sorted(set(map(str, layer)) - known)
        if unknown:
            raise ValueError(f"layers: block {k} has unknown settings {unknown}; allowed: {sorted(known)}")
        out.append(LayerConfig(**layer))
    return tuple(out)
