"""What every baseline shares: input checks, the observed and null roles, result assembly.

Every baseline sees the same two-sample problem as :func:`sparker.test`:

- the **observed** fit uses the rows ``[reference; data]`` (``resample``) or
  the pool (``permutation``): reference rows carry weight ``w_x`` (``N_D / N_R``,
  or the user's weights rescaled to sum to ``N_D``), data rows weight 1;
- the **null toys** assign roles to the rows of a *pool* with
  :func:`sparker.core.nulls.toy_weights`: the pool is the reference for
  ``resample`` and the reference and data stacked, in
  :func:`~sparker.core.order.canonical_order`, for ``permutation``; toy ``b``
  draws its roles from ``SeedSequence(seed, spawn_key=(2, b, 0))``, exactly like
  the toys of :func:`sparker.test`.  A toy's data are the pool rows with data
  weight > 0; its reference the rows with reference weight > 0, with those
  weights.

**Preprocessing.**  With ``resample`` toys the standardisation, widths and bins
come from the reference (the toys see nothing else).  A permutation test is exact
only if everything but the statistic ignores which rows are called data, so with
``permutation`` toys they come from the pooled sample (unweighted), in an order
of its values alone (:meth:`TwoSample.width_rows`): the observed statistic and
every toy share them, and swapping the samples' names changes none of them.

Random streams of a baseline (children of ``seed``): ``(0,)`` widths and
bandwidths, ``(1,)`` the observed fit's own randomness, ``(2, b, 0)`` the
roles of toy ``b``, ``(2, b, 1)`` toy ``b``'s own randomness, ``(3,)``
centres shared by every fit on one pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_array, check_device, check_int, check_n_features, check_seed, check_weights
from ..core.nulls import NullSpec, check_resample_weights, resolve_null_mode, toy_weights
from ..core.pool import pooled_sample
from ..core.standardize import Standardizer
from ..core.weights import reference_weights
from ..results import TestResult
from ..stats import aggregate, empirical_pvalue, fit_chi2, zscore

WIDTH_KEY, OBS_KEY, TOY_KEY, CENTRE_KEY = 0, 1, 2, 3


def seq(seed: int, *key: int) -> np.random.SeedSequence:
    """Child random stream ``key`` of ``seed``."""
    return np.random.SeedSequence(seed, spawn_key=key)


# ------------------------------------------------------------------ argument checks
def as_float_list(value, *, name: str, check, **options) -> list[float]:
    """A scalar or a non-empty sequence of scalars, each passed through ``check(v, name=name, **options)``."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not values:
        raise ValueError(f"{name}: an empty list of values")
    return [check(v, name=name, **options) for v in values]


