"""SparKer: sparse, self-organising ensembles of local kernels for rare-anomaly detection.

Fit a handful of Gaussian kernels whose centres move, compete and sharpen while
a Neyman-Pearson likelihood-ratio loss pulls them onto the regions where an
inspected sample over- or under-populates a reference sample
(Grosso et al., arXiv 2511.03095).
"""

__version__ = "0.1.0"

from .config import LayerConfig, TrainingConfig  # noqa: E402
from .calibration import Calibration, TestResult, calibrate, test  # noqa: E402
from .estimator import SparKer  # noqa: E402
from . import baselines, scenarios  # noqa: E402

__all__ = [
    "SparKer", "TrainingConfig", "LayerConfig", "scenarios", "baselines", "test", "calibrate",
    "Calibration", "TestResult", "__version__",
]
