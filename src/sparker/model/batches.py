"""Reference and data batches (``reference_batch``, ``data_batch``): the rows of one epoch, and the step on them.

See ``docs/method.md``, "Reference and data batches".  :class:`RowBatches` holds each replica's
data rows and cuts the reference, and where asked each replica's data, into slices;
:func:`batch_loss_and_grad` is the trainer's loss and gradient on one epoch's rows.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.kernels import augment_centres, augment_centres_by_replica
from .step import centre_gradient, chunk_terms, gathered_terms

__all__ = ["RowBatches", "batch_loss_and_grad"]


class RowBatches:
    """The rows of one epoch under ``reference_batch``: a slice of the reference, and every data
    row or (``data_m``) a slice of each replica's data rows.

    The reference term is estimated on ``m`` of the ``n`` rows of ``reference_rows``
    (a boolean mask of the pool), weighted by ``n / m`` so that the sum is unbiased for
    every replica; the slices cut a fresh random permutation of those rows into
    ``n // m`` disjoint parts, one per epoch, so that every reference row is used once
    per pass.  The slices are shared by the replicas (one gather, one product for all of
    them) and drawn from ``rng``.  Each replica's data rows (``data_weight[:, b] > 0``)
    are gathered once, padded with zero-weight rows to the largest replica.  The data term
    is exact unless ``data_m`` is given: then a replica with ``n_b > data_m`` data rows
    reads ``data_m`` of them per epoch, weighted by ``n_b / data_m``, cut from a random
    permutation of its own rows like the reference slices (a pass per replica, drawn from
    ``rng``), and a replica with fewer rows reads all of them.  The rule depends on a
    replica's own data size only, so the observed fit and every toy apply it alike.
    """

    def __init__(self, Xa, Xl, r, dw, off, m: int, reference_rows, rng, data_m: int | None = None):
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
        self.data = (Xa[pad], None if Xl is Xa else Xl[pad])  # (B, n_data, d+2) each
        self.data_index = pad  # (B, n_data): pool row of every gathered data row
        zero = torch.zeros((), dtype=dw.dtype, device=dw.device)
        self.data_dw = torch.where(keep, dw.gather(0, pad.T), zero)  # (n_data, B)
        self.data_off = None if off is None else off.gather(0, pad.T)  # (n_data, B)
        self.perm, self.pos = None, 0
        counts = np.array([len(rows) for rows in data])
        self.data_m = None
        if data_m is not None and int(data_m) < counts.max():
            self.data_m = int(data_m)
            self.counts = counts
            self.data_scale = torch.as_tensor(counts / np.minimum(counts, self.data_m), dtype=dw.dtype,
                                              device=dw.device)  # (B,): n_b / rows read
            self.dperm = np.tile(np.arange(n_data), (B, 1))  # positions of each replica's current pass
            # where each replica is in its pass: a sliced replica starts a fresh one, the others
            # stay at 0 (they read positions 0 .. data_m - 1, all of their rows)
            self.dpos = np.where(counts > self.data_m, n_data, 0)
        self.rows = self.m + (n_data if self.data_m is None else self.data_m)  # read per epoch and replica

    def reference_slice(self) -> torch.Tensor:
        """This epoch's ``m`` reference rows (pool indices, sorted)."""
        if self.perm is None or self.pos + self.m > len(self.ref):
            self.perm, self.pos = self.ref[self.rng.permutation(len(self.ref))], 0
        out = np.sort(self.perm[self.pos:self.pos + self.m])
        self.pos += self.m
        return torch.as_tensor(out, device=self.r.device)

    def data_slice(self) -> torch.Tensor:
        """This epoch's ``data_m`` positions among each replica's gathered data rows, (B, data_m).

        A replica with ``n_b > data_m`` rows reads the next ``data_m`` positions of a random
        permutation of its rows (a fresh one when fewer than ``data_m`` are left; each
        slice sorted, for memory locality); a replica with fewer rows gets positions
        ``0 .. data_m - 1``: all of its rows, and padding of weight 0.
        """
        m, counts = self.data_m, self.counts
        for b in np.flatnonzero((self.dpos + m > counts) & (counts > m)):  # a fresh pass
            k = counts[b] // m * m  # whole slices; the rows left over wait for a later pass
            perm = self.rng.permutation(counts[b])[:k]
            self.dperm[b, :k] = np.sort(perm.reshape(-1, m), axis=1).reshape(-1)
            self.dpos[b] = 0
        if (self.dpos == self.dpos[0]).all():
            out = self.dperm[:, self.dpos[0]:self.dpos[0] + m].copy()  # not a view: dperm is rewritten
        else:
            out = np.take_along_axis(self.dperm, self.dpos[:, None] + np.arange(m), 1)
        self.dpos[counts > m] += m
        return torch.as_tensor(out, device=self.r.device)

    def data_rows(self, pos: torch.Tensor | None = None):
        """This epoch's data rows: ``(Xd, Xld, dw, off)`` of shapes (B, n, d+2) twice (the second None
        when the log-kernels use ``Xd`` itself), (n, B) and (n, B) or None; every row, or with data
        slices the rows at positions ``pos`` (B, m) (default: the next :meth:`data_slice`), their
        weights scaled to keep the data term unbiased."""
        Xd, Xld = self.data
        if self.data_m is None:
            return Xd, Xld, self.data_dw, self.data_off
        if pos is None:
            pos = self.data_slice()  # (B, m)
        B, K, _ = Xd.shape
        flat = (pos + torch.arange(B, device=pos.device).unsqueeze(1) * K).reshape(-1)  # rows of (B*K, d+2)

        def take(x):
            return None if x is None else x.reshape(B * K, -1).index_select(0, flat).view(B, -1, x.shape[2])

        dw = self.data_dw.gather(0, pos.T) * self.data_scale  # (m, B)
        off = None if self.data_off is None else self.data_off.gather(0, pos.T)
        return take(Xd), take(Xld), dw, off


def batch_loss_and_grad(batches: RowBatches, step: int, centres, amps, sigma, comp, fn=chunk_terms,
                        terms=None):
    """The trainer's loss and gradients on one epoch's rows of :class:`RowBatches`: the reference
    term estimated on the slice, the data term exactly or on its slices (unbiased)."""
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
    Xd, Xld, ddw, doff = batches.data_rows()
    zd = torch.zeros_like(ddw)
    for lo in range(0, Xd.shape[1], step):
        hi = min(Xd.shape[1], lo + step)
        add(gathered_terms(Xd[:, lo:hi], Xd[:, lo:hi] if Xld is None else Xld[:, lo:hi], Cb, aT, zd[lo:hi],
                            ddw[lo:hi], None if doff is None else doff[lo:hi], comp.k_power, comp.softmax, terms))
    return loss, ga.T, centre_gradient(gs, gx, centres, sigma)
