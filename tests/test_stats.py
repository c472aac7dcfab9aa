"""Tests for sparker.stats: p-values, Z, chi^2 fit, aggregation and power.

Statistical checks use fixed seeds and honest tolerances (Clopper-Pearson intervals at 99 %).
"""

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from sparker.stats import (
    AGGREGATIONS,
    PVALUE_RULES,
    AggregateResult,
    Chi2Fit,
    MedianZ,
    PowerResult,
    aggregate,
    binomial_interval,
    empirical_pvalue,
    fit_chi2,
    median_z,
    per_config_pvalues,
    power,
    power_at_z,
    zscore,
)

METHODS = sorted(AGGREGATIONS)


# ---------------------------------------------------------------- naive references


def naive_pvalue(t, null):
    """(1 + #{null >= t}) / (1 + B), one toy at a time."""
    return (1 + sum(1 for v in null if v >= t)) / (1 + len(null))


def naive_per_config(t_obs, null):
    """Leave-one-out p-values over the pool {observation, toys}, plain loops."""
    n_toys, n_configs = len(null), len(t_obs)
    p_obs = [naive_pvalue(t_obs[k], [row[k] for row in null]) for k in range(n_configs)]
    p_null = [
        [
            naive_pvalue(
                null[b][k], [null[c][k] for c in range(n_toys) if c != b] + [t_obs[k]]
            )
            for k in range(n_configs)
        ]
        for b in range(n_toys)
    ]
    return np.array(p_obs), np.array(p_null)


def correlated_null(rng, n_rows, n_configs):
    """Chi^2-like statistics of n_rows exchangeable toys, correlated across configurations."""
    common = rng.standard_normal((n_rows, 1))
    own = rng.standard_normal((n_rows, n_configs))
    return (0.8 * common + 0.6 * own) ** 2 + np.arange(n_configs)  # (n_rows, K)


# ---------------------------------------------------------------- empirical p and Z


def test_empirical_pvalue_hand_examples():
    null = [1.0, 2.0, 3.0, 4.0]
    assert empirical_pvalue(2.5, null) == pytest.approx(3 / 5)
    assert empirical_pvalue(3.0, null) == pytest.approx(3 / 5)  # tie counts against t_obs
    assert empirical_pvalue(0.0, null) == pytest.approx(1.0)
    assert empirical_pvalue(100.0, null) == pytest.approx(1 / 5)  # never 0
    assert empirical_pvalue(np.inf, null) == pytest.approx(1 / 5)
    assert isinstance(empirical_pvalue(2.5, null), float)


def test_empirical_pvalue_vectorised_matches_naive():
    rng = np.random.default_rng(0)
    null = rng.normal(size=57).round(1)  # ties on purpose
    t_obs = np.concatenate([rng.normal(size=(3, 4)).round(1).ravel(), null[:8]])
    got = empirical_pvalue(t_obs.reshape(4, 5), null)
    assert got.shape == (4, 5)
    want = np.array([naive_pvalue(t, null) for t in t_obs]).reshape(4, 5)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert np.all(got > 0)


@pytest.mark.parametrize(
    "null, match",
    [([1.0, np.nan, 2.0], "null"), ([], "null"), (np.ones((3, 2)), "null"), ([1.0, np.inf], "null")],
)
def test_empirical_pvalue_rejects_bad_null(null, match):
    with pytest.raises(ValueError, match=match):
        empirical_pvalue(1.0, null)


def test_empirical_pvalue_rejects_nan_observation():
    with pytest.raises(ValueError, match="t_obs"):
        empirical_pvalue([1.0, np.nan], [1.0, 2.0])


