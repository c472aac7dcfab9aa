"""High dimensions: the end-width cap for concentrated distances and leave-one-out re-seeding.

In hundreds of dimensions every pair of points is about sqrt(2 d) apart.  The
quantile end width is then nearly the typical distance, kernels are no longer
local and the null statistic is large; a narrower width without the
leave-one-out candidate count lets re-seeded kernels memorise single points.
"""

import math

import numpy as np
import pytest

import sparker
from sparker.model.ensemble import contrast_width, resolve_widths
from sparker.scenarios import make

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.usefixtures("quiet_convergence_warning")]


def test_contrast_width_formula():
    near, typical, contrast = 3.0, 5.0, 1e-2
    sigma = contrast_width(near, typical, contrast)
    ratio = math.exp(-(typical**2 - near**2) / (2 * sigma**2))
    assert ratio == pytest.approx(contrast, rel=1e-12)
    assert contrast_width(near, typical, 1.0) == math.inf
    assert contrast_width(5.0, 5.0, 1e-2) == math.inf  # no spread: no bound


@pytest.mark.parametrize("d, binds", [(2, False), (512, True)])
def test_cap_binds_only_where_distances_concentrate(d, binds):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1_500, d))
    capped = resolve_widths(X, sparker.SparKer().training_config(), 0)[0][1]
    plain = resolve_widths(X, sparker.SparKer(sigma_end_contrast=1.0).training_config(), 0)[0][1]
    assert (capped < 0.5 * plain) if binds else (capped == plain)


@pytest.mark.parametrize("value", [0.0, -1e-3, 1.5, float("nan")])
def test_contrast_is_validated(value):
    R = np.random.default_rng(0).standard_normal((50, 2))
    with pytest.raises(ValueError, match="^sigma_end_contrast:"):
        sparker.SparKer(sigma_end_contrast=value, epochs=2).fit(R, R[:20])


def test_high_dimensional_null_is_quiet_and_a_tight_cluster_is_found():
    params = {"n_reference": 3_000, "n_data": 600, "d": 256}
    null_t, signal_t, hits = [], [], 0
    for seed in range(2):
        R, D, _ = make("gauss_highd", seed=seed, eps=0.0, **params)
        null_t.append(sparker.SparKer(seed=seed, epochs=300).fit(R, D).statistic_)
        R, D, truth = make("gauss_highd", seed=seed, eps=0.02, **params)
        model = sparker.SparKer(seed=seed, epochs=300).fit(R, D)
        signal_t.append(model.statistic_)
        anomalous = D[truth["is_anomaly"]]
        for k in model.kernels_:
            if k["active"]:
                centre = np.array(list(k["centre"].values()))
                # on the cluster: nearer to an anomalous point than any reference point is
                nearest_anomaly = np.linalg.norm(anomalous - centre, axis=1).min()
                hits += nearest_anomaly < np.linalg.norm(R - centre, axis=1).min()
    # with the quantile width alone the null statistic is about 270 here; with the capped width
    # it is bimodal over draws (about 0.2, or 10-40 when a kernel settles on a fluctuation)
    assert max(null_t) < 50.0
    assert max(signal_t) > max(null_t) + 10.0
    assert hits >= 1
