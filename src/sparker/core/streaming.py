r"""Row-chunked passes over large samples (memory maps, big arrays).

The estimator, the test functions and calibration accept samples of millions of
rows, memory-mapped ``.npy`` files included, without holding a float64 copy of
them: the finiteness check, the standardisation moments and the conversion to
the float32 pool each read the sample in row chunks of about
:data:`CHUNK_BYTES` (as float64), so peak memory is one float32 pool plus a few
chunk-sized temporaries.

Exactness
---------
NumPy sums a C-contiguous float64 array of shape ``(n, d)``, ``d >= 2``, over
axis 0 row after row.  :func:`column_mean` carries the running sum into the next
chunk as its first row, which reproduces that order exactly, so the chunked
moments equal ``np.average(X, axis=0)`` bit for bit.  A single column
(``d = 1``) is summed pairwise by NumPy, so it is read in one piece (8 bytes a
row).  Every other step (standardising, the cast to float32, ``||x||^2`` and
the kernel gates) works row by row, so a large input gives the same model as the
same values held in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import logging

import numpy as np
import torch

from .kernels import augment_pool

__all__ = [
    "CHUNK_BYTES",
    "StandardizedRows",
    "column_absmax",
    "column_mean",
    "fingerprint",
    "row_chunks",
    "rows_float64",
    "standardized_pool",
]

log = logging.getLogger(__name__)

#: float64 bytes of one row chunk (a few chunk-sized temporaries live at once).
CHUNK_BYTES = 32 << 20

#: No chunk is shorter than this (a short tail joins the chunk before it), so every
#: chunk takes the same matrix-product code path as a large array.
MIN_ROWS = 256


def row_chunks(n_rows: int, n_features: int, *, chunk_bytes: int | None = None) -> list[tuple[int, int]]:
    """Row ranges ``(lo, hi)`` covering ``n_rows`` rows of ``n_features`` float64 values.

    One range for a single feature (NumPy's pairwise column sum) or a small
    array; otherwise about ``chunk_bytes`` per range, none shorter than
    :data:`MIN_ROWS`.  ``chunk_bytes`` defaults to :data:`CHUNK_BYTES`.
    """
    if n_rows <= 0:
        return []
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = n_rows if n_features <= 1 else max(MIN_ROWS, chunk_bytes // (8 * max(1, n_features)))
    bounds = list(range(0, n_rows, step)) + [n_rows]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < MIN_ROWS:
        del bounds[-2]  # short tail: merged into the previous chunk
    return list(itertools.pairwise(bounds))


def rows_float64(X, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of ``X`` as a C-contiguous float64 array (a view when already so)."""
    return np.ascontiguousarray(X[lo:hi], dtype=np.float64)


def column_mean(X, *, center: np.ndarray | None = None, chunk_bytes: int | None = None) -> np.ndarray:
    """Column means of ``X`` (or of ``(X - center)**2``) in float64, over row chunks.

    Equal bit for bit to ``np.average(X, axis=0)`` (resp.
    ``np.average((X - center) ** 2, axis=0)``) of the float64 array (see the
    module docstring).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any real dtype; a memory map is read chunk by chunk.
    center : ndarray of shape (n_features,), optional

    Returns
    -------
    ndarray of shape (n_features,)
    """
    n, d = X.shape
    total = None
    for lo, hi in row_chunks(n, d, chunk_bytes=chunk_bytes):
        first = total is None
        buf = np.empty((hi - lo + (0 if first else 1), d), dtype=np.float64)  # (rows [+1], d)
        rows = buf if first else buf[1:]
        rows[...] = X[lo:hi]
        if center is not None:
            np.subtract(rows, center, out=rows)
            np.square(rows, out=rows)
        if not first:
            buf[0] = total  # the running sum continues NumPy's row-by-row order
        total = buf.sum(axis=0)
    return total / n


def column_absmax(X, *, chunk_bytes: int | None = None) -> np.ndarray:
    """``np.abs(X).max(axis=0, initial=0.0)`` in float64, over row chunks."""
    n, d = X.shape
    top = np.zeros(d)
    for lo, hi in row_chunks(n, d, chunk_bytes=chunk_bytes):
        np.maximum(top, np.abs(rows_float64(X, lo, hi)).max(axis=0, initial=0.0), out=top)
    return top


class StandardizedRows:
    """Read-only view of ``standardizer.transform(X)`` computed on access.

    Indexing (``Z[rows]``), :meth:`chunks` and ``np.asarray(Z)`` give float64
    standardised rows identical to those of the transformed whole array, without
    ever holding it (unless converted whole).  Values clipped at the
    standardiser's bound are counted, not logged: see ``n_clipped``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    standardizer : Standardizer
        Anything with ``transform_counted(X) -> (Z, n_clipped)``.
    order : ndarray of shape (n_samples,), optional
        Row ``i`` of the view is row ``order[i]`` of ``X`` (e.g. a canonical order
        from :func:`sparker.core.order.canonical_order`); default: ``X``'s order.
    """

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, X, standardizer, order: np.ndarray | None = None):
        self.X = X
        self.standardizer = standardizer
        self.order = order
        self.shape = tuple(X.shape)
        self.n_clipped = 0

    def __len__(self) -> int:
        return self.shape[0]

    def _standardize(self, rows: np.ndarray) -> np.ndarray:
        Z, clipped = self.standardizer.transform_counted(rows)
        self.n_clipped += int(clipped)
        return Z

    def __getitem__(self, index) -> np.ndarray:
        rows = index if self.order is None else self.order[index]
        return self._standardize(np.asarray(self.X[rows], dtype=np.float64))

    def chunks(self, *, chunk_bytes: int | None = None):
        """Yield ``(lo, hi, Z)``: standardised float64 rows ``lo:hi``, shape (hi - lo, d)."""
        for lo, hi in row_chunks(self.shape[0], self.shape[1], chunk_bytes=chunk_bytes):
            if self.order is None:
                rows = rows_float64(self.X, lo, hi)
            else:
                rows = np.asarray(self.X[self.order[lo:hi]], dtype=np.float64)
            yield lo, hi, self._standardize(rows)

    def __array__(self, dtype=None, copy=None):
        Z = np.empty(self.shape, dtype=np.float64)
        for lo, hi, rows in self.chunks():
            Z[lo:hi] = rows
        return Z if dtype is None else Z.astype(dtype, copy=False)