def test_zscore_values():
    assert zscore(0.5) == pytest.approx(0.0, abs=1e-15)
    assert zscore(0.00135) == pytest.approx(3.0, abs=1e-3)
    assert zscore(1.0) == -np.inf
    z = zscore(np.array([[0.5, 0.0228], [1e-300, 0.84]]))
    assert z.shape == (2, 2)
    np.testing.assert_allclose(z, st.norm.isf([[0.5, 0.0228], [1e-300, 0.84]]))
    assert isinstance(zscore(0.1), float)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, np.nan, [0.5, 0.0]])
def test_zscore_rejects_out_of_range(p):
    with pytest.raises(ValueError, match="p:"):
        zscore(p)


# ---------------------------------------------------------------- chi^2 fit


@pytest.mark.parametrize("dof", [3.0, 7.5])
def test_fit_chi2_recovers_dof(dof):
    x = st.chi2.rvs(dof, size=5000, random_state=np.random.default_rng(11))
    fit = fit_chi2(x)
    # standard error of the MLE is about sqrt(2 / (n psi'(k/2))) ~ 0.04 (k=3), 0.1 (k=7.5)
    assert fit.dof == pytest.approx(dof, rel=0.05)
    assert fit.loc == 0.0
    assert fit.n == 5000 and fit.n_clipped == 0
    assert not fit.poor_fit and fit.ks_pvalue > 0.01
    # agrees with scipy's generic optimiser on the same likelihood
    reference, _, _ = st.chi2.fit(x, floc=0, fscale=1)
    assert fit.dof == pytest.approx(reference, rel=1e-3)


@pytest.mark.parametrize(
    "sample",
    [
        lambda rng: 2.0 + rng.exponential(2.0, size=5000),
        lambda rng: rng.uniform(0.0, 10.0, size=5000),
    ],
    ids=["shifted-exponential", "uniform"],
)
def test_fit_chi2_flags_poor_fit(sample):
    fit = fit_chi2(sample(np.random.default_rng(3)))
    assert fit.poor_fit
    assert fit.ks_pvalue < 0.01


def test_fit_chi2_threshold_controls_flag():
    x = st.chi2.rvs(4, size=500, random_state=np.random.default_rng(5))
    fit = fit_chi2(x)
    assert fit_chi2(x, threshold=min(0.999, fit.ks_pvalue * 1.01 + 1e-12)).poor_fit
    assert not fit_chi2(x, threshold=fit.ks_pvalue * 0.99).poor_fit


def test_fit_chi2_robust_to_zeros_and_tiny_negatives():
    x = st.chi2.rvs(2, size=1000, random_state=np.random.default_rng(6))
    x[:5] = 0.0
    x[5:8] = -1e-12
    fit = fit_chi2(x)
    assert fit.n_clipped == 8
    assert np.isfinite(fit.dof) and fit.dof > 0
    assert np.isfinite(fit.ks_pvalue)


def test_chi2_pvalue_and_zscore():
    fit = fit_chi2(st.chi2.rvs(3, size=2000, random_state=np.random.default_rng(7)))
    t = np.array([0.5, 3.0, 12.0, 60.0])
    np.testing.assert_allclose(fit.pvalue(t), st.chi2.sf(t, fit.dof))
    np.testing.assert_allclose(fit.zscore(t), st.norm.isf(st.chi2.sf(t, fit.dof)), rtol=1e-10)
    assert isinstance(fit.zscore(3.0), float)
    assert fit.zscore(0.0) == -np.inf


def test_chi2_zscore_finite_far_in_the_tail():
    fit = fit_chi2(st.chi2.rvs(3, size=2000, random_state=np.random.default_rng(7)))
    t = np.array([1e3, 1e4, 1e6, 1e12])
    z = fit.zscore(t)
    assert fit.pvalue(1e4) == 0.0  # the p-value itself underflows ...
    assert np.all(np.isfinite(z))  # ... but Z does not
    assert np.all(np.diff(z) > 0)
    # Z ~ sqrt(-2 log p) and -log p ~ t/2 for t >> dof
    assert z[1] == pytest.approx(math.sqrt(1e4), rel=0.01)
    # the log-space continued fraction joins scipy's logsf where both are accurate
    t_mid = np.array([200.0, 600.0, 1000.0])
    np.testing.assert_allclose(fit.logpvalue(t_mid), st.chi2.logsf(t_mid, fit.dof), rtol=1e-12)
    from sparker.stats.chi2 import _log_upper_gamma_cf

    np.testing.assert_allclose(
        _log_upper_gamma_cf(0.5 * fit.dof, 0.5 * t_mid), st.chi2.logsf(t_mid, fit.dof), rtol=1e-12
    )


