r"""Interpretation of a fitted SparKer model: which kernels matter, which points they own.

Everything here follows ``docs/method.md``, section "Interpretation".  For kernel :math:`i`
with gate :math:`\phi_i` (:math:`\phi_i = s_i k_i` for the default ``kernel-softmax`` mode,
see :mod:`sparker.core.kernels`), amplitude :math:`a_i`, data weights :math:`d_x` and
reference weights :math:`w_x`:

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ._validation import check_array, is_int
from .core.kernels import get_competition
from .core.streaming import StandardizedRows
from .model.stack import KernelStack

__all__ = [
    "ACTIVE_AMPLITUDE_FRACTION",
    "ACTIVE_MIN_ZSCORE",
    "MIN_EXCESS_FRACTION",
    "TOP_STORED",
    "Explanation",
    "active_kernels",
    "explain_points",
    "find_duplicates",
    "flag_threshold",
    "kernel_table",
    "kernels_frame",
    "layer_gates",
    "marginal_relevance",
    "poisson_zscore",
    "rename_features",
    "significance_priority",
    "top_candidates",
    "top_points",
]

#: Minimum ``|local Z|`` of an active kernel.
ACTIVE_MIN_ZSCORE = 3.0
#: Minimum ``|amplitude| / a_max`` of an active kernel.
ACTIVE_AMPLITUDE_FRACTION = 0.05
#: Default minimum excess fraction ``1 - exp(-f(x))`` of a flagged point (``f > log 2``).
MIN_EXCESS_FRACTION = 0.5
#: Number of the fitted data's highest-scoring points a fit keeps for :func:`top_points`.
TOP_STORED = 100


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
        term = nj * (math.log(nj) - math.log(bj)) if nj > 0 else 0.0  # no overflow of nj / bj
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


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        return (f"Explanation(n_points={len(self)}, n_flagged={int(np.count_nonzero(self.flagged))}, "
                f"threshold={self.threshold:.4g})")

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


def _take(ex: Explanation, rows: np.ndarray) -> Explanation:
    """The explanation of a subset of the points."""
    return Explanation(log_ratio=ex.log_ratio[rows], owner=ex.owner[rows], region=ex.region[rows],
                       contributions=ex.contributions[rows], flagged=ex.flagged[rows],
                       threshold=ex.threshold)


# ------------------------------------------------------------------ a fitted model


def layer_gates(stack: KernelStack, Z) -> list[np.ndarray]:
    """Per-layer gates ``phi`` of a fitted stack at standardised points, float64.

    Parameters
    ----------
    stack : KernelStack
    Z : ndarray of shape (n, n_features) or StandardizedRows
        Standardised points; a :class:`~sparker.core.streaming.StandardizedRows` is
        read chunk by chunk (every row's gates are the same as in one piece).

    Returns
    -------
    list of ndarray, one of shape (n, M_l) per layer
    """
    if isinstance(Z, StandardizedRows):
        parts = [layer_gates(stack, rows) for _, _, rows in Z.chunks()]
        return [np.concatenate([p[k] for p in parts]) for k in range(stack.n_layers)]
    return [g.numpy() for g in stack.gates(torch.as_tensor(Z, dtype=torch.float64))]


def kernel_table(stack: KernelStack, standardizer, feature_names: list[str], a_max: float,
                 reference, data, reference_weight: np.ndarray, data_weight: np.ndarray) -> list[dict]:
    """Per-kernel summary rows of a fitted stack (the ``kernels_`` of :class:`sparker.SparKer`).

    Parameters
    ----------
    stack : KernelStack
    standardizer : Standardizer
        The fit's standardisation (centres and widths are reported in original units too).
    feature_names : list of str
        One name per feature.
    a_max : float
        Amplitude clipping bound (activity rule).
    reference, data : ndarray or StandardizedRows of shape (n, n_features)
        The standardised samples.
    reference_weight, data_weight : ndarray of shape (n_reference,), (n_data,)

    Returns
    -------
    list of dict
        One row per kernel, layer by layer: ``index``, ``layer``, ``kernel``, ``centre``
        and ``width_original`` (dicts by feature, original units), ``amplitude``, ``width``
        (standardised), ``n_data``, ``n_reference``, ``log_ratio``, ``local_z`` (None where
        undefined), ``active``, ``duplicate_of`` (None or a row index); see the module docstring.
    """
    gates_r, gates_d = layer_gates(stack, reference), layer_gates(stack, data)
    n_d = np.maximum(np.concatenate([data_weight @ g for g in gates_d]), 0.0)  # (M_total,)
    n_r = np.maximum(np.concatenate([reference_weight @ g for g in gates_r]), 0.0)  # (M_total,)
    layer = np.concatenate([np.full(m, k) for k, m in enumerate(stack.n_kernels)])  # (M_total,)
    sigmas = stack.sigmas
    widths = np.array([sigmas[k] for k in layer])  # (M_total,)
    amplitudes = np.concatenate([a.numpy() for a in stack.amplitudes]).astype(np.float64)  # (M_total,)
    centres_std = np.concatenate([c.numpy() for c in stack.centres]).astype(np.float64)  # (M_total, d)
    centres = standardizer.inverse(centres_std)  # (M_total, d), original units
    a_max = float(a_max)
    # an expected count that underflowed to 0 (data far beyond the reference) is taken as the
    # smallest positive float: the local Z is then a finite lower bound, never inf or NaN
    z = poisson_zscore(n_d, np.where((n_r == 0.0) & (n_d > 0.0), np.finfo(np.float64).tiny, n_r))
    duplicate_of = find_duplicates(centres_std, widths, np.sign(amplitudes), layer,
                                   significance_priority(amplitudes, z, a_max))
    active = active_kernels(amplitudes, z, duplicate_of, a_max)
    rows = []
    for g in range(len(amplitudes)):
        k = int(layer[g])
        rows.append({
            "index": g,
            "layer": k,
            "kernel": g - int(np.flatnonzero(layer == k)[0]),
            "centre": dict(zip(feature_names, centres[g].tolist())),
            "amplitude": float(amplitudes[g]),
            "width": float(widths[g]),
            "width_original": dict(zip(feature_names, (widths[g] * standardizer.scale).tolist())),
            "n_data": float(n_d[g]),
            "n_reference": float(n_r[g]),
            # in logs: a tiny expected count (a kernel far out in a tail) overflows the quotient
            "log_ratio": float(math.log(n_d[g]) - math.log(n_r[g])) if n_d[g] > 0 and n_r[g] > 0 else None,
            "local_z": float(z[g]) if math.isfinite(z[g]) else None,
            "active": bool(active[g]),
            "duplicate_of": None if duplicate_of[g] < 0 else int(duplicate_of[g]),
        })
    return rows


def rename_features(kernels: list[dict], feature_names: list[str]) -> list[dict]:
    """The kernel table with its per-feature entries (``centre``, ``width_original``) renamed.

    Names are labels: a fit on arrays equals the fit on the same columns named, so the
    table of one is the other's with the feature names replaced, in column order.
    """
    def renamed(values: dict) -> dict:
        if len(values) != len(feature_names):
            raise ValueError(f"feature_names: {len(feature_names)} names for {len(values)} features")
        return dict(zip(feature_names, values.values()))

    return [{**row, "centre": renamed(row["centre"]), "width_original": renamed(row["width_original"])}
            for row in kernels]


def kernels_frame(kernels: list[dict], a_max: float, *, min_zscore: float | None = None,
                  amplitude_fraction: float | None = None):
    """The per-kernel summary rows as a pandas DataFrame (see :meth:`sparker.SparKer.kernels_frame`).

    ``min_zscore`` and ``amplitude_fraction``, when given, recompute the ``active``
    column with these thresholds (the others at their defaults).
    """
    import pandas as pd

    rows = []
    for g, row in enumerate(kernels):
        out = {"index": row.get("index", g), "layer": row["layer"], "kernel": row["kernel"]}
        out.update({f"centre[{name}]": v for name, v in row["centre"].items()})
        for key in ("amplitude", "width", "n_data", "n_reference", "log_ratio", "local_z"):
            value = row.get(key)
            out[key] = np.nan if value is None else float(value)
        out["active"] = bool(row.get("active", False))
        out["duplicate_of"] = row.get("duplicate_of")
        rows.append(out)
    frame = pd.DataFrame(rows).set_index("index")
    frame["duplicate_of"] = pd.array(frame["duplicate_of"].tolist(), dtype="Int64")
    if min_zscore is not None or amplitude_fraction is not None:
        dup = frame["duplicate_of"].fillna(-1).to_numpy(dtype=np.int64)
        frame["active"] = active_kernels(
            frame["amplitude"].to_numpy(), frame["local_z"].to_numpy(), dup, float(a_max),
            min_zscore=ACTIVE_MIN_ZSCORE if min_zscore is None else min_zscore,
            amplitude_fraction=(ACTIVE_AMPLITUDE_FRACTION if amplitude_fraction is None
                                else amplitude_fraction),
        )
    return frame


def explain_points(stack: KernelStack, Z: torch.Tensor, kernels: list[dict], threshold: float) -> Explanation:
    """Per-point explanation at standardised points (see :meth:`sparker.SparKer.explain`).

    Parameters
    ----------
    stack : KernelStack
    Z : Tensor of shape (n, n_features), float64
        Standardised points.
    kernels : list of dict
        The kernel table (:func:`kernel_table`): its ``active`` and ``duplicate_of``.
    threshold : float
        Log-ratio threshold of a flagged point (:func:`flag_threshold`).

    Returns
    -------
    Explanation
    """
    comp = get_competition(stack.competition)
    shares, owner_scores = [], []
    for l, a in zip(stack.log_kernels(Z), stack.amplitudes):  # l: (n, M_l)
        lse = torch.logsumexp(l, dim=1, keepdim=True)  # (n, 1)
        phi = torch.exp(comp.log_gate(l, lse))  # (n, M_l)
        shares.append((phi * a.to(torch.float64)).numpy())
        owner_scores.append((2.0 * l - lse).numpy())  # log(s_i k_i)
    contributions = np.concatenate(shares, axis=1)  # (n, M_total)
    owner = np.argmax(np.concatenate(owner_scores, axis=1), axis=1)  # (n,)
    duplicate_of = np.array([-1 if k.get("duplicate_of") is None else k["duplicate_of"]
                             for k in kernels], dtype=np.int64)
    active = np.array([bool(k.get("active", False)) for k in kernels])
    region = np.where(duplicate_of[owner] >= 0, duplicate_of[owner], owner)
    f = contributions.sum(axis=1)
    return Explanation(log_ratio=f, owner=owner, region=region, contributions=contributions,
                       flagged=(f > threshold) & active[region], threshold=threshold)


def top_candidates(stack: KernelStack, data, data_std) -> dict:
    """The fitted data's :data:`TOP_STORED` highest-``f`` rows, for :func:`top_points`.

    Parameters
    ----------
    stack : KernelStack
    data : ndarray of shape (n_data, n_features)
        The data in original units (any array that can be indexed by rows).
    data_std : ndarray or StandardizedRows of shape (n_data, n_features)
        The same data standardised, read chunk by chunk.

    Returns
    -------
    dict
        ``index`` (k,) rows of the data, highest ``f`` first (stable), and ``points``
        (k, n_features) their coordinates in original units, float64.
    """
    chunks = data_std.chunks() if isinstance(data_std, StandardizedRows) else [(0, len(data_std), data_std)]
    f = np.concatenate([  # (n_data,), row by row
        stack.log_ratio(torch.as_tensor(rows, dtype=torch.float64)).numpy() for _, _, rows in chunks
    ])
    order = np.argsort(-f, kind="stable")[:TOP_STORED]
    return {"index": order, "points": np.array(data[order], dtype=np.float64)}


def top_points(explain: Callable, k, X, stored: dict | None, feature_names: list[str]):
    """The ``k`` most anomalous points (see :meth:`sparker.SparKer.top_points`).

    Parameters
    ----------
    explain : callable
        ``explain(points) -> Explanation`` of the fitted model (points in original units).
    k : int
    X : array-like of shape (n_samples, n_features) or None
        Points to rank; None: the fitted data's stored candidates ``stored``.
    stored : dict or None
        What :func:`top_candidates` returned at the fit (None if not kept).
    feature_names : list of str

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    if not is_int(k) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    if X is None:
        if stored is None:
            raise ValueError("X: this model does not keep the fitted data's top points; "
                             "pass the data as X")
        if k > len(stored["index"]) and len(stored["index"]) == TOP_STORED:
            raise ValueError(f"k: the fit keeps the top {TOP_STORED} data points; pass X for more")
        rows, points = stored["index"][:k], stored["points"][:k]
        ex = explain(points)
    else:
        points, _, _ = check_array(X, name="X")
        ex = explain(X)
        rows = np.argsort(-ex.log_ratio, kind="stable")[:k]
        points, ex = points[rows], _take(ex, rows)
    frame = pd.DataFrame({"row": rows, "log_ratio": ex.log_ratio, "owner": ex.owner,
                          "region": ex.region, "flagged": ex.flagged})
    return pd.concat([frame, pd.DataFrame(points, columns=list(feature_names))], axis=1)
