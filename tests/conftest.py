"""Shared test configuration: Hypothesis profiles.

``ci`` (the default) keeps every property test to a few seconds on two cores;
``thorough`` runs ten times as many cases (``HYPOTHESIS_PROFILE=thorough pytest ...``);
``dev`` is a quick smoke run.  Property tests that train models ask for a
fraction of the profile's ``max_examples`` (see ``tests/test_properties.py``).
"""

import logging
import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, settings

from sparker import ConvergenceWarning

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
               "print_blob": True}

settings.register_profile("ci", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=400, **_COMMON)
settings.register_profile("dev", max_examples=8, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny problems: with two intra-op threads on a busy
    2-core machine every small op waits for a descheduled thread (a square2d fit went from
    3 s to 150 s).  Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def quiet_convergence_warning(caplog):
    """Silence the "loss had not settled" warning of short test fits (a ConvergenceWarning, or a log line)."""
    caplog.set_level(logging.ERROR, logger="sparker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def assert_deterministic_per_seed(name: str, params: dict) -> None:
    """Scenario ``name``: the same seed gives the same arrays and truth; another seed differs."""
    import numpy as np

    from sparker.scenarios import make

    r1, d1, t1 = make(name, seed=5, **params)
    r2, d2, t2 = make(name, seed=5, **params)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(t1["is_anomaly"], t2["is_anomaly"])
    np.testing.assert_array_equal(t1["centres"], t2["centres"])
    r3, d3, _ = make(name, seed=6, **params)
    assert r3.shape != r1.shape or not np.array_equal(r1, r3)
    assert d3.shape != d1.shape or not np.array_equal(d1, d3)


def assert_null_like_reference(name: str, params: dict) -> None:
    """Scenario ``name`` at its null ``params``: no anomaly, no centre, and every non-constant
    feature of the data passes a two-sample KS test against the reference (family-wise level
    0.001, Bonferroni over features; KS is conservative on integer-valued features)."""
    import numpy as np
    from scipy import stats

    from sparker.scenarios import make

    reference, data, truth = make(name, seed=0, **params)
    assert not truth["is_anomaly"].any()
    assert truth["centres"].shape == (0, reference.shape[1])
    pvalues = [
        stats.ks_2samp(reference[:, j], data[:, j]).pvalue
        for j in range(reference.shape[1])
        if np.ptp(reference[:, j]) > 0 or np.ptp(data[:, j]) > 0
    ]
    assert min(pvalues) > 0.001 / len(pvalues), min(pvalues)