def test_chi2_fit_to_dict_is_json():
    fit = fit_chi2(st.chi2.rvs(3, size=300, random_state=np.random.default_rng(8)))
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["dof"] == pytest.approx(fit.dof)
    assert d["loc"] == 0.0 and d["n"] == 300 and isinstance(d["poor_fit"], bool)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"null": [1.0]}, "null"),
        ({"null": [1.0, np.nan, 2.0]}, "null"),
        ({"null": [1.0, 2.0], "threshold": 0.0}, "threshold"),
        ({"null": [1.0, 2.0], "floor": 0.0}, "floor"),
    ],
)
def test_fit_chi2_errors_name_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_chi2(**kwargs)


def test_chi2_methods_reject_nan():
    fit = fit_chi2([1.0, 2.0, 3.0])
    for method in (fit.pvalue, fit.zscore, fit.logpvalue):
        with pytest.raises(ValueError, match="t:"):
            method([1.0, np.nan])


# ---------------------------------------------------------------- aggregation


def test_per_config_pvalues_match_naive_loops():
    rng = np.random.default_rng(1)
    null = rng.integers(0, 6, size=(9, 3)).astype(float)  # many ties
    t_obs = np.array([2.0, 5.0, -1.0])
    p_obs, p_null = per_config_pvalues(t_obs, null)
    want_obs, want_null = naive_per_config(t_obs, null.tolist())
    np.testing.assert_allclose(p_obs, want_obs, atol=1e-15)
    np.testing.assert_allclose(p_null, want_null, atol=1e-15)
    assert p_obs.shape == (3,) and p_null.shape == (9, 3)
    assert np.all(p_null > 0) and np.all(p_obs > 0)


def test_per_config_pvalues_uniform_under_null():
    rng = np.random.default_rng(2)
    pool = correlated_null(rng, 1001, 3)  # continuous values, no ties
    p_obs, p_null = per_config_pvalues(pool[-1], pool[:-1])
    for k in range(3):
        assert st.kstest(p_null[:, k], "uniform").pvalue > 0.01
    # the pool's p-values are a permutation of the grid {1..B+1}/(B+1)
    column = np.sort(np.append(p_null[:, 0], p_obs[0]))
    np.testing.assert_allclose(column, np.arange(1, 1002) / 1001)


@pytest.mark.parametrize("method", METHODS)
def test_aggregate_null_observation_is_calibrated(method):
    rng = np.random.default_rng(2024)
    n_reps, n_toys, n_configs = 300, 99, 4
    pvalues = np.empty(n_reps)
    for r in range(n_reps):
        pool = correlated_null(rng, n_toys + 1, n_configs)
        pvalues[r] = aggregate(pool[-1], pool[:-1], method).pvalue
    n_small = int(np.count_nonzero(pvalues <= 0.05))
    low, high = binomial_interval(n_small, n_reps, level=0.99)
    assert low <= 0.05 <= high, (method, n_small)


