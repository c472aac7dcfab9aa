"""The training pool of one fit: its standardisation, its width rows and its row order.

Both a single fit (:class:`sparker.SparKer`) and the calibration's toys build their pool
here, so that the observation and the toys are standardised, sized and ordered alike
(docs/method.md, "The loss and training" and "Calibration").
"""

from __future__ import annotations

import numpy as np
import torch

from .order import canonical_order
from .standardize import Standardizer, warn_clipped
from .streaming import StandardizedRows, standardized_pool

__all__ = ["pooled_sample", "preprocessing", "weighted_pool"]


def preprocessing(R, D, reference_weight, standardize: str):
    """The standardisation of a fit and the rows its widths are derived from.

    ``standardize="reference"``: the reference's moments, widths from the reference.
    ``"pooled"``: both from the reference and data stacked (unweighted), so that they do
    not depend on which rows are called data (what permutation toys need).  The width
    rows are in :func:`~sparker.core.order.canonical_order`, so that the width subsample
    does not depend on the input's row order.

    Returns
    -------
    (Standardizer, StandardizedRows)
    """
    if standardize == "pooled":
        std, P, order = pooled_sample(R, D)
        return std, StandardizedRows(P, std, order=order)
    std = Standardizer.fit(R)
    return std, StandardizedRows(R, std, order=canonical_order([R], [reference_weight]))


def pooled_sample(R, D) -> tuple[Standardizer, np.ndarray, np.ndarray]:
    """The label-free standardisation of ``R`` and ``D`` stacked, the stack and its order.

    Returns the :class:`Standardizer` fitted (unweighted) on the rows of ``R`` and ``D``
    stacked in :func:`~sparker.core.order.canonical_order`, the stack ``P`` (float64,
    shape (N_R + N_D, d), in input order) and that order: the standardisation and
    ``P[order]`` depend on the pooled rows as a set of points, not on which of them are
    called data nor on their input order (what permutation toys need).
    """
    P = np.concatenate([np.asarray(R, dtype=np.float64), np.asarray(D, dtype=np.float64)])  # (N_R+N_D, d)
    order = canonical_order([P])
    return Standardizer.fit(P[order]), P, order


def weighted_pool(Rs: StandardizedRows, Ds: StandardizedRows, w: np.ndarray, wd: np.ndarray, device,
                   order: np.ndarray):
    """The float32 training pool of one fit and its reference and data weights.

    Returns ``Xa`` (N, d+2) = ``[x, 1, ||x||^2]`` (the stacked reference and data rows,
    taken in ``order``) and ``r``, ``dw`` (N, 1): the reference weights on reference
    rows, the data weights on data rows, 0 elsewhere.  Warns once about points clipped
    while building the pool.
    """
    clipped = Rs.n_clipped + Ds.n_clipped
    Xa = standardized_pool([Rs, Ds], device=device)  # (N, d+2) float32 [x, 1, ||x||^2]
    warn_clipped(Rs.n_clipped + Ds.n_clipped - clipped)
    r = torch.zeros(Xa.shape[0], 1, dtype=torch.float32, device=device)  # (N, 1)
    dw = torch.zeros_like(r)  # (N, 1)
    r[: len(Rs), 0] = torch.as_tensor(w, dtype=torch.float32)
    dw[len(Rs):, 0] = torch.as_tensor(wd, dtype=torch.float32)
    index = torch.as_tensor(order, device=Xa.device)
    return Xa[index], r[index], dw[index]
