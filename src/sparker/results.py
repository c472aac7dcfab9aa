"""Result types shared by SparKer's calibrated test and the baselines (``docs/method.md``, "Calibration")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_fraction
from ._version import __version__
from .stats.pvalues import toys_needed, zscore

__all__ = ["TestResult", "top_point_records", "TOP_K", "CHI2_MIN_TOYS", "CHI2_MIN_KS_PVALUE", "TARGET_Z"]

#: How many of the most anomalous data points :meth:`TestResult.to_dict` lists.
TOP_K = 10
#: Fewest null toys with which the verdict quotes the chi-square extrapolation of the null.
CHI2_MIN_TOYS = 100
#: Smallest KS p-value of the chi-square fit with which the verdict quotes its extrapolation.
CHI2_MIN_KS_PVALUE = 0.05
#: Significances whose toy count the verdict gives when the p-value sits at its resolution:
#: the first one above the resolution's Z (:func:`sparker.stats.toys_needed`).
TARGET_Z = (3.0, 5.0)


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
        ``pvalues`` (K,), ``null_statistics`` (n_null, K) and ``shown``, the
        configuration whose model is :attr:`model`.
    model : SparKer or None
        The fitted observed model: with several configurations, the one with the
        smallest p-value (the first on ties), so the regions shown are those of
        the scale that saw the most.
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

    @property
    def asymptotic_zscore(self) -> float | None:
        """Z of the chi-square fit of the null, when it can be trusted; else None.

        Trusted with at least :data:`CHI2_MIN_TOYS` toys and a KS p-value of the fit of
        at least :data:`CHI2_MIN_KS_PVALUE`.
        """
        chi2 = self.chi2 or {}
        z, ks = chi2.get("zscore"), chi2.get("ks_pvalue")
        if z is None or ks is None or not math.isfinite(z):
            return None
        return float(z) if self.n_null >= CHI2_MIN_TOYS and ks >= CHI2_MIN_KS_PVALUE else None

    def verdict(self, alpha: float = 0.05) -> dict:
        """Plain-language verdict at level ``alpha``: the one source of the command line's and report's.

        Returns
        -------
        dict
            ``calibrated`` (True), ``significant``, ``alpha``, ``summary`` (one line:
            t, p with its resolution ``1/(n_null+1)``, Z, the toys, whether the loss
            settled), ``asymptotic_zscore`` (see :attr:`asymptotic_zscore`) and ``text``.
            At the resolution, ``text`` says how many toys a Z of :data:`TARGET_Z` needs,
            and quotes the chi-square extrapolation only when it can be trusted.
        """
        alpha = check_fraction(alpha, name="alpha", open_interval=True)
        p, z, n_null = float(self.pvalue), float(self.zscore), int(self.n_null)
        significant = p <= alpha
        if significant:
            text = f"The data differ from the reference: p = {p:.3g} (Z = {z:.2f}), from {n_null} null toys."
        else:
            text = (f"No significant difference at alpha = {alpha:g}: p = {p:.3g} (Z = {z:.2f}), "
                    f"from {n_null} null toys.")
        if self.per_config is not None:
            text += " " + self._configurations_text()
        if p <= self.resolution + 1e-15:
            text += " " + self._resolution_text()
        if self.resolution > alpha:
            text += (f" With {n_null} toys the p-value cannot go below {self.resolution:.3g} > alpha; "
                     f"run more toys (at least {toys_needed(float(zscore(alpha)))} for alpha = {alpha:g}).")
        if not self.converged:
            text += (" Loss not settled: the observed fit's loss was still falling at the end of "
                     "training, so t depends on the number of epochs; the p-value stays valid because "
                     "every null toy trained with the same epochs.")
        loss = "" if self.converged and self.model is None else \
            f"; loss {'settled' if self.converged else 'not settled'}"
        if self.per_config is None:
            t = f"t = {float(self.statistic):.4g}"
        else:  # the aggregated statistic is -log(min p): quote each configuration's t instead
            t = (f"t = {', '.join(f'{float(x):.4g}' for x in self.per_config['statistics'])} "
                 f"({len(self.per_config['statistics'])} configurations, {self.per_config['aggregation']})")
        summary = (f"{t}, p = {p:.3g} (resolution 1/({n_null}+1) = "
                   f"{self.resolution:.3g}), Z = {z:.2f}, {n_null} null toys ({self.null_mode}){loss}")
        return {"calibrated": True, "significant": bool(significant), "alpha": alpha, "summary": summary,
                "asymptotic_zscore": self.asymptotic_zscore, "text": text}

    def _configurations_text(self) -> str:
        """Which configurations (scales) were combined, their own p-values, and the one shown."""
        pc = self.per_config
        pvalues = ", ".join(f"{float(x):.3g}" for x in pc["pvalues"])
        text = (f"It combines {len(pc['pvalues'])} configurations on the same toys (aggregation "
                f"{pc['aggregation']}; their own p-values {pvalues}).")
        shown = pc.get("shown")
        if shown is not None and shown < len(self.settings):
            cfg = self.settings[shown]
            width = (f"end width {cfg['sigma_end']:g}" if cfg.get("sigma_end") is not None
                     else f"end width at the {cfg['sigma_end_quantile']:g} distance quantile")
            text += (f" The regions shown are those of configuration {shown + 1} ({cfg['n_kernels']} kernels, "
                     f"{width}).")
        return text

    def _resolution_text(self) -> str:
        """What a p-value at its resolution means: the toys a larger Z needs, the trusted extrapolation."""
        n_null, res = int(self.n_null), self.resolution
        text = f"p = {res:.3g} is the smallest p-value {n_null} toys can give"
        target = next((t for t in TARGET_Z if t > float(zscore(res))), None)
        if target is not None:
            text += f"; a Z of {target:g} needs about {_count_text(toys_needed(target))} toys"
        text += "."
        chi2, z_asym = self.chi2 or {}, self.asymptotic_zscore
        if z_asym is not None:
            text += (f" The chi-square fit of the null (KS p = {chi2['ks_pvalue']:.2g}) extrapolates to "
                     f"Z = {z_asym:.2f}.")
        elif chi2.get("zscore") is not None and math.isfinite(chi2["zscore"]):
            text += (f" The chi-square extrapolation is not quoted: it needs at least {CHI2_MIN_TOYS} toys "
                     f"and a fit with KS p >= {CHI2_MIN_KS_PVALUE:g} (here {n_null} toys, "
                     f"KS p = {chi2.get('ks_pvalue', float('nan')):.2g}).")
        return text

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


def _count_text(n: int) -> str:
    """A toy count for a sentence: exact below 10,000, else 3 significant digits or millions."""
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{round(n, 3 - len(str(n))):,}"
    if n < 1_000_000_000:
        return f"{n / 1e6:.2g} million"
    return f"{n:.2g}"


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
