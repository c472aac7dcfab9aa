"""Calibrated test, calibrations, checkpoints and back ends (``sparker.calibration``).

Statistical checks (type-I error) run twice: a reduced version in the normal
suite and the full version (>= 200 independent tests per scenario) under
``-m slow``.  Toys are kept small (2 kernels, 60 epochs, no re-seeding) so the
normal suite stays quick on two cores.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch
from scipy import stats as st

import sparker
import sparker.calibration.toys as C
from sparker.core import nulls
from sparker.calibration import Calibration
from sparker.calibration.checkpoint import Checkpoint
from sparker.stats import aggregate, binomial_interval

#: small, fast training settings shared by most tests
SMALL = dict(n_kernels=2, epochs=60, reseed=False)


def uniform(n, d=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, d))


def gauss(n, d=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.fixture(scope="module")
def ref():
    return uniform(1000, seed=1)


@pytest.fixture(scope="module")
def cal(ref):
    return sparker.calibrate(ref, 100, n_null=19, seed=3, **SMALL)


# ------------------------------------------------------------------ results
def test_result_fields_pvalue_formula_and_json(ref):
    data = uniform(100, seed=2)
    res = sparker.test(ref, data, n_null=19, seed=3, **SMALL)
    assert res.null_mode == "resample"  # 1000 >= 5 * 100
    t0 = res.null_distribution
    assert t0.shape == (19,) and res.n_null == 19 and np.isfinite(t0).all()
    assert res.pvalue == (1 + np.sum(t0 >= res.statistic)) / 20
    assert res.zscore == pytest.approx(st.norm.isf(res.pvalue))
    assert res.resolution == 1 / 20
    assert res.model.statistic_ == res.statistic
    assert res.settings[0]["n_kernels"] == 2 and len(res.settings) == 1 and res.seed == 3
    assert set(res.chi2) >= {"dof", "ks_pvalue", "poor_fit", "pvalue", "zscore"}
    out = json.loads(json.dumps(res.to_dict()))
    assert out["pvalue"] == res.pvalue and out["null_mode"] == "resample"
    assert len(out["null_distribution"]) == 19
    with pytest.raises(AttributeError):
        res.pvalue = 0.5  # frozen


def test_toys_use_the_widths_of_the_observed_fit(ref, cal):
    data = uniform(100, seed=2)
    res = cal.test(data)
    # the observed model's first recorded width is its sigma_start
    assert res.model.history_["sigma"][0] == pytest.approx(cal.widths[0][0][0], rel=1e-12)
    (layer,) = res.model.config_.layer_configs()
    assert [(layer.sigma_start, layer.sigma_end)] == cal.widths[0]
    # the observed fit takes the calibration's widths; it does not derive its own
    wider = dataclasses.replace(cal, widths=[[(1.5 * a, 1.5 * b) for a, b in w] for w in cal.widths])
    (layer,) = wider.test(data).model.config_.layer_configs()
    assert [(layer.sigma_start, layer.sigma_end)] == wider.widths[0]


def test_every_layer_of_a_stack_uses_the_toys_widths(ref):
    layers = [dict(n_kernels=2, epochs=20), dict(n_kernels=2, epochs=20, sigma_end_quantile=0.01)]
    c = sparker.calibrate(ref, 100, n_null=2, reseed=False, layers=layers)
    model = c.test(uniform(100, seed=2)).model
    assert [(layer.sigma_start, layer.sigma_end) for layer in model.config_.layer_configs()] == c.widths[0]


def test_auto_null_mode_and_permutation_result():
    assert nulls.resolve_null_mode("auto", 500, 100) == "resample"
    assert nulls.resolve_null_mode("auto", 499, 100) == "permutation"
    res = sparker.test(uniform(150, seed=1), uniform(150, seed=2), n_null=9, **SMALL)
    assert res.null_mode == "permutation"
    assert res.to_dict()["null_mode"] == "permutation"


def test_p_never_zero_and_power_on_a_shifted_sample(ref):
    rng = np.random.default_rng(5)
    # a dense clump: a clearly different sample
    data = np.concatenate([rng.uniform(size=(70, 2)), 0.3 + 0.03 * rng.standard_normal((30, 2))])
    res = sparker.test(ref, data, n_null=39, seed=1, **SMALL)
    assert res.pvalue == res.resolution == 1 / 40  # beyond every toy, but never 0
    assert res.pvalue > 0 and np.isfinite(res.zscore)
    assert res.statistic > res.null_distribution.max()
    assert res.chi2["zscore"] > 3


# ------------------------------------------------------------------ null toys
def test_resample_toys_draw_poisson_counts_when_n_expected_is_given():
    spec = nulls.NullSpec("resample", 1000, 100, n_expected=100.0, poisson=True)
    counts = []
    for b in range(400):
        r, d = nulls.toy_weights(spec, np.random.SeedSequence(0, spawn_key=(b,)))
        assert not np.any((r > 0) & (d > 0))  # a point is reference or data, never both
        assert r.sum() == pytest.approx(100.0)  # reference scaled to N_0
        counts.append(d.sum())
    counts = np.asarray(counts)
    assert counts.std() > 0
    assert abs(counts.mean() - 100) < 2.5  # sd of the mean 0.5
    assert 70 < counts.var() < 135  # Poisson: var = mean (sd of the variance ~7)
    exact = nulls.NullSpec("resample", 1000, 100)
    for b in range(5):
        r, d = nulls.toy_weights(exact, b)
        assert d.sum() == 100 and r.sum() == pytest.approx(100.0) and np.count_nonzero(r) == 900


def test_calibrate_uses_poisson_toys_with_n_expected(ref):
    c = sparker.calibrate(ref, 100, n_expected=100, n_null=3, **SMALL)
    assert c.poisson and c.n_expected == 100.0
    assert not sparker.calibrate(ref, 100, n_null=3, **SMALL).poisson


def test_permutation_toys_keep_the_sizes():
    spec = nulls.NullSpec("permutation", 300, 120)
    seen = set()
    for b in range(20):
        r, d = nulls.toy_weights(spec, b)
        assert d.sum() == 120 and np.count_nonzero(r) == 300 and len(r) == 420
        assert not np.any((r > 0) & (d > 0))
        assert np.allclose(r[r > 0], 120 / 300)
        seen.add(tuple(np.flatnonzero(d)))
    assert len(seen) == 20


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, name", [
    (dict(n_null=0), "n_null"),
    (dict(n_null=2.5), "n_null"),
    (dict(null="bogus"), "null"),
    (dict(null="resample", data=uniform(600, seed=2)), "null"),  # reference 1000 < 2 * 600
    (dict(aggregation="bogus"), "aggregation"),
    (dict(backend="bogus"), "backend"),
    (dict(backend="dask"), "scheduler"),
    (dict(scheduler="tcp://localhost:1"), "scheduler"),  # only for dask
    (dict(n_workers=2), "n_workers"),  # only for processes
    (dict(replica_chunk=0), "replica_chunk"),
    (dict(seed=-1), "seed"),
    (dict(n_expected=-3.0), "n_expected"),
    (dict(null="permutation", poisson=True), "poisson"),
    (dict(null="permutation", reference_weight=np.ones(1000)), "null"),
    (dict(n_kernels=[]), "n_kernels"),
    (dict(not_a_setting=1), "settings"),
    (dict(n_kernels=[2, 3], n_null=1), "n_null"),
])
def test_bad_arguments_name_the_argument(ref, kwargs, name, monkeypatch):
    monkeypatch.setattr(C, "_run_chunk", lambda *a: pytest.fail("trained before validating"))
    kwargs = {"data": uniform(100, seed=2), **kwargs}
    data = kwargs.pop("data")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        sparker.test(ref, data, **{**SMALL, **kwargs})


def test_calibrate_bad_arguments(ref):
    with pytest.raises(ValueError, match="^n_data:"):
        sparker.calibrate(ref, 0, n_null=3)
    with pytest.raises(ValueError, match="^null:"):
        sparker.calibrate(ref, 800, n_null=3)  # the reference is too small to resample from
    with pytest.raises(ValueError, match="^data_tolerance:"):
        sparker.calibrate(ref, 100, n_null=3, data_tolerance=-1)
    with pytest.raises(ValueError, match="^n_null:"):
        sparker.calibrate(ref, 100, n_null=0)


# ------------------------------------------------------------------ reuse
def test_calibration_reuse_equals_direct_test(ref, cal):
    data = uniform(100, seed=2)
    a = cal.test(data)
    b = sparker.test(ref, data, calibration=cal, n_null=19, seed=3, **SMALL)
    direct = sparker.test(ref, data, n_null=19, seed=3, **SMALL)
    partial = sparker.test(ref, data, calibration=cal, n_kernels=2)  # settings named agree
    for r in (b, direct, partial):
        assert r.pvalue == a.pvalue and r.statistic == a.statistic
        np.testing.assert_array_equal(r.null_distribution, a.null_distribution)


@pytest.mark.parametrize("change, name", [
    (dict(reference=uniform(1000, seed=9)), "reference"),
    (dict(reference_weight=np.linspace(1, 2, 1000)), "reference"),
    (dict(n_kernels=3), "settings"),
    (dict(epochs=61), "settings"),
    (dict(data=uniform(101, seed=2)), "data"),
    (dict(data=uniform(100, 3, seed=2)), "data"),
    (dict(seed=4), "seed"),
    (dict(n_null=50), "n_null"),
    (dict(null="permutation"), "null"),
    (dict(n_expected=120), "n_expected"),
    (dict(poisson=True), "poisson"),
    (dict(aggregation="fisher"), "aggregation"),
])
def test_calibration_reuse_refuses_mismatches(ref, cal, change, name):
    kwargs = {"reference": ref, "data": uniform(100, seed=2), **change}
    with pytest.raises(ValueError, match=rf"^{name}:"):
        sparker.test(kwargs.pop("reference"), kwargs.pop("data"), calibration=cal, **kwargs)


def test_shape_only_poisson_calibration_accepts_sizes_within_tolerance(ref):
    c = sparker.calibrate(ref, 100, poisson=True, n_null=5, data_tolerance=2, **SMALL)
    assert c.poisson and c.n_expected is None  # toys' references scaled to their own counts
    assert c.accepts(100) and c.accepts(119) and c.accepts(81)
    assert not c.accepts(121) and not c.accepts(79)  # 100 +- 2 * sqrt(100)
    assert c.test(uniform(115, seed=2)).n_null == 5
    with pytest.raises(ValueError, match=r"^data:.*sqrt"):
        c.test(uniform(125, seed=2))


def test_poisson_calibration_with_n_expected_tests_any_count(ref):
    # the count is part of what is tested: a count far from N_0 is evidence, not a mismatch
    c = sparker.calibrate(ref, 100, n_expected=100, n_null=5, data_tolerance=2, **SMALL)
    assert c.accepts(150) and c.accepts(60) and c.accepts(1)
    data = uniform(150, seed=2)  # 5 standard deviations above N_0
    a = c.test(data)
    b = sparker.test(ref, data, n_expected=100, n_null=5, **SMALL)  # the same toys, run again
    assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue)
    np.testing.assert_array_equal(a.null_distribution, b.null_distribution)
    exact = dataclasses.replace(c, poisson=False)  # exact-count toys test exactly n_data points
    assert exact.accepts(100) and not exact.accepts(101)


def test_calibrated_tests_refuse_weighted_data(ref, cal, monkeypatch):
    data = uniform(100, seed=2)
    plain, ones = cal.test(data), cal.test(data, data_weight=np.ones(100))
    assert (ones.statistic, ones.pvalue) == (plain.statistic, plain.pvalue)
    monkeypatch.setattr(C, "_run_chunk", lambda *a: pytest.fail("trained before validating"))
    small = uniform(150, seed=2)
    calls = [
        lambda: cal.test(data, data_weight=np.full(100, 2.0)),
        lambda: sparker.test(ref, data, calibration=cal, data_weight=np.full(100, 2.0)),
        lambda: sparker.test(ref, data, n_null=3, data_weight=np.r_[np.ones(99), 0.5], **SMALL),
        lambda: sparker.test(uniform(150, seed=1), small, n_null=3, data_weight=np.full(150, 2.0), **SMALL),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^data_weight: calibrated tests take unweighted data.*"
                                             r"reference_weight.*SparKer\.fit"):
            call()


def test_save_load_round_trip(ref, cal, tmp_path):
    path = tmp_path / "cal.npz"
    cal.save(path)
    with pytest.raises(FileExistsError):
        cal.save(path)
    cal.save(path, overwrite=True)
    back = Calibration.load(path)
    np.testing.assert_array_equal(back.null, cal.null)
    assert back.settings_dicts() == cal.settings_dicts() and back.widths == cal.widths
    for name in ("fingerprint", "n_features", "n_data", "n_expected", "poisson", "null_mode", "seed",
                 "aggregation", "data_tolerance"):
        assert getattr(back, name) == getattr(cal, name), name
    data = uniform(100, seed=2)
    with pytest.raises(ValueError, match="^reference:"):
        back.test(data)  # the reference is not stored
    a, b = back.test(data, reference=ref), cal.test(data)
    assert (a.statistic, a.pvalue, a.zscore) == (b.statistic, b.pvalue, b.zscore)
    assert sparker.test(ref, data, calibration=back).pvalue == b.pvalue
    with pytest.raises(ValueError, match="^reference:"):
        back.test(data, reference=uniform(1000, seed=9))


def test_save_load_keeps_reference_weights(ref, tmp_path):
    w = np.linspace(0.5, 1.5, len(ref))
    c = sparker.calibrate(ref, 100, reference_weight=w, n_null=3, **SMALL)
    c.save(tmp_path / "w.npz")
    back = Calibration.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(back.reference_weight, w)
    assert back.test(uniform(100, seed=2), reference=ref).n_null == 3
    with pytest.raises(ValueError, match="^reference:"):
        back.test(uniform(100, seed=2), reference=ref, reference_weight=np.ones(len(ref)))


def _bad_files(tmp_path, cal):
    good = tmp_path / "good.npz"
    cal.save(good)
    raw = good.read_bytes()
    (tmp_path / "noise.npz").write_bytes(os.urandom(2000))
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    np.savez(tmp_path / "pickled.npz", null=np.array([{"a": 1}], dtype=object))
    sparker.SparKer(n_kernels=2, epochs=5).fit(uniform(50), uniform(20, seed=3)).save(tmp_path / "model.npz")
    meta = json.loads(np.load(good)["__meta__"].tobytes().decode())
    for name, change in (("version", {"format_version": 99}), ("format", {"format": "nope"}),
                         ("missing", {"configs": None}), ("mode", {"null_mode": "bogus"})):
        bad = {**meta, **change}
        with np.load(good) as z:
            arrays = dict(z)
        arrays["__meta__"] = np.frombuffer(json.dumps(bad).encode(), dtype=np.uint8)
        np.savez(tmp_path / f"{name}.npz", **arrays)
    return ["noise", "truncated", "other", "pickled", "model", "version", "format", "missing", "mode"]


def _rewrite_header(src, dst, **changes):
    """Copy an archive with its JSON header changed."""
    with np.load(src) as z:
        arrays = dict(z)
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    meta.update(changes)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(dst, **arrays)


def test_a_calibration_of_another_version_warns(cal, tmp_path):
    assert issubclass(sparker.SparKerWarning, UserWarning)
    cal.save(tmp_path / "cal.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Calibration.load(tmp_path / "cal.npz").sparker_version == sparker.__version__
    _rewrite_header(tmp_path / "cal.npz", tmp_path / "old.npz", sparker_version="0.0.1")
    with pytest.warns(sparker.SparKerWarning, match=r"made by SparKer 0\.0\.1.*may differ.*calibrate again"):
        old = Calibration.load(tmp_path / "old.npz")
    assert old.sparker_version == "0.0.1"
    np.testing.assert_array_equal(old.null, cal.null)
    old.save(tmp_path / "resaved.npz")  # the version that ran the toys stays with them
    with pytest.warns(sparker.SparKerWarning, match=r"0\.0\.1"):
        Calibration.load(tmp_path / "resaved.npz")


# ------------------------------------------------------------------ names and summaries (issue #18)
def test_test_keeps_the_feature_names_of_dataframes():
    pd = pytest.importorskip("pandas")
    names = ["energy", "angle"]
    R = pd.DataFrame(uniform(400, seed=1), columns=names)
    D = pd.DataFrame(uniform(60, seed=2), columns=names)
    res = sparker.test(R, D, n_null=3, seed=1, **SMALL)
    model = res.model
    assert model.feature_names_in_ == names
    assert all(list(k["centre"]) == names and list(k["width_original"]) == names for k in model.kernels_)
    assert list(model.top_points(3).columns[5:]) == names
    out = json.loads(json.dumps(res.to_dict()))
    assert out["feature_names"] == names and set(out["top_points"][0]["point"]) == set(names)
    # the names are labels: the same numbers as the arrays give
    plain = sparker.test(R.to_numpy(), D.to_numpy(), n_null=3, seed=1, **SMALL)
    assert plain.model.feature_names_in_ is None and plain.statistic == res.statistic
    assert [k["centre"]["x0"] for k in plain.model.kernels_] == \
        [k["centre"]["energy"] for k in model.kernels_]
    # reusing a calibration keeps them too
    cal = sparker.calibrate(R, 60, n_null=3, seed=1, **SMALL)
    assert sparker.test(R, D, calibration=cal).model.feature_names_in_ == names
    # the data must name the reference's columns, as SparKer.fit requires
    for kw in ({"n_null": 3, **SMALL}, {"calibration": cal}):
        with pytest.raises(ValueError, match=r"^data: feature names differ.*got 'angle', expected 'energy'"):
            sparker.test(R, D[names[::-1]], **kw)
    with pytest.raises(ValueError, match=r"^reference: duplicate feature names \['a'\]"):
        sparker.test(R.set_axis(["a", "a"], axis=1), D.set_axis(["a", "a"], axis=1), n_null=3, **SMALL)


def test_result_repr_is_short_and_to_dict_holds_the_command_line_summary(ref):
    rng = np.random.default_rng(3)
    data = np.concatenate([uniform(90, seed=2), 0.5 + 0.01 * rng.standard_normal((10, 2))])
    res = sparker.test(ref, data, n_null=3, seed=3, **SMALL)
    text = repr(res)
    assert text == (f"TestResult(method='sparker', statistic={res.statistic:.4g}, pvalue={res.pvalue:.4g}, "
                    f"zscore={res.zscore:.3g}, n_null=3, null_mode='resample')")
    out = json.loads(json.dumps(res.to_dict()))
    assert out["verdict"] == res.verdict() and out["verdict"]["calibrated"] is True
    assert out["verdict"]["significant"] is False and "run more toys" in out["verdict"]["text"]  # p >= 1/4
    assert out["n_flagged"] == res.n_flagged == int(res.model.flag(data).sum())
    top = res.model.top_points(10, X=data)
    assert [p["row"] for p in out["top_points"]] == top["row"].tolist()
    assert set(out["top_points"][0]["point"]) == {"x0", "x1"} and out["feature_names"] is None
    # a result without a SparKer model (a baseline's) has the same keys, empty
    bare = sparker.TestResult(statistic=1.0, pvalue=0.5, zscore=0.0, null_distribution=np.zeros(3),
                              null_mode="permutation", n_null=3, method="mmd")
    summary = bare.to_dict()
    assert summary["n_flagged"] is None and summary["top_points"] == [] and summary["feature_names"] is None
    assert summary["verdict"]["significant"] is False and "kernels" not in summary
    assert len(repr(bare)) < 120


def test_convergence_warning_is_a_sparker_warning():
    assert issubclass(sparker.ConvergenceWarning, sparker.SparKerWarning)
    with pytest.warns(sparker.SparKerWarning):  # filtering SparKerWarning covers it
        warnings.warn("not settled", sparker.ConvergenceWarning)


def test_a_checkpoint_of_another_version_is_refused(ref, tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    kw = dict(n_null=3, seed=2, checkpoint=path, **SMALL)
    sparker.calibrate(ref, 100, **kw)
    _rewrite_header(path, path, sparker_version="0.0.1")
    monkeypatch.setattr(C, "_run_chunk", lambda *a: pytest.fail("resumed a run of another version"))
    with pytest.raises(ValueError, match=r"^checkpoint: .* written by SparKer 0\.0\.1.*mix toys"):
        sparker.calibrate(ref, 100, **kw)


def test_load_refuses_corrupted_or_foreign_files(cal, tmp_path):
    for name in _bad_files(tmp_path, cal):
        with pytest.raises(ValueError, match="^path:"):
            Calibration.load(tmp_path / f"{name}.npz")
    with pytest.raises(FileNotFoundError, match="^path:"):
        Calibration.load(tmp_path / "absent.npz")


# ------------------------------------------------------------------ aggregation
def test_aggregation_runs_every_configuration_on_the_same_toys(ref):
    data = uniform(100, seed=2)
    res = sparker.test(ref, data, n_null=19, seed=2, sigma_end_quantile=[0.02, 0.2], **SMALL)
    assert len(res.settings) == 2 and res.chi2 is None
    pc = res.per_config
    assert pc["aggregation"] == "minp-fisher" and len(pc["statistics"]) == 2 and len(pc["pvalues"]) == 2
    null = np.asarray(pc["null_statistics"])
    assert null.shape == (19, 2)
    agg = aggregate(pc["statistics"], null, method="minp-fisher")
    assert res.pvalue == agg.pvalue and res.statistic == agg.statistic
    np.testing.assert_array_equal(res.null_distribution, agg.null_distribution)
    # column k is exactly the calibration of configuration k alone: the same toys
    for k, q in enumerate((0.02, 0.2)):
        alone = sparker.calibrate(ref, 100, n_null=19, seed=2, sigma_end_quantile=q, **SMALL)
        np.testing.assert_array_equal(alone.null[:, 0], null[:, k])
        assert pc["statistics"][k] == sparker.test(ref, data, calibration=alone).statistic
    json.dumps(res.to_dict())


# ------------------------------------------------------------------ scales
def test_default_test_runs_three_scales_on_the_same_toys_and_shows_the_best():
    from sparker.config import SCALES

    R, D = uniform(300, seed=1), uniform(30, seed=2)
    res = sparker.test(R, D, n_null=4, seed=1)
    assert [(s["n_kernels"], s["sigma_end_quantile"], s["epochs"]) for s in res.settings] == [
        (8, 0.003, 1000), (4, 0.02, 500), (4, 0.5, 300)]
    pc = res.per_config
    null = np.asarray(pc["null_statistics"])
    assert null.shape == (4, 3) and res.chi2 is None
    assert res.pvalue == aggregate(pc["statistics"], null).pvalue
    shown = pc["shown"]
    assert shown == int(np.argmin(pc["pvalues"]))
    assert res.model.n_kernels == res.settings[shown]["n_kernels"]
    assert res.model.statistic_ == pc["statistics"][shown]
    text, summary = res.verdict()["text"], res.verdict()["summary"]
    assert summary.startswith("t = " + ", ".join(f"{t:.4g}" for t in pc["statistics"]) + " (3 configurations, minp-fisher)")
    assert "combines 3 configurations on the same toys" in text
    assert f"those of configuration {shown + 1} ({res.settings[shown]['n_kernels']} kernels" in text
    # a kernel-count (or width, epochs, layers) setting means exactly that configuration
    one = sparker.test(R, D, n_null=4, seed=1, n_kernels=8, **SCALES["multi"][0])
    assert len(one.settings) == 1 and one.per_config is None
    assert one.statistic == pc["statistics"][0]  # the narrow scale is the default fit with its preset's changes
    np.testing.assert_array_equal(one.null_distribution, null[:, 0])


def test_default_test_sees_a_broad_deficit_through_its_widest_scale():
    # Exp(1) data with the tail above 2 removed (about 14% of the events missing, NPLM's H4
    # in small): only the four kernels ending at the median distance span the missing tail
    rng = np.random.default_rng(3)
    R = rng.exponential(size=(2000, 1))
    D = rng.exponential(size=(200, 1))
    D = D[D[:, 0] < 2.0]
    res = sparker.test(R, D, n_null=39, seed=0)
    p = np.asarray(res.per_config["pvalues"])
    assert res.settings[2]["sigma_end_quantile"] == 0.5
    assert p[2] == 1 / 40  # the widest scale beats every toy (p 0.43 and 0.78 for the other two)
    assert p.min() == p[2] and p[:2].min() > 0.25
    assert res.pvalue <= 0.05
    assert res.per_config["shown"] == 2 and res.model.n_kernels == 4


def test_scales_resolve_from_the_settings():
    from sparker.calibration.api import resolve_scales, training_configs
    from sparker.config import SCALE_SETTINGS, SCALES

    assert resolve_scales("auto", {}) == "multi"
    assert resolve_scales("auto", {"lr_centres": 0.1}) == "multi"
    assert all(resolve_scales("auto", {name: 1}) == "single" for name in SCALE_SETTINGS)
    assert resolve_scales("single", {}) == "single" and resolve_scales("multi", {"n_kernels": 2}) == "multi"
    assert len(training_configs({})) == len(SCALES["multi"]) == 3
    assert training_configs({}, "single") == [sparker.TrainingConfig()]
    assert all(c.lr_centres == 0.1 for c in training_configs({"lr_centres": 0.1}))
    # the widest scale clips its amplitudes at 5, unless the user sets a_max for every scale
    assert [c.a_max for c in training_configs({})] == [10.0, 10.0, 5.0]
    assert [c.a_max for c in training_configs({"a_max": 8.0})] == [8.0, 8.0, 8.0]
    assert [c.a_max for c in training_configs({"a_max": [4.0, 8.0]})] == [4.0, 4.0, 4.0, 8.0, 8.0, 8.0]
    # the narrow scale penalises its amplitudes with l1 = 1, the others keep the default 0.5
    assert [c.l1 for c in training_configs({})] == [1.0, 0.5, 0.5]
    assert [c.l1 for c in training_configs({"l1": 0.25})] == [0.25, 0.25, 0.25]
    assert [c.l1 for c in training_configs({}, "single")] == [0.5]
    # every scale solves its amplitudes where its width ends; a single fit and a user's False do not
    assert [c.solve_amplitudes for c in training_configs({})] == [True, True, True]
    assert [c.solve_amplitudes for c in training_configs({"solve_amplitudes": False})] == [False] * 3
    assert [c.solve_amplitudes for c in training_configs({}, "single")] == [False]
    assert len(training_configs({"lr_centres": [0.1, 0.2]}, "multi")) == 6
    # a scale that repeats the given configuration runs once
    same = training_configs({"n_kernels": 4, "sigma_end_quantile": 0.02, "epochs": 500, "l1": 0.5}, "multi")
    assert len(same) == 2 and same[0].n_kernels == 4
    with pytest.raises(ValueError, match="^scales:"):
        training_configs({"layers": [{"n_kernels": 2}]}, "multi")
    with pytest.raises(ValueError, match="^scales:"):
        sparker.test(uniform(300), uniform(30), scales="many")


def test_reusing_a_calibration_with_other_scales_is_refused(ref, cal):
    with pytest.raises(ValueError, match="^scales: 'multi' gives 3"):
        sparker.test(ref, uniform(100, seed=2), calibration=cal, scales="multi")
    assert sparker.test(ref, uniform(100, seed=2), calibration=cal, scales="single").n_null == 19


@pytest.mark.parametrize("method", ["fisher", "meanp"])
def test_other_aggregations(ref, method):
    c = sparker.calibrate(ref, 100, n_null=9, seed=2, n_kernels=[2, 3], epochs=60, reseed=False,
                          aggregation=method)
    res = c.test(uniform(100, seed=2))
    assert res.per_config["aggregation"] == method
    t_obs = res.per_config["statistics"]
    assert res.pvalue == aggregate(t_obs, c.null, method=method).pvalue


# ------------------------------------------------------------------ chunks and back ends
def test_results_do_not_depend_on_the_chunk_size(ref):
    data = uniform(100, seed=2)
    base = sparker.test(ref, data, n_null=40, seed=4, replica_chunk=64, **SMALL)
    for chunk in (16, 20, 1):  # 20 and 1 are rounded up to whole blocks of 16
        other = sparker.test(ref, data, n_null=40, seed=4, replica_chunk=chunk, **SMALL)
        np.testing.assert_array_equal(other.null_distribution, base.null_distribution)
        assert other.pvalue == base.pvalue and other.statistic == base.statistic


def test_chunks_are_whole_replica_blocks():
    assert C.REPLICA_BLOCK == 16
    assert C._chunks(40, 20) == [tuple(range(32)), tuple(range(32, 40))]
    assert C._chunks(10, 1) == [tuple(range(10))]
    assert C._blocks((14, 15, 16, 17, 40)) == [(14, 15), (16, 17), (40,)]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield cluster, client


def test_backends_give_the_same_toys(ref, dask_cluster):
    cluster, client = dask_cluster
    kw = dict(n_null=8, seed=6, replica_chunk=3, **SMALL)
    base = sparker.calibrate(ref, 100, **kw).null
    runs = {
        "processes": sparker.calibrate(ref, 100, backend="processes", n_workers=2, **kw).null,
        "dask client": sparker.calibrate(ref, 100, backend="dask", scheduler=client, **kw).null,
        "dask address": sparker.calibrate(ref, 100, backend="dask", scheduler=cluster.scheduler_address,
                                          **kw).null,
    }
    for name, null in runs.items():  # same chunks, same seeds: bitwise the same toys
        np.testing.assert_array_equal(null, base, err_msg=name)
    assert client.status == "running"  # a client passed in is left open


def test_permutation_test_on_dask_matches_in_process(dask_cluster):
    _, client = dask_cluster
    R, D = uniform(150, seed=1), uniform(150, seed=2)
    a = sparker.test(R, D, n_null=9, seed=1, **SMALL)
    b = sparker.test(R, D, n_null=9, seed=1, backend="dask", scheduler=client, **SMALL)
    np.testing.assert_array_equal(b.null_distribution, a.null_distribution)
    assert a.pvalue == b.pvalue


def test_progress_bar(ref, capsys):
    pytest.importorskip("tqdm")
    sparker.calibrate(ref, 100, n_null=4, replica_chunk=2, progress=True, **SMALL)
    assert "null toys" in capsys.readouterr().err


# ------------------------------------------------------------------ checkpoints
class CountChunks:
    def __init__(self, fn, fail_after=None):
        self.fn, self.fail_after, self.calls = fn, fail_after, []

    def __call__(self, problem, k, ids):
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt
        self.calls.append((k, ids))
        return self.fn(problem, k, ids)


def test_checkpoint_is_kept_and_a_rerun_trains_nothing(ref, tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    kw = dict(n_null=6, seed=2, replica_chunk=3, checkpoint=path, **SMALL)
    first = sparker.calibrate(ref, 100, **kw)
    assert path.exists()
    counter = CountChunks(C._run_chunk)
    monkeypatch.setattr(C, "_run_chunk", counter)
    again = sparker.calibrate(ref, 100, **kw)
    assert counter.calls == []
    np.testing.assert_array_equal(again.null, first.null)


def test_interrupted_in_process_run_resumes_with_any_chunk_size(ref, tmp_path, monkeypatch):
    kw = dict(n_null=40, seed=2, n_kernels=[2, 3], epochs=30, reseed=False)
    full = sparker.calibrate(ref, 100, replica_chunk=16, **kw).null
    path = tmp_path / "ck.npz"
    monkeypatch.setattr(C, "_run_chunk", CountChunks(C._run_chunk, fail_after=2))
    with pytest.raises(KeyboardInterrupt):
        sparker.calibrate(ref, 100, replica_chunk=16, checkpoint=path, **kw)
    _, _, done = Checkpoint.read(path)
    assert done.sum() == 32 and done[:32, 0].all()  # two chunks of 16 toys, first configuration
    counter = CountChunks(C._run_chunk.fn)
    monkeypatch.setattr(C, "_run_chunk", counter)
    resumed = sparker.calibrate(ref, 100, replica_chunk=32, checkpoint=path, **kw).null
    # chunks of 32 over 40 toys: config 0 needs toys 32..39; config 1 needs all of them
    assert counter.calls == [(0, tuple(range(32, 40))), (1, tuple(range(32))), (1, tuple(range(32, 40)))]
    np.testing.assert_array_equal(resumed, full)  # toys train in the same blocks: bit-identical


def test_checkpoint_of_another_run_or_corrupted_is_refused(ref, tmp_path):
    path = tmp_path / "ck.npz"
    sparker.calibrate(ref, 100, n_null=3, seed=2, checkpoint=path, **SMALL)
    for change in (dict(seed=3), dict(n_null=4), dict(n_kernels=3), dict(n_expected=90.0)):
        with pytest.raises(ValueError, match=r"^checkpoint:.*different run"):
            sparker.calibrate(ref, 100, **{**dict(n_null=3, seed=2, checkpoint=path, **SMALL), **change})
    with pytest.raises(ValueError, match=r"^checkpoint:.*different run"):
        sparker.calibrate(uniform(1000, seed=9), 100, n_null=3, seed=2, checkpoint=path, **SMALL)
    with pytest.raises(ValueError, match=r"^checkpoint:.*different run"):  # a test's permutation toys
        sparker.test(uniform(150, seed=1), uniform(150, seed=2), n_null=3, seed=2, checkpoint=path, **SMALL)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="^checkpoint:"):
        sparker.calibrate(ref, 100, n_null=3, seed=2, checkpoint=path, **SMALL)


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    import sparker
    import sparker.calibration.toys as C

    compute = C._run_chunk

    def slow_chunk(*args):  # paces the run so that the parent can kill it mid-way
        out = compute(*args)
        time.sleep(0.3)
        return out

    C._run_chunk = slow_chunk
    ref = np.random.default_rng(1).uniform(size=(1000, 2))
    sparker.calibrate(ref, 100, checkpoint=sys.argv[1], **eval(sys.argv[2]))
""")


