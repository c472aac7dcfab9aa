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
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass

import numpy as np
import torch

from . import __version__
from ._validation import check_array, check_device, check_feature_names, check_n_features, check_weights
from .config import LayerConfig, TrainingConfig
from .ensemble import fit_stack, resolve_widths, stack_log_ratio
from .io import read_archive, write_archive
from .kernels import COMPETITIONS, evaluate, get_competition
from .schedules import SCHEDULES
from .trainer import TrainResult

__all__ = ["SparKer", "FORMAT_VERSION", "Standardizer"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FORMAT_NAME = "sparker-model"


class Standardizer:
    """Per-feature affine map fitted on the reference (constant features: scale 1)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, X: np.ndarray, weight: np.ndarray | None = None) -> "Standardizer":
        mean = np.average(X, axis=0, weights=weight)
        var = np.average((X - mean) ** 2, axis=0, weights=weight)
        scale = np.sqrt(var)
        tiny = scale <= 1e-12 * np.maximum(1.0, np.abs(mean))
        scale[tiny] = 1.0
        return cls(mean, scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale + self.mean


def reference_weights(n_ref: int, n_data: float, reference_weight, n_expected, normalize: bool):
    """Per-point reference weights ``w_x`` (float64, shape (n_ref,)).

    Default ``w = N_0 / N_R`` with ``N_0 = n_expected`` or the (weighted) data
    count; user weights are rescaled to sum to ``N_0`` when ``normalize``.
    """
    n0 = float(n_data if n_expected is None else n_expected)
    if reference_weight is None:
        return np.full(n_ref, n0 / n_ref)
    if normalize:
        return reference_weight * (n0 / reference_weight.sum())
    return np.asarray(reference_weight, dtype=np.float64)


class SparKer:
    """Sparse, self-organising ensemble of local Gaussian kernels (SparKer).

    Parameters
    ----------
    n_kernels : int, default=8
        Number of kernels M.
    competition : {"kernel-softmax", "softmax", "none"}, default="kernel-softmax"
        How kernels combine (see :mod:`sparker.kernels`).
    epochs : int, default=1000
        Full-batch Adam steps.
    schedule : {"geometric", "linear", "constant"}, default="geometric"
        Width annealing schedule; the end width is reached at 90% of the epochs.
    sigma_start, sigma_end : float, optional
        Widths in standardised units.  By default the ``sigma_start_quantile``
        (0.9) and ``sigma_end_quantile`` (0.003) quantiles of pairwise distances
        of the standardised reference.
    sigma_start_quantile, sigma_end_quantile : float
        Pairwise-distance quantiles that set the default start and end widths.
        The end quantile 0.003 (a kernel covering ~0.3% of the reference)
        localised the square2d clumps far better than 0.01 (measured, see
        ``docs/defaults.md``).
    lr_centres : float, default=0.05
        Adam step of the centres, in units of the current width.
    lr_amplitudes : float, default=0.05
        Adam step of the amplitudes.
    a_max : float, default=10
        Amplitudes are clipped to ``[-a_max, a_max]`` after every step.
    l1 : float, default=0.5
        L1 penalty on the amplitudes, in loss units per unit amplitude (the
        statistic itself is always the unpenalised ``-2 L``).  A small penalty
        stops pairs of overlapping kernels with large opposite amplitudes
        ("dipoles") from forming while the width is broad; on square2d it
        raised the clump recovery from 4/5 to 5/5 seeds (``docs/defaults.md``).
        0 turns it off.
    reseed : bool, default=True
        Re-seed the least useful kernel onto the largest unexplained excess or
        deficit at fixed points of the schedule (see :func:`sparker.trainer.train_replicas`).
    layers : sequence of dict, optional
        Multi-scale stack: one dict of overrides (``n_kernels``, ``epochs``,
        ``schedule``, ``sigma_start``, ``sigma_end``, ``sigma_start_quantile``,
        ``sigma_end_quantile``) per block, trained in order (broad first).
    n_expected : float, optional
        ``N_0``, the number of data points expected under the reference
        hypothesis; default: the observed (weighted) data count.
    chunk_rows : int, optional
        Rows per chunk of the full-batch gradient (memory bound); default ~1 MB
        of activations per chunk.
    record_every : int, default=10
        Stride of the recorded training trajectory (``history_``); 0 = off.
    seed : int, default=0
        Controls every random choice (width subsample, starting centres).
    device : str or torch.device, optional
        Where to train; default: the device of a tensor input, else CPU.

    Attributes
    ----------
    statistic_ : float
        Test statistic ``t = -2 L[f_hat]`` (float64).
    kernels_ : list of dict
        Per-kernel summary, in original units (see :meth:`kernel_summary`).
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
        n_kernels: int = 8,
        competition: str = "kernel-softmax",
        epochs: int = 1000,
        schedule: str = "geometric",
        sigma_start: float | None = None,
        sigma_end: float | None = None,
        sigma_start_quantile: float = 0.9,
        sigma_end_quantile: float = 0.003,
        lr_centres: float = 0.05,
        lr_amplitudes: float = 0.05,
        a_max: float = 10.0,
        l1: float = 0.5,
        reseed: bool = True,
        layers=None,
        n_expected: float | None = None,
        chunk_rows: int | None = None,
        record_every: int = 10,
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
        self.lr_centres = lr_centres
        self.lr_amplitudes = lr_amplitudes
        self.a_max = a_max
        self.l1 = l1
        self.reseed = reseed
        self.layers = layers
        self.n_expected = n_expected
        self.chunk_rows = chunk_rows
        self.record_every = record_every
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ params
    _CONFIG_PARAMS = (
        "n_kernels", "competition", "epochs", "schedule", "sigma_start", "sigma_end",
        "sigma_start_quantile", "sigma_end_quantile", "lr_centres", "lr_amplitudes",
        "a_max", "l1", "reseed", "chunk_rows", "record_every",
    )

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters (scikit-learn convention)."""
        names = self._CONFIG_PARAMS + ("layers", "n_expected", "seed", "device")
        return {k: getattr(self, k) for k in names}

    def set_params(self, **params) -> "SparKer":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"{k}: not a parameter of SparKer")
            setattr(self, k, v)
        return self

    def training_config(self) -> TrainingConfig:
        """Validated :class:`~sparker.config.TrainingConfig` from the parameters."""
        cfg = TrainingConfig(
            **{k: getattr(self, k) for k in self._CONFIG_PARAMS},
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
        """
        cfg = self.training_config()
        n_min = max(2, max(layer.n_kernels for layer in cfg.layer_configs()))
        R, names, dev_r = check_array(reference, name="reference", min_samples=n_min)
        D, names_d, dev_d = check_array(data, name="data", min_samples=1)
        check_n_features(R.shape[1], D.shape[1], name="data")
        check_feature_names(names, names_d, name="data")
        if names is not None and len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"reference: duplicate feature names {dup}; every column needs its own name")
        wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
        wd = check_weights(data_weight, D.shape[0], name="data_weight")
        if self.n_expected is not None:
            if not _is_real(self.n_expected):
                raise TypeError(f"n_expected: must be a positive number, got {self.n_expected!r}")
            if not (math.isfinite(self.n_expected) and self.n_expected > 0):
                raise ValueError(f"n_expected: must be a positive number, got {self.n_expected!r}")
        _check_seed(self.seed)
        device = check_device(self.device, dev_r, dev_d)

        std = Standardizer.fit(R)
        Rs, Ds = std.transform(R), std.transform(D)
        seq = np.random.SeedSequence(self.seed)
        width_seed, init_seed = seq.spawn(2)
        widths = resolve_widths(Rs, cfg, width_seed)

        wd = np.ones(D.shape[0]) if wd is None else wd
        w = reference_weights(R.shape[0], wd.sum(), wr, self.n_expected, normalize_reference)
        X = torch.as_tensor(np.concatenate([Rs, Ds]), dtype=torch.float32, device=device)
        r = torch.zeros(X.shape[0], 1, dtype=torch.float32, device=device)
        dw = torch.zeros_like(r)
        r[: R.shape[0], 0] = torch.as_tensor(w, dtype=torch.float32)
        dw[R.shape[0]:, 0] = torch.as_tensor(wd, dtype=torch.float32)

        fit = fit_stack(X, r, dw, cfg, widths, [init_seed])
        self._set_fitted(std, names, cfg, fit.layers, R.shape[1])
        self.statistic_ = float(fit.statistic[0])
        self.converged_ = bool(fit.converged[0])
        if not self.converged_:
            log.warning("SparKer: the loss had not settled at the end of training; "
                        "consider more epochs")
        # per-kernel soft counts need the samples: computed once here
        self.kernels_ = self._kernel_table(Rs, Ds, w, wd)
        self.history_ = self._history(fit.layers)
        return self

    def _set_fitted(self, std, names, cfg, layers, n_features):
        self.standardizer_ = std
        self.feature_names_in_ = names
        self.n_features_in_ = n_features
        self.config_ = cfg
        self.layers_ = [
            {"centres": layer.centres[0].clone(), "amplitudes": layer.amplitudes[0].clone(),
             "sigma": float(layer.sigma)}
            for layer in layers
        ]

    def _check_fitted(self):
        if not hasattr(self, "layers_"):
            raise RuntimeError("this SparKer instance is not fitted yet; call fit(reference, data) first")

    def _as_layers(self) -> list[TrainResult]:
        return [
            TrainResult(centres=L["centres"][None], amplitudes=L["amplitudes"][None],
                        sigma=L["sigma"], statistic=np.zeros(1), loss=np.zeros((0, 1)))
            for L in self.layers_
        ]

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
        Z = torch.as_tensor(self._standardised(X), dtype=torch.float64)
        return stack_log_ratio(Z, self._as_layers(), self.config_.competition)[:, 0].numpy()

    def score_samples(self, X) -> np.ndarray:
        """Anomaly score of each point: ``f(x)``; **higher = more anomalous**.

        The opposite sign of scikit-learn's outlier detectors (whose
        ``score_samples`` is higher for inliers).
        """
        return self.log_ratio(X)

    # ---------------------------------------------------------------- summary
    def _gates(self, Z: np.ndarray) -> list[np.ndarray]:
        """Per-layer gates phi (n, M_l) at standardised points Z."""
        comp = get_competition(self.config_.competition)
        Zt = torch.as_tensor(Z, dtype=torch.float64)
        return [
            evaluate(Zt, L["centres"][None].to(torch.float64), L["amplitudes"][None].to(torch.float64),
                     L["sigma"], comp)[1][:, 0].numpy()
            for L in self.layers_
        ]

    def _kernel_table(self, Rs, Ds, w, wd) -> list[dict]:
        names = self.feature_names_in_ or [f"x{j}" for j in range(self.n_features_in_)]
        rows = []
        gates_r, gates_d = self._gates(Rs), self._gates(Ds)
        for k, L in enumerate(self.layers_):
            centres = self.standardizer_.inverse(L["centres"].numpy())
            n_d = wd @ gates_d[k]  # (M,)
            n_r = w @ gates_r[k]
            for i in range(len(centres)):
                rows.append({
                    "layer": k,
                    "kernel": i,
                    "centre": dict(zip(names, centres[i].tolist())),
                    "amplitude": float(L["amplitudes"][i]),
                    "width": float(L["sigma"]),
                    "width_original": dict(zip(names, (L["sigma"] * self.standardizer_.scale).tolist())),
                    "n_data": float(n_d[i]),
                    "n_reference": float(n_r[i]),
                    "log_ratio": float(math.log(n_d[i] / n_r[i])) if n_d[i] > 0 and n_r[i] > 0 else None,
                })
        return rows

    @property
    def centres_(self) -> np.ndarray:
        """Kernel centres in original units, shape (n_kernels_total, n_features)."""
        self._check_fitted()
        return np.concatenate([self.standardizer_.inverse(L["centres"].numpy()) for L in self.layers_])

    @property
    def amplitudes_(self) -> np.ndarray:
        self._check_fitted()
        return np.concatenate([L["amplitudes"].numpy() for L in self.layers_])

    def _history_layers(self) -> list[dict]:
        return self.history_.get("layers", [self.history_])

    def _history(self, layers: list[TrainResult]) -> dict:
        out = []
        for layer in layers:
            h = dict(layer.history)
            if len(h.get("centres", ())):
                h["centres"] = self.standardizer_.inverse(h["centres"][:, 0])
                h["amplitudes"] = h["amplitudes"][:, 0]
                h["loss"] = h["loss"][:, 0]
            h["loss_per_epoch"] = layer.loss[:, 0]
            h.pop("replicas", None)
            out.append(h)
        hist = dict(out[0])
        if len(out) > 1:
            hist["layers"] = out
        return hist

    # ------------------------------------------------------------- save / load
    def save(self, path, *, overwrite: bool = False) -> None:
        """Save the fitted model to ``path`` (a ``.npz`` archive, no pickle).

        The archive holds the centres, amplitudes, widths, standardisation and
        trajectory as plain arrays plus a JSON header with the format version,
        parameters and summary.  Written atomically; an existing file is kept
        unless ``overwrite=True``.
        """
        self._check_fitted()
        meta = {
            "format": _FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "sparker_version": __version__,
            "params": {k: v for k, v in self.get_params().items() if k != "device"},
            "config": self.config_.to_dict(),
            "feature_names_in": self.feature_names_in_,
            "n_features_in": self.n_features_in_,
            "statistic": self.statistic_,
            "converged": self.converged_,
            "kernels": self.kernels_,
            "sigmas": [L["sigma"] for L in self.layers_],
            "history_keys": [
                sorted(k for k, v in h.items() if isinstance(v, np.ndarray)) for h in self._history_layers()
            ],
        }
        meta = json.loads(json.dumps(meta, default=_json_default))  # plain JSON types only
        arrays = {"mean": self.standardizer_.mean, "scale": self.standardizer_.scale}
        for k, L in enumerate(self.layers_):
            arrays[f"centres_{k}"] = L["centres"].numpy()
            arrays[f"amplitudes_{k}"] = L["amplitudes"].numpy()
        for k, (h, keys) in enumerate(zip(self._history_layers(), meta["history_keys"])):
            for key in keys:
                arrays[f"history_{k}_{key}"] = h[key]
        write_archive(path, arrays, meta, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "SparKer":
        """Load a model written by :meth:`save` (never executes code from the file)."""
        arrays, meta = read_archive(path, kind="SparKer model", format_name=_FORMAT_NAME,
                                    version=FORMAT_VERSION)
        try:
            params = dict(meta["params"])
            model = cls(**params)
            cfg = TrainingConfig.from_dict(meta["config"])
            layers = [
                {"centres": torch.as_tensor(arrays[f"centres_{k}"]),
                 "amplitudes": torch.as_tensor(arrays[f"amplitudes_{k}"]),
                 "sigma": float(s)}
                for k, s in enumerate(meta["sigmas"])
            ]
            model.standardizer_ = Standardizer(arrays["mean"], arrays["scale"])
            model.feature_names_in_ = meta["feature_names_in"]
            model.n_features_in_ = int(meta["n_features_in"])
            model.config_ = cfg
            model.layers_ = layers
            model.statistic_ = float(meta["statistic"])
            model.converged_ = bool(meta["converged"])
            model.kernels_ = meta["kernels"]
            per_layer = [
                {key: arrays[f"history_{k}_{key}"] for key in keys}
                for k, keys in enumerate(meta["history_keys"])
            ]
            model.history_ = dict(per_layer[0])
            if len(per_layer) > 1:
                model.history_["layers"] = per_layer
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"path: {path} is an incomplete or inconsistent SparKer model ({exc})") from None
        validate_config(cfg)
        return model

    def to_dict(self) -> dict:
        """JSON-ready summary: statistic, kernels, settings."""
        self._check_fitted()
        return {
            "statistic": self.statistic_,
            "converged": self.converged_,
            "n_features": self.n_features_in_,
            "feature_names": self.feature_names_in_,
            "settings": self.config_.to_dict(),
            "seed": self.seed,
            "kernels": self.kernels_,
        }


