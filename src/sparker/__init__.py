"""SparKer: sparse, self-organising ensembles of local kernels for rare-anomaly detection.

Fit a handful of Gaussian kernels whose centres move, compete and sharpen while
a Neyman-Pearson likelihood-ratio loss pulls them onto the regions where an
inspected sample over- or under-populates a reference sample
(Grosso et al., arXiv 2511.03095).
"""

import os as _os

from .core.threads import REPRODUCIBLE_ENV as _REPRODUCIBLE

# matrix products that do not depend on the thread count (MKL reads this at its first
# product; a value the user set is kept): see sparker.core.threads
_os.environ.setdefault(*_REPRODUCIBLE)

from . import baselines, scenarios  # noqa: E402
from ._version import __version__  # noqa: E402
from ._warnings import ConvergenceWarning, SparKerWarning  # noqa: E402
from .calibration import Calibration, calibrate, test  # noqa: E402
from .config import LayerConfig, NullConfig, RunConfig, TrainingConfig  # noqa: E402
from .estimator import SparKer  # noqa: E402
from .monitor import Monitor  # noqa: E402
from .results import TestResult  # noqa: E402

__all__ = [
    "SparKer", "TrainingConfig", "LayerConfig", "NullConfig", "RunConfig", "scenarios", "baselines",
    "test", "calibrate", "Calibration", "TestResult", "SparKerWarning", "ConvergenceWarning",
    "Monitor", "__version__",
]