def test_killed_calibration_resumes_without_redoing_finished_chunks(ref, tmp_path, monkeypatch):
    kw = dict(n_null=96, seed=5, replica_chunk=16, n_kernels=2, epochs=20, reseed=False)
    n_chunks = 6
    path = tmp_path / "ck.npz"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(path), repr(kw)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists():
                done = int(Checkpoint.read(path)[2].sum())
                if done >= 2 * 16:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    _, _, mask = Checkpoint.read(path)
    n_done = int(mask.sum())
    assert 0 < n_done < 96 and n_done % 16 == 0  # whole chunks only
    counter = CountChunks(C._run_chunk)
    monkeypatch.setattr(C, "_run_chunk", counter)
    resumed = sparker.calibrate(ref, 100, checkpoint=path, **kw).null
    assert len(counter.calls) == n_chunks - n_done // 16  # only unfinished chunks
    assert all(not mask[list(ids), 0].any() for _, ids in counter.calls)
    monkeypatch.setattr(C, "_run_chunk", counter.fn)
    uninterrupted = sparker.calibrate(ref, 100, **kw).null
    np.testing.assert_array_equal(resumed, uninterrupted)


# ------------------------------------------------------------------ type-I error
def _scenario(name, n_reference, n_data, seed):
    rng = np.random.default_rng(seed)
    if name == "uniform2d":
        return rng.uniform(size=(n_reference, 2)), rng.uniform(size=(n_data, 2))
    return rng.standard_normal((n_reference, 16)), rng.standard_normal((n_data, 16))