def _is_real(v) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_seed(seed) -> None:
    if seed is None:
        return
    if not _is_int(seed):
        raise TypeError(f"seed: must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")


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


def _json_default(obj):
    """JSON form of NumPy scalars and config dataclasses (for :meth:`SparKer.save`)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def validate_config(cfg: TrainingConfig) -> None:
    """Raise a ValueError (TypeError for a wrong type) naming the offending setting."""
    for layer in cfg.layer_configs():
        if not _is_int(layer.n_kernels) or layer.n_kernels < 1:
            raise ValueError(f"n_kernels: must be a positive integer, got {layer.n_kernels!r}")
        if not _is_int(layer.epochs) or layer.epochs < 1:
            raise ValueError(f"epochs: must be a positive integer, got {layer.epochs!r}")
        if layer.schedule not in SCHEDULES:
            raise ValueError(f"schedule: unknown schedule {layer.schedule!r}; choose one of {sorted(SCHEDULES)}")
        for name in ("sigma_start", "sigma_end"):
            v = getattr(layer, name)
            if v is not None and not (_is_real(v) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite width, got {v!r}")
        for name in ("sigma_start_quantile", "sigma_end_quantile"):
            v = getattr(layer, name)
            if not (_is_real(v) and 0.0 < v < 1.0):
                raise ValueError(f"{name}: must lie in (0, 1), got {v!r}")
    if cfg.competition not in COMPETITIONS:
        raise ValueError(f"competition: unknown mode {cfg.competition!r}; choose one of {sorted(COMPETITIONS)}")
    for name in ("lr_centres", "lr_amplitudes", "a_max"):
        v = getattr(cfg, name)
        if not (_is_real(v) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}: must be a positive number, got {v!r}")
    if not (_is_real(cfg.l1) and math.isfinite(cfg.l1) and cfg.l1 >= 0):
        raise ValueError(f"l1: must be >= 0, got {cfg.l1!r}")
    if not isinstance(cfg.reseed, (bool, np.bool_)):
        raise TypeError(f"reseed: must be True or False, got {cfg.reseed!r}")
    if cfg.chunk_rows is not None and (not _is_int(cfg.chunk_rows) or cfg.chunk_rows < 1):
        raise ValueError(f"chunk_rows: must be a positive integer, got {cfg.chunk_rows!r}")
    if not _is_int(cfg.record_every) or cfg.record_every < 0:
        raise ValueError(f"record_every: must be an integer >= 0, got {cfg.record_every!r}")
