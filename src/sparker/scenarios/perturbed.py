r"""The perturbed uniform density of the MMDAgg and MMD-FUSE papers: ``perturbed_uniform``.

Needs only NumPy; see :mod:`sparker.scenarios` for the conventions every generator follows.

The reference is uniform on the unit cube :math:`[0, 1]^d`; the data follow the density

.. math::

    f_\theta(x) = 1 + s\, e^{d} \sum_{j \in \{1..p\}^d} \theta_j \prod_{r=1}^{d} G(p\, x_r - j_r),
    \qquad x \in [0, 1]^d,

with amplitude ``s = scale`` in [0, 1], ``p = n_perturbations`` cells per axis,
signs :math:`\theta_j = \pm 1` drawn at random (one per cell, fresh for every seed) and
the smooth signed bump

.. math::

    G(u) = \exp\!\left(-\frac{1}{1 - (4u + 3)^2}\right) \text{ on } (-1, -\tfrac12), \quad
    G(u) = -\exp\!\left(-\frac{1}{1 - (4u + 1)^2}\right) \text{ on } (-\tfrac12, 0),

zero elsewhere.  ``G(p x_r - j_r)`` lives on cell ``j`` only: a positive half bump on the
first half of the cell along axis ``r`` and a negative one on the second half.  Each
half integrates to the same absolute value, so every cell's perturbation integrates to 0
and :math:`f_\theta` is a density; :math:`|G| \le e^{-1}`, so
:math:`1 - s \le f_\theta \le 1 + s` and the density is non-negative for ``s <= 1``.
It is the construction of Schrab et al., "MMD Aggregated Two-Sample Test" (JMLR 2023,
arXiv:2110.15073), eq. (17) with smoothness 1 and :math:`c_d = e^d p\, s`, as used again by
Biggs, Schrab and Gretton, "MMD-FUSE" (NeurIPS 2023, arXiv:2306.08777).

Samples are drawn by rejection from the uniform proposal under the envelope ``1 + s``.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_fraction, check_int
from ._common import as_f64, make_truth, random_streams
from .registry import register

__all__ = ["perturbation_bump", "perturbed_uniform", "perturbed_uniform_density"]

#: at most this many half-cell bump centres, (2 p)^d, are reported in ``truth``
_MAX_CENTRES = 65_536


def perturbation_bump(u) -> np.ndarray:
    """The signed bump G(u) of the perturbed uniform density (formula in the module docstring).

    Parameters
    ----------
    u : array-like

    Returns
    -------
    ndarray of the shape of ``u``
        Positive on (-1, -1/2) with peak e^-1 at -3/4, negative on (-1/2, 0) with
        trough -e^-1 at -1/4, zero elsewhere; ``integral G = 0``.
    """
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros_like(u)
    pos = (u > -1.0) & (u < -0.5)
    neg = (u > -0.5) & (u < 0.0)
    out[pos] = np.exp(-1.0 / (1.0 - (4.0 * u[pos] + 3.0) ** 2))
    out[neg] = -np.exp(-1.0 / (1.0 - (4.0 * u[neg] + 1.0) ** 2))
    return out


def perturbed_uniform_density(x, theta, scale: float) -> np.ndarray:
    """The density f_theta of the perturbed uniform scenario at the rows of ``x``.

    Parameters
    ----------
    x : array-like of shape (n_samples, d)
    theta : array-like of shape (p,) * d
        Sign (+1 or -1) of each cell's perturbation; ``theta[j_1 - 1, ..., j_d - 1]``
        is cell ``j`` (``truth["theta"]`` of :func:`perturbed_uniform`).
    scale : float
        Amplitude ``s`` in [0, 1].

    Returns
    -------
    ndarray of shape (n_samples,)
        ``f_theta(x)``, zero outside the unit cube.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))  # (n, d)
    theta = np.asarray(theta, dtype=np.float64)
    d, p = x.shape[1], theta.shape[0]
    if theta.shape != (p,) * d:
        raise ValueError(f"theta: expected shape {(p,) * d} for {d}-dimensional x, got {theta.shape}")
    inside = np.all((x >= 0.0) & (x <= 1.0), axis=1)  # (n,)
    cell = np.clip(np.floor(p * x), 0, p - 1).astype(np.intp)  # (n, d): j - 1 of the cell holding x
    bumps = np.prod(perturbation_bump(p * x - (cell + 1)), axis=1)  # (n,): prod_r G(p x_r - j_r)
    signs = theta[tuple(cell.T)]  # (n,): theta_j of the cell holding x
    return np.where(inside, 1.0 + scale * math.e**d * signs * bumps, 0.0)


