r"""Calibrated significance: null toys as batched replicas, p-values, reusable calibrations.

The test statistic :math:`t = -2 L[\hat f]` has no closed-form null
distribution, so it is calibrated with ``B`` null toys retrained from scratch
with the same settings (``docs/method.md``, "Calibration"; toys are made by
:mod:`sparker.core.nulls`).

p-value and significance:

.. math::

    p = \frac{1 + \#\{b : t_0^{(b)} \ge t\}}{1 + B}, \qquad Z = \Phi^{-1}(1 - p),

never 0, resolution :math:`1/(B+1)`.  A :math:`\chi^2` with free degrees of
freedom is fitted to the null for asymptotic p and Z beyond the toys, with a
KS goodness-of-fit p-value.

Several configurations (settings given as lists) run on the *same* toys; their
per-configuration p-values are aggregated (``minp-fisher`` by default, see
:data:`sparker.stats.AGGREGATIONS`) and the aggregated statistic is calibrated
on those same toys.

Modules:

- :mod:`~sparker.calibration.api`: :func:`test`, :func:`calibrate`,
  :func:`expand_settings`;
- :mod:`~sparker.calibration.calibration`: the :class:`Calibration` (save, load,
  test) and the assembly of a :class:`TestResult`;
- :mod:`~sparker.calibration.toys`: the toy problem, fixed blocks of
  :data:`REPLICA_BLOCK` replicas, chunks on a back end, the progress bar;
- :mod:`~sparker.calibration.checkpoint`: finished toys on disk, for resuming.
"""

from ..results import TestResult
from .api import calibrate, expand_settings, test
from .calibration import CALIBRATION_FORMAT, CALIBRATION_VERSION, Calibration
from .toys import REPLICA_BLOCK

__all__ = [
    "TestResult", "Calibration", "test", "calibrate", "expand_settings", "REPLICA_BLOCK",
    "CALIBRATION_FORMAT", "CALIBRATION_VERSION",
]
