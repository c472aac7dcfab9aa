"""SparKer: sparse, self-organising ensembles of local kernels for rare-anomaly detection.

Fit a handful of Gaussian kernels whose centres move, compete and sharpen while
a Neyman-Pearson likelihood-ratio loss pulls them onto the regions where an
inspected sample over- or under-populates a reference sample
(Grosso et al., arXiv 2511.03095).
"""

from . import baselines, scenarios
from ._version import __version__
from ._warnings import ConvergenceWarning, SparKerWarning
from .calibration import Calibration, calibrate, test
from .config import LayerConfig, NullConfig, RunConfig, TrainingConfig
from .estimator import SparKer
from .monitor import Monitor
from .results import TestResult

__all__ = [
    "SparKer", "TrainingConfig", "LayerConfig", "NullConfig", "RunConfig", "scenarios", "baselines",
    "test", "calibrate", "Calibration", "TestResult", "SparKerWarning", "ConvergenceWarning",
    "Monitor", "__version__",
]
