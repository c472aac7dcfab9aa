r"""Maximum-mean-discrepancy permutation tests: ``mmd`` and ``mmd_agg``.

For data :math:`X` (``m`` points) and reference :math:`Y` (``n`` points),
both standardised with the pooled sample's mean and standard deviation (label-free,
as a permutation test needs), the
unbiased estimate of the squared MMD with a Gaussian kernel of width
:math:`\sigma` (:mod:`sparker.baselines._kernels`) is

.. math::

    \widehat{\mathrm{MMD}}{}^2_u = \frac{S_{xx}}{m(m-1)} + \frac{S_{yy}}{n(n-1)}
        - \frac{2\,S_{xy}}{mn},
    \qquad S_{xx} = \sum_{i \ne j \in X} K(x_i, x_j),\ \dots

**Permutations as one product.**  On the pooled rows :math:`Z` (:math:`Y` and
:math:`X` in :func:`~sparker.core.order.canonical_order`, :math:`N = n + m`) let
:math:`a \in \{0, 1\}^N` mark the data rows,
:math:`K_0` be the pooled kernel matrix with a zero diagonal,
:math:`\rho = K_0 \mathbf 1` and :math:`S = \mathbf 1^\top K_0 \mathbf 1`.  Then

.. math::

    S_{xx} = a^\top K_0 a, \qquad S_{xy} = a^\top \rho - S_{xx}, \qquad
    S_{yy} = S - 2\, a^\top \rho + S_{xx},

so every permutation is one quadratic form in its indicator vector.  The
observed indicator and the ``n_null`` permuted ones are the columns of
:math:`A` (``(N, P)``, ``P = n_null + 1``), and :math:`\mathrm{diag}(A^\top K_0 A)`
is accumulated over square tiles :math:`(I, J \ge I)` of :math:`K_0`, each
computed once and used for all permutations and, by symmetry, twice
(``A_I^T K_IJ A_J`` is also the ``(J, I)`` term).  Memory stays at one tile
plus :math:`A`; time is :math:`O(N^2 (d + P))` per bandwidth.  Tiles are
computed in ``dtype`` (float32 by default) and every tile's contribution is
accumulated in float64.

The permuted indicators are the data roles of the toys of
:func:`sparker.test` with ``null="permutation"`` (same seed, same toys), so
``mmd``, ``mmd_agg`` and SparKer can be compared toy by toy.

**Null mode.**  Both tests are permutation tests (the kernel matrix of the
fixed pool is what makes them cheap): ``null`` accepts ``"auto"`` or
``"permutation"`` only, and ``auto`` always means ``permutation`` here.

**Aggregation** (``mmd_agg``, in the spirit of MMDAgg and MMD-FUSE): ``K``
bandwidths, by default 10 geometrically spaced between the 5 % and 95 %
quantiles of the pooled pairwise distances.  Default ``aggregation="max"``:
each bandwidth's statistics (observed and permuted) are divided by their
root mean square over the ``P`` permutations (the permutation mean of
:math:`\widehat{\mathrm{MMD}}{}^2_u` is exactly 0), and the maximum over
bandwidths is calibrated on the same permutations.  The normaliser is a
symmetric function of the ``P`` values, so the observed and permuted
statistics stay exchangeable and the test is exact.  ``minp``, ``fisher``
and ``meanp`` combine per-bandwidth p-values instead
(:func:`sparker.stats.aggregate`); note that ``minp`` cannot reach levels
much below ``K / (n_null + 1)``.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_choice, check_fraction, check_int, check_real
from ..core.schedules import pairwise_distance_quantiles
from ..results import TestResult
from ..stats import empirical_pvalue
from . import _common as C
from ._kernels import gaussian, sq_distances

__all__ = ["MMD_AGGREGATIONS", "mmd", "mmd_agg", "mmd_permutation_statistics"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ------------------------------------------------------------------ tensor layer
def mmd_permutation_statistics(
    Z: torch.Tensor,
    A: torch.Tensor,
    sigmas,
    *,
    block_size: int = 2048,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""Unbiased MMD^2 of every column of indicators ``A`` and every width.

    Parameters
    ----------
    Z : Tensor of shape (N, d)
        Pooled rows.
    A : Tensor of shape (N, P)
        Column ``p`` is 1 on the rows that are "data" in permutation ``p``
        and 0 elsewhere; every column has the same number ``m`` of ones,
        ``2 <= m <= N - 2``.
    sigmas : sequence of float
        Gaussian widths.
    block_size : int
        Tile side (rows and columns of the kernel matrix per tile).
    dtype : torch.dtype
        Precision of the tiles; contributions are accumulated in float64.

    Returns
    -------
    Tensor of shape (K, P), float64
        :math:`\widehat{\mathrm{MMD}}{}^2_u` per width and column.
    """
    N, P = A.shape
    A64 = A.to(torch.float64)
    m = float(A64[:, 0].sum())
    n = N - m
    Zt = Z.to(dtype)
    At = A.to(dtype)
    sq = (Zt * Zt).sum(1)  # (N,)
    K = len(sigmas)
    sxx = torch.zeros(K, P, dtype=torch.float64, device=Z.device)  # a^T K0 a
    rho = torch.zeros(K, N, dtype=torch.float64, device=Z.device)  # K0 1
    starts = list(range(0, N, block_size))
    for i0 in starts:
        I = slice(i0, min(N, i0 + block_size))
        for j0 in starts:
            if j0 < i0:
                continue
            J = slice(j0, min(N, j0 + block_size))
            D2 = sq_distances(Zt[I], Zt[J], sq[I], sq[J])  # (bI, bJ)
            for k, sigma in enumerate(sigmas):
                Kt = gaussian(D2, float(sigma))  # (bI, bJ)
                if i0 == j0:
                    Kt.fill_diagonal_(0.0)
                quad = (A64[I] * (Kt @ At[J]).to(torch.float64)).sum(0)  # (P,) A_I^T K_IJ A_J
                sxx[k] += quad if i0 == j0 else 2.0 * quad
                rho[k, I] += Kt.sum(1, dtype=torch.float64)
                if i0 != j0:
                    rho[k, J] += Kt.sum(0, dtype=torch.float64)
    a_rho = rho @ A64  # (K, P)
    total = rho.sum(1, keepdim=True)  # (K, 1)
    sxy = a_rho - sxx
    syy = total - 2.0 * a_rho + sxx
    return sxx / (m * (m - 1.0)) + syy / (n * (n - 1.0)) - 2.0 * sxy / (m * n)


