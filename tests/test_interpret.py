"""Tests for the interpretation of a fitted model: kernel table, explanations, flags, top points."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from sparker import SparKer
from sparker.interpret import (
    ACTIVE_AMPLITUDE_FRACTION,
    ACTIVE_MIN_ZSCORE,
    Explanation,
    active_kernels,
    find_duplicates,
    flag_threshold,
    kernel_table,
    marginal_relevance,
    poisson_zscore,
    significance_priority,
)
from sparker.model.stack import KernelStack
from sparker.scenarios import make

#: 1-d problem with a broad constant width, so that plain exponentials never underflow.
TINY = {"n_kernels": 2, "epochs": 60, "schedule": "constant", "sigma_start": 0.3, "sigma_end": 0.3, "seed": 0}

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    R = rng.uniform(-1.0, 1.0, size=(400, 1))
    D = np.concatenate([rng.uniform(-1.0, 1.0, size=(120, 1)), 0.5 + 0.05 * rng.standard_normal((40, 1))])
    return R, D, SparKer(**TINY).fit(R, D)


# ------------------------------------------------------------------- naive references


def naive_poisson_z(n, b):
    if b == 0:
        return math.inf if n > 0 else 0.0
    q = 2 * ((n * math.log(n / b) if n > 0 else 0.0) - (n - b))
    return math.copysign(math.sqrt(max(q, 0.0)), n - b)


def naive_parts(model, X):
    """Per point and kernel, with Python loops: gates phi = k s, shares a phi, owner."""
    Z = (X - model.standardizer_.mean) / model.standardizer_.scale
    L = model.layers_[0]
    mu = L["centres"].numpy().astype(float)
    a = L["amplitudes"].numpy().astype(float)
    sigma = L["sigma"]
    phi = np.zeros((len(X), len(mu)))
    owner = np.zeros(len(X), dtype=int)
    for n, x in enumerate(Z):
        k = [math.exp(-float(np.sum((x - m) ** 2)) / (2 * sigma**2)) for m in mu]
        s = [ki / sum(k) for ki in k]
        phi[n] = [ki * si for ki, si in zip(k, s)]
        owner[n] = int(np.argmax(phi[n]))
    return phi, phi * a, owner


# ------------------------------------------------------------------- pure functions


def test_poisson_zscore_matches_formula_and_edge_cases():
    n = np.array([32.0, 6.8, 10.0, 0.0, 3.0, 0.0])
    b = np.array([10.0, 10.1, 10.0, 4.0, 0.0, 0.0])
    z = poisson_zscore(n, b)
    assert z[0] == pytest.approx(math.sqrt(2 * (32 * math.log(3.2) - 22)), rel=1e-12)
    assert z[1] < 0 and z[1] == pytest.approx(naive_poisson_z(6.8, 10.1), rel=1e-12)
    assert z[2] == 0.0
    assert z[3] == pytest.approx(-math.sqrt(8.0))
    assert z[4] == math.inf and z[5] == 0.0
    with pytest.raises(ValueError, match="^n_expected:"):
        poisson_zscore([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="counts"):
        poisson_zscore([-1.0], [1.0])


def test_find_duplicates_groups_same_sign_neighbours_of_one_layer():
    centres = np.array([[0.0, 0.0], [0.3, 0.0], [0.55, 0.0], [0.1, 0.1], [5.0, 5.0], [0.0, 0.05]])
    widths = np.full(6, 0.35)
    signs = np.array([1, 1, 1, -1, 1, 1])
    layers = np.array([0, 0, 0, 0, 0, 1])
    priority = np.array([1.0, 5.0, 2.0, 9.0, 1.0, 9.0])
    dup = find_duplicates(centres, widths, signs, layers, priority)
    # 0-1-2 chain (same sign, within one width), kernel 1 has the highest priority
    assert dup.tolist() == [1, -1, 1, -1, -1, -1]


def test_significance_priority_ranks_strong_kernels_first():
    ranks = significance_priority([2.0, 3.0, 0.1, 2.0], [4.0, 5.0, 9.0, np.nan], 10.0)
    assert ranks.tolist() == [2, 3, 0, 1]  # strong before weak, then by |Z|; NaN lowest


def test_active_rule_thresholds():
    a_max = 10.0
    amps = np.array([2.0, 0.4, -2.0, 2.0, 2.0, 3.0])
    z = np.array([4.0, 6.0, -3.5, 2.9, np.nan, 5.0])
    dup = np.array([-1, -1, -1, -1, -1, 0])
    act = active_kernels(amps, z, dup, a_max)
    assert act.tolist() == [True, False, True, False, False, False]
    assert ACTIVE_MIN_ZSCORE == 3.0 and ACTIVE_AMPLITUDE_FRACTION == 0.05
    assert active_kernels(amps, z, dup, a_max, min_zscore=2.5).tolist()[3]
    with pytest.raises(ValueError, match="^min_zscore:"):
        active_kernels(amps, z, dup, a_max, min_zscore=-1.0)


def test_flag_threshold():
    assert flag_threshold() == pytest.approx(math.log(2.0))
    assert flag_threshold(0.0) == 0.0
    assert flag_threshold(0.9) == pytest.approx(math.log(10.0))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="^min_excess_fraction:"):
            flag_threshold(bad)
    with pytest.raises(TypeError, match="^min_excess_fraction:"):
        flag_threshold("half")


def test_marginal_relevance_matches_loops_and_finds_the_feature():
    rng = np.random.default_rng(0)
    R = rng.uniform(size=(500, 3))
    w = np.full(500, 0.5)
    added = w * np.expm1(2.0 * np.exp(-((R[:, 1] - 0.3) ** 2) / (2 * 0.05**2)))  # a bump in feature 1
    rel = marginal_relevance(R, w, added, bins=5)
    assert np.argmax(rel) == 1
    for j in range(3):  # loops over bins
        edges = np.quantile(R[:, j], [0.2, 0.4, 0.6, 0.8])
        total = 0.0
        for lo, hi in zip([-np.inf, *edges], [*edges, np.inf]):
            inside = (R[:, j] >= lo) & (R[:, j] < hi)
            total += added[inside].sum() ** 2 / w[inside].sum()
        assert rel[j] == pytest.approx(total, rel=1e-10)
    both = marginal_relevance(R, w, np.stack([added, 2 * added], axis=1), bins=5)
    np.testing.assert_allclose(both, [rel, 4 * rel], rtol=1e-12)


# ------------------------------------------------------------------- the kernel table


def test_kernel_table_matches_hand_computation(tiny):
    R, D, m = tiny
    phi_r, _, _ = naive_parts(m, R)
    phi_d, _, _ = naive_parts(m, D)
    w = len(D) / len(R)
    a_max = m.a_max
    for i, row in enumerate(m.kernels_):
        n_d = phi_d[:, i].sum()
        n_r = w * phi_r[:, i].sum()
        z = naive_poisson_z(n_d, n_r)
        assert row["index"] == i
        assert row["n_data"] == pytest.approx(n_d, rel=1e-8)
        assert row["n_reference"] == pytest.approx(n_r, rel=1e-8)
        assert row["log_ratio"] == pytest.approx(math.log(n_d / n_r), rel=1e-8)
        assert row["local_z"] == pytest.approx(z, rel=1e-7)
        expected_active = abs(row["amplitude"]) >= 0.05 * a_max and abs(z) >= 3.0 and row["duplicate_of"] is None
        assert row["active"] == expected_active
    clump = int(np.argmin([abs(row["centre"]["x0"] - 0.5) for row in m.kernels_]))
    assert m.kernels_[clump]["local_z"] > 3 and m.kernels_[clump]["active"]


def test_a_kernel_far_in_a_tail_has_a_finite_log_ratio(tiny):
    # a data point far beyond the reference: the reference's expected count there is
    # subnormal, and the quotient n_data / n_reference overflowed to an infinite log ratio
    R, D, _m = tiny
    far = SparKer(**{**TINY, "n_kernels": 1}).fit(R, D)
    L, st = far.layers_[0], far.standardizer_
    # 1.89 standardised units beyond the last reference point, width 0.05: a subnormal expected count
    centre = float(st.transform(R).max()) + 1.89
    Df = np.concatenate([D, [[centre * st.scale[0] + st.mean[0]]]])
    Rs, Ds = st.transform(R), st.transform(Df)
    L["centres"] = torch.tensor([[centre]], dtype=L["centres"].dtype)
    L["amplitudes"] = torch.tensor([3.0], dtype=L["amplitudes"].dtype)
    stack = KernelStack([L["centres"]], [L["amplitudes"]], [0.05], far.competition)
    with np.errstate(over="raise", divide="raise"):
        row = kernel_table(stack, st, ["x0"], far.a_max, Rs, Ds,
                           np.full(len(R), len(Df) / len(R)), np.ones(len(Df)))[0]
    assert 0 < row["n_reference"] < 1e-309 and row["n_data"] == pytest.approx(1.0)
    assert row["log_ratio"] == pytest.approx(math.log(row["n_data"]) - math.log(row["n_reference"]))
    assert math.isfinite(row["log_ratio"]) and row["log_ratio"] > 650


def test_duplicate_kernels_on_one_region_are_flagged(tiny):
    R, D, _m = tiny
    dup = SparKer(**TINY).fit(R, D)
    L = dup.layers_[0]
    centre = (0.5 - dup.standardizer_.mean[0]) / dup.standardizer_.scale[0]
    L["centres"] = torch.tensor([[centre], [centre + 0.2]], dtype=L["centres"].dtype)  # within one width
    L["amplitudes"] = torch.tensor([1.0, 1.5], dtype=L["amplitudes"].dtype)
    Rs, Ds = dup.standardizer_.transform(R), dup.standardizer_.transform(D)

    def refit_table():  # the model with the layer L, and its kernel table
        dup.stack_ = KernelStack([L["centres"]], [L["amplitudes"]], [L["sigma"]], dup.competition)
        dup.kernels_ = kernel_table(dup.stack_, dup.standardizer_, ["x0"], dup.a_max, Rs, Ds,
                                    np.full(len(R), len(D) / len(R)), np.ones(len(D)))

    refit_table()
    rows = dup.kernels_
    best = int(np.argmax([abs(r["local_z"]) for r in rows]))
    other = 1 - best
    assert rows[other]["duplicate_of"] == best and rows[best]["duplicate_of"] is None
    assert not rows[other]["active"]
    ex = dup.explain(D)
    assert set(ex.region.tolist()) == {best}  # points owned by the duplicate belong to its region
    # opposite signs are never duplicates
    L["amplitudes"] = torch.tensor([1.0, -1.5], dtype=L["amplitudes"].dtype)
    refit_table()
    assert all(r["duplicate_of"] is None for r in dup.kernels_)


def test_kernels_frame_keeps_feature_names_and_inactive_kernels():
    rng = np.random.default_rng(1)
    R = pd.DataFrame(rng.uniform(size=(300, 2)), columns=["mass", "pt"])
    D = pd.DataFrame(np.concatenate([rng.uniform(size=(100, 2)), 0.5 + 0.02 * rng.standard_normal((20, 2))]),
                     columns=["mass", "pt"])
    m = SparKer(n_kernels=3, epochs=80, seed=0).fit(R, D)
    frame = m.kernels_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert frame.index.name == "index" and frame.index.tolist() == [0, 1, 2]
    assert {"centre[mass]", "centre[pt]", "amplitude", "width", "n_data", "n_reference", "log_ratio",
            "local_z", "active", "duplicate_of"} <= set(frame.columns)
    assert str(frame["duplicate_of"].dtype) == "Int64"
    np.testing.assert_allclose(frame[["centre[mass]", "centre[pt]"]].to_numpy(), m.centres_)
    assert frame["active"].tolist() == [k["active"] for k in m.kernels_]
    everything = m.kernels_frame(min_zscore=0.0, amplitude_fraction=0.0)
    assert everything["active"].tolist() == [k["duplicate_of"] is None for k in m.kernels_]


def test_interpretation_survives_save_and_load(tiny, tmp_path):
    _R, D, m = tiny
    m.save(tmp_path / "m.npz")
    loaded = SparKer.load(tmp_path / "m.npz")
    assert loaded.kernels_ == m.kernels_
    np.testing.assert_array_equal(loaded.explain(D).flagged, m.explain(D).flagged)
    pd.testing.assert_frame_equal(loaded.top_points(5, X=D), m.top_points(5, X=D))
    pd.testing.assert_frame_equal(loaded.top_points(5), m.top_points(5))  # kept in the archive


def test_top_points_need_x_when_the_archive_lacks_them(tiny, tmp_path):
    m = copy.deepcopy(tiny[2])
    del m._fit_top_  # as a model saved without them
    m.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="^X:"):
        SparKer.load(tmp_path / "m.npz").top_points(5)


# -------------------------------------------------------------------- explanations


def test_explain_matches_hand_computation(tiny):
    _R, _D, m = tiny
    X = np.linspace(-1.2, 1.2, 37)[:, None]
    ex = m.explain(X)
    _, shares, owner = naive_parts(m, X)
    assert isinstance(ex, Explanation) and len(ex) == 37
    assert ex.contributions.shape == (37, 2) and ex.owner.shape == ex.flagged.shape == (37,)
    np.testing.assert_allclose(ex.contributions, shares, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ex.owner, owner)
    np.testing.assert_allclose(ex.log_ratio, m.log_ratio(X), rtol=1e-12, atol=1e-12)
    active = np.array([k["active"] for k in m.kernels_])
    np.testing.assert_array_equal(ex.flagged, (shares.sum(1) > math.log(2)) & active[owner])
    strict = m.flag(X, min_excess_fraction=0.9)
    np.testing.assert_array_equal(strict, (shares.sum(1) > math.log(10)) & active[owner])
    frame = ex.to_frame()
    assert list(frame.columns) == ["log_ratio", "excess_fraction", "owner", "region", "flagged", "f[0]", "f[1]"]
    np.testing.assert_allclose(frame["excess_fraction"], 1 - np.exp(-ex.log_ratio), atol=1e-12)


def test_explain_sums_layers_of_a_stack():
    rng = np.random.default_rng(2)
    R = rng.uniform(size=(300, 2))
    D = np.concatenate([rng.uniform(size=(100, 2)), 0.3 + 0.02 * rng.standard_normal((20, 2))])
    m = SparKer(layers=[{"n_kernels": 2, "epochs": 40}, {"n_kernels": 3, "epochs": 40}], seed=0).fit(R, D)
    ex = m.explain(D)
    assert ex.contributions.shape == (len(D), 5) and len(m.kernels_) == 5
    assert [k["index"] for k in m.kernels_] == list(range(5))
    assert [k["layer"] for k in m.kernels_] == [0, 0, 1, 1, 1]
    np.testing.assert_allclose(ex.log_ratio, m.log_ratio(D), rtol=1e-10, atol=1e-12)
    assert m.kernels_frame().shape[0] == 5


def test_top_points_of_fitted_data_and_of_new_points(tiny):
    _R, D, m = tiny
    top = m.top_points(6)
    assert list(top.columns) == ["row", "log_ratio", "owner", "region", "flagged", "x0"]
    f = m.log_ratio(D)
    np.testing.assert_array_equal(top["row"], np.argsort(-f, kind="stable")[:6])
    np.testing.assert_allclose(top["log_ratio"], np.sort(f)[::-1][:6])
    np.testing.assert_allclose(top["x0"], D[top["row"], 0])
    pd.testing.assert_frame_equal(top, m.top_points(6, X=D))
    assert len(m.top_points(3, X=D[:2])) == 2
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="^k:"):
            m.top_points(bad)


def test_explain_checks_inputs(tiny):
    _, _, m = tiny
    with pytest.raises(ValueError, match="^X:"):
        m.explain(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="^min_excess_fraction:"):
        m.explain(np.zeros((3, 1)), min_excess_fraction=1.5)
    with pytest.raises(RuntimeError, match="not fitted"):
        SparKer().explain(np.zeros((3, 1)))


# -------------------------------------------------------------------- square2d


# The fig. 4 picture with four kernels on two seeds where they find all three clumps. Since the
# pool is in canonical row order, seeds 0-5 give 3 of 6 such fits (seed 3 no longer does):
# localisation with four kernels over random layouts is tracked by benchmarks/localisation.py.
@pytest.mark.parametrize("seed", [0, 2])
def test_square2d_three_active_kernels_one_per_clump(seed):
    R, D, truth = make("square2d", seed=seed)
    m = SparKer(n_kernels=4, seed=seed).fit(R, D)
    active = [k for k in m.kernels_ if k["active"]]
    assert len(active) == 3
    centres = np.array([[k["centre"]["x0"], k["centre"]["x1"]] for k in active])
    dist = np.linalg.norm(centres[:, None] - truth["centres"][None], axis=-1)  # (active, clumps)
    assert (dist.min(1) < 0.1).all()  # no active kernel far from all clumps
    assert sorted(dist.argmin(1).tolist()) == [0, 1, 2]  # one per clump
    assert all(k["local_z"] > 3 for k in active)
    flagged = m.flag(D)
    labels = truth["is_anomaly"]
    assert (flagged & labels).sum() / labels.sum() > 0.7  # recall
    assert (flagged & labels).sum() / flagged.sum() > 0.5  # precision


# ------------------------------------------------------------------- short reprs, renaming (issue #18)


def test_explanation_repr_is_one_short_line(tiny):
    R, D, model = tiny
    ex = model.explain(D)
    text = repr(ex)
    assert text == (f"Explanation(n_points={len(D)}, n_flagged={int(ex.flagged.sum())}, "
                     f"threshold={ex.threshold:.4g})")
    assert "\n" not in text and len(text) < 100 and "array" not in text


def test_rename_features_relabels_the_kernel_table(tiny):
    _, _, model = tiny
    from sparker.interpret import rename_features

    renamed = rename_features(model.kernels_, ["energy"])
    assert [list(row["centre"]) for row in renamed] == [["energy"]] * len(renamed)
    assert [row["centre"]["energy"] for row in renamed] == [row["centre"]["x0"] for row in model.kernels_]
    assert [row["width_original"]["energy"] for row in renamed] == \
        [row["width_original"]["x0"] for row in model.kernels_]
    assert list(model.kernels_[0]["centre"]) == ["x0"]  # the model's table is left as it was
    with pytest.raises(ValueError, match="^feature_names: 2 names for 1 features"):
        rename_features(model.kernels_, ["a", "b"])
