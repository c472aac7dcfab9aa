"""Null toys (``sparker.core.nulls``): which rows are a toy's data and reference.

Weighted references are split by accept/reject, so that a toy's data are draws from the
weighted reference distribution and its reference an untouched random remainder.  The
statistical checks use fixed seeds and tolerances derived from the toys' own spread.
"""

import numpy as np
import pytest
from scipy import stats
import torch

import sparker
from sparker.core.nulls import NullSpec, check_resample_weights, toy_weights


def _seed(b, seed=1):
    """Toy ``b``'s role stream, as in :mod:`sparker.calibration.toys`."""
    return np.random.SeedSequence(seed, spawn_key=(2, b, 0))


def _old_unweighted(spec, seed):
    """The unweighted resample toys before weighted references were split by accept/reject."""
    rng = np.random.default_rng(seed)
    n0 = float(spec.n_expected) if spec.n_expected is not None else float(spec.n_data)
    k = int(rng.poisson(n0)) if spec.poisson else spec.n_data
    k = min(max(k, 1), spec.n_reference - 1)
    pick = rng.choice(spec.n_reference, size=k, replace=False, p=None)
    r = np.ones(spec.n_reference)
    r[pick] = 0.0
    r *= (n0 if spec.n_expected is not None else float(k)) / r.sum()
    d = np.zeros(spec.n_reference)
    d[pick] = 1.0
    return r, d


@pytest.mark.parametrize("spec", [
    NullSpec("resample", 500, 40),
    NullSpec("resample", 500, 40, n_expected=55.0, poisson=True),
    NullSpec("resample", 500, 40, poisson=True),
    NullSpec("resample", 500, 40, n_expected=30.0),
])
def test_unweighted_resample_toys_are_unchanged(spec):
    for b in range(5):
        r, d = toy_weights(spec, _seed(b), None)
        r0, d0 = _old_unweighted(spec, _seed(b))
        np.testing.assert_array_equal(r, r0)
        np.testing.assert_array_equal(d, d0)


def _importance_weights(n=5000, shift=0.7, seed=0):
    """A N(0, 1) reference weighted to N(shift, 1): w = exp(shift x - shift^2 / 2)."""
    x = np.random.default_rng(seed).standard_normal(n)
    return x, np.exp(shift * x - shift**2 / 2)


def _weighted_bins(x, w, n_bins=20):
    """Bin of every row, bins of equal weight."""
    order = np.argsort(x)
    share = np.cumsum(w[order]) / w.sum()
    edges = np.interp(np.linspace(0, 1, n_bins + 1)[1:-1], share, x[order])
    return np.searchsorted(edges, x)


def test_weighted_toys_follow_the_weighted_reference():
    x, w = _importance_weights()
    bins = _weighted_bins(x, w)
    expected_share = np.bincount(bins, weights=w, minlength=20) / w.sum()  # 1/20 each
    spec = NullSpec("resample", len(x), 100, n_expected=100.0, poisson=True)
    counts, ref_shares = np.zeros(20), []
    for b in range(300):
        r, d = toy_weights(spec, _seed(b), w)
        counts += np.bincount(bins, weights=d, minlength=20)
        ref_shares.append(np.bincount(bins, weights=r, minlength=20) / r.sum())
    # toy data: draws from the weighted reference (the unweighted one is N(0, 1), far from it)
    assert stats.chisquare(counts, counts.sum() * expected_share).pvalue > 1e-3
    # toy reference: unbiased for the weighted reference, bin by bin within 4 standard errors
    ref_shares = np.array(ref_shares)
    se = ref_shares.std(0, ddof=1) / np.sqrt(len(ref_shares))
    assert np.all(np.abs(ref_shares.mean(0) - expected_share) < 4 * se)


def test_heavy_rows_supply_their_share_of_toy_data():
    # 10 of 2000 rows hold 4.8 % of the weight; rng.choice(replace=False, p=w / w.sum()),
    # used before, gave them 3.9 % of the toy data on these toys
    w = np.ones(2000)
    w[:10] = 10.0
    share = w[:10].sum() / w.sum()
    spec = NullSpec("resample", len(w), 100)
    heavy, total = 0.0, 0.0
    for b in range(400):
        _, d = toy_weights(spec, _seed(b, seed=0), w)
        heavy, total = heavy + d[:10].sum(), total + d.sum()
    assert abs(heavy / total - share) < 4 * np.sqrt(share * (1 - share) / total)


@pytest.mark.parametrize("n_expected, poisson", [(None, False), (150.0, True), (None, True), (80.0, False)])
def test_weighted_toy_reference_is_the_untouched_remainder(n_expected, poisson):
    _, w = _importance_weights(n=3000)
    w[::7] = 0.0  # rows without weight are never toy data
    spec = NullSpec("resample", len(w), 120, n_expected=n_expected, poisson=poisson)
    for b in range(10):
        r, d = toy_weights(spec, _seed(b), w)
        k = d.sum()
        assert set(np.unique(d)) <= {0.0, 1.0} and not (w[d > 0] == 0).any()
        assert not ((r > 0) & (d > 0)).any()  # disjoint
        assert r.sum() == pytest.approx(n_expected if n_expected is not None else k, rel=1e-12)
        kept = r > 0
        np.testing.assert_allclose(r[kept] / w[kept], r[kept][0] / w[kept][0], rtol=1e-12)  # weights kept
        # every row walked through left the reference: more rows than the data (rejections)
        assert np.count_nonzero((r == 0) & (w > 0)) > k


def test_too_uneven_weights_are_refused():
    w = np.ones(1000)
    w[0] = 1e4  # the walk would need about 100 * 1e4 / 11 rows
    spec = NullSpec("resample", 1000, 100)
    with pytest.raises(ValueError, match=r"^reference_weight: too uneven for resample toys.*larger"):
        check_resample_weights(spec, w)
    with pytest.raises(ValueError, match=r"^reference_weight: too uneven for resample toys"):
        toy_weights(spec, _seed(0), w)
    with pytest.raises(ValueError, match=r"^reference_weight: too uneven"):  # before any toy trains
        sparker.calibrate(np.random.default_rng(0).uniform(size=(1000, 2)), 100, n_null=2,
                          reference_weight=w, n_kernels=2, epochs=5)
    check_resample_weights(spec, np.ones(1000))  # even weights pass
    check_resample_weights(spec, None)


@pytest.mark.parametrize("spec, weighted", [
    (NullSpec("resample", 600, 40), False),
    (NullSpec("resample", 600, 40, n_expected=55.0, poisson=True), True),
    (NullSpec("permutation", 300, 60), False),
])
def test_block_weights_are_the_toys_weights_in_float32(spec, weighted):
    from sparker.calibration.toys import toy_block_weights

    w = np.random.default_rng(3).uniform(0.5, 2.0, spec.n_reference) if weighted else None
    ids = (16, 17, 19)
    r, d = toy_block_weights(spec, 1, ids, w)
    n_rows = spec.n_reference + (spec.n_data if spec.mode == "permutation" else 0)
    assert r.shape == d.shape == (n_rows, len(ids)) and r.dtype == d.dtype == torch.float32
    for j, b in enumerate(ids):
        rb, db = toy_weights(spec, _seed(b), w)
        np.testing.assert_array_equal(r[:, j].numpy(), rb.astype(np.float32))
        np.testing.assert_array_equal(d[:, j].numpy(), db.astype(np.float32))