def _rejection_sample(rng, n: int, d: int, theta: np.ndarray, scale: float) -> np.ndarray:
    """``n`` rows (n, d) from f_theta: uniform proposals kept with probability f_theta / (1 + s)."""
    envelope = 1.0 + scale
    kept, n_kept = [], 0
    while n_kept < n:
        n_try = math.ceil(1.1 * (n - n_kept) * envelope) + 16  # the acceptance rate is 1 / envelope
        proposal = rng.uniform(0.0, 1.0, size=(n_try, d))
        height = rng.uniform(0.0, envelope, size=n_try)
        accepted = proposal[height <= perturbed_uniform_density(proposal, theta, scale)]
        kept.append(accepted)
        n_kept += len(accepted)
    return np.concatenate(kept)[:n]


def _bump_centres(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ((2p)^d, d) of the half-cell bumps and the sign of f_theta - 1 at each."""
    p, d = theta.shape[0], theta.ndim
    k = np.arange(2 * p)  # half-cell index along one axis
    grid = np.stack(np.meshgrid(*([k] * d), indexing="ij"), axis=-1).reshape(-1, d)  # ((2p)^d, d)
    centres = (grid + 0.5) / (2 * p)  # peak of G(p x - j) at x = (j - 3/4) / p or (j - 1/4) / p
    half_sign = np.where(grid % 2 == 0, 1.0, -1.0).prod(axis=1)  # ((2p)^d,): sign of prod_r G
    return centres, theta[tuple((grid // 2).T)] * half_sign


@register("perturbed_uniform")
def perturbed_uniform(
    seed: int = 0,
    *,
    n_reference: int = 500,
    n_data: int = 500,
    d: int = 1,
    scale: float = 0.5,
    n_perturbations: int = 2,
):
    """Uniform unit cube; the data density has smooth signed bumps (MMDAgg / MMD-FUSE benchmark).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=500
        Reference points, uniform on [0, 1]^d (the papers' uniform sample).
    n_data : int, default=500
        Data points drawn from the perturbed density (the papers' perturbed sample).
    d : int, default=1
        Dimension; the papers use 1 and 2.
    scale : float, default=0.5
        Amplitude ``s`` of the perturbation in [0, 1]: the data density lies between
        ``1 - s`` and ``1 + s``; 0 gives a null sample.  Published cases: d = 1 with
        0.3 and 0.5, d = 2 with 0.2 to 1.
    n_perturbations : int, default=2
        Number ``p`` of cells per axis (``p^d`` cells with one random sign each), as in
        the papers.

    Returns
    -------
    reference : ndarray of shape (n_reference, d)
    data : ndarray of shape (n_data, d)
    truth : dict
        See :mod:`sparker.scenarios`.  ``is_anomaly`` is all False: the alternative
        is a change of density, not a set of anomalous points, and no data point is
        anomalous on its own.  ``centres`` holds the ``(2p)^d`` half-cell bump
        centres, where ``|f_theta - 1|`` peaks at ``s`` (empty when ``scale=0``).
        Extra keys: ``signs`` (shape ``(len(centres),)``: +1 where the data
        over-populate, -1 where they under-populate), ``theta`` (the cell signs,
        shape ``(p,) * d``, drawn for every seed) and ``effect`` ("perturbation").

    Notes
    -----
    The density, the bump and the sampler are described in
    :mod:`sparker.scenarios.perturbed`; :func:`perturbed_uniform_density` evaluates
    it.  In the papers the perturbed sample is ``X`` and the uniform one ``Y``; here
    the uniform sample is the reference.  Published power at level 0.05 (200
    repetitions, d = 1, n = m = 500, p = 2): scale 0.5: MMDAgg 0.985, MMD-FUSE 0.975,
    MMD with the median bandwidth 0.675; scale 0.3: 0.605, 0.505 and 0.29.
    """
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_data = check_int(n_data, name="n_data", minimum=1)
    d = check_int(d, name="d", minimum=1)
    scale = check_fraction(scale, name="scale")
    p = check_int(n_perturbations, name="n_perturbations", minimum=1)
    if (2 * p) ** d > _MAX_CENTRES:
        raise ValueError(f"d: (2 * n_perturbations)^d bump centres must be at most {_MAX_CENTRES}, "
                         f"got d={d} with n_perturbations={p}")
    rng_theta, rng_ref, rng_data = random_streams(seed, 3)
    theta = rng_theta.choice([-1.0, 1.0], size=(p,) * d)  # (p,)*d: one sign per cell
    reference = rng_ref.uniform(0.0, 1.0, size=(n_reference, d))
    data = _rejection_sample(rng_data, n_data, d, theta, scale)
    centres, signs = _bump_centres(theta) if scale > 0 else (np.empty((0, d)), np.empty(0))
    params = {"n_reference": n_reference, "n_data": n_data, "d": d, "scale": scale, "n_perturbations": p}
    truth = make_truth(np.zeros(n_data, dtype=bool), centres, params, [f"x{i}" for i in range(d)],
                       signs=as_f64(signs), theta=as_f64(theta), effect="perturbation")
    return as_f64(reference), as_f64(data), truth