@pytest.mark.parametrize("method", METHODS)
def test_aggregate_strong_signal_in_one_config(method):
    rng = np.random.default_rng(4)
    pool = correlated_null(rng, 200, 5)
    t_obs = pool[-1].copy()
    t_obs[2] = 1e3  # far beyond every toy in configuration 2 only
    result = aggregate(t_obs, pool[:-1], method)
    assert isinstance(result, AggregateResult)
    assert result.method == method
    assert result.per_config_pvalues[2] == pytest.approx(1 / 200)
    assert result.null_distribution.shape == (199,)
    # every rule is monotone: the signal can only make the observation more significant
    assert result.pvalue <= aggregate(pool[-1], pool[:-1], method).pvalue
    if method == "minp":  # min-p reaches its floor K/(B+1) (ties with the toys' top ranks)
        assert result.pvalue <= 5 / 200
    assert result.zscore == pytest.approx(st.norm.isf(result.pvalue))
    assert result.resolution == pytest.approx(1 / 200)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["method"] == method and len(d["null_distribution"]) == 199


@pytest.mark.parametrize("method", ["fisher", "meanp"])
def test_aggregate_signal_in_every_config(method):
    # the rules that pool evidence; min-p pays for K looks here (p = 0.075 on this pool)
    rng = np.random.default_rng(4)
    pool = correlated_null(rng, 200, 5)
    result = aggregate(pool[-1] + 4.0, pool[:-1], method)
    assert result.pvalue <= 0.05


def test_aggregate_minp_beats_diluted_meanp_on_sparse_signal():
    rng = np.random.default_rng(9)
    pool = correlated_null(rng, 400, 8)
    t_obs = pool[-1].copy()
    t_obs[5] = 1e3
    assert aggregate(t_obs, pool[:-1], "minp").pvalue < aggregate(t_obs, pool[:-1], "meanp").pvalue


@pytest.mark.parametrize("method", PVALUE_RULES)
def test_aggregation_rules_larger_is_more_significant(method):
    rule = AGGREGATIONS[method]
    p = np.array([[0.5, 0.4, 0.9], [0.5, 0.01, 0.9], [0.5, 0.4, 0.9]])  # (3, K)
    s = rule(p)
    assert s.shape == (3,)
    assert s[1] > s[0] and s[0] == s[2]
    assert np.ndim(rule(p[0])) == 0


def test_minp_fisher_keeps_min_p_on_one_config_and_pools_evidence_over_several():
    rng = np.random.default_rng(5)
    pool = correlated_null(rng, 100, 3)
    null, base = pool[:-1], pool[-1]
    # one configuration far beyond every toy: Fisher's sum dilutes it, min-p does not
    sparse = base.copy()
    sparse[0] = null[:, 0].max() + 3 * null[:, 0].std()
    assert aggregate(sparse, null, "minp-fisher").pvalue <= 2 / 100
    # every configuration moderately high (the 97% quantile of each): pooled evidence
    broad = np.quantile(null, 0.97, axis=0)
    assert aggregate(broad, null, "minp-fisher").pvalue <= 0.05 < aggregate(broad, null, "minp").pvalue


def test_minp_fisher_is_a_symmetric_function_of_the_pool():
    rng = np.random.default_rng(6)
    pool = correlated_null(rng, 60, 3)
    scores = AGGREGATIONS["minp-fisher"](pool)
    order = rng.permutation(60)
    np.testing.assert_allclose(AGGREGATIONS["minp-fisher"](pool[order]), scores[order])
    # the observation's statistic and the toys' are those scores
    result = aggregate(pool[0], pool[1:], "minp-fisher")
    assert result.statistic == pytest.approx(scores[0])
    np.testing.assert_allclose(result.null_distribution, scores[1:])