def _type1(name, *, n_reference, n_data, n_tests, n_null, alpha=0.05, **settings):
    """Rejections at ``alpha`` over ``n_tests`` independent null tests."""
    pvalues = []
    for i in range(n_tests):
        R, D = _scenario(name, n_reference, n_data, seed=10_000 + i)
        res = sparker.test(R, D, n_null=n_null, seed=i, replica_chunk=n_null, **settings)
        assert res.pvalue > 0
        pvalues.append(res.pvalue)
    pvalues = np.asarray(pvalues)
    k = int(np.sum(pvalues <= alpha))
    low, high = binomial_interval(k, n_tests, level=0.99)
    print(f"\ntype-I {name} N_R={n_reference} N_D={n_data} n_null={n_null} {settings}: "
          f"{k}/{n_tests} = {k / n_tests:.3f} rejected at alpha={alpha}, 99% interval [{low:.3f}, {high:.3f}]"
          f"; at 0.01: {np.mean(pvalues <= 0.01):.3f}")
    return k, low, high


# (scenario, N_R, N_D): resample toys (N_R >= 5 N_D) and permutation toys (N_R = N_D)
REDUCED = [
    pytest.param("uniform2d", 1000, 100, 60, 19, {}, id="uniform2d-resample"),
    pytest.param("gauss16d", 200, 200, 60, 19, {}, id="gauss16d-permutation"),
    pytest.param("uniform2d", 200, 200, 40, 39, {"sigma_end_quantile": [0.02, 0.2]},
                 id="uniform2d-permutation-minp"),
    pytest.param("gauss16d", 1000, 100, 40, 39, {"sigma_end_quantile": [0.02, 0.2]},
                 id="gauss16d-resample-minp"),
]
FULL = [
    pytest.param(name, nr, nd, 200, 99, agg, id=f"{name}-{mode}{'-minp' if agg else ''}")
    for name in ("uniform2d", "gauss16d")
    for mode, nr, nd in (("resample", 2000, 200), ("permutation", 300, 300))
    for agg in ({}, {"sigma_end_quantile": [0.02, 0.2]})
]


