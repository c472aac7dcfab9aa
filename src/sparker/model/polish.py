r"""Amplitudes solved for fixed centres and width: a few projected Newton steps.

For fixed centres and width the model is linear in the amplitudes,
:math:`f_b(x) = \sum_i a_{bi} \phi_{bi}(x)` (the gates do not depend on them), so each
replica's penalised loss

.. math::

    P_b(a) = \sum_x r_b(x) (e^{f_b(x)} - 1) - d_b(x) f_b(x) + \lambda \sum_i |a_i|,
    \qquad |a_i| \le a_{\max},

is convex in its M amplitudes.  Adam moves an amplitude by about its step size per
epoch, so an amplitude whose optimum moved while the width shrank (a kernel on a dense
excess whose amplitude wants the clip, a deficit kernel whose optimum rose as its
expected count fell) can still be travelling when training ends.  :func:`solve_amplitudes`
finds the optimum directly, by Newton steps on the M x M Hessian
:math:`\sum_x r e^{f} \phi \phi^T`, with the bound and L1 handled by fixing the
coordinates that sit at a bound (or at zero) and would leave it, and a halving line
search, replica by replica.  Each step is one pass over the rows; the trainer calls it
once, where the width schedule ends (``docs/method.md``, "Training").
"""

from __future__ import annotations

import torch

from ..core.kernels import augment_centres, augment_centres_by_replica
from ..core.schedules import REACH
from .reseed import reference_pass
from .step import fused_gates

__all__ = ["batch_rows", "pool_rows", "solve_amplitudes", "solve_epoch"]

#: Newton steps at most, and the predicted decrease of the next step, relative to the loss
#: (plus one), below which a replica stops: Newton converges quadratically, so stopping late
#: costs a step or two and leaves a solution that does not depend on the row chunking.
MAX_STEPS, TOL = 30, 1e-12


def _pass(rows, centres, amps, sigma, comp, dtype):
    """Penalty-free loss (B,), gradient (B, M) and Hessian (B, M, M) over ``rows``: an
    iterable of ``(Xa, Xl, r, dw, off)`` row blocks, ``Xa`` and ``Xl`` of shape (n, d+2)
    (rows shared by the replicas) or (B, n, d+2) (row j of replica b is ``Xa[b, j]``)."""
    B, M, _ = centres.shape
    dev = amps.device
    loss = torch.zeros(B, dtype=torch.float64, device=dev)
    grad = torch.zeros(B, M, dtype=torch.float64, device=dev)
    hess = torch.zeros(B, M, M, dtype=torch.float64, device=dev)
    aT = amps.T.to(dtype)  # (M, B)
    kp, sm = comp.k_power, comp.softmax
    centre_rows = {}  # the centres' augmented columns, once per layout and precision of the rows
    for Xa, Xl, r, dw, off in rows:
        key = (Xl.dim(), Xl.dtype)
        if key not in centre_rows:
            centre_rows[key] = (augment_centres(centres.transpose(0, 1).to(Xl.dtype), sigma) if Xl.dim() == 2
                                else augment_centres_by_replica(centres.to(Xl.dtype), sigma))
        C = centre_rows[key]
        if Xl.dim() == 2:  # shared rows: one product for every replica, kernel-major columns (d+2, M*B)
            l = (Xl @ C).to(dtype).clamp_max(0.0).view(Xl.shape[0], M, B)
        else:  # each replica's own rows: (B, d+2, M)
            l = torch.bmm(Xl, C).to(dtype).clamp_max(0.0).permute(1, 2, 0)  # (n, M, B)
        phi = fused_gates(l, kp, sm)[2]  # (n, M, B)
        f = (phi * aT).sum(1)  # (n, B)
        if off is not None:
            f = f + off
        ef = torch.exp(f.double())
        r64, d64 = r.double(), dw.double()
        loss += (r64 * (ef - 1.0) - d64 * f.double()).sum(0)
        p64 = phi.double()
        grad += torch.einsum("nmb,nb->bm", p64, r64 * ef - d64)
        hess += torch.einsum("nmb,nkb,nb->bmk", p64, p64, r64 * ef)
    return loss, grad, hess


