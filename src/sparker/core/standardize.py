"""Per-feature standardisation fitted on the reference (``docs/method.md``, "Standardisation")."""

from __future__ import annotations

import logging

import numpy as np

from .streaming import column_absmax, column_mean

__all__ = ["STANDARDIZE_MODES", "Standardizer", "Z_MAX", "warn_clipped"]

#: What the standardisation and the default widths of a fit are computed on.
STANDARDIZE_MODES = {
    "reference": "the reference sample (what resample toys and single fits use)",
    "pooled": "the reference and data stacked, unweighted (label-free: what permutation toys need)",
}

log = logging.getLogger("sparker.estimator")


#: Standardised values are clipped to [-Z_MAX, Z_MAX].  A reference never reaches it
#: (|z| <= sqrt(n_reference - 1)); a data point that far out is far from every
#: kernel either way, and the bound keeps ||x||^2 / sigma^2 finite in float32.
Z_MAX = 1e6


class Standardizer:
    """Per-feature affine map fitted on the reference (constant features: scale 1).

    Values anywhere in the float64 range are handled: moments that overflow are
    recomputed on the features divided by their largest magnitude, and
    standardised values are clipped to ``[-Z_MAX, Z_MAX]`` (with a warning).
    """

    def __init__(self, mean: np.ndarray, scale: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, X: np.ndarray, weight: np.ndarray | None = None) -> "Standardizer":
        """Fit on ``X`` of shape (n_samples, n_features): any real dtype, memory maps included.

        Without ``weight`` the moments are taken over row chunks (no float64 copy of
        ``X``), bit for bit equal to the in-memory formula (:mod:`sparker.core.streaming`).
        """
        if weight is not None:
            X = np.asarray(X, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            if weight is None:
                mean = column_mean(X)
                scale = np.sqrt(column_mean(X, center=mean))
            else:
                mean = np.average(X, axis=0, weights=weight)
                scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
        top = column_absmax(X)
        extreme = (top > 0) & ((top < 1e-100) | (top > 1e100))
        if extreme.any():
            # magnitudes where squares underflow or sums overflow: moments of X / max|X|,
            # scaled back (columns of ordinary magnitude keep the plain formula)
            Y = np.asarray(X[:, extreme], dtype=np.float64) / top[extreme]
            mean_y = np.average(Y, axis=0, weights=weight)
            mean[extreme] = mean_y * top[extreme]
            scale[extreme] = np.sqrt(np.average((Y - mean_y) ** 2, axis=0, weights=weight)) * top[extreme]
        # constant: no spread beyond float rounding of the mean (relative, so that a
        # feature measured on a 1e-13 scale, e.g. lifetimes in seconds, is kept)
        tiny = (scale < np.finfo(np.float64).tiny) | (scale <= 1e-12 * np.abs(mean))
        scale[tiny] = 1.0
        return cls(mean, scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z, n_far = self.transform_counted(X)
        warn_clipped(n_far)
        return Z

    def transform_counted(self, X: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`transform` without the warning: ``(Z, number of clipped values)``."""
        with np.errstate(over="ignore", invalid="ignore"):
            Z = (X - self.mean) / self.scale
            bad = ~np.isfinite(Z)
            if bad.any():  # X - mean overflowed (values near the float64 limits)
                Z = np.where(bad, X / self.scale - self.mean / self.scale, Z)
        far = np.abs(Z) > Z_MAX
        n_far = int(far.sum()) if far.any() else 0
        if n_far:
            Z = np.clip(Z, -Z_MAX, Z_MAX)
        return Z, n_far

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            X = Z * self.scale + self.mean
        big = np.finfo(np.float64).max  # a centre beyond the float64 range is reported at its edge
        return X if np.isfinite(X).all() else np.clip(X, -big, big)


def warn_clipped(n_far: int) -> None:
    """Log how many standardised values were clipped to ``[-Z_MAX, Z_MAX]`` (if any)."""
    if n_far:
        log.warning("%d value(s) lie beyond %g reference standard deviations from the reference "
                    "mean and were clipped to it", n_far, Z_MAX)