def test_smooth_log_pvalues_go_beyond_the_rank_floor_and_handle_edges():
    from sparker.stats import smooth_log_pvalues

    rng = np.random.default_rng(7)
    pool = rng.chisquare(5, size=(50, 2))
    pool[0] = [pool[:, 0].max() + 5.0, pool[:, 1].max() + 50.0]
    logp = smooth_log_pvalues(pool)
    assert logp.shape == (50, 2) and np.all(logp >= 0)
    assert np.all(logp[0] > logp[1:].max(axis=0))  # the top member of each column
    assert logp[0, 1] > math.log(50)  # far beyond: below 1/n, the rank p-value's floor
    assert logp[0, 1] > logp[0, 0]  # and farther beyond counts for more
    # monotone within a column
    order = np.argsort(pool[:, 0])
    assert np.all(np.diff(logp[order, 0]) >= 0)
    edge = np.column_stack([np.full(5, 2.0), [1.0, 2.0, 3.0, np.inf, -np.inf]])
    out = smooth_log_pvalues(edge)
    np.testing.assert_allclose(out[:, 0], math.log(2))  # constant column: p = 1/2
    assert out[3, 1] == np.inf and out[4, 1] == 0.0
    assert aggregate([1.0, np.inf], np.column_stack([np.ones(9), np.arange(9.0)]), "minp-fisher").pvalue == 0.1


def test_aggregate_single_configuration_equals_empirical_pvalue():
    rng = np.random.default_rng(10)
    null = rng.normal(size=(50, 1))
    t = 1.3
    # with one configuration min-p is a monotone function of t: same p-value up to ties
    assert aggregate([t], null).pvalue == pytest.approx(empirical_pvalue(t, null[:, 0]))


def test_aggregate_errors_name_arguments():
    null = np.ones((10, 3))
    with pytest.raises(ValueError, match=r"method.*fisher.*meanp.*minp"):
        aggregate(np.ones(3), null, method="median")
    with pytest.raises(ValueError, match="t_obs"):
        aggregate(np.ones(2), null)
    with pytest.raises(ValueError, match="null"):
        aggregate(np.ones(3), np.ones(10))
    with pytest.raises(ValueError, match="null"):
        per_config_pvalues(np.ones(3), np.ones((1, 3)))
    bad = null.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="null"):
        per_config_pvalues(np.ones(3), bad)
    with pytest.raises(ValueError, match="t_obs"):
        per_config_pvalues(np.array([1.0, np.nan, 1.0]), null)


# ---------------------------------------------------------------- binomial interval


def test_binomial_interval_known_values():
    low, high = binomial_interval(0, 10, level=0.95)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = binomial_interval(10, 10, level=0.95)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 10))
    low, high = binomial_interval(15, 300)
    assert low < 0.05 < high
    lows, highs = binomial_interval(np.array([0, 3, 10]), 10)
    assert lows.shape == (3,) and np.all(lows <= np.array([0, 3, 10]) / 10)
    assert np.all(highs >= np.array([0, 3, 10]) / 10)


def test_binomial_interval_coverage():
    rng = np.random.default_rng(12)
    n, prob = 40, 0.3
    k = rng.binomial(n, prob, size=2000)
    low, high = binomial_interval(k, n, level=0.9)
    coverage = np.mean((low <= prob) & (prob <= high))
    assert coverage >= 0.88


@pytest.mark.parametrize(
    "args, match",
    [((11, 10), "k"), ((-1, 10), "k"), ((1.5, 10), "k"), ((1, 0), "n"), ((1, 10, 1.0), "level")],
)
def test_binomial_interval_errors_name_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        binomial_interval(*args)


# ---------------------------------------------------------------- power


def test_power_hand_count():
    null = np.arange(1.0, 20.0)  # B = 19, p(t) = (1 + #{null >= t}) / 20
    alt = np.array([17.0, 18.0, 18.5, 19.0, 25.0])
    result = power(null, alt, alpha=0.1)
    # p <= 0.1 iff #{null >= t} <= 1 iff t > 18 (the 2nd largest toy)
    assert isinstance(result, PowerResult)
    assert result.threshold.tolist() == [18.0]
    assert result.n_rejected.tolist() == [3]
    assert result.power.tolist() == [pytest.approx(3 / 5)]
    assert result.ci_low[0] <= 0.6 <= result.ci_high[0]
    assert result.method == ("empirical",)
    # consistent with rejecting on the empirical p-value
    assert np.mean(empirical_pvalue(alt, null) <= 0.1) == pytest.approx(result.power[0])