# ------------------------------------------------------------------ the problem
@dataclass(frozen=True)
class TwoSample:
    """Validated, standardised two-sample problem and its null toys.

    Attributes
    ----------
    reference, data : ndarray of shape (n, n_features)
        In standardised units (the reference's mean and standard deviation for
        ``resample``, the pooled sample's for ``permutation``; constant features
        left centred with scale 1), float64, in input order.
    ref_weight : ndarray of shape (n_reference,)
        Observed reference weights ``w_x`` (sum ``N_D``).
    user_ref_weight : ndarray or None
        The user's reference weights (resampling draws toys in proportion).
    mode : str
        ``resample`` or ``permutation``.
    spec : NullSpec
    seed : int
    standardizer : Standardizer
    device : torch.device
    order : ndarray of shape (n_reference + n_data,) or None
        ``permutation``: the pool is ``[reference; data][order]``
        (:func:`~sparker.core.order.canonical_order`); None for ``resample``.
    """

    reference: np.ndarray
    data: np.ndarray
    ref_weight: np.ndarray
    user_ref_weight: np.ndarray | None
    mode: str
    spec: NullSpec
    seed: int
    standardizer: Standardizer
    device: torch.device
    order: np.ndarray | None = None

    @property
    def n_reference(self) -> int:
        return self.reference.shape[0]

    @property
    def n_data(self) -> int:
        return self.data.shape[0]

    def observed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (N, d) with reference (N,) and data (N,) weights of the observed fit.

        The rows are ``[reference; data]`` for ``resample`` and the pool (the same
        rows in :attr:`order`) for ``permutation``.
        """
        X = np.concatenate([self.reference, self.data])
        r = np.concatenate([self.ref_weight, np.zeros(self.n_data)])
        d = np.concatenate([np.zeros(self.n_reference), np.ones(self.n_data)])
        if self.order is None:
            return X, r, d
        return X[self.order], r[self.order], d[self.order]

    def pool(self) -> np.ndarray:
        """Rows the toys assign roles to: (N_R, d) for resample, (N_R + N_D, d) for permutation."""
        if self.order is None:
            return self.reference
        return np.concatenate([self.reference, self.data])[self.order]

    def width_rows(self) -> np.ndarray:
        """The standardised rows widths and bins come from: the reference, or the pool.

        For ``permutation`` the pool (reference and data in an order of their values
        alone), so that widths do not depend on which rows are called data.
        """
        return self.pool()

    def toy(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference (N_pool,) and data (N_pool,) weights of toy ``b`` (as in :func:`sparker.test`)."""
        return toy_weights(self.spec, seq(self.seed, TOY_KEY, b, 0), self.user_ref_weight)

    def toys(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Stacked weights of toys ``ids``: (N_pool, n) each."""
        rs, ds = zip(*(self.toy(b) for b in ids))
        return np.stack(rs, 1), np.stack(ds, 1)


def prepare(
    reference,
    data,
    *,
    n_null,
    seed,
    null: str,
    reference_weight=None,
    modes=("resample", "permutation"),
    min_data: int = 1,
    method: str,
    device=None,
) -> TwoSample:
    """Validate the common arguments of a baseline and build its :class:`TwoSample`.

    ``modes`` lists the null modes the baseline supports; ``auto`` resolves to
    ``permutation`` when ``resample`` is not among them.
    """
    R, _, dev_r = check_array(reference, name="reference", min_samples=2)
    D, _, dev_d = check_array(data, name="data", min_samples=min_data)
    check_n_features(R.shape[1], D.shape[1], name="data")
    n_null = check_int(n_null, name="n_null", minimum=1)
    seed = check_seed(seed)
    wr = check_weights(reference_weight, R.shape[0], name="reference_weight")
    if null == "auto" and "resample" not in modes:
        mode = "permutation"
    else:
        mode = resolve_null_mode(null, R.shape[0], D.shape[0])
        if mode not in modes:
            raise ValueError(f"null: {method} supports {sorted(modes)} (or 'auto'), got {null!r}")
    if mode == "permutation" and wr is not None:
        raise ValueError("null: 'permutation' toys assume exchangeable, unweighted samples; "
                         "use null='resample' with reference_weight")
    spec = NullSpec(mode, R.shape[0], D.shape[0])
    check_resample_weights(spec, wr)
    std, _, order = pooled_sample(R, D) if mode == "permutation" else (Standardizer.fit(R), None, None)
    w = reference_weights(R.shape[0], float(D.shape[0]), wr, None, normalize=True)
    return TwoSample(std.transform(R), std.transform(D), w, wr, mode, spec, seed, std,
                     check_device(device, dev_r, dev_d), order)


# ------------------------------------------------------------------ results
def combine(t_obs: np.ndarray, null: np.ndarray, aggregation: str) -> tuple[float, np.ndarray, dict | None]:
    """One statistic from K configurations on the same toys.

    Parameters
    ----------
    t_obs : ndarray of shape (K,)
    null : ndarray of shape (n_null, K)
    aggregation : str
        A rule of :data:`sparker.stats.AGGREGATIONS` (used when K > 1).

    Returns
    -------
    statistic : float
    null_distribution : ndarray of shape (n_null,)
    per_config : dict or None
        ``aggregation``, ``statistics`` (K,), ``pvalues`` (K,) when K > 1.
    """
    if t_obs.shape[0] == 1:
        return float(t_obs[0]), np.asarray(null[:, 0], dtype=np.float64), None
    agg = aggregate(t_obs, null, method=aggregation)
    per_config = {
        "aggregation": aggregation,
        "statistics": [float(x) for x in t_obs],
        "pvalues": [float(x) for x in agg.per_config_pvalues],
    }
    return float(agg.statistic), np.asarray(agg.null_distribution), per_config


def make_result(
    method: str,
    statistic: float,
    null: np.ndarray,
    problem: TwoSample,
    *,
    settings: list[dict],
    per_config: dict | None = None,
    chi2: bool = False,
    model=None,
    converged: bool = True,
) -> TestResult:
    """A :class:`~sparker.results.TestResult` from an observed statistic and its toys.

    ``chi2`` asks for a chi-square fit of the null (meaningful for
    likelihood-ratio statistics; never done for aggregated statistics).
    """
    null = np.asarray(null, dtype=np.float64)
    if not np.all(np.isfinite(null)) or not np.isfinite(statistic):
        raise FloatingPointError(f"{method}: non-finite statistics (observed {statistic!r})")
    p = float(empirical_pvalue(statistic, null))
    chi = None
    if chi2 and per_config is None and null.shape[0] >= 2:
        fit = fit_chi2(null)
        chi = {**fit.to_dict(), "pvalue": float(fit.pvalue(statistic)),
               "zscore": float(fit.zscore(statistic))}
    return TestResult(
        statistic=float(statistic), pvalue=p, zscore=float(zscore(p)), null_distribution=null,
        null_mode=problem.mode, n_null=int(null.shape[0]), method=method, settings=settings,
        seed=problem.seed, chi2=chi, per_config=per_config, model=model, converged=bool(converged),
    )
