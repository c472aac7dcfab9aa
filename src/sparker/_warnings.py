"""The warning categories of SparKer (``sparker.SparKerWarning``, ``sparker.ConvergenceWarning``).

Named ``_warnings`` so that it never shadows the standard library's ``warnings``.
"""

from __future__ import annotations

__all__ = ["SparKerWarning", "ConvergenceWarning"]


class SparKerWarning(UserWarning):
    """A result may not mean what it seems (for example a calibration made by another version).

    Filter it like any warning: ``warnings.simplefilter("error", sparker.SparKerWarning)``.
    """


class ConvergenceWarning(SparKerWarning):
    """A fit (or some null toys) stopped before its loss had settled: consider more epochs.

    A subclass of :class:`SparKerWarning`, so filtering that one filters this one too;
    silence only this one with ``warnings.simplefilter("ignore", sparker.ConvergenceWarning)``.
    """
