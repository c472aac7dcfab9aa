"""SparKer as a scikit-learn estimator: parameters, clone, repr, fitted state, generic checks."""

import copy

import numpy as np
import pytest
import sklearn
import torch
import sklearn.exceptions
from sklearn.base import BaseEstimator, clone
from sklearn.utils import estimator_checks
from sklearn.utils.validation import check_is_fitted

from sparker import SparKer
from sparker.config import TrainingConfig
from sparker.estimator import NotFittedError
from sparker.model.stack import KernelStack

FAST = dict(n_kernels=2, epochs=20, seed=0)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


def samples(seed=0, n_ref=200, n_data=80):
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n_ref, 2))
    D = rng.normal(size=(n_data, 2))
    D[:15] = 1.5 + 0.1 * rng.normal(size=(15, 2))
    return R, D


# ---------------------------------------------------------------- parameters


def test_is_a_base_estimator_with_the_training_defaults():
    m = SparKer()
    assert isinstance(m, BaseEstimator)
    params = m.get_params()
    defaults = TrainingConfig()
    for name in TrainingConfig.__dataclass_fields__:
        if name != "layers":
            assert params[name] == getattr(defaults, name), name
    assert {"layers", "n_expected", "seed", "device"} <= set(params)


def test_get_params_set_params_round_trip():
    a = SparKer(n_kernels=3, competition="softmax", layers=[{"n_kernels": 2}], seed=4)
    b = SparKer().set_params(**a.get_params())
    assert b.get_params() == a.get_params()
    assert b.set_params(epochs=7) is b and b.epochs == 7 and b.get_params()["epochs"] == 7
    with pytest.raises(ValueError, match=r"^bogus: not a parameter"):
        b.set_params(bogus=1)
    with pytest.raises(ValueError, match=r"^bogus: not a parameter"):
        b.set_params(epochs=3, bogus=1)


def test_repr_shows_the_parameters_that_differ_from_the_defaults():
    assert repr(SparKer()) == "SparKer()"
    assert repr(SparKer(n_kernels=3, competition="softmax")) == "SparKer(competition='softmax', n_kernels=3)"


def test_clone_gives_an_unfitted_copy_with_equal_parameters():
    R, D = samples()
    layers = [{"n_kernels": 2, "epochs": 10}, {"n_kernels": 2, "epochs": 10}]
    fitted = SparKer(layers=layers, seed=3).fit(R, D)
    copy_ = clone(fitted)
    assert type(copy_) is SparKer and copy_ is not fitted
    assert copy_.get_params() == fitted.get_params()
    assert not hasattr(copy_, "stack_") and not hasattr(copy_, "statistic_")
    with pytest.raises(NotFittedError):
        copy_.log_ratio(D)


def test_fit_returns_self_sets_fitted_attributes_and_leaves_parameters_alone():
    R, D = samples()
    layers = [{"n_kernels": 2, "epochs": 10}]
    m = SparKer(n_kernels=2, epochs=10, layers=layers, seed=1)
    before = copy.deepcopy(m.get_params())
    assert m.fit(R, D) is m
    assert m.get_params() == before and m.layers is layers and layers == [{"n_kernels": 2, "epochs": 10}]
    assert m.n_features_in_ == 2
    assert isinstance(m.stack_, KernelStack)
    check_is_fitted(m)


def test_same_seed_same_statistic():
    R, D = samples()
    assert SparKer(**FAST).fit(R, D).statistic_ == SparKer(**FAST).fit(R, D).statistic_
    assert clone(SparKer(**FAST)).fit(R, D).statistic_ == SparKer(**FAST).fit(R, D).statistic_


# ---------------------------------------------------------------- the fitted model object


def test_layers_property_mirrors_the_kernel_stack_and_is_read_only():
    R, D = samples()
    m = SparKer(layers=[{"n_kernels": 2, "epochs": 10}, {"n_kernels": 3, "epochs": 10}], seed=0).fit(R, D)
    layers = m.layers_
    assert [set(L) for L in layers] == [{"centres", "amplitudes", "sigma"}] * 2
    assert [tuple(L["centres"].shape) for L in layers] == [(2, 2), (3, 2)]
    assert [L["sigma"] for L in layers] == m.stack_.sigmas
    layers[0]["amplitudes"][:] = 0.0  # a copy: the model is unchanged
    np.testing.assert_array_equal(m.amplitudes_[:2], m.stack_.amplitudes[0].numpy())
    assert np.any(m.amplitudes_[:2] != 0.0)
    assert sorted(m.stack_.state_dict()) == ["amplitudes_0", "amplitudes_1", "centres_0", "centres_1",
                                              "sigma_0", "sigma_1"]


def test_kernel_stack_log_ratio_is_the_estimators():
    R, D = samples()
    m = SparKer(**FAST).fit(R, D)
    Z = (D - m.standardizer_.mean) / m.standardizer_.scale
    np.testing.assert_array_equal(m.stack_(torch.as_tensor(Z)).numpy(), m.log_ratio(D))
    gates = m.stack_.gates(torch.as_tensor(Z))
    assert len(gates) == 1 and gates[0].shape == (len(D), 2)
    np.testing.assert_allclose((gates[0] * m.stack_.amplitudes[0]).sum(1).numpy(), m.log_ratio(D),
                               rtol=1e-12, atol=1e-12)


