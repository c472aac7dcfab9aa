r"""Gaussian kernel tiles shared by the kernel baselines.

.. math::

    K(x, y) = \exp\!\left(-\frac{\lVert x - y \rVert^2}{2 \sigma^2}\right),
    \qquad \lVert x - y \rVert^2 = \lVert x \rVert^2 + \lVert y \rVert^2 - 2\, x \cdot y
    \ \text{(clamped at 0)}.

``sigma`` is the same width as SparKer's kernels (standardised units), so
``K(x, c)`` of the kernel NPLM and a SparKer kernel of width ``sigma`` agree.
"""

from __future__ import annotations

import torch


def sq_distances(X: torch.Tensor, Y: torch.Tensor, sq_x: torch.Tensor | None = None,
                 sq_y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared distances (n, m) between the rows of X (n, d) and Y (m, d), clamped >= 0."""
    if sq_x is None:
        sq_x = (X * X).sum(1)
    if sq_y is None:
        sq_y = (Y * Y).sum(1)
    D2 = torch.addmm(sq_x[:, None] + sq_y[None, :], X, Y.T, alpha=-2.0)  # (n, m)
    return D2.clamp_(min=0.0)


def gaussian(D2: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian kernel from squared distances: ``exp(-D2 / (2 sigma^2))``, same shape."""
    return torch.exp(D2 * (-0.5 / (sigma * sigma)))


def gaussian_kernel(X: torch.Tensor, Y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Kernel matrix K(X, Y): (n, m)."""
    return gaussian(sq_distances(X, Y), sigma)
