r"""Gaussian log-kernels and the competition modes that combine them.

For M kernels with centres :math:`\mu_i` and one shared width :math:`\sigma`

.. math::

    l_i(x) = -\frac{\lVert x - \mu_i \rVert^2}{2\sigma^2}, \qquad
    k_i(x) = e^{l_i(x)}, \qquad
    s_i(x) = \frac{e^{l_i(x)}}{\sum_j e^{l_j(x)}} .

A competition mode turns the log-kernels into per-kernel gates
:math:`\phi_i(x)` and the model is :math:`f(x) = \sum_i a_i \phi_i(x)`:

=================  ===========================  ==============================================
mode               :math:`\phi_i`               :math:`\partial f / \partial l_j`
=================  ===========================  ==============================================
``none``           :math:`k_i`                  :math:`a_j \phi_j`
``softmax``        :math:`s_i`                  :math:`\phi_j (a_j - f)`
``kernel-softmax`` :math:`k_i s_i`              :math:`2 a_j \phi_j - s_j f`
=================  ===========================  ==============================================

The gates are always computed in log space (``log phi``) so that kernels that
underflow in high dimension give exact zeros, never NaN.  The last column is
what the trainer needs for its analytic gradient; the functions here are also
differentiable by autograd, which the tests use to check the analytic form.
See ``docs/method.md``, sections "The model" and "Competition modes".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = [
    "COMPETITIONS",
    "Competition",
    "get_competition",
    "log_kernels",
    "augment_pool",
    "augment_centres",
    "evaluate",
]


def log_kernels(X: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """Log-kernels ``l_i(x)`` via ``||x||^2 + ||mu||^2 - 2 x.mu`` (clamped at 0).

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    centres : Tensor of shape (..., n_kernels, n_features)
    sigma : float

    Returns
    -------
    Tensor of shape (n_samples, ..., n_kernels)
    """
    lead = centres.shape[:-2]
    C = centres.reshape(-1, centres.shape[-1])  # (K, d)
    sq = (X * X).sum(1, keepdim=True) + (C * C).sum(1) - 2.0 * (X @ C.T)  # (n, K)
    sq = sq.clamp_min(0.0)
    return (-sq / (2.0 * sigma * sigma)).reshape(X.shape[0], *lead, centres.shape[-2])


def augment_pool(X: torch.Tensor) -> torch.Tensor:
    """``[x, 1, ||x||^2]`` so that one product with :func:`augment_centres` gives ``l``.

    Returns a tensor of shape (n_samples, n_features + 2).
    """
    ones = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    return torch.cat([X, ones, (X * X).sum(1, keepdim=True)], dim=1)


def augment_centres(centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """Right-hand factor for ``l = augment_pool(X) @ augment_centres(C, sigma)``.

    ``centres`` has shape (B, M, d); the result has shape (d + 2, B*M) and
    stacks ``mu / s2``, ``-||mu||^2 / (2 s2)`` and ``-1 / (2 s2)``.
    """
    B, M, d = centres.shape
    C = centres.reshape(B * M, d)
    inv = 1.0 / (sigma * sigma)
    cc = (C * C).sum(1, keepdim=True)  # (BM, 1)
    col = torch.full_like(cc, -0.5 * inv)
    return torch.cat([C * inv, -0.5 * inv * cc, col], dim=1).T.contiguous()


def augment_centres_by_replica(centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`augment_centres` with one factor per replica, shape (B, d + 2, M): for
    ``torch.bmm`` with rows of each replica's own (B, n, d + 2)."""
    B, M, d = centres.shape
    return augment_centres(centres, sigma).view(d + 2, B, M).permute(1, 0, 2).contiguous()


@dataclass(frozen=True)
class Competition:
    """One way of combining log-kernels into gates (see module docstring).

    Attributes
    ----------
    name : str
    needs_lse : bool
        Whether the gates use the softmax normaliser ``logsumexp_j l_j``.
    log_gate : callable ``(l, lse) -> log phi``
    dfdl : callable ``(l, lse, phi, a, f) -> df/dl``
        ``phi`` and ``l`` have shape (..., M), ``a`` broadcasts to it and
        ``f`` has shape (..., 1).
    local : bool
        Whether ``f`` vanishes far from every kernel.
    k_power, softmax : int
        The gate is ``phi_i = k_i**k_power * s_i**softmax``, so that
        ``df/dl_j = (k_power + softmax) a_j phi_j - softmax s_j f``; the fused
        trainer uses this form (one exponential per kernel and point).
    """

    name: str
    needs_lse: bool
    log_gate: Callable
    dfdl: Callable
    local: bool
    description: str
    k_power: int
    softmax: int


def _ks_dfdl(l, lse, phi, a, f):
    return 2.0 * a * phi - torch.exp(l - lse) * f


COMPETITIONS: dict[str, Competition] = {
    c.name: c
    for c in (
        Competition(
            name="kernel-softmax",
            needs_lse=True,
            log_gate=lambda l, lse: 2.0 * l - lse,
            dfdl=_ks_dfdl,
            local=True,
            description="f = sum_i a_i k_i s_i: local and competitive (SparKer default)",
            k_power=1,
            softmax=1,
        ),
        Competition(
            name="softmax",
            needs_lse=True,
            log_gate=lambda l, lse: l - lse,
            dfdl=lambda l, lse, phi, a, f: phi * (a - f),
            local=False,
            description="f = sum_i a_i s_i: soft Voronoi gating, not local (ablation)",
            k_power=0,
            softmax=1,
        ),
        Competition(
            name="none",
            needs_lse=False,
            log_gate=lambda l, lse: l,
            dfdl=lambda l, lse, phi, a, f: a * phi,
            local=True,
            description="f = sum_i a_i k_i: plain RBF expansion (ablation)",
            k_power=1,
            softmax=0,
        ),
    )
}


def get_competition(name: str) -> Competition:
    """Look a competition mode up by name, with a clear error for unknown ones."""
    try:
        return COMPETITIONS[name]
    except KeyError:
        raise ValueError(
            f"competition: unknown mode {name!r}; choose one of {sorted(COMPETITIONS)}"
        ) from None


def gates(l: torch.Tensor, competition: Competition) -> torch.Tensor:
    """Gates ``phi_i`` from log-kernels ``l`` of shape (..., M)."""
    lse = torch.logsumexp(l, dim=-1, keepdim=True) if competition.needs_lse else None
    return torch.exp(competition.log_gate(l, lse))


def evaluate(
    X: torch.Tensor,
    centres: torch.Tensor,
    amplitudes: torch.Tensor,
    sigma: float,
    competition: Competition,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model output and gates at points ``X`` (differentiable, unfused).

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    centres : Tensor of shape (B, M, n_features)
    amplitudes : Tensor of shape (B, M)

    Returns
    -------
    f : Tensor of shape (n_samples, B)
    phi : Tensor of shape (n_samples, B, M)
    """
    l = log_kernels(X, centres, sigma)  # (n, B, M)
    phi = gates(l, competition)  # (n, B, M)
    return (phi * amplitudes).sum(-1), phi
