"""A row order that depends on the rows' values alone, so that results do not depend on input order.

Every choice the training makes from rows (the width subsample, the starting centres, the
re-seeding candidates, a toy's pseudo-data) and every float32 sum over the pool follows the
order of the pool's rows.  Building the pool in the order returned here makes the statistic
a function of the samples as sets of points: shuffling the rows of the reference or the data
gives the same pool, hence the same numbers (docs/method.md, "The loss and training").

The order sorts rows by a fixed random projection of their values (float64, each row reduced
by the same sequence of operations, so equal rows get equal keys wherever they stand); rows
whose keys tie are ordered by their values column by column, then by their weights.
"""

from __future__ import annotations

import numpy as np

from .streaming import row_chunks, rows_float64

__all__ = ["canonical_order"]

#: seed of the fixed projection direction (any constant: it only has to be the same every time)
_DIRECTION_SEED = 20251103


def _keys(X) -> np.ndarray:
    """Projection ``x . v`` of every row onto the fixed direction v: (n,) float64."""
    n, d = X.shape
    v = np.random.default_rng(_DIRECTION_SEED).standard_normal(d)  # (d,)
    key = np.empty(n)
    for lo, hi in row_chunks(n, d):
        key[lo:hi] = (rows_float64(X, lo, hi) * v).sum(axis=1)  # row-wise: no dependence on position
    return key


def canonical_order(parts, weights=None) -> np.ndarray:
    """Permutation of the stacked rows of ``parts`` that depends on values and weights only.

    Parameters
    ----------
    parts : sequence of array-like, each of shape (n_k, n_features)
        Samples whose rows are stacked in the given order (arrays or memory maps).
    weights : sequence of (ndarray of shape (n_k,) or None), optional
        Per-row weights of each part; they order rows with equal values.

    Returns
    -------
    ndarray of shape (sum n_k,), int64
        ``order`` such that ``stacked[order]`` is the same array for any row order
        of the inputs (rows with equal values and equal weights are interchangeable).
    """
    key = np.concatenate([_keys(X) for X in parts])
    if weights is None:
        weights = [None] * len(parts)
    w = np.concatenate([np.zeros(X.shape[0]) if wk is None else np.asarray(wk, dtype=np.float64)
                        for X, wk in zip(parts, weights)])
    order = np.lexsort((w, key))  # by key, then weight
    sorted_key = key[order]
    tied = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if len(tied):
        order = _break_ties(parts, w, order, sorted_key, tied)
    return order.astype(np.int64, copy=False)


def _break_ties(parts, w, order, sorted_key, tied) -> np.ndarray:
    """Within runs of equal keys, order rows by their values (column 0 first), then weights."""
    offsets = np.cumsum([0] + [X.shape[0] for X in parts])

    def row(i: int) -> np.ndarray:
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        return np.asarray(parts[k][i - offsets[k]], dtype=np.float64)

    order = order.copy()
    starts = tied[np.r_[True, np.diff(tied) > 1]]  # first index of every run of ties
    for s in starts:
        e = s + 1
        while e < len(sorted_key) and sorted_key[e] == sorted_key[s]:
            e += 1
        members = order[s:e]
        values = np.stack([row(int(i)) for i in members])  # (run, d)
        sub = np.lexsort((w[members], *values.T[::-1]))  # column 0 most significant, then weight
        order[s:e] = members[sub]
    return order
