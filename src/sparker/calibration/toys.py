"""Null toys as batched replicas: the toy problem, fixed replica blocks, chunks on a back end.

Toys train in fixed blocks of :data:`REPLICA_BLOCK` replicas, each block one
batched training run over a shared pool; chunks of ``replica_chunk`` toys
(whole blocks) go to a back end (:mod:`sparker.core.backends`), and finished
chunks are recorded in a :class:`~sparker.calibration.checkpoint.Checkpoint`.
With a progress bar and ``replica_chunk`` at its default, chunks are single
blocks, so the bar (and its estimate of the time left) moves every 16 toys
(:func:`task_size`); chunking never changes a number.

Reproducibility: toy ``b`` draws its pseudo-experiment from the child seed
``(seed, 2, b, 0)`` and its starting centres from ``(seed, 2, b, 1)``; widths
come from ``(seed, 0)`` exactly as in :meth:`SparKer.fit`.  A toy is therefore
the same whatever chunk or back end computes it, bit for bit
(``docs/method.md``, "Calibration").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .._progress import progress_bar
from ..config import RunConfig
from ..core.backends import get_backend, run_all
from ..core.nulls import NullSpec, toy_weights
from ..model.ensemble import fit_stack
from .checkpoint import Checkpoint

__all__ = ["HOLDOUT_KEY", "REPLICA_BLOCK", "ToyProblem", "WIDTH_KEY", "TOY_KEY", "child_seed", "run_toys",
           "task_size", "toy_block_weights"]

log = logging.getLogger(__name__)

#: spawn keys of the independent random streams of a run (widths as in SparKer.fit)
WIDTH_KEY, TOY_KEY = 0, 2
#: stream of the reference rows the observed fit leaves out against resample toys
HOLDOUT_KEY = 4

#: Toys ``[16 j, 16 (j + 1))`` are always trained together as the replicas of one
#: batched run, whatever the chunk size or back end: the float32 products of a
#: batch round differently with its width, so a fixed grouping is what makes every
#: toy bit-identical across chunkings.  Chunks are whole blocks.
REPLICA_BLOCK = 16
#: ``replica_chunk`` when none is given (:class:`~sparker.config.RunConfig`'s default)
_DEFAULT_CHUNK = RunConfig().replica_chunk


def child_seed(seed: int, *key: int) -> np.random.SeedSequence:
    """The random stream ``key`` of ``seed`` (``SeedSequence(seed, spawn_key=key)``)."""
    return np.random.SeedSequence(seed, spawn_key=key)


@dataclass(frozen=True)
class ToyProblem:
    """What every chunk of toys shares (plain arrays: cheap to ship to workers once)."""

    pool: np.ndarray  # (N, d) float32, standardised
    spec: NullSpec
    ref_weight: np.ndarray | None  # (N_R,) user reference weights (resample draws)
    configs: tuple  # TrainingConfig per configuration
    widths: tuple  # per configuration: list of (sigma_start, sigma_end) per layer
    seed: int
    device: str = "cpu"


def _blocks(toy_ids: tuple[int, ...]) -> list[tuple[int, ...]]:
    """``toy_ids`` split at multiples of :data:`REPLICA_BLOCK`."""
    out: dict[int, list[int]] = {}
    for b in toy_ids:
        out.setdefault(b // REPLICA_BLOCK, []).append(b)
    return [tuple(v) for _, v in sorted(out.items())]


def _run_chunk(problem: ToyProblem, k: int, toy_ids: tuple[int, ...]) -> np.ndarray:
    """Statistics of toys ``toy_ids`` under configuration ``k``: (n,) float64.

    Each block of :data:`REPLICA_BLOCK` toys is one batched training run over
    ``problem.pool``.
    """
    return np.concatenate([_run_block(problem, k, ids) for ids in _blocks(toy_ids)])


def toy_block_weights(spec: NullSpec, seed: int, toy_ids,
                      ref_weight=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference and data weights of toys ``toy_ids`` over the pool: two (N, n) float32 tensors.

    Column ``j`` holds toy ``toy_ids[j]`` (drawn from its own stream of ``seed``).  Each
    toy's float64 weights are cast into its column as soon as they are drawn, so the block
    holds 8 bytes per pool row and toy, never a float64 (N, n) stack.
    """
    N = spec.n_reference + (spec.n_data if spec.mode == "permutation" else 0)
    r = torch.empty(N, len(toy_ids), dtype=torch.float32)
    d = torch.empty_like(r)
    for j, b in enumerate(toy_ids):
        rb, db = toy_weights(spec, child_seed(seed, TOY_KEY, b, 0), ref_weight)
        r[:, j] = torch.from_numpy(rb)
        d[:, j] = torch.from_numpy(db)
    return r, d


