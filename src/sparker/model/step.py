"""The fused hot path of a training step: loss and gradient sums of one chunk of rows.

:func:`chunk_terms` works on rows shared by all replicas (the full-batch step and
reference slices), :func:`gathered_terms` on rows of each replica's own (the data rows
under ``reference_batch``); both reduce to :func:`terms`, the element-wise part.  The
trainer (:mod:`sparker.model.trainer`) sums them over chunks and compiles them for large
runs.
"""

from __future__ import annotations

import torch

__all__ = ["F_CLAMP", "centre_gradient", "chunk_terms", "fused_gates", "gathered_terms", "terms"]

#: In float32 (and lower) precision, ``exp(f)`` is taken of ``min(f, F_CLAMP)``: only
#: reachable by stacks or ``competition="none"`` with large amplitudes, it keeps the
#: loss and its gradient finite (``0 * inf`` would give NaN); float64 is left exact.
F_CLAMP = 60.0


def chunk_terms(Xa, Xl, Ca, aT, r, dw, off, kp: int, sm: int, need_grad: bool):
    """Loss and gradient sums of one row chunk (the fused hot path).

    Xa: (n, d+2) augmented pool rows; Xl: the same rows in the precision of the
    log-kernels (``Xa`` itself, or its float64 copy where float32 would cancel: see
    :func:`sparker.model.trainer.logit_pool`); Ca: (d+2, M*B) in that precision, with columns ordered
    kernel-major (column ``i*B + b`` is kernel i of replica b); aT: (M, B);
    r, dw: (n, B); off: (n, B) or None (fixed log ratio of earlier layers).
    The gate is ``phi = k**kp * s**sm`` (see :class:`~sparker.core.kernels.Competition`).

    With ``e = exp(l - max_j l_j)`` and ``S = sum_j e_j``, ``k = e * exp(max l)``
    and ``s = e / S``, so one exponential per (point, kernel) gives both.  The
    kernel-major layout keeps the replicas contiguous, so the reductions over
    kernels are vector adds over B.
    """
    n = Xa.shape[0]
    M, B = aT.shape
    l = (Xl @ Ca).to(Xa.dtype).clamp_max(0.0).view(n, M, B)  # (n, M, B) log-kernels
    loss, grad_a, G = terms(l, aT, r, dw, off, kp, sm, need_grad)
    if not need_grad:
        return loss, None, None, None
    G = G.view(n, M * B)  # (n, M*B)  dL/dl
    return loss, grad_a, G.sum(0), G.T @ Xa[:, :-2]  # GX: (M*B, d)


def gathered_terms(Xg, Xlg, Cb, aT, r, dw, off, kp: int, sm: int, terms_fn=None):
    """:func:`chunk_terms` on rows of each replica's own: row ``j`` of replica ``b`` is ``Xg[b, j]``.

    Xg: (B, n, d+2); Xlg: the same rows in the precision of the log-kernels; Cb: (B, d+2, M);
    aT: (M, B); r, dw: (n, B); off: (n, B) or None; ``terms_fn``: :func:`terms` or its
    compiled form (the batched products stay eager: compiled, they run several times slower).
    Returns the same sums as :func:`chunk_terms` (loss (B,), amplitude gradient (M, B),
    ``sum dL/dl`` (M*B,) and ``GX`` (M*B, d), kernel-major).
    """
    B, n, _ = Xg.shape
    M = aT.shape[0]
    l = torch.bmm(Xlg, Cb).to(Xg.dtype).clamp_max(0.0).permute(1, 2, 0).contiguous()  # (n, M, B) log-kernels
    loss, grad_a, G = (terms_fn or terms)(l, aT, r, dw, off, kp, sm, True)
    GX = torch.bmm(G.permute(2, 1, 0).contiguous(), Xg[:, :, :-2])  # (B, M, d); contiguous: 3x faster
    return loss, grad_a, G.reshape(n, M * B).sum(0), GX.transpose(0, 1).reshape(M * B, -1)


def fused_gates(l, kp: int, sm: int):
    """``e = exp(l - max_j l_j)`` (n, M, B), the softmax normaliser ``S = sum_j e_j`` (n, 1, B;
    None without softmax) and the gates ``phi = k**kp * s**sm`` (n, M, B) of log-kernels ``l``."""
    m = l.amax(1, keepdim=True)  # (n, 1, B)
    e = torch.exp(l - m)  # (n, M, B), in (0, 1]
    if sm:
        S = e.sum(1, keepdim=True)  # (n, 1, B), >= 1
        logc = kp * m - torch.log(S)
    else:
        S = None
        logc = m
    return e, S, (e * e if kp + sm == 2 else e) * torch.exp(logc)


def terms(l, aT, r, dw, off, kp: int, sm: int, need_grad: bool):
    """Loss (B,), amplitude gradient (M, B) and ``dL/dl`` (n, M, B) of log-kernels ``l`` (n, M, B)."""
    e, S, phi = fused_gates(l, kp, sm)
    aphi = phi * aT  # (n, M, B)
    f = aphi.sum(1)  # (n, B)
    ftot = f if off is None else f + off
    ef = torch.exp(ftot if ftot.dtype == torch.float64 else ftot.clamp_max(F_CLAMP))  # (n, B)
    loss = (r * (ef - 1.0) - dw * ftot).double().sum(0)  # (B,), float64 sum
    if not need_grad:
        return loss, None, None
    g = r * ef - dw  # (n, B)  dL/df
    grad_a = (phi * g.unsqueeze(1)).sum(0)  # (M, B)
    G = (kp + sm) * aphi
    if sm:
        G = G - (e / S) * f.unsqueeze(1)
    return loss, grad_a, G * g.unsqueeze(1)  # (n, M, B)  dL/dl


def centre_gradient(gs, gx, centres, sigma: float):
    """The centres' gradient (B, M, d) from the chunk sums ``sum dL/dl`` (M*B,) and ``GX``
    (M*B, d), kernel-major: ``(GX - mu sum dL/dl) / sigma^2``."""
    B, M, d = centres.shape
    inv = 1.0 / (sigma * sigma)
    gs = gs.view(M, B).T.unsqueeze(-1)  # (B, M, 1)
    gx = gx.view(M, B, d).transpose(0, 1)  # (B, M, d)
    return (gx - centres * gs) * inv
