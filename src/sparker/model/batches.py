"""Reference batches (``reference_batch``): the rows of one epoch, and the step on them.

See ``docs/method.md``, "Reference batches".  :class:`RowBatches` holds each replica's
data rows and cuts the reference into slices; :func:`batch_loss_and_grad` is the
trainer's loss and gradient on one epoch's rows.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.kernels import augment_centres, augment_centres_by_replica
from .step import centre_gradient, chunk_terms, gathered_terms

__all__ = ["RowBatches", "batch_loss_and_grad"]


class RowBatches:
    """The rows of one epoch under ``reference_batch``: a slice of the reference, and every data row.

    The reference term is estimated on ``m`` of the ``n`` rows of ``reference_rows``
    (a boolean mask of the pool), weighted by ``n / m`` so that the sum is unbiased for
    every replica; the slices cut a fresh random permutation of those rows into
    ``n // m`` disjoint parts, one per epoch, so that every reference row is used once
    per pass.  The slices are shared by the replicas (one gather, one product for all of
    them) and drawn from ``rng``.  The data term is exact: each replica's data rows
    (``data_weight[:, b] > 0``) are gathered once, padded with zero-weight rows to the
    largest replica.
    """

    def __init__(self, Xa, Xl, r, dw, off, m: int, reference_rows, rng):
        B = r.shape[1]
        self.Xa, self.Xl, self.r, self.off, self.rng = Xa, Xl, r, off, rng
        self.ref = torch.nonzero(reference_rows).flatten().cpu().numpy()
        self.m = max(1, min(int(m), len(self.ref)))
        self.scale = len(self.ref) / self.m
        data = [torch.nonzero(dw[:, b] > 0).flatten() for b in range(B)]
        n_data = max(1, max(len(rows) for rows in data))
        pad = torch.zeros(B, n_data, dtype=torch.long, device=r.device)
        keep = torch.zeros(n_data, B, dtype=torch.bool, device=r.device)
        for b, rows in enumerate(data):
            pad[b, :len(rows)] = rows
            keep[:len(rows), b] = True
        self.rows = self.m + n_data
        self.data = (Xa[pad], None if Xl is Xa else Xl[pad])  # (B, n_data, d+2) each
        zero = torch.zeros((), dtype=dw.dtype, device=dw.device)
        self.data_dw = torch.where(keep, dw.gather(0, pad.T), zero)  # (n_data, B)
        self.data_off = None if off is None else off.gather(0, pad.T)  # (n_data, B)
        self.perm, self.pos = None, 0

    def reference_slice(self) -> torch.Tensor:
        """This epoch's ``m`` reference rows (pool indices, sorted)."""
        if self.perm is None or self.pos + self.m > len(self.ref):
            self.perm, self.pos = self.ref[self.rng.permutation(len(self.ref))], 0
        out = np.sort(self.perm[self.pos:self.pos + self.m])
        self.pos += self.m
        return torch.as_tensor(out, device=self.r.device)


def batch_loss_and_grad(batches: RowBatches, step: int, centres, amps, sigma, comp, fn=chunk_terms,
                        terms=None):
    """The trainer's loss and gradients on one epoch's rows of :class:`RowBatches`: the data term
    exactly, the reference term estimated on the slice (unbiased)."""
    B, M, d = centres.shape
    Xa, Xl = batches.Xa, batches.Xl
    dt, dev = Xa.dtype, Xa.device
    idx = batches.reference_slice()
    Xs, Xls = Xa[idx], (None if Xl is Xa else Xl[idx])  # (m, d+2): the slice, shared by the replicas
    rs = batches.r[idx] * batches.scale  # (m, B)
    zs = torch.zeros_like(rs)
    offs = None if batches.off is None else batches.off[idx]
    Ca = augment_centres(centres.transpose(0, 1).to(Xl.dtype), sigma)  # (d+2, M*B), kernel-major
    Cb = augment_centres_by_replica(centres.to(Xl.dtype), sigma)  # (B, d+2, M)
    aT = amps.T.to(dt).contiguous()  # (M, B)
    loss = torch.zeros(B, dtype=torch.float64, device=dev)
    ga = torch.zeros(M, B, dtype=torch.float64, device=dev)
    gs = torch.zeros(M * B, dtype=torch.float64, device=dev)
    gx = torch.zeros(M * B, d, dtype=torch.float64, device=dev)

    def add(t):
        nonlocal loss, ga, gs, gx
        loss += t[0]
        ga += t[1]
        gs += t[2]
        gx += t[3]

    for lo in range(0, len(idx), step):
        hi = min(len(idx), lo + step)
        add(fn(Xs[lo:hi], Xs[lo:hi] if Xls is None else Xls[lo:hi], Ca, aT, rs[lo:hi], zs[lo:hi],
               None if offs is None else offs[lo:hi], comp.k_power, comp.softmax, True))
    Xd, Xld = batches.data
    zd = torch.zeros_like(batches.data_dw)
    for lo in range(0, Xd.shape[1], step):
        hi = min(Xd.shape[1], lo + step)
        add(gathered_terms(Xd[:, lo:hi], Xd[:, lo:hi] if Xld is None else Xld[:, lo:hi], Cb, aT, zd[lo:hi],
                            batches.data_dw[lo:hi], None if batches.data_off is None else batches.data_off[lo:hi],
                            comp.k_power, comp.softmax, terms))
    return loss, ga.T, centre_gradient(gs, gx, centres, sigma)
