"""Null toys: how a pseudo-experiment under H0 assigns roles to the pooled points.

A null mode returns, for one toy, a reference weight and a data weight for
every row of the toys' pool; the toy is then one more replica of the batched
trainer.  The pool is the reference alone for ``resample`` (toys never see the
observed data, so one calibration serves many inspected samples) and the
reference rows followed by the data rows for ``permutation``.

- ``resample`` (physics practice, needs a reference much larger than the
  data): the toy's data are ``N_D'`` reference rows (``N_D' ~ Poisson(N_0)``
  when ``poisson``, else exactly ``N_D``); the remaining reference rows form
  the toy's reference, re-weighted to sum to ``N_0`` (the toy's own count for
  a shape-only test).  The observed data rows are unused.  An unweighted
  reference gives ``N_D'`` rows drawn without replacement.  A weighted one is
  split at random by accept/reject: the rows are shuffled and walked through,
  each accepted as toy data with probability ``w / max(w)``, until ``N_D'``
  are accepted; every row walked through (accepted or not) leaves the toy's
  reference, which is the untouched rest with its weights.  The toy data are
  then draws from the weighted reference distribution and the toy reference
  a uniformly random subset, unbiased for it; the walk takes about
  ``N_D' max(w) / mean(w)`` rows (:func:`check_resample_weights`).
- ``permutation`` (exchangeable samples): shuffle the pooled rows and keep
  the two sizes; reference weight ``N_D / N_R``.
- ``auto``: ``resample`` when ``N_R >= 5 N_D``, else ``permutation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NULL_MODES", "NullSpec", "check_resample_weights", "resolve_null_mode", "toy_weights"]


@dataclass(frozen=True)
class NullSpec:
    """Everything a toy needs besides its seed (all plain numbers, picklable)."""

    mode: str
    n_reference: int
    n_data: int
    n_expected: float | None = None
    poisson: bool = False


def _resample(spec: NullSpec, rng: np.random.Generator, ref_weight):
    """Pseudo-data: ``k`` reference rows (Poisson or exact count, kept in ``[1, N_R - 1]``)."""
    n_ref = spec.n_reference
    n0 = float(spec.n_expected) if spec.n_expected is not None else float(spec.n_data)
    k = int(rng.poisson(n0)) if spec.poisson else spec.n_data
    k = min(max(k, 1), n_ref - 1)
    if ref_weight is None:
        pick = rng.choice(n_ref, size=k, replace=False)
        r = np.ones(n_ref)
        r[pick] = 0.0
    else:
        r = np.array(ref_weight, dtype=np.float64)
        pick, walked = _accept_reject(r, k, rng)
        r[walked] = 0.0
        if not r.sum() > 0:
            raise ValueError(_uneven_message(r.shape[0], k, ref_weight, "a toy kept no reference row"))
    target = n0 if spec.n_expected is not None else float(k)
    r *= target / r.sum()
    d = np.zeros(n_ref)
    d[pick] = 1.0
    return r, d


def _accept_reject(w: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` rows accepted in proportion to ``w`` on a random walk through the rows.

    Returns the accepted rows and every row walked through (accepted or rejected).
    """
    order = rng.permutation(w.shape[0])
    accepted = rng.random(w.shape[0]) * w.max() < w[order]  # P(accept) = w / max(w)
    count = np.cumsum(accepted)
    if count[-1] < k:
        raise ValueError(_uneven_message(w.shape[0], k, w, "a toy ran out of rows"))
    stop = int(np.searchsorted(count, k)) + 1  # rows walked: up to the k-th acceptance
    return order[:stop][accepted[:stop]], order[:stop]


def _uneven_message(n_ref: int, k: int, w, what: str) -> str:
    w = np.asarray(w, dtype=np.float64)
    walk = k * float(w.max()) / float(w.mean())
    return (f"reference_weight: too uneven for resample toys of this size: accepting {k} toy data rows "
            f"with probability w / max(w) walks through about {walk:.3g} of the {n_ref} reference rows: "
            f"{what}; use a larger reference, fewer data rows, or less uneven weights (for example "
            "unweight the reference by accept/reject, or cap the largest weights)")


def check_resample_weights(spec: NullSpec, ref_weight) -> None:
    """Refuse, before any toy, reference weights too uneven for ``resample`` toys of ``spec``.

    A weighted toy walks through about ``N_D' max(w) / mean(w)`` reference rows
    (``N_D' = N_0`` for Poisson toys, else ``N_D``) to accept its data; this
    raises a ValueError naming ``reference_weight`` when that exceeds the
    reference, so that most toys would run out of rows.  A toy that runs out
    all the same raises the same error.
    """
    if ref_weight is None or spec.mode != "resample":
        return
    w = np.asarray(ref_weight, dtype=np.float64)
    n0 = float(spec.n_expected) if spec.n_expected is not None else float(spec.n_data)
    k = min(max(int(round(n0)) if spec.poisson else spec.n_data, 1), spec.n_reference - 1)
    if k * float(w.max()) / float(w.mean()) >= spec.n_reference:
        raise ValueError(_uneven_message(spec.n_reference, k, w, "most toys would run out of rows"))


def _permutation(spec: NullSpec, rng: np.random.Generator, ref_weight):
    """Pseudo-data: ``N_D`` rows of the pool drawn without replacement; the rest is reference."""
    n = spec.n_reference + spec.n_data
    is_data = np.zeros(n, dtype=bool)
    is_data[rng.choice(n, size=spec.n_data, replace=False)] = True
    n0 = float(spec.n_expected) if spec.n_expected is not None else float(spec.n_data)
    r = np.where(is_data, 0.0, n0 / spec.n_reference)
    return r, is_data.astype(np.float64)


NULL_MODES = {"resample": _resample, "permutation": _permutation}


def resolve_null_mode(mode: str, n_reference: int, n_data: int) -> str:
    """``auto`` -> ``resample`` if ``n_reference >= 5 n_data`` else ``permutation``.

    An explicit ``resample`` needs ``n_reference >= 2 n_data``.
    """
    if not isinstance(mode, str):
        raise ValueError(f"null: expected a null mode name, got {mode!r}")
    if mode == "auto":
        return "resample" if n_reference >= 5 * n_data else "permutation"
    if mode not in NULL_MODES:
        raise ValueError(f"null: unknown null mode {mode!r}; choose 'auto' or one of {sorted(NULL_MODES)}")
    if mode == "resample" and n_reference < 2 * n_data:
        raise ValueError(
            f"null: 'resample' needs a reference pool larger than the data "
            f"(got {n_reference} reference and {n_data} data points); use 'permutation'"
        )
    return mode


def toy_weights(spec: NullSpec, seed, ref_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Reference and data weights of one null toy over the pool (float64, (N,) each).

    ``seed`` is the toy's own :class:`numpy.random.SeedSequence` (or int), so
    a toy is the same whatever batch or process computes it.
    """
    rng = np.random.default_rng(seed)
    return NULL_MODES[spec.mode](spec, rng, ref_weight)
