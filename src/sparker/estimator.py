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

from ._version import __version__
from .core.streaming import StandardizedRows, column_absmax, column_mean, standardized_pool
from ._validation import (
    check_array, check_device, check_feature_names, check_n_features, check_seed, check_weights, is_int, is_real,
)
from .core.standardize import Standardizer, warn_clipped
from .core.weights import check_weight_range, reference_weights
from .config import LayerConfig, TrainingConfig, validate_config
from .model.ensemble import fit_stack, resolve_widths, stack_log_ratio
from .interpret import (
    ACTIVE_AMPLITUDE_FRACTION,
    ACTIVE_MIN_ZSCORE,
    MIN_EXCESS_FRACTION,
    Explanation,
    active_kernels,
    find_duplicates,
    flag_threshold,
    poisson_zscore,
    significance_priority,
)
from .io import read_archive, write_archive
from .core.kernels import COMPETITIONS, evaluate, get_competition, log_kernels
from .core.schedules import SCHEDULES
from .model.trainer import TrainResult

__all__ = ["SparKer", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Number of the fitted data's highest-scoring points kept for :meth:`SparKer.top_points`.
_TOP_STORED = 100
_FORMAT_NAME = "sparker-model"


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
    sigma_end_contrast : float, default=1e-2
        Caps the default end width where distances concentrate (high
        dimensions): a kernel centred on a reference point must weight a point
        at the median pairwise distance at most this fraction of one at the
        ``sigma_end_quantile`` distance (see
        :func:`sparker.ensemble.contrast_width`).  1 turns the cap off.  In a
        few dimensions it does not bind.
    lr_centres : float, default=0.07
        Adam step of the centres, in units of the current width: a centre
        moves by about ``lr_centres * sigma`` per step in any dimension (the
        per-coordinate step is ``lr_centres * sigma / sqrt(d)``; 0.07 is the
        square2d-tuned step of 0.05 per coordinate at d = 2).
    lr_amplitudes : float, default=0.05
        Adam step of the amplitudes.
    a_max : float, default=10
        Amplitudes are clipped to ``[-a_max, a_max]`` after every step; at most
        50, so that ``exp(f)`` stays finite in float32.
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
        n_kernels: int = 8,
        competition: str = "kernel-softmax",
        epochs: int = 1000,
        schedule: str = "geometric",
        sigma_start: float | None = None,
        sigma_end: float | None = None,
        sigma_start_quantile: float = 0.9,
        sigma_end_quantile: float = 0.003,
        sigma_end_contrast: float = 1e-2,
        lr_centres: float = 0.07,
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
        self.sigma_end_contrast = sigma_end_contrast
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
        "sigma_start_quantile", "sigma_end_quantile", "sigma_end_contrast", "lr_centres", "lr_amplitudes",
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
        warning) when the loss had not settled.
        """
        cfg = self.training_config()
        n_min = max(2, max(layer.n_kernels for layer in cfg.layer_configs()))
        # lean: arrays and memory maps stay as they are (no float64 copy); read in row chunks
        R, names, dev_r = check_array(reference, name="reference", min_samples=n_min, lean=True)
        D, names_d, dev_d = check_array(data, name="data", min_samples=1, lean=True)
        check_n_features(R.shape[1], D.shape[1], name="data")
        check_feature_names(names, names_d, name="data")
        if names is not None and len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"reference: duplicate feature names {dup}; every column needs its own name")
        wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
        wd = check_weights(data_weight, D.shape[0], name="data_weight")
        if self.n_expected is not None:
            if not is_real(self.n_expected):
                raise TypeError(f"n_expected: must be a positive number, got {self.n_expected!r}")
            if not (math.isfinite(self.n_expected) and self.n_expected > 0):
                raise ValueError(f"n_expected: must be a positive number, got {self.n_expected!r}")
        check_seed(self.seed, allow_none=True)
        device = check_device(self.device, dev_r, dev_d)

        std = Standardizer.fit(R)
        Rs, Ds = StandardizedRows(R, std), StandardizedRows(D, std)  # standardised chunk by chunk
        seq = np.random.SeedSequence(self.seed)
        width_seed, init_seed = seq.spawn(2)
        widths = resolve_widths(Rs, cfg, width_seed)

        wd = np.ones(D.shape[0]) if wd is None else wd
        w = reference_weights(R.shape[0], wd.sum(), wr, self.n_expected, normalize_reference)
        check_weight_range(wd, name="data_weight")
        check_weight_range(w, name="reference_weight" if wr is not None else "n_expected")
        clipped = Rs.n_clipped + Ds.n_clipped
        Xa = standardized_pool([Rs, Ds], device=device)  # (N, d+2) float32 [x, 1, ||x||^2]
        warn_clipped(Rs.n_clipped + Ds.n_clipped - clipped)
        X = Xa[:, : R.shape[1]]  # (N, d) the pool: reference rows, then data rows
        r = torch.zeros(X.shape[0], 1, dtype=torch.float32, device=device)
        dw = torch.zeros_like(r)
        r[: R.shape[0], 0] = torch.as_tensor(w, dtype=torch.float32)
        dw[R.shape[0]:, 0] = torch.as_tensor(wd, dtype=torch.float32)

        fit = fit_stack(X, r, dw, cfg, widths, [init_seed], augmented=Xa)
        del X, Xa
        _check_finite_fit(float(fit.statistic[0]), fit.layers)
        self._set_fitted(std, names, cfg, fit.layers, R.shape[1])
        self.statistic_ = float(fit.statistic[0])
        self.converged_ = bool(fit.converged[0])
        if not self.converged_:
            log.warning("SparKer: the loss had not settled at the end of training; "
                        "consider more epochs")
        # per-kernel soft counts need the samples: computed once here
        self.kernels_ = self._kernel_table(Rs, Ds, w, wd)
        self._fit_top_ = self._top_candidates(D, Ds)
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
        """Per-layer gates phi (n, M_l) at standardised points Z (or StandardizedRows, by chunks)."""
        if isinstance(Z, StandardizedRows):  # row by row: chunks give the rows of the whole
            parts = [self._gates(rows) for _, _, rows in Z.chunks()]
            return [np.concatenate([p[k] for p in parts]) for k in range(len(self.layers_))]
        comp = get_competition(self.config_.competition)
        Zt = torch.as_tensor(Z, dtype=torch.float64)
        return [
            evaluate(Zt, L["centres"][None].to(torch.float64), L["amplitudes"][None].to(torch.float64),
                     L["sigma"], comp)[1][:, 0].numpy()
            for L in self.layers_
        ]

    def _kernel_table(self, Rs, Ds, w, wd) -> list[dict]:
        """Per-kernel summary rows; the columns are defined in :mod:`sparker.interpret`.

        ``Rs``, ``Ds`` are the standardised samples, ``w``, ``wd`` their weights.
        """
        names = self.feature_names_in_ or [f"x{j}" for j in range(self.n_features_in_)]
        gates_r, gates_d = self._gates(Rs), self._gates(Ds)
        n_d = np.maximum(np.concatenate([wd @ g for g in gates_d]), 0.0)  # (M_total,)
        n_r = np.maximum(np.concatenate([w @ g for g in gates_r]), 0.0)  # (M_total,)
        layer = np.concatenate([np.full(len(L["amplitudes"]), k) for k, L in enumerate(self.layers_)])
        widths = np.array([self.layers_[k]["sigma"] for k in layer])  # (M_total,)
        amplitudes = np.concatenate([L["amplitudes"].numpy() for L in self.layers_]).astype(np.float64)
        centres_std = np.concatenate([L["centres"].numpy() for L in self.layers_]).astype(np.float64)
        centres = self.standardizer_.inverse(centres_std)  # (M_total, d), original units
        a_max = float(self.config_.a_max)
        z = poisson_zscore(n_d, n_r)
        duplicate_of = find_duplicates(centres_std, widths, np.sign(amplitudes), layer,
                                       significance_priority(amplitudes, z, a_max))
        active = active_kernels(amplitudes, z, duplicate_of, a_max)
        rows = []
        for g in range(len(amplitudes)):
            k = int(layer[g])
            rows.append({
                "index": g,
                "layer": k,
                "kernel": g - int(np.flatnonzero(layer == k)[0]),
                "centre": dict(zip(names, centres[g].tolist())),
                "amplitude": float(amplitudes[g]),
                "width": float(widths[g]),
                "width_original": dict(zip(names, (widths[g] * self.standardizer_.scale).tolist())),
                "n_data": float(n_d[g]),
                "n_reference": float(n_r[g]),
                "log_ratio": float(math.log(n_d[g] / n_r[g])) if n_d[g] > 0 and n_r[g] > 0 else None,
                "local_z": float(z[g]) if math.isfinite(z[g]) else None,
                "active": bool(active[g]),
                "duplicate_of": None if duplicate_of[g] < 0 else int(duplicate_of[g]),
            })
        return rows

    def _top_candidates(self, D: np.ndarray, Ds: np.ndarray) -> dict:
        """Rows and coordinates (original units) of the fitted data's highest ``f``, for :meth:`top_points`."""
        layers = self._as_layers()
        chunks = Ds.chunks() if isinstance(Ds, StandardizedRows) else [(0, len(Ds), Ds)]
        f = np.concatenate([  # (n_data,), row by row
            stack_log_ratio(torch.as_tensor(rows, dtype=torch.float64), layers, self.config_.competition)[:, 0].numpy()
            for _, _, rows in chunks
        ])
        order = np.argsort(-f, kind="stable")[:_TOP_STORED]
        return {"index": order, "points": np.array(D[order], dtype=np.float64)}

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
        import pandas as pd

        self._check_fitted()
        rows = []
        for g, row in enumerate(self.kernels_):
            out = {"index": row.get("index", g), "layer": row["layer"], "kernel": row["kernel"]}
            out.update({f"centre[{name}]": v for name, v in row["centre"].items()})
            for key in ("amplitude", "width", "n_data", "n_reference", "log_ratio", "local_z"):
                value = row.get(key)
                out[key] = np.nan if value is None else float(value)
            out["active"] = bool(row.get("active", False))
            out["duplicate_of"] = row.get("duplicate_of")
            rows.append(out)
        frame = pd.DataFrame(rows).set_index("index")
        frame["duplicate_of"] = pd.array(frame["duplicate_of"].tolist(), dtype="Int64")
        if min_zscore is not None or amplitude_fraction is not None:
            dup = frame["duplicate_of"].fillna(-1).to_numpy(dtype=np.int64)
            frame["active"] = active_kernels(
                frame["amplitude"].to_numpy(), frame["local_z"].to_numpy(), dup, float(self.config_.a_max),
                min_zscore=ACTIVE_MIN_ZSCORE if min_zscore is None else min_zscore,
                amplitude_fraction=ACTIVE_AMPLITUDE_FRACTION if amplitude_fraction is None else amplitude_fraction,
            )
        return frame

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
        Z = torch.as_tensor(self._standardised(X), dtype=torch.float64)
        comp = get_competition(self.config_.competition)
        shares, owner_scores = [], []
        for L in self.layers_:
            l = log_kernels(Z, L["centres"].to(torch.float64), L["sigma"])  # (n, M_l)
            lse = torch.logsumexp(l, dim=1, keepdim=True)  # (n, 1)
            phi = torch.exp(comp.log_gate(l, lse))  # (n, M_l)
            shares.append((phi * L["amplitudes"].to(torch.float64)).numpy())
            owner_scores.append((2.0 * l - lse).numpy())  # log(s_i k_i)
        contributions = np.concatenate(shares, axis=1)  # (n, M_total)
        owner = np.argmax(np.concatenate(owner_scores, axis=1), axis=1)  # (n,)
        duplicate_of = np.array([-1 if k.get("duplicate_of") is None else k["duplicate_of"]
                                 for k in self.kernels_], dtype=np.int64)
        active = np.array([bool(k.get("active", False)) for k in self.kernels_])
        region = np.where(duplicate_of[owner] >= 0, duplicate_of[owner], owner)
        f = contributions.sum(axis=1)
        return Explanation(log_ratio=f, owner=owner, region=region, contributions=contributions,
                           flagged=(f > threshold) & active[region], threshold=threshold)

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
        import pandas as pd

        self._check_fitted()
        if not is_int(k) or k < 1:
            raise ValueError(f"k: must be a positive integer, got {k!r}")
        if X is None:
            stored = getattr(self, "_fit_top_", None)
            if stored is None:
                raise ValueError("X: this model does not keep the fitted data's top points; "
                                 "pass the data as X")
            if k > len(stored["index"]) and len(stored["index"]) == _TOP_STORED:
                raise ValueError(f"k: the fit keeps the top {_TOP_STORED} data points; pass X for more")
            rows, points = stored["index"][:k], stored["points"][:k]
            ex = self.explain(points, min_excess_fraction=min_excess_fraction)
        else:
            points, _, _ = check_array(X, name="X")
            ex = self.explain(X, min_excess_fraction=min_excess_fraction)
            rows = np.argsort(-ex.log_ratio, kind="stable")[:k]
            points, ex = points[rows], _take(ex, rows)
        names = self.feature_names_in_ or [f"x{j}" for j in range(self.n_features_in_)]
        frame = pd.DataFrame({"row": rows, "log_ratio": ex.log_ratio, "owner": ex.owner,
                              "region": ex.region, "flagged": ex.flagged})
        return pd.concat([frame, pd.DataFrame(points, columns=list(names))], axis=1)

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
        top = getattr(self, "_fit_top_", None)
        if top is not None:  # the fitted data's top points, for top_points() after loading
            arrays["top_index"] = np.asarray(top["index"], dtype=np.int64)
            arrays["top_points"] = np.asarray(top["points"], dtype=np.float64)
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
            if "top_index" in arrays:
                index = np.asarray(arrays["top_index"])
                points = np.asarray(arrays["top_points"], dtype=np.float64)
                if (index.ndim != 1 or index.dtype.kind not in "iu" or points.shape != (len(index), model.n_features_in_)
                        or not np.isfinite(points).all()):
                    raise ValueError("top_index/top_points have the wrong shape, type or values")
                model._fit_top_ = {"index": index, "points": points}
            _check_loaded(model)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
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


