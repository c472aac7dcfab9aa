r"""Re-seeding: move a replica's least useful kernel onto the largest unexplained excess.

See ``docs/method.md``, section "Re-seeding".  At fixed fractions of the width
schedule the trainer (:func:`sparker.model.trainer.train_replicas`) scores, for
every replica, each kernel by the loss increase its removal would cause (its
*kernel gain*) and each of a subset of candidate data points (a different one at
each call, :func:`candidate_rows`) by the loss decrease a new kernel there would
bring (its *candidate gain*, with the candidate's own point left out).  When the
best candidate at least one width from the other kernels beats the weakest kernel
by a margin, that kernel jumps there with amplitude 0 and fresh Adam state.  Everything is computed in one pass over the row chunks of the pool, in
the kernel-major layout of the trainer.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
import torch

from ..core.kernels import augment_centres, augment_centres_by_replica

__all__ = ["RESEED_REFERENCE_ROWS", "candidate_block", "candidate_rows", "reference_pass", "reseed_kernels",
           "reseed_scores", "reseed_scores_batched"]

log = logging.getLogger(__name__)


def candidate_block(Xa, Cy, dw, expected):
    """Kernel sums of one row block at the candidates: (n_cand, B) data and expected counts.

    Xa: (n, d+2); Cy: (d+2, n_cand*B) candidate-major; dw, expected: (n, B).
    """
    n, B = dw.shape
    k = torch.exp((Xa @ Cy).clamp_max(0.0)).view(n, -1, B)  # (n, n_cand, B)
    return (k * dw.unsqueeze(1)).sum(0), (k * expected.unsqueeze(1)).sum(0)


def reseed_scores(Xa, chunks, centres, amps, sigma, r, dw, off, comp, cand_idx, *, budget: int,
                  block=candidate_block):
    """Kernel gains (B, M) and candidate gains (B, n_cand), in one pass over the pool.

    *Kernel gain*: the loss increase when kernel i is removed from its
    replica's ensemble, the softmax being re-normalised over the others.  With
    the per-point terms ``P_j = a_j e_j^(kp+sm) e^(kp m)`` (``e_j = exp(l_j - m)``,
    ``m = max_j l_j``), ``f = sum_j P_j / S`` for the softmax modes
    (``S = sum_j e_j``) and ``f = sum_j P_j`` for ``none``; without kernel i,
    ``f_(-i) = (sum_j P_j - P_i) / (S - e_i)`` (resp. ``f - P_i``).  For the
    kernel that owns the point (i = argmax) the sums over the others are taken
    directly instead of by subtraction, so nothing cancels.  A kernel that
    duplicates a neighbour has a small gain: the neighbour takes over.

    *Candidate gain*: for replica b and candidate y, ``n_D = sum_{x != y} d_b(x) k(x, y)``
    (the candidate's own point left out)
    and ``n_R = sum_x r_b(x) e^{f_b(x)} k(x, y)`` (what the current model
    already expects there); a kernel of amplitude ``log(n_D / n_R)`` at y
    lowers the loss by about ``n_D log(n_D / n_R) - (n_D - n_R)``, for an
    excess or a deficit alike.

    ``budget`` is the element budget of one chunk's activations
    (:func:`sparker.model.trainer.chunk_elements`); the candidate sums go over row
    blocks of about eight times that many elements.  ``block`` computes one row
    block's sums (:func:`candidate_block`, or its compiled form).  Both gains are float64.
    """
    B, M, _ = centres.shape
    kp, sm = comp.k_power, comp.softmax
    Ca = augment_centres(centres.transpose(0, 1).to(Xa.dtype), sigma)  # (d+2, M*B), kernel-major
    aT = amps.T.to(Xa.dtype).contiguous()  # (M, B)
    n_cand = cand_idx.shape[1]
    Y = Xa[cand_idx.T.reshape(-1), :-2]  # (n_cand*B, d), candidate-major
    Cy = augment_centres(Y.view(n_cand, B, -1), sigma)  # (d+2, n_cand*B)
    gain = torch.zeros(M, B, dtype=torch.float64, device=Xa.device)
    nD = torch.zeros(n_cand, B, dtype=torch.float64, device=Xa.device)
    nR = torch.zeros_like(nD)
    step = max(1, 8 * budget // (n_cand * B))  # rows per candidate block (~8 MB on a CPU)
    for lo0, hi0 in chunks:
        n = hi0 - lo0
        l = (Xa[lo0:hi0] @ Ca).clamp_max_(0.0).view(n, M, B)
        g, expected = _gain_terms(l, aT, r[lo0:hi0], dw[lo0:hi0], None if off is None else off[lo0:hi0], kp, sm)
        gain += g
        for lo in range(lo0, hi0, step):
            hi = min(hi0, lo + step)
            d_sum, r_sum = block(Xa[lo:hi], Cy, dw[lo:hi], expected[lo - lo0:hi - lo0])
            nD += d_sum.double()  # (n_cand, B)
            nR += r_sum.double()
    return gain.T, _candidate_gains(nD, nR, dw, cand_idx)


def _gain_terms(l, aT, r, dw, off, kp: int, sm: int):
    """Kernel gains (M, B), float64, of rows with log-kernels ``l`` (n, M, B), and the
    expected counts ``r e^(f + off)`` (n, B) of those rows under the current model."""
    m, top = l.max(1, keepdim=True)  # (n, 1, B)
    e = torch.exp(l - m)  # (n, M, B)
    is_top = torch.zeros_like(e, dtype=torch.bool).scatter_(1, top, True)
    P = aT * e.pow(kp + sm) * torch.exp(kp * m)  # (n, M, B)
    num = P.sum(1, keepdim=True)  # (n, 1, B)
    if sm:
        S = e.sum(1, keepdim=True)
        f = num / S
        numer = torch.where(is_top, P.masked_fill(is_top, 0.0).sum(1, keepdim=True), num - P)
        denom = torch.where(is_top, e.masked_fill(is_top, 0.0).sum(1, keepdim=True), S - e)
        f_i = torch.where(denom > 0, numer / denom.clamp_min(1e-30), torch.zeros_like(numer))
    else:
        f = num
        f_i = num - P
    o = 0.0 if off is None else off.unsqueeze(1)
    rr, dd = r.unsqueeze(1), dw.unsqueeze(1)  # (n, 1, B)
    ef = torch.exp(f + o)  # (n, 1, B)
    base = rr * ef - dd * f  # (n, 1, B)
    alt = rr * torch.exp(f_i + o) - dd * f_i  # (n, M, B)
    return (alt - base).double().sum(0), (rr * ef).squeeze(1)


def _candidate_gains(nD, nR, dw, cand_idx):
    """Candidate gains (B, n_cand) from the data and expected sums (n_cand, B) at the candidates."""
    # leave-one-out: a candidate's own point is not evidence of an excess around it (in
    # high dimensions a narrow kernel sees only its centre point, so every data point
    # would look like a clump of one and re-seeding would memorise single points)
    nD = (nD - dw.gather(0, cand_idx.T).double()).clamp_min(0.0)
    nD, nR = nD.T, nR.T.clamp_min(1e-12)  # (B, n_cand)
    return nD * torch.log((nD / nR).clamp_min(1e-300)) - (nD - nR)


#: Re-seeding under ``reference_batch`` reads at most this many reference rows in its exact
#: pass (a fresh random subset, weighted to keep the sums unbiased), so that its cost stops
#: growing with the reference; below it, the whole reference.
RESEED_REFERENCE_ROWS = 100_000


def reseed_scores_batched(batches, Xa, chunks, centres, amps, sigma, r, dw, off, comp, cand_idx, *, budget: int,
                          block=candidate_block, top: int = 32):
    """:func:`reseed_scores` of a fit with ``reference_batch``, without a full pass per candidate.

    The candidates are first screened: their data sums come exactly from each replica's own
    data rows (``batches``, a :class:`sparker.model.batches.RowBatches`), or with
    ``data_batch`` from one data slice (weighted, the candidate's own point left out),
    and their expected counts are estimated on one reference slice.  Only the ``top``
    candidates of each replica by the screened gain (the expected count floored at one
    slice row's weight, so that a slice that happens to miss a region does not make its
    candidates look infinitely good) are scored: their data sums over every data row, their
    expected counts over the whole reference (at most :data:`RESEED_REFERENCE_ROWS` rows of
    it, a fresh random subset, weighted); the others get a gain of -inf.  The kernel gains
    come from every data row and the same reference rows.  The reference is then read once
    for ``M + top`` columns per replica instead of ``M + n_cand``.
    """
    B, M, d = centres.shape
    kp, sm = comp.k_power, comp.softmax
    dt, dev = Xa.dtype, Xa.device
    aT = amps.T.to(dt).contiguous()  # (M, B)
    n_cand = cand_idx.shape[1]
    top = min(top, n_cand)
    cstep = max(1, 8 * budget // (n_cand * B))  # rows per candidate block
    Y = Xa[cand_idx.T.reshape(-1), :-2]  # (n_cand*B, d), candidate-major
    Cy = augment_centres(Y.view(n_cand, B, -1), sigma)  # (d+2, n_cand*B)
    Ca = augment_centres(centres.transpose(0, 1).to(dt), sigma)  # (d+2, M*B), kernel-major
    Cb = augment_centres_by_replica(centres.to(dt), sigma)  # (B, d+2, M)
    Cyb = _replica_major(Cy, B)  # (B, d+2, n_cand)
    sliced = batches.data_m is not None
    # 1. every data row of every replica: its part of the kernel gains, and (unless the data
    #    are sliced) n_D at every candidate
    Xd = batches.data[0] if batches.data[1] is None else batches.data[1]  # (B, K, d+2)
    gain, nD = _data_sums(Xd, Cb, aT, batches.data_dw, batches.data_off, None if sliced else Cyb, kp, sm, cstep)
    if sliced:  # n_D screened on one data slice, each candidate's own point left out
        pos = batches.data_slice()  # (B, m)
        Xs, Xls, ddw, _ = batches.data_rows(pos)
        nD = _data_sums(Xs if Xls is None else Xls, None, aT, ddw, None, Cyb, kp, sm, cstep)[1]
        for b in range(B):  # a slice holds a candidate's own point with weight scale * w, or not at all;
            # _candidate_gains takes w off, so add w back and take off what the slice holds
            own = torch.isin(cand_idx[b], batches.data_index[b, pos[b]])
            w = dw[cand_idx[b], b]
            nD[b] += (w - own * batches.data_scale[b] * w).double()
    nD = nD.T  # (n_cand, B)
    # 2. expected counts at every candidate, estimated on one reference slice
    idx = batches.reference_slice()
    rs = r[idx] * batches.scale
    os_ = None if off is None else off[idx]
    nR_est = torch.zeros(n_cand, B, dtype=torch.float64, device=dev)
    for lo in range(0, len(idx), cstep):
        hi = min(len(idx), lo + cstep)
        Xs = Xa[idx[lo:hi]]
        l = (Xs @ Ca).clamp_max_(0.0).view(hi - lo, M, B)
        expected = _gain_terms(l, aT, rs[lo:hi], torch.zeros_like(rs[lo:hi]),
                               None if os_ is None else os_[lo:hi], kp, sm)[1]
        nR_est += block(Xs, Cy, torch.zeros_like(expected), expected)[1].double()
    positive = rs[rs > 0]
    floor = float(positive.median()) if len(positive) else 1e-12
    pick = _candidate_gains(nD, nR_est.clamp_min(floor), dw, cand_idx)
    best = pick.topk(top, dim=1).indices  # (B, top)
    cand_top = cand_idx.gather(1, best)  # (B, top)
    Ct = augment_centres(Xa[cand_top.T.reshape(-1), :-2].view(top, B, -1), sigma)  # (d+2, top*B)
    if sliced:  # n_D of the best candidates over every data row
        nD_top = _data_sums(Xd, None, aT, batches.data_dw, None, _replica_major(Ct, B), kp, sm, cstep)[1].T
    else:
        nD_top = nD.gather(0, best.T)
    # 3. the reference once: its part of the kernel gains, and n_R at the best candidates
    nR = torch.zeros(top, B, dtype=torch.float64, device=dev)
    for rows, weight in reference_pass(batches, chunks, r):
        Xr = Xa[rows]
        l = (Xr @ Ca).clamp_max_(0.0).view(Xr.shape[0], M, B)
        zero = torch.zeros_like(weight)
        g, expected = _gain_terms(l, aT, weight, zero, None if off is None else off[rows], kp, sm)
        gain += g
        nR += block(Xr, Ct, zero, expected)[1].double()
    gains = torch.full((B, n_cand), -math.inf, dtype=torch.float64, device=dev)
    cg = _candidate_gains(nD_top, nR, dw, cand_top)  # (B, top)
    return gain.T, gains.scatter_(1, best, cg)


def _replica_major(C, B: int):
    """Candidate-major factors (d+2, n*B) of :func:`augment_centres` as one factor per replica,
    (B, d+2, n), for ``torch.bmm`` with each replica's own rows."""
    return C.view(C.shape[0], -1, B).permute(2, 0, 1).contiguous()


def _data_sums(Xd, Cb, aT, ddw, doff, Cyb, kp: int, sm: int, step: int):
    """Over each replica's own rows ``Xd`` (B, K, d+2) with weights ``ddw`` (K, B): the data part of
    the kernel gains (M, B) when ``Cb`` (B, d+2, M) is given (else None), and the data sums (B, n_c)
    at the candidates ``Cyb`` (B, d+2, n_c) when given (else None), both float64."""
    B, K, _ = Xd.shape
    gain = None if Cb is None else torch.zeros(aT.shape, dtype=torch.float64, device=Xd.device)
    nD = None if Cyb is None else torch.zeros(B, Cyb.shape[2], dtype=torch.float64, device=Xd.device)
    for lo in range(0, K, step):
        hi = min(K, lo + step)
        Xg = Xd[:, lo:hi]
        if Cb is not None:
            l = torch.bmm(Xg, Cb).clamp_max_(0.0).permute(1, 2, 0).contiguous()  # (n, M, B)
            gain += _gain_terms(l, aT, torch.zeros_like(ddw[lo:hi]), ddw[lo:hi],
                                None if doff is None else doff[lo:hi], kp, sm)[0]
        if Cyb is not None:
            k = torch.exp(torch.bmm(Xg, Cyb).clamp_max_(0.0))  # (B, n, n_c)
            nD += torch.bmm(ddw[lo:hi].T.unsqueeze(1).to(k.dtype), k).squeeze(1).double()  # (B, n_c)
    return gain, nD


def reference_pass(batches, chunks, r):
    """The rows of re-seeding's exact pass, as ``(rows, weights)`` blocks: the pool's chunks, or
    a random subset of :data:`RESEED_REFERENCE_ROWS` reference rows weighted up to the whole."""
    n_ref = len(batches.ref)
    if n_ref <= RESEED_REFERENCE_ROWS:
        for lo, hi in chunks:
            yield slice(lo, hi), r[lo:hi]
        return
    rows = torch.as_tensor(np.sort(batches.rng.choice(batches.ref, RESEED_REFERENCE_ROWS, replace=False)),
                           device=r.device)
    step = max(hi - lo for lo, hi in chunks)
    for lo in range(0, len(rows), step):
        block = rows[lo:lo + step]
        yield block, r[block] * (n_ref / RESEED_REFERENCE_ROWS)


#: seed of the fixed shuffle of a replica's data rows that candidate subsets are cut from
_CANDIDATE_SEED = 20260311


@functools.lru_cache(maxsize=32)
def _shuffle(n: int) -> np.ndarray:
    """The fixed permutation of ``n`` data rows that candidate subsets are cut from (read-only):
    the same for every replica and re-seeding with ``n`` data points, so it is drawn once."""
    out = np.random.default_rng([_CANDIDATE_SEED, n]).permutation(n)
    out.flags.writeable = False
    return out


def candidate_rows(data_weight: torch.Tensor, n_cand: int, step: int = 0) -> torch.Tensor:
    """Up to ``n_cand`` data rows per replica: the ``step``-th subset of a fixed shuffle.

    A replica's data rows (in pool order, which is canonical: :mod:`sparker.core.order`)
    are shuffled by a permutation that depends only on their number, and re-seeding call
    ``step`` takes the next ``n_cand`` of them (cyclically).  Successive calls therefore
    score different data points, and over the eight calls of a default fit up to
    ``8 n_cand`` distinct points are candidates, spread over the whole sample (a subset
    strided in pool order would follow the order's one projection direction and could
    miss a small clump at every call).  The choice depends on the pool as a set of
    points, not on the input's row order nor on the other replicas.

    Returns a long tensor of shape (B, n_cand) of pool row indices.
    """
    out = []
    mask = (data_weight > 0).cpu()
    for b in range(data_weight.shape[1]):
        rows = torch.nonzero(mask[:, b]).flatten()
        if len(rows) == 0:  # a toy without data points: any row will do (nothing to gain)
            rows = torch.arange(data_weight.shape[0])
        k = min(n_cand, len(rows))
        pick = torch.as_tensor(_shuffle(len(rows))[(step * k + np.arange(k)) % len(rows)])
        out.append(rows[pick])
    width = max(len(rows) for rows in out)  # pad (repeating rows) only up to the largest replica
    out = [rows[torch.arange(width) % len(rows)] for rows in out]
    return torch.stack(out).to(data_weight.device)


def reseed_kernels(Xa, chunks, centres, amps, sigma, r, dw, off, comp, opt, cand_idx, margin, *,
                   budget: int, block=candidate_block, batches=None):
    """Move each replica's least useful kernel to the largest unexplained excess.

    Like k-means implementations that re-seed empty clusters: if the best
    candidate's gain exceeds the smallest kernel gain by ``margin`` (loss
    units), that kernel jumps there with amplitude 0 and fresh Adam state.
    At most one kernel per replica moves per call.  With ``batches`` (a fit with
    ``reference_batch``) the scores come from :func:`reseed_scores_batched`.  Returns a
    (B,) 0/1 array.
    """
    B, M, _ = centres.shape
    if batches is None:
        kg, cg = reseed_scores(Xa, chunks, centres, amps, sigma, r, dw, off, comp, cand_idx,
                               budget=budget, block=block)
    else:  # a fit with reference_batch
        kg, cg = reseed_scores_batched(batches, Xa, chunks, centres, amps, sigma, r, dw, off, comp, cand_idx,
                                       budget=budget, block=block)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("reseed sigma=%.3f kernel gains %s best candidate gains %s", sigma,
                  kg.cpu().numpy().round(2), cg.max(1).values.cpu().numpy().round(2))
    worst = kg.argmin(1)  # (B,)
    moved = np.zeros(B, dtype=np.int64)
    for b in range(B):
        i = int(worst[b])
        Y = Xa[cand_idx[b], :-2].to(torch.float64)  # (n_cand, d)
        others = torch.cat([centres[b, :i], centres[b, i + 1:]])  # (M-1, d)
        gain = cg[b].clone()
        if len(others):  # a candidate within one width of another kernel is that kernel's business
            gain[torch.cdist(Y, others).min(1).values < sigma] = -math.inf
        c = int(gain.argmax())
        if not float(gain[c]) > float(kg[b, i]) + margin:
            continue
        _move(centres, amps, opt, b, i, Y[c])
        moved[b] = 1
    moved += _revive_dead(Xa, centres, amps, opt, kg, cg, cand_idx, sigma)
    return moved


#: A kernel whose removal changes its replica's loss by less than this (loss units) does nothing.
DEAD_GAIN = 1e-3


def _move(centres, amps, opt, b: int, i: int, y: torch.Tensor) -> None:
    """Kernel (b, i) restarts at ``y`` with amplitude 0 and fresh Adam state."""
    centres[b, i] = y
    amps[b, i] = 0.0
    opt.reset((b, i))


def _revive_dead(Xa, centres, amps, opt, kg, cg, cand_idx, sigma: float) -> np.ndarray:
    """Move every kernel that does nothing (gain below :data:`DEAD_GAIN`) onto a data point.

    A kernel left where the data are not (a broad kernel that modelled a global trend,
    stranded when the width shrank) has no gradient and would stay there, taking no
    part in the fit.  Each such kernel goes to the best remaining candidate (largest
    unexplained excess or deficit) at least ``sigma`` from every other centre, with
    amplitude 0: the loss does not change, and the kernel is back inside the data's
    support where it can follow a real excess.  Returns the number of kernels moved
    per replica, (B,).
    """
    B, M, _ = centres.shape
    moved = np.zeros(B, dtype=np.int64)
    dead = kg.abs() < DEAD_GAIN  # (B, M)
    for b in torch.nonzero(dead.any(1)).flatten().tolist():
        ranked = torch.argsort(cg[b], descending=True, stable=True).tolist()
        Y = Xa[cand_idx[b], :-2].to(torch.float64)  # (n_cand, d)
        for i in torch.nonzero(dead[b]).flatten().tolist():
            while ranked:
                y = Y[ranked.pop(0)]
                others = torch.cat([centres[b, :i], centres[b, i + 1:]])
                if not len(others) or float(((others - y) ** 2).sum(1).min()) >= sigma * sigma:
                    _move(centres, amps, opt, b, i, y)
                    moved[b] += 1
                    break
    return moved
