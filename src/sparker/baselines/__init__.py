"""Baselines SparKer is compared with, behind SparKer's own interface.

Every two-sample baseline is called as::

    res = sparker.baselines.<name>(reference, data, n_null=100, seed=0, null="auto", ...)

and returns a :class:`sparker.TestResult` (``method`` is the baseline's name),
calibrated on null toys made as for :func:`sparker.test` (the same null modes
and seed streams; with ``permutation`` toys the preprocessing comes from the
pooled sample, so that it ignores which rows are data; see
:mod:`sparker.baselines._common`).  They are
registered in :data:`BASELINES` so that the command line and the benchmarks
pick them by name; the per-point detectors for localisation comparisons are
in :data:`DETECTORS`.

======================  ==========================================================
``nplm_kernel``         kernel NPLM (Letizia et al. 2022): Nyström Gaussian-kernel
                        weighted logistic regression, NPLM likelihood-ratio ``t``
``mmd``                 unbiased MMD^2, median-heuristic Gaussian width,
                        permutation test
``mmd_agg``             MMD over several widths, aggregated (MMDAgg / MMD-FUSE)
``c2st``                classifier two-sample test (histogram gradient boosting,
                        held-out log-likelihood ratio)
======================  ==========================================================

scikit-learn is needed by ``c2st`` and the detectors (imported when used).
"""

from .c2st import c2st
from .detectors import DETECTORS, isolation_forest_scores, lof_scores
from .mmd import mmd, mmd_agg
from .nplm import KernelNPLM, nplm_kernel

#: two-sample baselines by name: ``(reference, data, *, n_null, seed, null, ...) -> TestResult``
BASELINES = {
    "nplm_kernel": nplm_kernel,
    "mmd": mmd,
    "mmd_agg": mmd_agg,
    "c2st": c2st,
}

__all__ = [
    "BASELINES", "DETECTORS", "KernelNPLM", "c2st", "isolation_forest_scores", "lof_scores",
    "mmd", "mmd_agg", "nplm_kernel",
]