@pytest.mark.parametrize("name, n_reference, n_data, n_tests, n_null, extra", REDUCED)
def test_type1_error_reduced(name, n_reference, n_data, n_tests, n_null, extra):
    k, low, high = _type1(name, n_reference=n_reference, n_data=n_data, n_tests=n_tests,
                          n_null=n_null, **{**SMALL, **extra})
    assert low <= 0.05 <= high


@pytest.mark.slow
@pytest.mark.parametrize("name, n_reference, n_data, n_tests, n_null, extra", FULL)
def test_type1_error_full(name, n_reference, n_data, n_tests, n_null, extra):
    k, low, high = _type1(name, n_reference=n_reference, n_data=n_data, n_tests=n_tests,
                          n_null=n_null, **{**SMALL, **extra})
    assert low <= 0.05 <= high


# ------------------------------------------------------------------ options from the config dataclasses
def test_defaults_of_test_and_calibrate_are_the_config_defaults():
    import dataclasses
    import inspect

    from sparker.config import NullConfig, RunConfig

    for fn in (sparker.test, sparker.calibrate):
        parameters = inspect.signature(fn).parameters
        for options in (NullConfig, RunConfig):
            for f in dataclasses.fields(options):
                if f.name in parameters:
                    assert parameters[f.name].default == f.default, (fn.__name__, f.name)
    assert "null" not in inspect.signature(sparker.calibrate).parameters
    assert "data_tolerance" not in inspect.signature(sparker.test).parameters