def test_kernel_stack_refuses_inconsistent_layers():
    c, a = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="layer 0 has non-float"):
        KernelStack([c.long()], [a], [1.0], "kernel-softmax")
    with pytest.raises(ValueError, match="layer 1 has centres of shape"):
        KernelStack([c, torch.zeros(2, 4, dtype=torch.float64)], [a, a], [1.0, 0.5], "kernel-softmax")
    with pytest.raises(ValueError, match="width <= 0"):
        KernelStack([c], [a], [0.0], "kernel-softmax")
    with pytest.raises(ValueError, match="^competition:"):
        KernelStack([c], [a], [1.0], "max")


# ---------------------------------------------------------------- not fitted


UNFITTED_CALLS = {
    "log_ratio": lambda m, X, tmp: m.log_ratio(X),
    "score_samples": lambda m, X, tmp: m.score_samples(X),
    "explain": lambda m, X, tmp: m.explain(X),
    "flag": lambda m, X, tmp: m.flag(X),
    "top_points": lambda m, X, tmp: m.top_points(3, X),
    "kernels_frame": lambda m, X, tmp: m.kernels_frame(),
    "to_dict": lambda m, X, tmp: m.to_dict(),
    "save": lambda m, X, tmp: m.save(tmp / "m.npz"),
    "centres_": lambda m, X, tmp: m.centres_,
    "amplitudes_": lambda m, X, tmp: m.amplitudes_,
    "layers_": lambda m, X, tmp: m.layers_,
}


@pytest.mark.parametrize("method", sorted(UNFITTED_CALLS))
def test_every_scoring_method_raises_not_fitted_before_fit(method, tmp_path):
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted") as info:
        UNFITTED_CALLS[method](SparKer(), np.zeros((3, 2)), tmp_path)
    assert isinstance(info.value, NotFittedError) and isinstance(info.value, RuntimeError)
    assert not (tmp_path / "m.npz").exists()


def test_not_fitted_error_is_both_sklearns_and_a_runtime_error():
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(NotFittedError, RuntimeError)
    mro = NotFittedError.__mro__
    assert mro.index(sklearn.exceptions.NotFittedError) < mro.index(RuntimeError)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(SparKer())
    assert not hasattr(SparKer(), "layers_")  # as before: no such attribute before fit


# ---------------------------------------------------------------- generic scikit-learn checks


#: Checks of the parameters alone, which apply to SparKer itself as it is.
PARAMETER_CHECKS = [
    "check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
    "check_parameters_default_constructible", "check_get_params_invariance", "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order",
]


@pytest.mark.parametrize("name", PARAMETER_CHECKS)
def test_scikit_learn_parameter_checks_on_sparker_itself(name):
    check = getattr(estimator_checks, name, None)
    if check is None:
        pytest.skip(f"scikit-learn {sklearn.__version__} has no {name}")
    check("SparKer", SparKer())


class OneSampleSparKer(SparKer):
    """SparKer with the one-sample ``fit(X, y=None)`` that the generic checks call.

    The checks have one sample; it serves as both the reference and the data (a null
    comparison).  The parameters, the fitted state and every other method are SparKer's.
    """

    def fit(self, X, y=None):
        return super().fit(X, X)


#: Generic checks that do not apply to SparKer, with the reason.
SKIPPED = {
    # SparKer's errors start with the argument's name and use TypeError for values of the
    # wrong kind (``reference: complex values are not supported``); the check wants a
    # ValueError with scikit-learn's own wording
    "check_complex_data": "complex input raises SparKer's TypeError naming the argument",
    # same convention: ``reference: has 0 sample(s) but at least 2 are required``
    "check_estimators_empty_data_messages": "empty input raises SparKer's message naming the argument",
    # pickling is not part of the contract: models are saved with save/load (no pickle)
    "check_estimators_pickle": "models are saved with SparKer.save (a pickle-free archive)",
}


def _generic_checks() -> list:
    """One ``pytest.param(estimator, check)`` per generic check, named after the check."""
    if not hasattr(estimator_checks, "estimator_checks_generator"):  # scikit-learn < 1.6
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"scikit-learn {sklearn.__version__} "
                                                                  "has no estimator_checks_generator"))]
    est = OneSampleSparKer(n_kernels=2, epochs=5)
    return [pytest.param(e, check, id=getattr(check, "func", check).__name__)
            for e, check in estimator_checks.estimator_checks_generator(
                est, expected_failed_checks=SKIPPED, mark="skip")]


@pytest.mark.filterwarnings("ignore::UserWarning")  # checks fit tiny or odd samples
@pytest.mark.parametrize("estimator, check", _generic_checks())
def test_scikit_learn_generic_checks(estimator, check):
    """The generic estimator checks, run on the one-sample adapter (see ``SKIPPED``).

    Among them: clone, get_params/set_params, repr, no attributes set in ``__init__``,
    parameters not overwritten by ``fit``, ``fit`` returns self, ``n_features_in_``,
    ``check_is_fitted``, dtypes, NaN/inf and 1-D input refused, read-only memory maps,
    ``score_samples`` invariant to the order and batching of the points, idempotent fit.
    """
    check(estimator)
