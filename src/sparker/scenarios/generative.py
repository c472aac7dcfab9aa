"""Generative-model validation: ``genval``, a Gaussian-mixture generator with a known flaw.

Needs scikit-learn; see :mod:`sparker.scenarios` for the conventions every generator
follows.

The flaws
---------
The mixture is fitted once, to the real rows standardised with their own mean and
standard deviation (constant features: scale 1); samples are mapped back to original
units. With weights w and the flawed component k:

- ``overproduced_mode``: ``n_data - m`` points from the faithful mixture plus
  ``m = round(fraction * n_data)`` extra points from component k, i.e. weights
  (1 - fraction) w + fraction e_k: an excess of a fraction ``fraction`` of the
  data at mean_k (component k's weight goes from w_k to w_k + fraction (1 - w_k)).
- ``dropped_mode``: the mirror image, weights (w - fraction e_k) / (1 - fraction)
  while fraction <= w_k: a deficit of about ``fraction * n_data`` points near
  mean_k. When fraction >= w_k the whole mode is dropped (weight 0, the
  others renormalised), so ``fraction=1`` always removes the mode.
- ``oversmoothed``: every covariance multiplied by (1 + fraction).

So for the two mode flaws ``fraction`` is the share of the data moved into
(or out of) the flawed mode, on the same scale as ``eps`` elsewhere.

Which reference
---------------
The question "is the generator faithful?" has an exact null only if the reference
comes from the very distribution a faithful generator samples. With
``reference="model"`` (default) the reference is a sample of the faithful fitted
mixture, which stands in for the real distribution: the flaw is then the only
difference between reference and data at every ``fraction``, and ``fraction=0`` is an
exact null (independent draws of one distribution). With ``reference="real"`` the
reference is the real rows, the practical use; but a Gaussian mixture is not the real
distribution (digits pixels are integers, for a start), so even ``fraction=0`` is not a
null there: a test measures the mixture's own misfit plus the flaw.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._validation import check_choice, check_fraction, check_int
from ._common import SKLEARN_INSTALL, as_f64, load_sklearn, count_anomalous, require_module, random_streams, make_truth
from .registry import register

__all__ = ["genval"]

_GENVAL_DATASETS = {"digits": "load_digits", "breast_cancer": "load_breast_cancer"}


def _flaw_dropped(weights, k, fraction):
    """Weight of component k lowered by fraction (at most to 0), renormalised: a deficit there."""
    w = weights.copy()
    w[k] = max(w[k] - fraction, 0.0)
    if w.sum() <= 0:
        raise ValueError("fraction: dropping the only populated component leaves nothing to sample")
    return w / w.sum(), 1.0, "deficit"


def _flaw_overproduced(weights, k, fraction):
    """Faithful weights; the excess is added separately as fraction * n_data points of k."""
    return weights, 1.0, "excess"


def _flaw_oversmoothed(weights, k, fraction):
    """All covariances multiplied by (1 + fraction): a global distortion."""
    return weights, 1.0 + fraction, "oversmoothed"


_GENVAL_FLAWS = {
    "dropped_mode": _flaw_dropped,
    "overproduced_mode": _flaw_overproduced,
    "oversmoothed": _flaw_oversmoothed,
}


def _sample_mixture(rng, n, weights, means, chols, shuffle=True):
    """n points from a Gaussian mixture; returns (points, component index)."""
    counts = rng.multinomial(n, weights)
    comp = np.repeat(np.arange(len(weights)), counts)  # (n,)
    z = rng.standard_normal((n, means.shape[1]))
    x = means[comp] + np.einsum("nij,nj->ni", chols[comp], z)  # (n, d)
    if shuffle:
        order = rng.permutation(n)
        x, comp = x[order], comp[order]
    return x, comp


class _Mixture(NamedTuple):
    """A Gaussian mixture fitted to standardised rows, and the standardisation."""

    mean: np.ndarray  # (d,) of the real rows
    scale: np.ndarray  # (d,), 1 for constant features
    weights: np.ndarray  # (K,), summing to 1
    means: np.ndarray  # (K, d), standardised units
    chols: np.ndarray  # (K, d, d), Cholesky factors of the covariances


def _fit_mixture(mixture_module, X: np.ndarray, n_components: int, rng) -> _Mixture:
    """Full-covariance ``GaussianMixture`` fitted to ``X`` standardised by its own moments."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    gmm = mixture_module.GaussianMixture(
        n_components=n_components,
        covariance_type="full",
        random_state=int(rng.integers(2**31 - 1)),
    ).fit((X - mean) / scale)
    weights = gmm.weights_ / gmm.weights_.sum()  # (K,)
    chols = np.linalg.cholesky(gmm.covariances_)  # (K, d, d)
    return _Mixture(mean, scale, weights, gmm.means_, chols)


def _flawed_sample(rng, mix: _Mixture, flaw: str, k: int, fraction: float, n_data: int):
    """``n_data`` rows of the flawed generator in original units, the excess count and the effect."""
    data_weights, cov_factor, effect = _GENVAL_FLAWS[flaw](mix.weights, k, fraction)
    n_extra = count_anomalous(fraction, n_data) if flaw == "overproduced_mode" else 0
    faithful, _ = _sample_mixture(
        rng, n_data - n_extra, data_weights, mix.means, mix.chols * math.sqrt(cov_factor)
    )
    extra = mix.means[k] + rng.standard_normal((n_extra, mix.means.shape[1])) @ mix.chols[k].T  # (n_extra, d)
    return np.concatenate([faithful, extra]) * mix.scale + mix.mean, n_extra, effect


