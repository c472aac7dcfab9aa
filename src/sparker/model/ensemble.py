"""Fit a (possibly multi-scale) stack of kernel ensembles for B replicas at once.

This layer sits between the trainer (:mod:`sparker.model.trainer`, one block,
given widths and starting centres) and the user-facing estimator and tests.  It
turns a :class:`~sparker.config.TrainingConfig` into width schedules, draws
every replica's starting centres from its own seed, and trains the layers of a
stack one after another from broad to narrow scales, each on top of the fixed
log ratio of the layers before it (``docs/method.md``, sections "The loss and
training" and "Width annealing").  One replica of the result is a
:class:`~sparker.model.stack.KernelStack` (:meth:`StackFit.kernel_stack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch

from ..config import TrainingConfig
from ..core.schedules import pairwise_distance_quantiles, width_schedule
from .stack import KernelStack, replica_log_ratio
from .trainer import TrainResult, train_replicas

__all__ = ["resolve_widths", "contrast_width", "init_centres", "fit_stack", "StackFit", "epoch_progress"]

#: ``fn(epochs_done, epochs_total)`` called after every epoch of :func:`fit_stack` (all layers
#: counted together) while an :func:`epoch_progress` block is active; None otherwise.
_EPOCH_CALLBACK: ContextVar[Callable[[int, int], None] | None] = ContextVar("sparker_epoch_callback",
                                                                            default=None)


@contextmanager
def epoch_progress(fn: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, every fit reports its progress: ``fn(epochs_done, epochs_total)``.

    Progress display only (the command line's bar over a long ``sparker fit``); it does
    not change what is computed.
    """
    token = _EPOCH_CALLBACK.set(fn)
    try:
        yield
    finally:
        _EPOCH_CALLBACK.reset(token)


def resolve_widths(reference_std: np.ndarray, config: TrainingConfig, seed) -> list[tuple[float, float]]:
    """(sigma_start, sigma_end) of every layer, in standardised units.

    Unset widths come from pairwise-distance quantiles of the standardised
    reference, estimated on at most 2,000 points drawn with ``seed``.  An unset
    end width is also capped by :func:`contrast_width` (``sigma_end_contrast``),
    which only binds where distances concentrate (high dimensions).
    """
    out = []
    rng = np.random.default_rng(seed)
    cache: dict[float, float] = {}

    def quantiles(*qs: float) -> list[float]:
        """Cached quantiles; the missing ones come from one distance matrix of one subsample."""
        missing = [q for q in dict.fromkeys(qs) if q not in cache]
        if missing:
            values = np.atleast_1d(pairwise_distance_quantiles(reference_std, missing, rng=rng))
            cache.update(zip(missing, map(float, values), strict=True))
        return [cache[q] for q in qs]

    for layer in config.layer_configs():
        start = layer.sigma_start
        if start is None:
            (start,) = quantiles(layer.sigma_start_quantile)
        end = layer.sigma_end
        if end is None and layer.sigma_end_contrast < 1.0:  # near and typical distances of one subsample
            near, typical = quantiles(layer.sigma_end_quantile, 0.5)
            end = min(near, contrast_width(near, typical, layer.sigma_end_contrast))
        elif end is None:
            (end,) = quantiles(layer.sigma_end_quantile)
        out.append((float(start), float(end)))
    return out


def contrast_width(near: float, typical: float, contrast: float) -> float:
    """Widest kernel that still tells a near neighbour from a typical point.

    A kernel of width sigma centred on a reference point weights a point at the
    ``typical`` (median pairwise) distance ``exp(-(typical**2 - near**2) / (2 sigma**2))``
    times as much as one at the ``near`` distance; this returns the sigma at
    which that ratio equals ``contrast`` (infinity for ``contrast`` = 1).

    In a few dimensions near neighbours are much closer than typical points and
    the bound is far above the quantile width, so it changes nothing.  In
    hundreds of dimensions distances concentrate (every pair is about
    ``sqrt(2 d)`` apart), the quantile width is nearly the typical distance, and
    a kernel that wide is no longer local: with its centre moved off the data it
    acts as an exponential tilt ``exp(x . c / sigma**2)`` along a free direction,
    and eight of them fit noise (``gauss_highd`` at d = 1024: null t about 400
    with the quantile width 42.5, about 1 with width 8; see ``docs/defaults.md``).
    """
    if contrast >= 1.0 or typical <= near:
        return math.inf
    return math.sqrt((typical**2 - near**2) / (2.0 * math.log(1.0 / contrast)))