def _take(ex: Explanation, rows: np.ndarray) -> Explanation:
    """The explanation of a subset of the points."""
    return Explanation(log_ratio=ex.log_ratio[rows], owner=ex.owner[rows], region=ex.region[rows],
                       contributions=ex.contributions[rows], flagged=ex.flagged[rows],
                       threshold=ex.threshold)


def _check_loaded(model: SparKer) -> None:
    """Shapes, types and finiteness of a model read from a file (ValueError if wrong)."""
    n = model.n_features_in_
    if n < 1:
        raise ValueError(f"n_features_in is {n}")
    names = model.feature_names_in_
    if names is not None and not (isinstance(names, list) and len(names) == n
                                  and all(isinstance(x, str) for x in names)):
        raise ValueError("feature_names_in is not a list of one name per feature")
    std = model.standardizer_
    for key, value in (("mean", std.mean), ("scale", std.scale)):
        if value.shape != (n,) or not np.isfinite(value).all():
            raise ValueError(f"{key} is not {n} finite numbers")
    if not (std.scale > 0).all():
        raise ValueError("scale has entries <= 0")
    if len(model.layers_) != len(model.config_.layer_configs()):
        raise ValueError("the number of layers differs from the configuration")
    for k, layer in enumerate(model.layers_):
        c, a, s = layer["centres"], layer["amplitudes"], layer["sigma"]
        if not (c.is_floating_point() and a.is_floating_point()):
            raise ValueError(f"layer {k} has non-float centres or amplitudes")
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] != n or a.shape != (c.shape[0],):
            raise ValueError(f"layer {k} has centres of shape {tuple(c.shape)} and amplitudes of "
                             f"shape {tuple(a.shape)} for {n} features")
        if not (torch.isfinite(c).all() and torch.isfinite(a).all() and math.isfinite(s) and s > 0):
            raise ValueError(f"layer {k} has non-finite parameters or a width <= 0")
    if not math.isfinite(model.statistic_):
        raise ValueError("the statistic is not finite")


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


def _json_default(obj):
    """JSON form of NumPy scalars and config dataclasses (for :meth:`SparKer.save`)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


