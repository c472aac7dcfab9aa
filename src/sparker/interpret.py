r"""Interpretation of a fitted SparKer model: which kernels matter, which points they own.

Everything here follows section 5 of the specification.  For kernel :math:`i` with gate
:math:`\phi_i` (:math:`\phi_i = s_i k_i` for the default ``kernel-softmax`` mode, see
:mod:`sparker.kernels`), amplitude :math:`a_i`, data weights :math:`d_x` and reference
weights :math:`w_x`:

.. math::

    n_{D,i} = \sum_{x \in D} d_x\, \phi_i(x), \qquad
    n_{R,i} = \sum_{x \in R} w_x\, \phi_i(x), \qquad
    \text{local log ratio}_i = \log(n_{D,i} / n_{R,i}),

    Z_i = \operatorname{sign}(n_{D,i} - n_{R,i})
          \sqrt{2\,\big[n_{D,i} \log(n_{D,i} / n_{R,i}) - (n_{D,i} - n_{R,i})\big]} ,

the signed Poisson likelihood-ratio significance of the soft data count against the
count the reference predicts (positive for an excess, negative for a deficit).

**Look-elsewhere caveat.**  :math:`Z_i` is a *local* significance: the kernels were moved
by the fit onto the places where the data fluctuate most, and several kernels are looked
at, so :math:`Z_i` overstates how unlikely the region is under the reference.  Use it to
rank and describe regions; the only calibrated statement is the global p-value of the
test statistic from null toys (:func:`sparker.test`).

**Active kernels.**  A kernel is *active* when

- ``|a_i| >= ACTIVE_AMPLITUDE_FRACTION * a_max`` (default 5 % of the clipping bound, i.e.
  0.5 for ``a_max = 10``: the kernel changes the density by at least ~65 % at its centre),
- ``|Z_i| >= ACTIVE_MIN_ZSCORE`` (default 3),
- and it is not a duplicate of another kernel (below).

On ``square2d`` (three clumps of 30 points on 2,000 uniform points, 4 kernels) the clump
kernels have :math:`Z` between about 4.5 and 6 and amplitudes 1.4 - 2.5, while the fourth
kernel (a small deficit next to a clump) has :math:`|Z| < 2`; on null samples of the same
size no kernel passed both thresholds (largest ``|Z|`` 2.1 - 2.7 over five seeds,
``benchmarks/localisation.py``).
Inactive kernels stay in the table, flagged as such.

**Duplicates.**  Two kernels of the same layer whose centres lie within one kernel width
of each other (standardised units) and whose amplitudes have the same sign describe one
region.  Such kernels are grouped (transitively); the group's *representative* is the
member that passes the amplitude threshold with the largest ``|Z|`` (else simply the
largest ``|Z|``); every other member gets ``duplicate_of = <representative index>`` and
is never active.  Because the softmax gates split points between overlapping kernels,
the soft counts of a group add up: the region's counts are the sums over its members.

**Per point.**  ``f(x) = sum_i f_i(x)`` with the kernel's share
:math:`f_i(x) = a_i \phi_i(x)`; the *owner* of :math:`x` is
:math:`\arg\max_i s_i(x) k_i(x)`, computed in log space as
:math:`2 l_i(x) - \operatorname{logsumexp}_j l_j(x)` so that it is defined even where every
kernel underflows (within one layer this is simply the nearest centre).

**Flagging points.**  With :math:`e^{f(x)} = n_D(x) / (w\, n_R(x))`, the fraction of the
data density at :math:`x` in excess of the reference is :math:`1 - e^{-f(x)}`: the
probability that a data point there is anomalous when the reference describes the normal
part.  A point is *flagged* when this fraction exceeds ``min_excess_fraction`` (default
0.5, i.e. :math:`f(x) > \log 2`: the point is more likely anomalous than normal) **and**
its owner's region (the owner, or the kernel it duplicates) is active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACTIVE_AMPLITUDE_FRACTION",
    "ACTIVE_MIN_ZSCORE",
    "MIN_EXCESS_FRACTION",
    "Explanation",
    "active_kernels",
    "find_duplicates",
    "flag_threshold",
    "marginal_relevance",
    "poisson_zscore",
    "significance_priority",
]

#: Minimum ``|local Z|`` of an active kernel.
ACTIVE_MIN_ZSCORE = 3.0
#: Minimum ``|amplitude| / a_max`` of an active kernel.
ACTIVE_AMPLITUDE_FRACTION = 0.05
#: Default minimum excess fraction ``1 - exp(-f(x))`` of a flagged point (``f > log 2``).
MIN_EXCESS_FRACTION = 0.5


def poisson_zscore(n_observed, n_expected) -> np.ndarray:
    r"""Signed Poisson likelihood-ratio Z of observed against expected counts.

    Parameters
    ----------
    n_observed : array-like of shape (n,)
        Observed (soft) counts, >= 0; they need not be integers.
    n_expected : array-like of shape (n,)
        Expected counts, >= 0.

    Returns
    -------
    ndarray of shape (n,), float64
        :math:`\operatorname{sign}(n - b)\sqrt{2[n \log(n/b) - (n - b)]}`; ``sqrt(2 b)``
        with a minus sign for ``n = 0``; ``+inf`` for ``b = 0 < n`` and 0 for ``n = b = 0``.
    """
    n = np.atleast_1d(np.asarray(n_observed, dtype=np.float64))
    b = np.atleast_1d(np.asarray(n_expected, dtype=np.float64))
    if n.shape != b.shape:
        raise ValueError(f"n_expected: shape {b.shape} differs from n_observed's {n.shape}")
    if np.any(n < 0) or np.any(b < 0) or not (np.all(np.isfinite(n)) and np.all(np.isfinite(b))):
        raise ValueError("n_observed, n_expected: counts must be finite and >= 0")
    z = np.zeros_like(n)
    for j, (nj, bj) in enumerate(zip(n, b)):
        if bj == 0.0:
            z[j] = math.inf if nj > 0 else 0.0
            continue
        term = nj * math.log(nj / bj) if nj > 0 else 0.0
        q = max(2.0 * (term - (nj - bj)), 0.0)  # >= 0 up to rounding
        z[j] = math.copysign(math.sqrt(q), nj - bj)
    return z


def find_duplicates(centres, widths, signs, layers, priority) -> np.ndarray:
    """Group kernels that sit on one region; index of each kernel's representative.

    Parameters
    ----------
    centres : ndarray of shape (n_kernels, n_features)
        Centres in standardised units.
    widths : ndarray of shape (n_kernels,)
        Width of each kernel (its layer's sigma), standardised units.
    signs : ndarray of shape (n_kernels,)
        Sign of each amplitude; kernels with sign 0 are never grouped.
    layers : ndarray of shape (n_kernels,)
        Layer of each kernel; only kernels of one layer are grouped.
    priority : ndarray of shape (n_kernels,)
        The member with the highest priority represents its group (ties: lowest index).

    Returns
    -------
    ndarray of shape (n_kernels,), int
        ``-1`` for a kernel that represents its group (or is alone), else the index of
        its group's representative.
    """
    centres = np.asarray(centres, dtype=np.float64)
    n = len(centres)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if layers[i] != layers[j] or signs[i] == 0 or signs[i] != signs[j]:
                continue
            if np.linalg.norm(centres[i] - centres[j]) <= min(widths[i], widths[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    out = np.full(n, -1, dtype=np.int64)
    for members in groups.values():
        best = max(members, key=lambda i: (priority[i], -i))
        for i in members:
            if i != best:
                out[i] = best
    return out


def active_kernels(amplitudes, zscores, duplicate_of, a_max: float, *,
                   min_zscore: float = ACTIVE_MIN_ZSCORE,
                   amplitude_fraction: float = ACTIVE_AMPLITUDE_FRACTION) -> np.ndarray:
    """The documented activity rule (module docstring), one bool per kernel.

    Parameters
    ----------
    amplitudes, zscores : ndarray of shape (n_kernels,)
        ``zscores`` may hold NaN (undefined: never active) or +-inf.
    duplicate_of : ndarray of shape (n_kernels,)
        ``-1`` for representatives (see :func:`find_duplicates`).
    a_max : float
        Amplitude clipping bound of the model.
    min_zscore, amplitude_fraction : float
        The thresholds.

    Returns
    -------
    ndarray of shape (n_kernels,), bool
    """
    _check_threshold(min_zscore, "min_zscore")
    _check_threshold(amplitude_fraction, "amplitude_fraction")
    a = np.abs(np.asarray(amplitudes, dtype=np.float64))
    z = np.abs(np.asarray(zscores, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        strong = (a >= amplitude_fraction * a_max) & (z >= min_zscore)
    return strong & (np.asarray(duplicate_of) < 0)


def significance_priority(amplitudes, zscores, a_max: float,
                          amplitude_fraction: float = ACTIVE_AMPLITUDE_FRACTION) -> np.ndarray:
    """Rank used to pick a duplicate group's representative (see :func:`find_duplicates`).

    Kernels that pass the amplitude threshold rank above those that do not; within each
    set, larger ``|Z|`` ranks higher (NaN lowest).  Returns ranks of shape (n_kernels,).
    """
    a = np.abs(np.asarray(amplitudes, dtype=np.float64))
    z = np.nan_to_num(np.abs(np.asarray(zscores, dtype=np.float64)), nan=-1.0)
    order = np.lexsort((z, a >= amplitude_fraction * a_max))  # strong kernels last, then by |Z|
    priority = np.empty(len(a))
    priority[order] = np.arange(len(a))
    return priority


def flag_threshold(min_excess_fraction: float = MIN_EXCESS_FRACTION) -> float:
    """Log-ratio threshold ``-log(1 - min_excess_fraction)`` of :meth:`SparKer.flag`."""
    if isinstance(min_excess_fraction, bool) or not isinstance(min_excess_fraction, (int, float, np.floating)):
        raise TypeError(f"min_excess_fraction: expected a number in [0, 1), got {min_excess_fraction!r}")
    if not 0.0 <= float(min_excess_fraction) < 1.0:
        raise ValueError(f"min_excess_fraction: expected a number in [0, 1), got {min_excess_fraction!r}")
    return -math.log1p(-float(min_excess_fraction))


def marginal_relevance(reference, weight, added, *, bins: int = 20) -> np.ndarray:
    r"""How much kernels change each feature's marginal of the reweighted reference.

    Parameters
    ----------
    reference : ndarray of shape (n_reference, n_features)
        Reference points (any units: the bins are per-feature quantiles).
    weight : ndarray of shape (n_reference,)
        Reference weights ``w_x``.
    added : ndarray of shape (n_reference,) or (n_reference, n_kernels)
        Each kernel's change of each point's weight, ``w_x (exp(f_i(x)) - 1)``.
    bins : int, default=20
        Equal-mass bins per feature (quantiles of the reference).

    Returns
    -------
    ndarray of shape (n_features,) or (n_kernels, n_features)
        :math:`\sum_b U_{jb}^2 / W_{jb}`, with :math:`U_{jb}` the weight a kernel adds to
        bin :math:`b` of feature :math:`j` and :math:`W_{jb}` the reference weight there:
        the chi-square distance between the marginals with and without the kernel.
        Larger means the kernel shows more clearly in that feature's marginal.
    """
    R = np.asarray(reference, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    u = np.asarray(added, dtype=np.float64)
    one = u.ndim == 1
    u = u[:, None] if one else u
    if R.ndim != 2 or w.shape != (len(R),) or u.ndim != 2 or len(u) != len(R):
        raise ValueError("reference, weight, added: expected shapes (n, d), (n,) and (n,) or (n, k)")
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins: must be a positive integer, got {bins!r}")
    edges = np.quantile(R, np.linspace(0.0, 1.0, bins + 1)[1:-1], axis=0)  # (bins - 1, d)
    keep = np.any(np.abs(u) > 1e-12 * max(np.abs(u).max(initial=0.0), 1e-300), axis=1)  # (n,)
    out = np.zeros((u.shape[1], R.shape[1]))  # (k, d)
    for j in range(R.shape[1]):
        ref_bin = np.searchsorted(edges[:, j], R[:, j], side="right")  # (n,)
        W = np.bincount(ref_bin, weights=w, minlength=bins)  # (bins,)
        ok = W > 0
        for i in range(u.shape[1]):
            U = np.bincount(ref_bin[keep], weights=u[keep, i], minlength=bins)  # (bins,)
            out[i, j] = float(np.sum(U[ok] ** 2 / W[ok]))
    return out[0] if one else out


def _check_threshold(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name}: expected a non-negative number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")


@dataclass(frozen=True)
class Explanation:
    """Per-point explanation of a fitted model (:meth:`sparker.SparKer.explain`).

    Kernels are numbered as the rows of ``kernels_`` (layer by layer).

    Attributes
    ----------
    log_ratio : ndarray of shape (n_samples,)
        ``f(x)``, higher = more anomalous; equals ``contributions.sum(axis=1)``.
    owner : ndarray of shape (n_samples,), int
        Index of the owning kernel, ``argmax_i s_i(x) k_i(x)``.
    region : ndarray of shape (n_samples,), int
        The owner, or the kernel it duplicates (the region the point belongs to).
    contributions : ndarray of shape (n_samples, n_kernels)
        Each kernel's share ``f_i(x) = a_i phi_i(x)``.
    flagged : ndarray of shape (n_samples,), bool
        The flagging rule of :mod:`sparker.interpret`.
    threshold : float
        Log-ratio threshold used for ``flagged``.
    """

    log_ratio: np.ndarray
    owner: np.ndarray
    region: np.ndarray
    contributions: np.ndarray
    flagged: np.ndarray
    threshold: float

    def __len__(self) -> int:
        return len(self.log_ratio)

    @property
    def excess_fraction(self) -> np.ndarray:
        """``1 - exp(-f(x))``: estimated probability that a data point at ``x`` is anomalous."""
        return -np.expm1(-self.log_ratio)

    def to_frame(self):
        """The explanation as a pandas DataFrame.

        Columns ``log_ratio``, ``excess_fraction``, ``owner``, ``region``, ``flagged`` and
        one ``f[i]`` column per kernel; one row per point.
        """
        import pandas as pd

        frame = pd.DataFrame({
            "log_ratio": self.log_ratio,
            "excess_fraction": self.excess_fraction,
            "owner": self.owner,
            "region": self.region,
            "flagged": self.flagged,
        })
        shares = pd.DataFrame(self.contributions,
                              columns=[f"f[{i}]" for i in range(self.contributions.shape[1])])
        return pd.concat([frame, shares], axis=1)