def test_power_several_levels_and_resolution():
    null = np.arange(1.0, 20.0)
    alt = np.array([17.0, 18.0, 18.5, 19.0, 25.0])
    result = power(null, alt, alpha=[0.01, 0.05, 0.1, 0.2, 1.0])
    # 0.01 < 1/20: nothing can be rejected; 0.05: only t > 19; 0.2: t > 16; 1.0: all
    assert result.threshold.tolist() == [np.inf, 19.0, 18.0, 16.0, -np.inf]
    assert result.n_rejected.tolist() == [0, 1, 3, 5, 5]
    assert np.all(result.ci_low <= result.power) and np.all(result.power <= result.ci_high)
    assert result.z == pytest.approx(st.norm.isf(result.alpha))
    d = json.loads(json.dumps(result.to_dict(), allow_nan=True))
    assert d["n_alt"] == 5 and d["n_null"] == 19 and d["chi2_fit"] is None


def test_power_matches_naive_on_random_samples():
    rng = np.random.default_rng(13)
    null = rng.chisquare(3, size=199).round(2)
    alt = rng.chisquare(3, size=300).round(2) + 4
    alphas = [0.005, 0.01, 0.05, 0.1, 0.5]
    result = power(null, alt, alpha=alphas)
    for a, got in zip(alphas, result.power):
        assert got == pytest.approx(np.mean([naive_pvalue(t, null) <= a for t in alt]))


def test_power_type_one_error_under_null():
    rng = np.random.default_rng(14)
    null = rng.chisquare(4, size=999)
    alt = rng.chisquare(4, size=3000)  # no signal: power is the type-I error
    result = power(null, alt, alpha=[0.05, 0.2], confidence=0.99)
    for a, k in zip([0.05, 0.2], result.n_rejected):
        low, high = binomial_interval(int(k), 3000, level=0.999)
        assert low - 0.02 <= a <= high + 0.02  # slack: the threshold itself is random


def test_power_at_z_uses_chi2_beyond_resolution():
    rng = np.random.default_rng(15)
    null = rng.chisquare(3, size=500)
    alt = np.concatenate([rng.chisquare(3, size=100) + 30.0, [np.inf]])
    result = power_at_z(null, alt, z=(2, 3, 5))
    assert isinstance(result.chi2_fit, Chi2Fit)
    # alpha(2) = 0.023 and alpha(3) = 0.00135 vs resolution 1/501 ~ 0.002
    assert result.method == ("empirical", "chi2", "chi2")
    assert result.alpha == pytest.approx(st.norm.sf([2, 3, 5]))
    dof = result.chi2_fit.dof
    assert result.threshold[1] == pytest.approx(max(null.max(), st.chi2.isf(st.norm.sf(3), dof)))
    assert result.threshold[2] == pytest.approx(max(null.max(), st.chi2.isf(st.norm.sf(5), dof)))
    for threshold, k in zip(result.threshold, result.n_rejected):
        assert k == np.count_nonzero(alt > threshold)
    assert np.all(np.diff(result.power) <= 0)  # stricter Z, less power
    same = power(null, alt, alpha=st.norm.sf(2))
    assert result.n_rejected[0] == same.n_rejected[0]