@pytest.mark.parametrize("options, name", [
    (dict(n_null=0), "n_null"),
    (dict(n_null=True), "n_null"),
    (dict(seed=-1), "seed"),
    (dict(n_expected=float("nan")), "n_expected"),
    (dict(poisson="yes"), "poisson"),
    (dict(aggregation="max"), "aggregation"),
    (dict(null="bootstrap"), "null"),
    (dict(data_tolerance=-1.0), "data_tolerance"),
])
def test_null_options_are_checked_by_their_metadata(options, name):
    from sparker.config import NullConfig, validate_options

    with pytest.raises(ValueError, match=rf"^{name}:"):
        validate_options(NullConfig(**options))


@pytest.mark.parametrize("options, name", [
    (dict(replica_chunk=0), "replica_chunk"),
    (dict(n_workers=0, backend="processes"), "n_workers"),
    (dict(backend="bogus"), "backend"),
    (dict(backend="dask"), "scheduler"),
    (dict(n_workers=2), "n_workers"),
])
def test_run_options_are_checked_by_their_metadata(options, name):
    from sparker.config import RunConfig, validate_options

    with pytest.raises(ValueError, match=rf"^{name}:"):
        validate_options(RunConfig(**options))


def test_calibration_test_takes_the_reference_by_keyword_only(tmp_path):
    """``cal.test(data, ref)`` would read like ``sparker.test(reference, data)`` reversed: refused."""
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(400, 2))
    cal = sparker.calibrate(ref, 40, n_null=3, seed=0, n_kernels=2, epochs=20)
    with pytest.raises(TypeError):
        cal.test(rng.normal(size=(40, 2)), ref)
    assert np.isfinite(cal.test(rng.normal(size=(40, 2)), reference=ref).pvalue)