def init_centres(X: torch.Tensor, ref_weight: torch.Tensor, data_weight: torch.Tensor,
                 n_kernels: int, rngs: list[np.random.Generator]) -> torch.Tensor:
    """Centres at distinct random data points of each replica.

    Replica b draws ``n_kernels`` distinct rows with ``data_weight[:, b] > 0``
    using its own generator; if it has fewer data points than kernels, it tops
    up with distinct reference rows.

    Returns
    -------
    Tensor of shape (B, n_kernels, d), float64
    """
    data_mask = (data_weight > 0).cpu().numpy()
    ref_mask = (ref_weight > 0).cpu().numpy()
    rows = []
    for b, rng in enumerate(rngs):
        cand = np.flatnonzero(data_mask[:, b])
        if len(cand) >= n_kernels:
            idx = rng.choice(cand, size=n_kernels, replace=False)
        else:
            extra = np.setdiff1d(np.flatnonzero(ref_mask[:, b]), cand)
            if len(cand) + len(extra) < n_kernels:
                raise ValueError(
                    f"n_kernels: {n_kernels} kernels need at least as many distinct points, "
                    f"but replica {b} has {len(cand)} data and {len(extra)} reference points"
                )
            idx = np.concatenate([rng.permutation(cand),
                                  rng.choice(extra, size=n_kernels - len(cand), replace=False)])
        rows.append(X.detach()[torch.as_tensor(idx, device=X.device)].to("cpu", torch.float64))  # (M, d)
    return torch.stack(rows)


@dataclass
class StackFit:
    """Result of :func:`fit_stack`: one :class:`TrainResult` per layer.

    ``statistic`` (B,) is the test statistic of the whole stack, i.e. of the
    last layer's fit (which includes the fixed earlier layers).
    """

    layers: list[TrainResult]
    widths: list[tuple[float, float]]
    competition: str

    @property
    def statistic(self) -> np.ndarray:
        return self.layers[-1].statistic

    @property
    def converged(self) -> np.ndarray:
        return np.logical_and.reduce([layer.converged for layer in self.layers])

    def kernel_stack(self, replica: int = 0) -> KernelStack:
        """The fitted model of one replica."""
        return KernelStack.from_layers(self.layers, self.competition, replica)


def fit_stack(
    X: torch.Tensor,
    ref_weight: torch.Tensor,
    data_weight: torch.Tensor,
    config: TrainingConfig,
    widths: list[tuple[float, float]],
    seeds,
    *,
    record_replicas=(0,),
    augmented: torch.Tensor | None = None,
    reference_rows: torch.Tensor | None = None,
) -> StackFit:
    """Train every layer of ``config`` for B replicas.

    Parameters
    ----------
    X : Tensor of shape (N, d)
        Standardised pool.
    ref_weight, data_weight : Tensor of shape (N, B)
    config : TrainingConfig
    widths : list of (sigma_start, sigma_end)
        From :func:`resolve_widths`, one pair per layer.
    seeds : sequence of int or numpy.random.SeedSequence, length B
        Replica b draws its starting centres from ``seeds[b]`` only, so a
        replica gives the same result alone or in any batch.
    record_replicas : sequence of int
        Replicas whose trajectories are recorded.
    augmented : Tensor of shape (N, d+2), optional
        ``augment_pool(X)`` if the caller holds it (``X`` typically its view
        ``augmented[:, :d]``): the trainer then makes no copy of the pool.
    reference_rows : Tensor of bool, shape (N,), optional
        The rows ``reference_batch`` slices are cut from
        (:func:`~sparker.model.trainer.train_replicas`).  With ``reference_batch``, the
        slices of every epoch are shared by the replicas and drawn from the first
        replica's stream, so a replica's statistic then depends on the block it is
        trained in (toys are always trained in the same fixed blocks).
    """
    B = ref_weight.shape[1]
    if len(seeds) != B:
        raise ValueError(f"seeds: need one seed per replica ({B}), got {len(seeds)}")
    seqs = [s if isinstance(s, np.random.SeedSequence) else np.random.SeedSequence(s) for s in seeds]
    per_layer = [seq.spawn(len(widths)) for seq in seqs]
    results: list[TrainResult] = []
    offset = None
    report = _EPOCH_CALLBACK.get()
    total, done = sum(layer.epochs for layer in config.layer_configs()), 0
    for k, (layer, (s0, s1)) in enumerate(zip(config.layer_configs(), widths)):
        rngs = [np.random.default_rng(p[k]) for p in per_layer]
        c0 = init_centres(X, ref_weight, data_weight, layer.n_kernels, rngs).to(X.device)
        res = train_replicas(
            X, ref_weight, data_weight, c0,
            width_schedule(layer.schedule, layer.epochs, s0, s1),
            competition=layer.competition,
            lr_centres=layer.lr_centres,
            lr_amplitudes=layer.lr_amplitudes,
            a_max=layer.a_max,
            l1=layer.l1,
            reseed=layer.reseed,
            solve_amplitudes=layer.solve_amplitudes,
            offset=offset,
            chunk_rows=layer.chunk_rows,
            record_every=layer.record_every,
            record_replicas=record_replicas,
            augmented=augmented,
            reference_batch=layer.reference_batch,
            data_batch=layer.data_batch,
            reference_rows=reference_rows,
            batch_rng=rngs[0],  # the first replica's stream, after its starting centres
            callback=None if report is None else (lambda e, _loss, base=done: report(base + e + 1, total)),
        )
        done += layer.epochs
        results.append(res)
        if k + 1 < len(widths):
            layer_params = [(res.centres, res.amplitudes, res.sigma)]  # (B, M, d), (B, M), float
            f = replica_log_ratio(X, layer_params, layer.competition).to(X.dtype)  # (N, B)
            offset = f if offset is None else offset + f
    return StackFit(layers=results, widths=list(widths), competition=config.competition)