def standardized_pool(parts, *, device=None, dtype=torch.float32, augmented: bool = True) -> torch.Tensor:
    """Stack standardised samples into one pool, chunk by chunk.

    Parameters
    ----------
    parts : sequence of StandardizedRows
        Samples in pool order (e.g. reference rows, then data rows).
    device : torch.device, optional
        Where the pool lives (default: CPU); chunks are moved there one by one.
    dtype : torch.dtype, default=torch.float32
    augmented : bool, default=True
        Return ``augment_pool(pool)`` (:func:`sparker.core.kernels.augment_pool`),
        i.e. ``[z, 1, ||z||^2]`` of shape (N, d + 2), whose first d columns are
        the pool; else the pool (N, d).

    Returns
    -------
    Tensor of shape (N, d + 2) or (N, d)
        Equal to ``torch.as_tensor(np.concatenate(Z), dtype=dtype)`` (augmented
        by rows), without the float64 concatenation.
    """
    d = parts[0].shape[1]
    N = sum(p.shape[0] for p in parts)
    out = torch.empty(N, d + 2 if augmented else d, dtype=dtype, device=device)  # (N, d[+2])
    start = 0
    for part in parts:
        for lo, hi, Z in part.chunks():
            z = torch.from_numpy(Z).to(device=device, dtype=dtype)  # (n, d)
            out[start + lo:start + hi] = augment_pool(z) if augmented else z
        start += part.shape[0]
    return out


def fingerprint(arrays, weight: np.ndarray | None = None) -> str:
    """SHA-256 of the row-wise stack of ``arrays`` (shape, float64 values) and ``weight``.

    Equal to hashing ``np.concatenate(arrays)`` converted to float64 in one
    piece, but reads chunk by chunk.
    """
    h = hashlib.sha256()
    n = sum(A.shape[0] for A in arrays)
    h.update(np.asarray((n, arrays[0].shape[1]), dtype=np.int64).tobytes())
    for A in arrays:
        for lo, hi in row_chunks(A.shape[0], A.shape[1]):  # raw bytes: any split hashes the same
            h.update(rows_float64(A, lo, hi))
    if weight is not None:
        h.update(np.ascontiguousarray(weight, dtype=np.float64))
    return h.hexdigest()
