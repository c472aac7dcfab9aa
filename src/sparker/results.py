"""Result types shared by SparKer's calibrated test and the baselines (``docs/method.md``, "Calibration")."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._version import __version__

__all__ = ["TestResult"]


@dataclass(frozen=True, eq=False)
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

    __test__ = False  # not a test class, although pytest sees the name when a test module imports it

    @property
    def resolution(self) -> float:
        """Smallest reachable p-value, ``1 / (n_null + 1)``."""
        return 1.0 / (self.n_null + 1)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (the model as its per-kernel table)."""
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
            "sparker_version": __version__,
        }
        if self.model is not None and hasattr(self.model, "kernels_"):
            out["kernels"] = self.model.kernels_
        return out
