"""Result types shared by SparKer's calibrated test and the baselines (``docs/method.md``, "Calibration")."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._version import __version__

__all__ = ["TestResult", "top_point_records", "TOP_K"]

#: How many of the most anomalous data points :meth:`TestResult.to_dict` lists.
TOP_K = 10


@dataclass(frozen=True, eq=False, repr=False)
class TestResult:
    """Outcome of a calibrated two-sample test.

    Attributes
    ----------
    statistic : float
        Observed statistic (the aggregated one when several configurations ran).
    pvalue : float
        Empirical p-value, ``(1 + #{t0 >= t}) / (1 + n_null)``; never 0.
    zscore : float
        ``norm.isf(pvalue)``.
    null_distribution : ndarray of shape (n_null,)
        Null statistics (aggregated ones when several configurations ran).
    null_mode : str
        ``resample`` or ``permutation`` (what ``auto`` chose).
    n_null : int
    method : str
        ``sparker`` or a baseline name.
    settings : list of dict
        One training configuration per entry (several when aggregating).
    seed : int
    chi2 : dict or None
        Chi-square fit of the null (``dof``, ``ks_pvalue``, ``poor_fit``, ...)
        with the asymptotic ``pvalue`` and ``zscore`` of the observation; None
        when aggregating or with fewer than 2 toys.
    per_config : dict or None
        With several configurations: ``aggregation``, ``statistics`` (K,),
        ``pvalues`` (K,) and ``null_statistics`` (n_null, K).
    model : SparKer or None
        The fitted observed model (first configuration).
    converged : bool
        Whether the observed fit's loss settled.
    n_flagged : int or None
        How many data points the observed model flags (:meth:`sparker.SparKer.flag`),
        counted by :func:`sparker.test` while it holds the data; None for the baselines
        and for :meth:`sparker.Calibration.test` (see :meth:`to_dict`).
    """

    statistic: float
    pvalue: float
    zscore: float
    null_distribution: np.ndarray
    null_mode: str
    n_null: int
    method: str = "sparker"
    settings: list = field(default_factory=list)
    seed: int = 0
    chi2: dict | None = None
    per_config: dict | None = None
    model: object = None
    converged: bool = True
    n_flagged: int | None = None

    __test__ = False  # not a test class, although pytest sees the name when a test module imports it

    @property
    def resolution(self) -> float:
        """Smallest reachable p-value, ``1 / (n_null + 1)``."""
        return 1.0 / (self.n_null + 1)

    def __repr__(self) -> str:
        return (f"TestResult(method={self.method!r}, statistic={self.statistic:.4g}, "
                f"pvalue={self.pvalue:.4g}, zscore={self.zscore:.3g}, n_null={self.n_null}, "
                f"null_mode={self.null_mode!r})")

    def verdict(self, alpha: float = 0.05) -> dict:
        """Plain-language verdict at level ``alpha``: ``calibrated``, ``significant``, ``alpha``, ``text``."""
        p, z, n_null = float(self.pvalue), float(self.zscore), int(self.n_null)
        significant = p <= alpha
        if significant:
            text = f"The data differ from the reference: p = {p:.3g} (Z = {z:.2f}), from {n_null} null toys."
        else:
            text = (f"No significant difference at alpha = {alpha:g}: p = {p:.3g} (Z = {z:.2f}), "
                    f"from {n_null} null toys.")
        if p <= self.resolution + 1e-15:
            text += f" This is the smallest p-value {n_null} toys can give (resolution 1/(B+1))"
            chi2 = self.chi2
            if chi2 and chi2.get("zscore") is not None and np.isfinite(chi2["zscore"]):
                text += f"; the chi-square fit of the null extrapolates to Z = {chi2['zscore']:.2f}"
                if chi2.get("poor_fit"):
                    text += " (but the fit is poor)"
            text += "."
        if self.resolution > alpha:
            text += (f" With {n_null} toys the p-value cannot go below {self.resolution:.3g} > alpha; "
                     "run more toys.")
        return {"calibrated": True, "significant": bool(significant), "alpha": alpha, "text": text}

    def to_dict(self) -> dict:
        """JSON-serialisable summary: the one source of ``sparker test``'s JSON.

        Besides the fields: ``pvalue_resolution``, ``verdict`` (:meth:`verdict` at
        alpha = 0.05), ``n_flagged``, and, from a SparKer model, ``feature_names``,
        ``kernels`` (its per-kernel table) and ``top_points``: the :data:`TOP_K` most
        anomalous data points, from the candidates the fit keeps
        (:meth:`sparker.SparKer.top_points`; ``[]`` without a model or candidates).
        ``n_flagged`` comes from the test, not the model: a fit keeps only its top
        candidates, too few to count flagged points in general.
        """
        sparker_model = self.model is not None and hasattr(self.model, "kernels_")
        out = {
            "method": self.method,
            "statistic": float(self.statistic),
            "pvalue": float(self.pvalue),
            "zscore": float(self.zscore),
            "pvalue_resolution": self.resolution,
            "null_mode": self.null_mode,
            "n_null": int(self.n_null),
            "null_distribution": np.asarray(self.null_distribution, dtype=float).tolist(),
            "chi2": self.chi2,
            "per_config": self.per_config,
            "settings": self.settings,
            "seed": int(self.seed),
            "converged": bool(self.converged),
            "verdict": self.verdict(),
            "n_flagged": None if self.n_flagged is None else int(self.n_flagged),
            "top_points": _stored_top_points(self.model) if sparker_model else [],
            "feature_names": getattr(self.model, "feature_names_in_", None) if sparker_model else None,
            "sparker_version": __version__,
        }
        if sparker_model:
            out["kernels"] = self.model.kernels_
        return out


def _stored_top_points(model) -> list[dict]:
    """The :data:`TOP_K` most anomalous fitted data points a model keeps, as records."""
    try:
        frame = model.top_points(TOP_K)
    except ValueError:  # a model that keeps no candidates (saved by an older version)
        return []
    return top_point_records(frame)


def top_point_records(frame) -> list[dict]:
    """Rows of :meth:`sparker.SparKer.top_points` as JSON-ready dicts.

    Each has ``row``, ``log_ratio``, ``owner``, ``region``, ``flagged`` and ``point``
    (feature name -> value, original units).
    """
    names = list(frame.columns[5:])
    return [
        {"row": int(r["row"]), "log_ratio": float(r["log_ratio"]), "owner": int(r["owner"]),
         "region": int(r["region"]), "flagged": bool(r["flagged"]),
         "point": {str(n): float(r[n]) for n in names}}
        for _, r in frame.iterrows()
    ]