def _genval_checks(dataset, flaw, fraction, n_components, component, reference, n_data):
    """Validated ``fraction``, ``n_components``, ``component`` and ``n_data`` of :func:`genval`."""
    check_choice(dataset, _GENVAL_DATASETS, name="dataset")
    check_choice(flaw, _GENVAL_FLAWS, name="flaw")
    fraction = check_fraction(fraction, name="fraction")
    n_components = check_int(n_components, name="n_components", minimum=1)
    check_choice(reference, ("model", "real"), name="reference")
    n_data = check_int(n_data, name="n_data", minimum=1)
    if component is not None:
        component = check_int(component, name="component", minimum=0, maximum=n_components - 1)
    return fraction, n_components, component, n_data


def _genval_sizes(X: np.ndarray, dataset: str, n_components: int, reference: str, n_reference) -> int:
    """Check ``n_components`` against the rows of ``X``; the validated reference size."""
    if n_components > len(X):
        raise ValueError(f"n_components: at most {len(X)} (rows of {dataset!r}), got {n_components}")
    if n_reference is None:
        n_reference = 20_000 if reference == "model" else len(X)
    maximum = None if reference == "model" else len(X)
    return check_int(n_reference, name="n_reference", minimum=1, maximum=maximum)


def _genval_reference(rng, mix: _Mixture, X: np.ndarray, reference: str, n_reference: int) -> np.ndarray:
    """The reference in original units: faithful-mixture samples or real rows."""
    if reference == "model":
        ref, _ = _sample_mixture(rng, n_reference, mix.weights, mix.means, mix.chols)
        return ref * mix.scale + mix.mean
    return X[rng.permutation(len(X))[:n_reference]]


@register("genval")
def genval(
    seed: int = 0,
    *,
    dataset: str = "digits",
    flaw: str = "overproduced_mode",
    fraction: float = 0.05,
    n_components: int = 10,
    component: int | None = None,
    reference: str = "model",
    n_reference: int | None = None,
    n_data: int = 2_000,
):
    """Generative-model validation: a Gaussian-mixture generator with a known flaw.

    Parameters
    ----------
    seed : int, default=0
        Seeds the mixture fit, the choice of component and the sampling.
    dataset : {"digits", "breast_cancer"}, default="digits"
        Real data shipped with scikit-learn (1,797 x 64 or 569 x 30).
    flaw : {"dropped_mode", "overproduced_mode", "oversmoothed"}, default="overproduced_mode"
        What is wrong with the generator that produces the data; see Notes.
    fraction : float, default=0.05
        Strength of the flaw, in [0, 1]; 0 gives a faithful generator (a null
        sample when ``reference="model"``).
    n_components : int, default=10
        Components of the ``sklearn.mixture.GaussianMixture`` (full covariances)
        fitted to the standardised real data.
    component : int or None, default=None
        The flawed component for ``dropped_mode`` and ``overproduced_mode``;
        None draws one at random with probability equal to its weight.
    reference : {"model", "real"}, default="model"
        What the reference is: samples of the faithful (unmodified) mixture, or
        the real rows. See Notes.
    n_reference : int or None, default=None
        Reference size; None means 20,000 for ``reference="model"`` and every
        real row for ``reference="real"`` (then at most the data set's size).
    n_data : int, default=2_000
        Samples from the flawed generator.

    Returns
    -------
    reference : ndarray of shape (n_reference, n_features)
    data : ndarray of shape (n_data, n_features)
    truth : dict
        See :mod:`sparker.scenarios`. ``is_anomaly`` marks the excess points of
        ``overproduced_mode`` and is all False for the other flaws (a deficit or
        a global change has no anomalous point). ``centres`` is the flawed
        component's mean in original units, shape (1, n_features), for the two
        mode flaws with ``fraction > 0``, else empty. Extra keys: ``effect``
        ("excess", "deficit" or "oversmoothed") and ``weights`` (the faithful
        mixture weights, shape (n_components,)).

    Notes
    -----
    :mod:`sparker.scenarios.generative` states each flaw exactly and explains why
    ``reference="model"`` is the default: only then is ``fraction=0`` an exact null.
    """
    fraction, n_components, component, n_data = _genval_checks(
        dataset, flaw, fraction, n_components, component, reference, n_data
    )
    mixture_module = require_module("sklearn.mixture", scenario="genval", package="scikit-learn",
                              install=SKLEARN_INSTALL)
    X, _, names = load_sklearn(_GENVAL_DATASETS[dataset], "genval")
    n_reference = _genval_sizes(X, dataset, n_components, reference, n_reference)
    rng_fit, rng_pick, rng_ref, rng_data = random_streams(seed, 4)
    mix = _fit_mixture(mixture_module, X, n_components, rng_fit)
    k = int(rng_pick.choice(n_components, p=mix.weights)) if component is None else component
    ref = _genval_reference(rng_ref, mix, X, reference, n_reference)
    data, n_extra, effect = _flawed_sample(rng_data, mix, flaw, k, fraction, n_data)
    is_anomaly = np.arange(n_data) >= n_data - n_extra
    localised = flaw != "oversmoothed" and fraction > 0
    centres = (mix.means[k] * mix.scale + mix.mean)[None] if localised else np.empty((0, X.shape[1]))
    params = {"dataset": dataset, "flaw": flaw, "fraction": fraction, "n_components": n_components,
              "component": None if flaw == "oversmoothed" else k, "reference": reference,
              "n_reference": n_reference, "n_data": n_data}
    truth = make_truth(is_anomaly, centres, params, names, effect=effect, weights=as_f64(mix.weights))
    return as_f64(ref), as_f64(data), truth