def solve_amplitudes(rows, centres, amps, sigma, comp, *, l1: float, a_min: float, a_max: float,
                     dtype=torch.float32) -> torch.Tensor:
    """Amplitudes (B, M) that minimise each replica's penalised loss for fixed centres.

    ``rows``: a callable returning a fresh iterable of ``(Xa, Xl, r, dw, off)`` row blocks
    (all the rows of the loss, each with its weights); ``amps``: the starting point
    (B, M), left unchanged; amplitudes stay in ``[a_min, a_max]``.  Never worse than the
    start: a replica keeps the best point it evaluated.
    """
    B, M = amps.shape
    a = amps.detach().to(torch.float64).clone()
    best_a, best_p = a.clone(), torch.full((B,), float("inf"), dtype=torch.float64, device=a.device)
    base = a.clone()  # the point the current Newton step starts from
    direction = torch.zeros_like(a)
    t = torch.zeros(B, dtype=torch.float64, device=a.device)  # step length along direction
    active = torch.ones(B, dtype=torch.bool, device=a.device)
    eye = torch.eye(M, dtype=torch.float64, device=a.device)
    for _ in range(MAX_STEPS):
        loss, grad, hess = _pass(rows(), centres, a, sigma, comp, dtype)
        pen = loss + l1 * a.abs().sum(1)
        better = pen < best_p
        # a replica whose last step did not improve halves it (from the same base point)
        worse = active & ~better
        if worse.any():
            t[worse] *= 0.5
            done = worse & (t < 1e-3)
            active &= ~done
        improved = active & better
        best_a[better], best_p[better] = a[better], pen[better]
        # a fresh Newton direction for the replicas that improved; a replica whose next step
        # would gain (about) nothing has arrived
        if improved.any():
            d, gp = _newton_direction(a[improved], grad[improved], hess[improved], eye, l1, a_min, a_max)
            arrived = -(gp * d).sum(1) < TOL * (1.0 + pen[improved].abs())
            idx = torch.nonzero(improved).flatten()
            active[idx[arrived]] = False
            go = idx[~arrived]
            base[go], direction[go], t[go] = a[go], d[~arrived], 1.0
        if not active.any():
            break
        a = torch.where(active.unsqueeze(1), _project(base + t.unsqueeze(1) * direction, base, a_min, a_max),
                        best_a)
    return best_a.to(amps.dtype)


def _newton_direction(a, g, H, eye, l1, a_min, a_max):
    """Newton direction of the penalised loss on the free coordinates (others held), and the
    penalised gradient there (zero on the held ones)."""
    s = torch.sign(a)
    zero = s == 0
    # L1: away from zero its gradient is l1 sign(a); at zero a coordinate moves only if the
    # loss's slope beats the penalty, towards -sign(g)
    s = torch.where(zero, -torch.sign(g) * (g.abs() > l1), s)
    gp = g + l1 * s
    held = (zero & (s == 0)) | ((a >= a_max) & (gp < 0)) | ((a <= a_min) & (gp > 0))
    free = ~held
    Hf = H * (free.unsqueeze(1) & free.unsqueeze(2)) + eye * (~free).unsqueeze(1).double()
    Hf = Hf + eye * (1e-9 * Hf.diagonal(dim1=1, dim2=2).abs().amax(1).clamp_min(1e-12)).view(-1, 1, 1)
    gp = torch.where(free, gp, torch.zeros_like(gp))
    d = torch.linalg.solve(Hf, -gp.unsqueeze(-1)).squeeze(-1)
    # a coordinate whose Newton move goes uphill on its own (the coupling through the Hessian
    # asks it to cross zero or a bound) stays: what is left is a descent direction along which
    # short steps leave every orthant and bound alone, so the halving search always gains
    return torch.where(d * gp > 0, torch.zeros_like(d), d), gp


def _project(x, base, a_min, a_max):
    """The box, and the L1 orthant: a coordinate that would cross zero stops at zero."""
    crossed = (torch.sign(x) * torch.sign(base)) < 0
    x = torch.where(crossed, torch.zeros_like(x), x)
    return x.clamp(a_min, a_max)


def solve_epoch(epochs: int) -> int:
    """The epoch whose step starts from solved amplitudes: where the width schedule reaches its
    end width (:func:`sparker.core.schedules.width_schedule`'s ``reach``, 90%), after that
    epoch's re-seeding; -1 (never) for fits too short to have a settling window after it."""
    return int(round(REACH * epochs)) if epochs >= 10 else -1


def pool_rows(Xa, Xl, r, dw, off, chunks):
    """The whole pool as the row blocks :func:`~sparker.model.polish.solve_amplitudes` reads
    (a callable: each Newton step reads them again)."""
    def rows():
        for lo, hi in chunks:
            yield Xa[lo:hi], Xl[lo:hi], r[lo:hi], dw[lo:hi], None if off is None else off[lo:hi]
    return rows


def batch_rows(batches, chunks, r, off):
    """The rows a fit with ``reference_batch`` solves its amplitudes on (a callable, like
    :func:`pool_rows`): every data row of each replica, and the reference rows of
    re-seeding's exact pass (the whole reference, or a fixed random subset of
    ``RESEED_REFERENCE_ROWS`` rows weighted up to it), the same at every Newton step."""
    reference = list(reference_pass(batches, chunks, r))
    Xa, Xl = batches.Xa, batches.Xl
    Xd, Xld = batches.data
    Xld = Xd if Xld is None else Xld
    step = max(hi - lo for lo, hi in chunks)

    def rows():
        for sel, w in reference:
            yield Xa[sel], Xl[sel], w, torch.zeros_like(w), None if off is None else off[sel]
        for lo in range(0, Xd.shape[1], step):
            dw = batches.data_dw[lo:lo + step]
            yield (Xd[:, lo:lo + step], Xld[:, lo:lo + step], torch.zeros_like(dw), dw,
                   None if batches.data_off is None else batches.data_off[lo:lo + step])
    return rows
