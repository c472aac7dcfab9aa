"""Tests for sparker.baselines: agreement with naive and independent implementations,
the shared result type and null toys, detection, type-I error and input errors.

The full type-I checks (>= 200 tests per baseline and null mode) are marked slow; run them
with ``pytest -m slow tests/test_baselines.py``.
"""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from sparker.baselines import (
    BASELINES,
    DETECTORS,
    KernelNPLM,
    c2st,
    isolation_forest_scores,
    lof_scores,
    mmd,
    mmd_agg,
    nplm_kernel,
)
from sparker.baselines import _common as common
from sparker.baselines.c2st import _bin_edges as bin_edges
from sparker.baselines.mmd import _quantile_widths as mmd_widths
from sparker.baselines.mmd import mmd_permutation_statistics
from sparker.baselines.nplm import _widths as nplm_widths
from sparker.results import TestResult
from sparker.core.nulls import NullSpec, toy_weights
from sparker.core.order import canonical_order
from sparker.stats import binomial_interval

pytest.importorskip("sklearn")

# small, fast settings per baseline (the defaults are sized for real problems)
FAST = {
    "nplm_kernel": {"n_centres": 100},
    "mmd": {},
    "mmd_agg": {},
    "c2st": {"max_iter": 30},
}
MODES = {name: (("permutation",) if name.startswith("mmd") else ("resample", "permutation")) for name in BASELINES}


def standardise(R, *others):
    mean, scale = R.mean(0), R.std(0)
    return [(X - mean) / scale for X in (R, *others)]


def standardise_pooled(R, D):
    """Permutation mode: both samples standardised with the pooled sample's moments."""
    P = np.concatenate([R, D])
    mean, scale = P.mean(0), P.std(0)
    return (R - mean) / scale, (D - mean) / scale