# ------------------------------------------------------------------ shared work
def _check_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    return _DTYPES[check_choice(dtype, _DTYPES, name="dtype")]


def _indicators(problem: C.TwoSample, ids) -> np.ndarray:
    """Data indicators over the pool: (N, len(ids)); id -1 is the observed split."""
    cols = []
    for b in ids:
        if b < 0:
            cols.append(problem.observed()[2])
        else:
            cols.append((problem.toy(b)[1] > 0).astype(np.float64))
    return np.stack(cols, 1)


def _all_statistics(problem: C.TwoSample, n_null: int, sigmas, block_size: int, dtype,
                    perm_chunk: int) -> np.ndarray:
    """MMD^2 of the observed split (column 0) and every toy: (K, n_null + 1)."""
    Z = torch.as_tensor(problem.pool(), device=problem.device)
    ids = [-1, *range(n_null)]
    out = []
    for lo in range(0, len(ids), perm_chunk):
        A = torch.as_tensor(_indicators(problem, ids[lo: lo + perm_chunk]), device=problem.device)
        out.append(mmd_permutation_statistics(Z, A, sigmas, block_size=block_size, dtype=dtype))
    return torch.cat(out, 1).cpu().numpy()


def _quantile_widths(problem: C.TwoSample, quantiles) -> np.ndarray:
    """Quantiles of the pooled sample's pairwise distances (label-free: the pool's own order)."""
    rng = np.random.default_rng(C.seq(problem.seed, C.WIDTH_KEY))
    return np.atleast_1d(pairwise_distance_quantiles(problem.width_rows(), quantiles, rng=rng))


def _check_work(block_size, perm_chunk, dtype):
    return (check_int(block_size, name="block_size", minimum=1),
            check_int(perm_chunk, name="perm_chunk", minimum=1), _check_dtype(dtype))


# ------------------------------------------------------------------ aggregation
def _studentised_max(stats: np.ndarray) -> np.ndarray:
    """max_k of stats[k] / rms_k over permutations: (K, P) -> (P,)."""
    rms = np.sqrt(np.mean(stats * stats, axis=1, keepdims=True))  # (K, 1)
    return np.max(stats / np.maximum(rms, np.finfo(float).tiny), axis=0)


#: aggregation rules of ``mmd_agg``: ``max`` of studentised statistics, or a
#: p-value combination of :data:`sparker.stats.AGGREGATIONS`
MMD_AGGREGATIONS = ("max", "minp", "fisher", "meanp")


