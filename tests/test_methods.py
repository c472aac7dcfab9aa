"""The registry of methods (``sparker.methods.METHODS``): SparKer and every baseline by name."""

import math

import numpy as np
import pytest

import sparker
from sparker.app import bench
from sparker.app.cli import build_parser
from sparker.baselines import BASELINES
from sparker.methods import METHODS, Method

#: tiny SparKer settings: each fit takes a few milliseconds
TINY_SPARKER = {"n_kernels": 2, "epochs": 20, "reseed": False}


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(3)
    reference = rng.uniform(size=(400, 2))
    data = np.concatenate([rng.uniform(size=(50, 2)), 0.5 + 0.03 * rng.standard_normal((10, 2))])
    return reference, data


def _settings(method: Method) -> dict:
    return TINY_SPARKER if method.settings else {}


def test_the_registry_holds_sparker_and_every_baseline_in_order():
    assert list(METHODS) == ["sparker", *BASELINES]
    assert all(isinstance(m, Method) and m.name == name for name, m in METHODS.items())
    assert METHODS["sparker"].test is sparker.test
    for name, fn in BASELINES.items():
        assert METHODS[name].test is fn


def test_the_power_study_and_the_command_line_pick_methods_from_the_registry():
    assert bench.STATISTICS == {name: m.statistic for name, m in METHODS.items()}
    assert bench.TESTS == {name: m.test for name, m in METHODS.items()}
    parser = build_parser()
    base = ["test", "--reference", "r.npy", "--data", "d.npy"]
    for name in METHODS:
        assert parser.parse_args([*base, "--method", name]).method == name
    assert parser.parse_args(base).method == "sparker"


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_its_test_through_the_registry(samples, name):
    reference, data = samples
    method = METHODS[name]
    result = method.test(reference, data, n_null=3, seed=1, **_settings(method))
    assert isinstance(result, sparker.TestResult)
    assert result.method == name
    assert result.n_null == 3 and 1 / 4 <= result.pvalue <= 1
    assert math.isfinite(result.statistic)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_has_a_single_fit_statistic(samples, name):
    reference, data = samples
    method = METHODS[name]
    t = method.statistic(reference, data, seed=1, **_settings(method))
    assert isinstance(t, float) and math.isfinite(t)
    assert method.statistic(reference, data, seed=1, **_settings(method)) == t  # reproducible


def test_sparker_statistic_is_the_estimator_statistic(samples):
    reference, data = samples
    t = METHODS["sparker"].statistic(reference, data, seed=2, **TINY_SPARKER)
    assert t == sparker.SparKer(seed=2, **TINY_SPARKER).fit(reference, data).statistic_


def test_command_line_options_of_each_method():
    sparker_options = METHODS["sparker"].options
    assert {"n_null", "seed", "null", "aggregation", "backend", "reference_weight", "data_weight"} <= sparker_options
    assert "calibration" not in sparker_options
    assert METHODS["sparker"].settings and METHODS["sparker"].calibration
    for name in BASELINES:
        assert METHODS[name].options == {"n_null", "seed", "null"}
        assert not METHODS[name].settings and not METHODS[name].calibration