# ---------------------------------------------------------------- naive references
def naive_mmd2(X, Y, sigma):
    """Unbiased MMD^2, one pair at a time."""
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma * sigma))

    m, n = len(X), len(Y)
    sxx = sum(k(X[i], X[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(Y[i], Y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(X[i], Y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def gauss(A, B, sigma):
    return np.exp(-((A[:, None, :] - B[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))


def scipy_nplm(model: KernelNPLM, R, D, lam, loss):
    """Solve the kernel NPLM problem (permutation mode) in alpha with scipy's L-BFGS-B.

    Returns (t, loss_fn, loss_min).
    """
    Rs, Ds = standardise_pooled(R, D)
    X = np.concatenate([Rs, Ds])
    w = np.r_[np.full(len(R), len(D) / len(R)), np.zeros(len(D))]
    d = np.r_[np.zeros(len(R)), np.ones(len(D))]
    C = model._centres_std
    Knm, Kmm = gauss(X, C, model.sigma_), gauss(C, C, model.sigma_)
    N = len(X)

    def objective(a):
        f = Knm @ a
        if loss == "logistic":
            value = np.sum(w * np.logaddexp(0, f) + d * np.logaddexp(0, -f))
            gf = (w + d) / (1 + np.exp(-f)) - d
        else:
            value = np.sum(w * np.expm1(f) - d * f)
            gf = w * np.exp(f) - d
        return value + lam * N * a @ Kmm @ a, Knm.T @ gf + 2 * lam * N * Kmm @ a

    opt = minimize(objective, np.zeros(len(C)), jac=True, method="L-BFGS-B",
                   options={"maxiter": 100_000, "maxfun": 100_000, "ftol": 1e-16, "gtol": 1e-13, "maxcor": 50})
    f = Knm @ opt.x
    t = 2 * np.sum(d * f - w * np.expm1(f))
    return t, (lambda a: objective(a)[0]), opt.fun


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(7)
    return rng.standard_normal((600, 2)), rng.standard_normal((100, 2)) + 0.8


@pytest.fixture(scope="module")
def null_pair():
    rng = np.random.default_rng(11)
    return rng.standard_normal((300, 3)), rng.standard_normal((60, 3))


# ---------------------------------------------------------------- registry and result type
def test_registry_names_and_call_shape():
    assert set(BASELINES) == {"nplm_kernel", "mmd", "mmd_agg", "c2st"}
    assert set(DETECTORS) == {"isolation_forest", "lof"}
    import sparker.baselines as B

    for name, fn in BASELINES.items():
        assert getattr(B, name) is fn


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_result_type_and_detection(name, shifted):
    R, D = shifted
    res = BASELINES[name](R, D, n_null=19, seed=0, **FAST[name])
    assert isinstance(res, TestResult)
    assert res.method == name
    assert 0 < res.pvalue <= 1
    assert res.pvalue == pytest.approx(1 / 20)  # beyond every toy
    assert res.zscore > 1.5
    assert res.null_distribution.shape == (19,) and res.n_null == 19
    assert res.null_mode == ("permutation" if name.startswith("mmd") else "resample")
    json.dumps(res.to_dict())


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_pvalue_never_zero_and_deterministic(name, null_pair):
    R, D = null_pair
    a = BASELINES[name](R, D, n_null=9, seed=3, null="permutation", **FAST[name])
    b = BASELINES[name](R, D, n_null=9, seed=3, null="permutation", **FAST[name])
    assert 0 < a.pvalue <= 1 and a.pvalue >= 1 / 10
    assert a.statistic == b.statistic
    np.testing.assert_array_equal(a.null_distribution, b.null_distribution)
    c = BASELINES[name](R, D, n_null=9, seed=4, null="permutation", **FAST[name])
    assert not np.array_equal(a.null_distribution, c.null_distribution)


# ---------------------------------------------------------------- MMD
def test_mmd_statistic_matches_naive_loop():
    rng = np.random.default_rng(0)
    R, D = rng.standard_normal((23, 3)), rng.standard_normal((11, 3)) + 0.3
    res = mmd(R, D, n_null=6, seed=5, bandwidth=0.9, dtype="float64", block_size=7)
    Rs, Ds = standardise_pooled(R, D)
    assert res.statistic == pytest.approx(naive_mmd2(Ds, Rs, 0.9), rel=1e-12, abs=1e-14)
    # the permuted statistics are those of permutation toys over the pool in canonical order
    pool = np.concatenate([Rs, Ds])[canonical_order([R, D])]
    spec = NullSpec("permutation", 23, 11)
    for b in range(6):
        _, d = toy_weights(spec, np.random.SeedSequence(5, spawn_key=(2, b, 0)))
        expect = naive_mmd2(pool[d > 0], pool[d == 0], 0.9)
        assert res.null_distribution[b] == pytest.approx(expect, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("block_size", [4, 9, 100])
def test_mmd_tiles_give_the_same_numbers(block_size):
    rng = np.random.default_rng(1)
    Z = torch.as_tensor(rng.standard_normal((30, 2)))
    A = torch.zeros(30, 3, dtype=torch.float64)
    A[20:, 0] = 1
    A[:10, 1] = 1
    A[5:15, 2] = 1
    ref = np.array([[naive_mmd2(Z.numpy()[A[:, p] > 0], Z.numpy()[A[:, p] == 0], s) for p in range(3)]
                    for s in (0.5, 2.0)])
    out64 = mmd_permutation_statistics(Z, A, [0.5, 2.0], block_size=block_size, dtype=torch.float64)
    np.testing.assert_allclose(out64.numpy(), ref, rtol=1e-11, atol=1e-14)
    out32 = mmd_permutation_statistics(Z, A, [0.5, 2.0], block_size=block_size, dtype=torch.float32)
    np.testing.assert_allclose(out32.numpy(), ref, atol=1e-6)


def test_mmd_agg_per_bandwidth_and_aggregations(null_pair):
    R, D = null_pair
    res = mmd_agg(R, D, n_null=19, seed=2, bandwidths=[0.5, 1.0, 2.0], dtype="float64")
    assert res.per_config["bandwidths"] == [0.5, 1.0, 2.0]
    single = mmd(R, D, n_null=19, seed=2, bandwidth=1.0, dtype="float64")
    assert res.per_config["statistics"][1] == pytest.approx(single.statistic, rel=1e-12)
    assert res.per_config["pvalues"][1] == pytest.approx(single.pvalue)
    for agg in ("minp", "fisher", "meanp"):
        other = mmd_agg(R, D, n_null=19, seed=2, bandwidths=[0.5, 1.0, 2.0], aggregation=agg)
        assert other.per_config["aggregation"] == agg and 0 < other.pvalue <= 1
    default = mmd_agg(R, D, n_null=9, seed=2)
    widths = default.per_config["bandwidths"]
    assert len(widths) == 10 and np.all(np.diff(widths) > 0)
    np.testing.assert_allclose(np.diff(np.log(widths)), np.log(widths[1] / widths[0]))


def test_mmd_agrees_with_kerneltests():
    kt_mmdagg = pytest.importorskip("kt.mmdagg")
    rng = np.random.default_rng(3)
    R, D = rng.standard_normal((40, 3)), rng.standard_normal((25, 3)) + 0.2
    Rs, Ds = standardise_pooled(R, D)
    _, details = kt_mmdagg.mmdagg(Ds, Rs, kernel="gaussian", number_bandwidths=2, B1=20, B2=20, B3=5,
                                  return_details=True)
    for bw, value in zip(details["bandwidth"], details["mmd"]):
        # kerneltests' Gaussian kernel is exp(-|x - y|^2 / bw^2): sigma = bw / sqrt(2)
        ours = mmd(R, D, n_null=3, bandwidth=bw / np.sqrt(2), dtype="float64")
        assert ours.statistic == pytest.approx(value, rel=1e-9, abs=1e-13)


# ---------------------------------------------------------------- kernel NPLM
@pytest.mark.parametrize("loss", ["logistic", "nplm"])
@pytest.mark.parametrize("sigma, n_centres, lam", [(1.0, 10, 1e-6), (0.7, 20, 1e-6), (1.0, 20, 1e-4)])
def test_nplm_t_agrees_with_scipy(loss, sigma, n_centres, lam):
    rng = np.random.default_rng(1)
    R, D = rng.standard_normal((120, 2)), rng.standard_normal((40, 2)) + 0.4
    res = nplm_kernel(R, D, n_null=2, seed=0, null="permutation", sigma=sigma, n_centres=n_centres,
                      lam=lam, loss=loss)
    t_ref, objective, best = scipy_nplm(res.model, R, D, lam, loss)
    assert res.model.converged_
    assert res.statistic == pytest.approx(t_ref, rel=1e-4)
    assert objective(res.model.alpha_) <= best + 1e-8 * abs(best)


@pytest.mark.parametrize("loss", ["logistic", "nplm"])
def test_nplm_default_width_reaches_at_least_scipys_minimum(loss):
    # at the default (wide) width K_MM is conditioned beyond float64 precision; our solution
    # must still be at least as good as a direct L-BFGS-B on alpha
    rng = np.random.default_rng(1)
    R, D = rng.standard_normal((120, 2)), rng.standard_normal((40, 2)) + 0.4
    res = nplm_kernel(R, D, n_null=2, seed=0, null="permutation", n_centres=25, loss=loss)
    _, objective, best = scipy_nplm(res.model, R, D, 1e-6, loss)
    assert objective(res.model.alpha_) <= best + 1e-8 * abs(best)


def test_nplm_model_reproduces_statistic(shifted):
    R, D = shifted
    res = nplm_kernel(R, D, n_null=3, seed=1, n_centres=80)
    model = res.model
    f_r, f_d = model.log_ratio(R), model.log_ratio(D)
    t = 2 * (f_d.sum() - (len(D) / len(R)) * np.expm1(f_r).sum())
    assert t == pytest.approx(res.statistic, rel=1e-9)
    assert model.centres_.shape == (80, 2) and model.alpha_.shape == (80,)
    assert res.settings[0]["sigma"] == model.sigma_
    assert res.chi2 is not None and res.chi2["dof"] > 0


def test_nplm_width_is_sparkers_start_width(null_pair):
    from sparker import SparKer
    from sparker.model.ensemble import resolve_widths

    R, D = null_pair
    res = nplm_kernel(R, D, n_null=2, seed=9, n_centres=30)
    (sigma_start, _), = resolve_widths(standardise(R)[0], SparKer().training_config(),
                                       np.random.SeedSequence(9, spawn_key=(0,)))
    assert res.model.sigma_ == pytest.approx(sigma_start, rel=1e-12)


def test_nplm_toy_batches_do_not_change_results(null_pair):
    R, D = null_pair
    a = nplm_kernel(R, D, n_null=7, seed=2, n_centres=60, toy_chunk=1)
    b = nplm_kernel(R, D, n_null=7, seed=2, n_centres=60, toy_chunk=64)
    np.testing.assert_allclose(a.null_distribution, b.null_distribution, rtol=1e-7)
    assert a.statistic == b.statistic


def test_nplm_several_widths_aggregate(null_pair):
    R, D = null_pair
    res = nplm_kernel(R, D, n_null=9, seed=0, n_centres=50, sigma_quantile=[0.5, 0.9])
    assert res.per_config["aggregation"] == "minp" and len(res.per_config["sigmas"]) == 2
    assert res.chi2 is None and len(res.settings) == 2


def test_nplm_reference_weights_resample(null_pair):
    R, D = null_pair
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(R))
    res = nplm_kernel(R, D, n_null=5, seed=0, n_centres=50, reference_weight=w, null="resample")
    assert res.null_mode == "resample" and 0 < res.pvalue <= 1


# ---------------------------------------------------------------- C2ST
def test_c2st_statistics(shifted):
    R, D = shifted
    llr = c2st(R, D, n_null=9, seed=0, max_iter=30)
    acc = c2st(R, D, n_null=9, seed=0, max_iter=30, statistic="accuracy")
    assert llr.statistic > 0 and llr.statistic > llr.null_distribution.max()
    assert 0.5 < acc.statistic <= 1 and np.all((acc.null_distribution >= 0) & (acc.null_distribution <= 1))
    assert llr.settings[0]["statistic"] == "llr" and acc.settings[0]["statistic"] == "accuracy"
    assert hasattr(llr.model, "decision_function")


def test_c2st_toys_do_not_depend_on_back_end_or_chunks(shifted):
    R, D = shifted
    base = c2st(R, D, n_null=5, seed=3, max_iter=20)
    chunked = c2st(R, D, n_null=5, seed=3, max_iter=20, toy_chunk=2)
    spread = c2st(R, D, n_null=5, seed=3, max_iter=20, backend="processes", n_workers=2, toy_chunk=3)
    np.testing.assert_array_equal(base.null_distribution, chunked.null_distribution)
    np.testing.assert_array_equal(base.null_distribution, spread.null_distribution)
    assert base.statistic == spread.statistic and base.pvalue == spread.pvalue
    with pytest.raises(ValueError, match="^backend"):
        c2st(R, D, n_null=3, backend="gpu-farm")
    with pytest.raises(ValueError, match="^toy_chunk"):
        c2st(R, D, n_null=3, toy_chunk=0)


# ---------------------------------------------------------------- permutation: label-free preprocessing
def _prepared(R, D, null="permutation"):
    return common.prepare(R, D, n_null=3, seed=4, null=null, method="test")


def test_permutation_preprocessing_is_label_free():
    # an exchangeable pool of 2600 rows (past the 2000-point width subsample), split two ways
    rng = np.random.default_rng(3)
    R, D = rng.standard_normal((1500, 3)) * [1, 2, 5], rng.standard_normal((1100, 3)) * [1, 2, 5]
    a, b = _prepared(R, D), _prepared(D, R)  # the samples' names swapped
    c = _prepared(R[::-1], D[rng.permutation(len(D))])  # and their rows shuffled
    for other in (b, c):
        np.testing.assert_array_equal(other.standardizer.mean, a.standardizer.mean)
        np.testing.assert_array_equal(other.standardizer.scale, a.standardizer.scale)
        np.testing.assert_array_equal(other.width_rows(), a.width_rows())
        assert nplm_widths(other, None, [0.5, 0.9]) == nplm_widths(a, None, [0.5, 0.9])
        np.testing.assert_array_equal(mmd_widths(other, [0.05, 0.5]), mmd_widths(a, [0.05, 0.5]))
        edges = [bin_edges(p.width_rows(), np.random.default_rng(0)) for p in (a, other)]
        np.testing.assert_array_equal(*edges)
    pooled = np.concatenate([R, D])
    np.testing.assert_allclose(a.standardizer.mean, pooled.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.standardizer.scale, pooled.std(0), rtol=1e-12)
    # resample toys see the reference alone: so do its standardisation and widths
    r = _prepared(R, D[:200], null="resample")
    np.testing.assert_allclose(r.standardizer.mean, R.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(r.width_rows(), r.reference)


def test_permutation_pvalues_when_the_samples_swap_names():
    rng = np.random.default_rng(8)
    R, D = rng.standard_normal((120, 2)), rng.standard_normal((120, 2)) + [0.3, 0.0]
    # MMD is symmetric in the two samples, so with equal sizes the whole test is
    a, b = (mmd(X, Y, n_null=39, seed=1, dtype="float64") for X, Y in ((R, D), (D, R)))
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    np.testing.assert_allclose(a.null_distribution, b.null_distribution, rtol=1e-9, atol=1e-15)
    assert a.pvalue == b.pvalue
    # the NPLM statistic is not symmetric: only its null (same toys, same basis) is unchanged
    a, b = (nplm_kernel(X, Y, n_null=9, seed=1, null="permutation", n_centres=40)
            for X, Y in ((R, D), (D, R)))
    np.testing.assert_allclose(a.null_distribution, b.null_distribution, rtol=1e-9)
    assert a.statistic != pytest.approx(b.statistic, rel=1e-6)


# ---------------------------------------------------------------- detectors
@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_sign_convention(name):
    rng = np.random.default_rng(0)
    R = rng.standard_normal((500, 3))
    D = np.concatenate([rng.standard_normal((50, 3)), rng.standard_normal((5, 3)) * 0.1 + 5.0])
    scores = DETECTORS[name](R, D)
    assert scores.shape == (55,) and scores.dtype == np.float64
    assert scores[50:].min() > np.median(scores[:50])


def test_detectors_are_deterministic():
    rng = np.random.default_rng(0)
    R, D = rng.standard_normal((200, 2)), rng.standard_normal((20, 2))
    np.testing.assert_array_equal(isolation_forest_scores(R, D, seed=1), isolation_forest_scores(R, D, seed=1))
    np.testing.assert_array_equal(lof_scores(R, D), lof_scores(R, D))


# ---------------------------------------------------------------- input errors
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_errors_name_the_argument(name, null_pair):
    R, D = null_pair
    fn = BASELINES[name]
    bad = R.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="^reference"):
        fn(bad, D, n_null=3)
    bad = D.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="^data"):
        fn(R, bad, n_null=3)
    with pytest.raises(ValueError, match="^data: has 2 features"):
        fn(R, D[:, :2], n_null=3)
    with pytest.raises(ValueError, match="^n_null"):
        fn(R, D, n_null=0)
    with pytest.raises(ValueError, match="^null"):
        fn(R, D, n_null=3, null="bootstrap")
    with pytest.raises(ValueError, match="^seed"):
        fn(R, D, n_null=3, seed=-1)


def test_errors_specific_arguments(null_pair):
    R, D = null_pair
    with pytest.raises(ValueError, match="^null: mmd supports"):
        mmd(R, D, n_null=3, null="resample")
    with pytest.raises(ValueError, match="^null"):
        nplm_kernel(R, D, n_null=3, null="permutation", reference_weight=np.ones(len(R)))
    with pytest.raises(ValueError, match="^loss"):
        nplm_kernel(R, D, n_null=3, loss="hinge")
    with pytest.raises(ValueError, match="^lam"):
        nplm_kernel(R, D, n_null=3, lam=0.0)
    with pytest.raises(ValueError, match="^sigma"):
        nplm_kernel(R, D, n_null=3, sigma=[1.0, -1.0])
    with pytest.raises(ValueError, match="^n_centres"):
        nplm_kernel(R, D, n_null=3, n_centres=0)
    with pytest.raises(ValueError, match="^aggregation"):
        mmd_agg(R, D, n_null=3, aggregation="sum")
    with pytest.raises(ValueError, match="^bandwidth"):
        mmd(R, D, n_null=3, bandwidth=0.0)
    with pytest.raises(ValueError, match="^quantiles"):
        mmd_agg(R, D, n_null=3, quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="^dtype"):
        mmd(R, D, n_null=3, dtype="float16")
    with pytest.raises(ValueError, match="^statistic"):
        c2st(R, D, n_null=3, statistic="auc")
    with pytest.raises(ValueError, match="^test_fraction"):
        c2st(R, D, n_null=3, test_fraction=1.0)
    with pytest.raises(ValueError, match="^data"):
        lof_scores(R, D[:, :1])
    with pytest.raises(ValueError, match="^reference"):
        isolation_forest_scores(R[:1], D)


# ---------------------------------------------------------------- type-I error
def type1_rate(name, mode, n_rep, *, n_null=19, alpha=0.05, dim=3, sizes=None, seed0=1000, **options):
    """Rejections at ``alpha`` over ``n_rep`` null data sets (fresh R and D each time)."""
    n_ref, n_data = sizes or ((600, 100) if mode == "resample" else (150, 100))
    k = 0
    for rep in range(n_rep):
        rng = np.random.default_rng(seed0 + rep)
        R, D = rng.standard_normal((n_ref, dim)), rng.standard_normal((n_data, dim))
        res = BASELINES[name](R, D, n_null=n_null, seed=rep, null=mode, **{**FAST[name], **options})
        k += res.pvalue <= alpha
    return k


REDUCED = [(name, mode) for name in sorted(BASELINES) for mode in MODES[name]]


@pytest.mark.parametrize("name, mode", REDUCED)
def test_type1_error_reduced(name, mode):
    n_rep = 20 if name == "c2st" else 40
    sizes = ((300, 50) if mode == "resample" else (80, 50)) if name == "c2st" else None
    k = type1_rate(name, mode, n_rep, sizes=sizes)
    lo, hi = binomial_interval(k, n_rep, 0.99)
    assert lo <= 0.05 <= hi, f"{name}/{mode}: {k}/{n_rep} rejections at 0.05"


FULL_REPS = {"mmd": 1000, "mmd_agg": 1000, "nplm_kernel": 400, "c2st": 200}


@pytest.mark.slow
@pytest.mark.parametrize("name, mode", REDUCED)
def test_type1_error_full(name, mode):
    n_rep = FULL_REPS[name]
    k = type1_rate(name, mode, n_rep)
    lo, hi = binomial_interval(k, n_rep, 0.99)
    assert lo <= 0.05 <= hi, f"{name}/{mode}: {k}/{n_rep} rejections at 0.05 (99% CI [{lo:.3f}, {hi:.3f}])"