# ------------------------------------------------------------------ public API
def mmd(
    reference,
    data,
    *,
    n_null: int = 100,
    seed: int = 0,
    null: str = "auto",
    bandwidth: float | None = None,
    block_size: int = 2048,
    perm_chunk: int = 512,
    dtype: str = "float32",
    device=None,
) -> TestResult:
    r"""MMD permutation test with a Gaussian kernel of median-heuristic width.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
        At least 2 points each.
    n_null : int
        Number of permutations (p-value resolution ``1 / (n_null + 1)``).
    seed : int
    null : {"auto", "permutation"}
        Always a permutation test (see the module notes).
    bandwidth : float, optional
        Kernel width :math:`\sigma` in standardised units; default the median
        of the pooled pairwise distances (on at most 2,000 pooled points).
    block_size : int
        Side of the kernel tiles.
    perm_chunk : int
        Permutations per pass over the kernel matrix (memory ``N * perm_chunk``).
    dtype : {"float32", "float64"}
        Precision of the kernel tiles (accumulation is float64).
    device : str or torch.device, optional

    Returns
    -------
    TestResult
        ``statistic`` is :math:`\widehat{\mathrm{MMD}}{}^2_u` (may be negative
        under the null); ``chi2`` is None.

    Notes
    -----
    Cost :math:`O(N^2 (d + n_{null}))` time, :math:`O(N \cdot perm\_chunk)` memory.
    """
    problem = C.prepare(reference, data, n_null=n_null, seed=seed, null=null, modes=("permutation",),
                        min_data=2, method="mmd", device=device)
    block_size, perm_chunk, dt = _check_work(block_size, perm_chunk, dtype)
    if bandwidth is None:
        sigma = float(_quantile_widths(problem, 0.5)[0])
    else:
        sigma = check_real(bandwidth, name="bandwidth", positive=True)
    stats = _all_statistics(problem, n_null, [sigma], block_size, dt, perm_chunk)  # (1, P)
    settings = [{"bandwidth": sigma, "kernel": "gaussian", "dtype": str(dt).replace("torch.", "")}]
    return C.make_result("mmd", float(stats[0, 0]), stats[0, 1:], problem, settings=settings)


def mmd_agg(
    reference,
    data,
    *,
    n_null: int = 100,
    seed: int = 0,
    null: str = "auto",
    n_bandwidths: int = 10,
    quantiles: tuple[float, float] = (0.05, 0.95),
    bandwidths=None,
    aggregation: str = "max",
    block_size: int = 2048,
    perm_chunk: int = 512,
    dtype: str = "float32",
    device=None,
) -> TestResult:
    r"""MMD permutation test aggregated over several Gaussian widths.

    Parameters
    ----------
    reference, data, n_null, seed, null, block_size, perm_chunk, dtype, device
        As in :func:`mmd`.
    n_bandwidths : int
        Number of widths, geometrically spaced between the ``quantiles`` of
        the pooled pairwise distances.
    quantiles : (float, float)
        Lower and upper distance quantiles of the width range.
    bandwidths : sequence of float, optional
        Explicit widths (standardised units) instead of the quantile range.
    aggregation : {"max", "minp", "fisher", "meanp"}
        ``max`` of statistics studentised by their permutation RMS (default),
        or a combination of per-width p-values; calibrated on the same
        permutations either way.

    Returns
    -------
    TestResult
        ``statistic`` is the aggregated statistic; ``per_config`` holds the
        widths, the observed MMD^2 and the p-value of each width.
    """
    problem = C.prepare(reference, data, n_null=n_null, seed=seed, null=null, modes=("permutation",),
                        min_data=2, method="mmd_agg", device=device)
    block_size, perm_chunk, dt = _check_work(block_size, perm_chunk, dtype)
    check_choice(aggregation, MMD_AGGREGATIONS, name="aggregation")
    if bandwidths is not None:
        sigmas = C.as_float_list(bandwidths, name="bandwidths", check=check_real, positive=True)
    else:
        k = check_int(n_bandwidths, name="n_bandwidths", minimum=1)
        if not (isinstance(quantiles, (tuple, list)) and len(quantiles) == 2):
            raise ValueError(f"quantiles: expected (low, high), got {quantiles!r}")
        lo, hi = (check_fraction(q, name="quantiles", open_interval=True) for q in quantiles)
        if not lo < hi:
            raise ValueError(f"quantiles: need low < high, got {quantiles!r}")
        q_lo, q_hi = _quantile_widths(problem, [lo, hi])
        sigmas = list(np.geomspace(q_lo, q_hi, k)) if k > 1 else [float(np.sqrt(q_lo * q_hi))]
    sigmas = [float(s) for s in sigmas]
    stats = _all_statistics(problem, n_null, sigmas, block_size, dt, perm_chunk)  # (K, P)
    pvalues = [float(empirical_pvalue(s[0], s[1:])) for s in stats]
    if aggregation == "max":
        agg = _studentised_max(stats)  # (P,)
        statistic, null_dist = float(agg[0]), agg[1:]
    else:
        statistic, null_dist, combined = C.combine(stats[:, 0], stats[:, 1:].T, aggregation)
        if combined is not None:
            pvalues = combined["pvalues"]
    per_config = {
        "aggregation": aggregation,
        "bandwidths": sigmas,
        "statistics": [float(x) for x in stats[:, 0]],
        "pvalues": pvalues,
    }
    settings = [{"bandwidth": s, "kernel": "gaussian", "dtype": str(dt).replace("torch.", "")}
                for s in sigmas]
    return C.make_result("mmd_agg", statistic, null_dist, problem, settings=settings, per_config=per_config)