def test_median_z_empirical_and_chi2_regimes():
    null = np.arange(1.0, 100.0)  # B = 99
    inside = np.array([50.0, 60.0, 70.0])
    med, q16, q84 = median_z(null, inside)
    want = st.norm.isf([naive_pvalue(t, null) for t in inside])
    assert med == pytest.approx(want[1]) and q16 == pytest.approx(want[0])
    assert q84 == pytest.approx(want[2])

    rng = np.random.default_rng(16)
    null = rng.chisquare(3, size=300)
    fit = fit_chi2(null)
    far = np.array([40.0, 60.0, 80.0, 1e4, 1e5])
    result = median_z(null, far, fit=fit)
    assert isinstance(result, MedianZ)
    assert result.median == pytest.approx(fit.zscore(80.0))
    assert result.q84 == pytest.approx(fit.zscore(1e5))  # order statistic ceil(0.84 * 5) = 5
    assert result.q16 == pytest.approx(fit.zscore(40.0))
    assert all(np.isfinite(result))
    z_floor = st.norm.isf(1 / 301)
    assert result.q16 >= z_floor - 1e-12


def test_median_z_monotone_across_regimes():
    rng = np.random.default_rng(17)
    null = rng.chisquare(3, size=200)
    alt = np.sort(np.concatenate([null[:50], np.linspace(0.0, 60.0, 200)]))
    zs = [median_z(null, [t]).median for t in alt]
    assert np.all(np.diff(zs) >= 0)
    assert median_z(null, [-1.0]).median == -np.inf  # below every toy: p = 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: power([1.0, 2.0], [1.0], alpha=0.0), "alpha"),
        (lambda: power([1.0, 2.0], [1.0], alpha=[0.05, 1.5]), "alpha"),
        (lambda: power([1.0, 2.0], [1.0], confidence=1.0), "confidence"),
        (lambda: power([1.0, 2.0], [], alpha=0.05), "alt"),
        (lambda: power([1.0, np.nan], [1.0]), "null"),
        (lambda: power([1.0, 2.0], [np.nan]), "alt"),
        (lambda: power_at_z([1.0, 2.0, 3.0], [1.0], z=[np.nan]), "z"),
        (lambda: median_z([1.0], [1.0]), "null"),
        (lambda: median_z([1.0, 2.0], [[1.0]]), "alt"),
    ],
)
def test_power_errors_name_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_power_rejects_wrong_fit_type():
    with pytest.raises(TypeError, match="fit"):
        power_at_z([1.0, 2.0, 3.0], [1.0], fit={"dof": 3})


def test_aggregated_pvalue_reaches_the_resolution_despite_ties():
    """With K configurations min-p ties at the top among toys; the tie-break still lets the
    observation reach 1/(B+1) when it is the most extreme in every configuration."""
    rng = np.random.default_rng(0)
    null = rng.standard_normal((19, 3))
    # far above every toy in configuration 0, in the middle of the others: its min-p (1/20)
    # ties with the toys that are the largest of configurations 1 and 2
    t_obs = np.array([null[:, 0].max() + 5.0, np.median(null[:, 1]), np.median(null[:, 2])])
    res = aggregate(t_obs, null, method="minp")
    assert res.per_config_pvalues[0] == pytest.approx(1 / 20)
    assert res.pvalue == pytest.approx(1 / 20)
    t_all = null.max(0) + 1.0  # above every toy everywhere: the smallest p for every rule
    for method in ("minp", "fisher", "meanp"):
        assert aggregate(t_all, null, method=method).pvalue == pytest.approx(1 / 20)


def test_aggregated_pvalue_is_exact_under_exchangeability():
    """Exchangeable pools (correlated configurations): rejection rate at 0.05 with B = 19
    is 0.05 up to binomial noise, for every rule (exactly 1/20 per level by symmetry)."""
    rng = np.random.default_rng(1)
    n_rep, B, K = 4000, 19, 3
    for method in ("minp", "fisher"):
        p = []
        for _ in range(n_rep):
            common = rng.standard_normal((B + 1, 1))
            pool = common + 0.5 * rng.standard_normal((B + 1, K))
            p.append(aggregate(pool[0], pool[1:], method=method).pvalue)
        rate = np.mean(np.asarray(p) <= 0.05)
        # Binomial(4000, 0.05): sd 0.0034; 4 sd
        assert abs(rate - 0.05) < 0.014, (method, rate)