def _run_block(problem: ToyProblem, k: int, toy_ids: tuple[int, ...]) -> np.ndarray:
    device = torch.device(problem.device)
    X = torch.as_tensor(problem.pool, device=device)  # (N, d)
    r, d = (t.to(device) for t in toy_block_weights(problem.spec, problem.seed, toy_ids, problem.ref_weight))
    seeds = [child_seed(problem.seed, TOY_KEY, b, 1) for b in toy_ids]
    # reference_batch slices: every pool row is a reference row of some toy (the observed fit's
    # slices come from all of its reference rows, the held-out ones included)
    every_row = torch.ones(X.shape[0], dtype=torch.bool, device=device)
    fit = fit_stack(X, r, d, problem.configs[k], problem.widths[k], seeds, record_replicas=(),
                    reference_rows=every_row)
    return np.asarray(fit.statistic, dtype=np.float64)


def _chunks(n_null: int, size: int) -> list[tuple[int, ...]]:
    """Toy ids in chunks of ``size`` rounded up to whole :data:`REPLICA_BLOCK` blocks."""
    size = -(-size // REPLICA_BLOCK) * REPLICA_BLOCK
    return [tuple(range(lo, min(n_null, lo + size))) for lo in range(0, n_null, size)]


def task_size(run: RunConfig) -> int:
    """Toys per task of the back end: ``run.replica_chunk``, or one block under a progress bar.

    With ``run.progress`` and the default chunk size, tasks are single blocks of
    :data:`REPLICA_BLOCK` toys so that the bar advances, with a meaningful estimate of
    the time left, as each block finishes.  Toys are trained in the same fixed blocks
    whatever the task size, so this changes no statistic.
    """
    if run.progress and run.replica_chunk == _DEFAULT_CHUNK:
        return REPLICA_BLOCK
    return run.replica_chunk


def _pending(ck: Checkpoint, n_null: int, n_configs: int, replica_chunk: int) -> list[tuple]:
    """``(configuration, toy ids)`` of every chunk with toys the checkpoint lacks."""
    tasks = []
    for k in range(n_configs):
        for ids in _chunks(n_null, replica_chunk):
            todo = tuple(b for b in ids if not ck.done[b, k])
            if todo:
                tasks.append((k, todo))
    return tasks


def run_toys(problem: ToyProblem, n_null: int, run: RunConfig, run_id: str) -> np.ndarray:
    """Null statistics of every toy and configuration: (n_null, K) float64.

    Toys are cut into chunks ``[0, c), [c, 2c), ...`` per configuration; a
    chunk found finished in the checkpoint is skipped, a partly finished one
    (possible only after a change of chunk size) runs its missing toys only.

    Parameters
    ----------
    problem : ToyProblem
    n_null : int
    run : RunConfig
        Chunk size (see :func:`task_size`), back end, checkpoint and progress bar.
    run_id : str
        :func:`~sparker.calibration.checkpoint.run_id` of these toys.

    Raises
    ------
    ValueError
        ``statistic:`` if a toy diverged to a non-finite value (the finished
        toys stay in the checkpoint).
    """
    ck = Checkpoint(run.checkpoint, run_id, (n_null, len(problem.configs)))
    tasks = _pending(ck, n_null, len(problem.configs), task_size(run))
    if not tasks:
        return ck.values
    bar = progress_bar(sum(len(ids) for _, ids in tasks), enabled=run.progress, desc="null toys", unit="toy")
    log.info("training %d null toy fits in %d chunks on the %r back end",
             sum(len(ids) for _, ids in tasks), len(tasks), run.backend)

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
        run_all(get_backend(run.backend, **run.backend_options()), _run_chunk, problem, tasks, on_result)
    finally:
        if bar is not None:
            bar.close()
    assert ck.done.all(), "some null toys were not computed"
    return ck.values
