"""Tests for sparker.estimator.SparKer: fit, scores, kernel summary, save/load and input checks."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import sparker
from sparker import SparKer
from sparker.estimator import FORMAT_VERSION

SMALL = dict(n_kernels=3, epochs=100, seed=0)

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


def make_samples(seed=0, n_ref=400, n_data=150, n_signal=30, d=2):
    """Standard-normal reference; data with a clump of ``n_signal`` points at (2, 2, 0, ...)."""
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n_ref, d))
    D = rng.normal(size=(n_data, d))
    D[:n_signal, :2] = 2.0 + 0.2 * rng.normal(size=(n_signal, 2))
    return R, D


@pytest.fixture(scope="module")
def samples():
    return make_samples()


@pytest.fixture(scope="module")
def fitted(samples):
    R, D = samples
    return SparKer(**SMALL).fit(R, D)


# ---------------------------------------------------------------- fit and scores


def test_fit_returns_self_with_finite_positive_statistic(samples):
    R, D = samples
    m = SparKer(**SMALL)
    assert m.fit(R, D) is m
    assert isinstance(m.statistic_, float)
    assert np.isfinite(m.statistic_) and m.statistic_ > 10.0
    assert m.n_features_in_ == 2 and m.feature_names_in_ is None
    assert isinstance(m.converged_, bool)
    assert m.centres_.shape == (3, 2) and m.amplitudes_.shape == (3,)
    assert np.all(np.abs(m.amplitudes_) <= m.a_max)


def test_log_ratio_higher_on_anomalous_region(fitted, samples):
    _, D = samples
    f = fitted.log_ratio(np.array([[2.0, 2.0], [-2.0, -2.0], [0.0, 0.0]]))
    assert f.shape == (3,) and f.dtype == np.float64
    assert f[0] > 0.5 and f[0] > f[1] + 0.5 and f[0] > f[2] + 0.5
    fD = fitted.log_ratio(D)
    assert fD[:30].mean() > fD[30:].mean() + 0.5


def test_score_samples_is_log_ratio(fitted, samples):
    R, D = samples
    np.testing.assert_array_equal(fitted.score_samples(D), fitted.log_ratio(D))
    np.testing.assert_array_equal(fitted.score_samples(R[:5]), fitted.log_ratio(R[:5]))


def test_log_ratio_does_not_mutate_and_checks_input(fitted):
    X = np.array([[2.0, 2.0]])
    before = fitted.log_ratio(X)
    assert np.array_equal(X, [[2.0, 2.0]])
    np.testing.assert_array_equal(fitted.log_ratio(X), before)
    with pytest.raises(ValueError, match=r"^X: has 3 features but the reference has 2"):
        fitted.log_ratio(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^X:"):
        fitted.log_ratio(np.array([[np.nan, 0.0]]))
    with pytest.raises(RuntimeError, match="not fitted"):
        SparKer().log_ratio(X)


def test_statistic_equals_minus_two_loss_of_log_ratio(fitted, samples):
    """t = -2 L[f] with L computed here from log_ratio and the default weights."""
    R, D = samples
    w = len(D) / len(R)
    L = np.sum(w * (np.exp(fitted.log_ratio(R)) - 1.0)) - np.sum(fitted.log_ratio(D))
    assert fitted.statistic_ == pytest.approx(-2.0 * L, rel=1e-5)


def test_same_seed_same_fit_other_seed_other_fit(samples):
    R, D = samples
    a = SparKer(**SMALL).fit(R, D)
    b = SparKer(**SMALL).fit(R, D)
    assert a.statistic_ == b.statistic_
    np.testing.assert_array_equal(a.centres_, b.centres_)
    c = SparKer(**{**SMALL, "seed": 1}).fit(R, D)
    assert not np.array_equal(a.centres_, c.centres_)


# ---------------------------------------------------------------- kernel summary


def test_kernels_soft_counts_match_hand_computation(fitted, samples):
    R, D = samples
    assert len(fitted.kernels_) == 3
    mean, scale = R.mean(0), R.std(0)
    Rs, Ds = (R - mean) / scale, (D - mean) / scale
    w = len(D) / len(R)
    for row in fitted.kernels_:
        assert set(row) >= {"layer", "kernel", "centre", "amplitude", "width", "n_data", "n_reference",
                            "log_ratio"}
    mu = np.array([[row["centre"]["x0"], row["centre"]["x1"]] for row in fitted.kernels_])
    mu_s = (mu - mean) / scale
    sigma = fitted.kernels_[0]["width"]

    def gates(Z):  # kernel-softmax: k_i s_i, written out
        l = -((Z[:, None, :] - mu_s[None]) ** 2).sum(-1) / (2 * sigma**2)  # (n, M)
        k = np.exp(l)
        s = np.exp(l - l.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
        return k * s

    n_data = gates(Ds).sum(0)
    n_ref = w * gates(Rs).sum(0)
    for i, row in enumerate(fitted.kernels_):
        assert row["kernel"] == i and row["layer"] == 0
        assert row["n_data"] == pytest.approx(n_data[i], rel=1e-8, abs=1e-12)
        assert row["n_reference"] == pytest.approx(n_ref[i], rel=1e-8, abs=1e-12)
        assert row["amplitude"] == pytest.approx(fitted.amplitudes_[i])
        np.testing.assert_allclose(list(row["width_original"].values()), sigma * scale, rtol=1e-12)
        if row["log_ratio"] is not None:
            assert row["log_ratio"] == pytest.approx(np.log(n_data[i] / n_ref[i]), rel=1e-8)
    # the kernel sitting on the clump sees the excess
    clump = int(np.argmin(np.linalg.norm(mu - [2.0, 2.0], axis=1)))
    assert np.linalg.norm(mu[clump] - [2.0, 2.0]) < 0.3
    assert fitted.kernels_[clump]["n_data"] > 2 * fitted.kernels_[clump]["n_reference"]


def test_centres_reported_in_original_units(samples):
    R, D = samples
    a = SparKer(**SMALL).fit(R, D)
    b = SparKer(**SMALL).fit(1000.0 * R + 5.0, 1000.0 * D + 5.0)
    np.testing.assert_allclose(b.centres_, 1000.0 * a.centres_ + 5.0, rtol=1e-4, atol=1e-1)
    assert b.statistic_ == pytest.approx(a.statistic_, rel=1e-4)
    for ka, kb in zip(a.kernels_, b.kernels_):
        assert kb["centre"]["x0"] == pytest.approx(1000 * ka["centre"]["x0"] + 5, rel=1e-4, abs=0.1)
        assert kb["width"] == pytest.approx(ka["width"], rel=1e-6)  # standardised: unchanged
        for j in ("x0", "x1"):
            assert kb["width_original"][j] == pytest.approx(1000 * ka["width_original"][j], rel=1e-6)
    h = b.history_["centres"]  # trajectory also in original units
    np.testing.assert_allclose(h[-1], b.centres_, rtol=1e-12)
    np.testing.assert_allclose(h, 1000.0 * a.history_["centres"] + 5.0, rtol=1e-4, atol=1e-1)


def test_history_shapes(fitted):
    h = fitted.history_
    R = 100 // 10 + 1
    np.testing.assert_array_equal(h["epoch"], np.r_[np.arange(0, 100, 10), 100])
    assert h["sigma"].shape == (R,) and h["loss"].shape == (R,)
    assert h["centres"].shape == (R, 3, 2) and h["amplitudes"].shape == (R, 3)
    assert h["loss_per_epoch"].shape == (100,) and h["loss_per_epoch"][0] == 0.0
    assert h["loss"][-1] == pytest.approx(-0.5 * fitted.statistic_, rel=1e-9)


def test_to_dict_is_json(fitted):
    d = json.loads(json.dumps(fitted.to_dict()))
    assert d["statistic"] == fitted.statistic_ and len(d["kernels"]) == 3


# ---------------------------------------------------------------- save / load


def _assert_same_model(a, b, X):
    np.testing.assert_array_equal(a.log_ratio(X), b.log_ratio(X))
    assert a.statistic_ == b.statistic_
    assert a.kernels_ == b.kernels_
    assert a.converged_ == b.converged_
    assert a.feature_names_in_ == b.feature_names_in_ and a.n_features_in_ == b.n_features_in_
    assert a.get_params() | {"device": None} == b.get_params() | {"device": None}
    assert set(a.history_) == set(b.history_)
    for k, v in a.history_.items():
        np.testing.assert_array_equal(b.history_[k], v)


def test_save_load_round_trip(fitted, samples, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = SparKer.load(path)
    _assert_same_model(fitted, loaded, np.concatenate(samples))
    np.testing.assert_array_equal(loaded.centres_, fitted.centres_)
    assert loaded.to_dict() == fitted.to_dict()
    SparKer.load(str(path))  # str path works too


def test_save_load_dataframe_names(samples, tmp_path):
    R, D = samples
    m = SparKer(**SMALL).fit(pd.DataFrame(R, columns=["mass", "pt"]), pd.DataFrame(D, columns=["mass", "pt"]))
    m.save(tmp_path / "m.npz")
    loaded = SparKer.load(tmp_path / "m.npz")
    assert loaded.feature_names_in_ == ["mass", "pt"]
    assert list(loaded.kernels_[0]["centre"]) == ["mass", "pt"]
    _assert_same_model(m, loaded, pd.DataFrame(D, columns=["mass", "pt"]))


def test_save_load_round_trip_stack_history(samples, tmp_path):
    R, D = samples
    m = SparKer(n_kernels=2, epochs=40, seed=0, layers=[{"n_kernels": 2}, {"n_kernels": 2}]).fit(R, D)
    assert len(m.history_["layers"]) == 2
    m.save(tmp_path / "stack.npz")
    loaded = SparKer.load(tmp_path / "stack.npz")
    np.testing.assert_array_equal(loaded.log_ratio(D), m.log_ratio(D))  # the model itself is fine
    assert "layers" in loaded.history_


def test_save_refuses_to_overwrite_and_keeps_old_file(fitted, samples, tmp_path):
    R, D = samples
    path = tmp_path / "model.npz"
    fitted.save(path)
    before = path.read_bytes()
    other = SparKer(**{**SMALL, "seed": 3}).fit(R, D)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        other.save(path)
    assert path.read_bytes() == before
    assert SparKer.load(path).statistic_ == fitted.statistic_
    other.save(path, overwrite=True)
    assert SparKer.load(path).statistic_ == other.statistic_
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temp files left


def test_save_unfitted_refused(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        SparKer().save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def _rewrite_meta(src, dst, **changes):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    meta.update(changes)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(dst, **arrays)


def test_load_refuses_bad_files(fitted, tmp_path):
    good = tmp_path / "good.npz"
    fitted.save(good)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip archive" * 10)
    with pytest.raises(ValueError, match=r"^path: .*corrupt\.npz is not a readable SparKer model"):
        SparKer.load(corrupt)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"^path:"):
        SparKer.load(truncated)

    version = tmp_path / "version.npz"
    _rewrite_meta(good, version, format_version=FORMAT_VERSION + 98)
    with pytest.raises(ValueError, match=rf"^path: .* format version {FORMAT_VERSION + 98}"):
        SparKer.load(version)

    other_format = tmp_path / "calibration.npz"
    _rewrite_meta(good, other_format, format="sparker-calibration")
    with pytest.raises(ValueError, match=r"^path: .* is not a SparKer model file"):
        SparKer.load(other_format)

    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.arange(5))
    with pytest.raises(ValueError, match=r"^path: .*plain\.npz"):
        SparKer.load(plain)

    missing_array = tmp_path / "missing.npz"
    with np.load(good) as z:
        np.savez(missing_array, **{k: z[k] for k in z.files if k != "centres_0"})
    with pytest.raises(ValueError, match=r"^path: .* incomplete"):
        SparKer.load(missing_array)

    with pytest.raises(FileNotFoundError, match=r"^path:"):
        SparKer.load(tmp_path / "nope.npz")


def test_load_never_unpickles(fitted, tmp_path):
    good = tmp_path / "good.npz"
    fitted.save(good)
    evil = tmp_path / "evil.npz"
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["centres_0"] = np.array([object()], dtype=object)
    np.savez(evil, **arrays)
    assert "centres_0.npy" in zipfile.ZipFile(evil).namelist()
    with pytest.raises(ValueError, match=r"^path:"):
        SparKer.load(evil)


# ---------------------------------------------------------------- input types


def test_input_types_give_the_same_statistic(samples):
    R, D = samples
    base = SparKer(**SMALL).fit(R, D).statistic_
    as_torch = SparKer(**SMALL).fit(torch.as_tensor(R), torch.as_tensor(D))
    assert as_torch.statistic_ == base
    as_lists = SparKer(**SMALL).fit(R.tolist(), D.tolist())
    assert as_lists.statistic_ == base
    frame = SparKer(**SMALL).fit(pd.DataFrame(R, columns=["a", "b"]), pd.DataFrame(D, columns=["a", "b"]))
    assert frame.statistic_ == base
    assert frame.feature_names_in_ == ["a", "b"]
    assert all(list(k["centre"]) == ["a", "b"] for k in frame.kernels_)
    np.testing.assert_array_equal(frame.log_ratio(pd.DataFrame(D, columns=["a", "b"])), frame.log_ratio(D))
    with pytest.raises(ValueError, match=r"^X: feature names differ"):
        frame.log_ratio(pd.DataFrame(D, columns=["b", "a"]))
    mixed = SparKer(**SMALL).fit(R.astype(np.float32).astype(np.float64), torch.as_tensor(D))
    assert np.isfinite(mixed.statistic_)


def test_int_and_bool_features_accepted():
    rng = np.random.default_rng(0)
    R = rng.integers(0, 5, size=(200, 2))
    D = rng.integers(0, 5, size=(80, 2))
    m = SparKer(n_kernels=2, epochs=30, seed=0).fit(R, D)
    assert np.isfinite(m.statistic_)


# ---------------------------------------------------------------- bad input

R0, D0 = make_samples(n_ref=50, n_data=20, n_signal=5)


def _nan(A, value=np.nan):
    A = A.copy()
    A[3, 1] = value
    return A


VE, TE = ValueError, TypeError

BAD_DATA = {
    "nan_reference": (dict(reference=_nan(R0)), VE, r"^reference: contains 1 non-finite"),
    "inf_reference": (dict(reference=_nan(R0, np.inf)), VE, r"^reference: contains 1 non-finite"),
    "nan_data": (dict(data=_nan(D0)), VE, r"^data: contains 1 non-finite"),
    "inf_data": (dict(data=_nan(D0, -np.inf)), VE, r"^data: contains 1 non-finite"),
    "reference_1d": (dict(reference=R0[:, 0]), VE, r"^reference: expected a 2-D array.*reshape"),
    "data_1d": (dict(data=D0[:, 0]), VE, r"^data: expected a 2-D array"),
    "reference_3d": (dict(reference=R0.reshape(50, 2, 1)), VE, r"^reference: expected a 2-D array"),
    "data_3d": (dict(data=D0.reshape(20, 1, 2)), VE, r"^data: expected a 2-D array"),
    "feature_mismatch": (dict(data=np.zeros((20, 3))), VE, r"^data: has 3 features but the reference has 2"),
    "too_few_reference": (dict(reference=R0[:2]), VE, r"^reference: has 2 sample\(s\) but at least 3"),
    "empty_data": (dict(data=np.empty((0, 2))), VE, r"^data: has 0 sample"),
    "none_data": (dict(data=None), TE, r"^data:"),
    "string_data": (dict(data=[["a", "b"]]), TE, r"^data:"),
    "negative_ref_weight": (dict(reference_weight=-np.ones(50)), VE,
                            r"^reference_weight: weights must be >= 0"),
    "negative_data_weight": (dict(data_weight=np.r_[-1.0, np.ones(19)]), VE,
                             r"^data_weight: weights must be >= 0"),
    "zero_ref_weight": (dict(reference_weight=np.zeros(50)), VE, r"^reference_weight: all weights are zero"),
    "zero_data_weight": (dict(data_weight=np.zeros(20)), VE, r"^data_weight: all weights are zero"),
    "short_ref_weight": (dict(reference_weight=np.ones(49)), VE, r"^reference_weight: has 49 weights"),
    "long_data_weight": (dict(data_weight=np.ones(21)), VE, r"^data_weight: has 21 weights"),
    "nan_weight": (dict(data_weight=np.r_[np.nan, np.ones(19)]), VE, r"^data_weight: contains 1 non-finite"),
    "duplicate_names": (dict(reference=pd.DataFrame(R0, columns=["a", "a"]),
                             data=pd.DataFrame(D0, columns=["a", "a"])),
                        VE, r"^reference: duplicate feature names \['a'\]"),
    "2d_weight": (dict(data_weight=np.ones((20, 1))), VE, r"^data_weight: expected a 1-D"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_input_names_the_argument(case):
    override, exc, pattern = BAD_DATA[case]
    args = dict(reference=R0, data=D0) | override
    with pytest.raises(exc, match=pattern):
        SparKer(n_kernels=3, epochs=5).fit(**args)


BAD_SETTINGS = {
    "n_kernels_zero": (dict(n_kernels=0), VE, r"^n_kernels:"),
    "n_kernels_float": (dict(n_kernels=2.5), VE, r"^n_kernels:"),
    "n_kernels_bool": (dict(n_kernels=True), VE, r"^n_kernels:"),
    "epochs_zero": (dict(epochs=0), VE, r"^epochs:"),
    "epochs_bool": (dict(epochs=True), VE, r"^epochs:"),
    "schedule": (dict(schedule="cosine"), VE, r"^schedule: unknown schedule 'cosine'"),
    "competition": (dict(competition="max"), VE, r"^competition: unknown mode 'max'"),
    "a_max_negative": (dict(a_max=-1.0), VE, r"^a_max:"),
    "a_max_inf": (dict(a_max=np.inf), VE, r"^a_max:"),
    "sigma_end_negative": (dict(sigma_end=-1), VE, r"^sigma_end:"),
    "sigma_start_zero": (dict(sigma_start=0.0), VE, r"^sigma_start:"),
    "sigma_end_nan": (dict(sigma_end=float("nan")), VE, r"^sigma_end:"),
    "quantile_one": (dict(sigma_end_quantile=1.0), VE, r"^sigma_end_quantile:"),
    "lr_zero": (dict(lr_centres=0.0), VE, r"^lr_centres:"),
    "lr_string": (dict(lr_amplitudes="fast"), VE, r"^lr_amplitudes:"),
    "l1_negative": (dict(l1=-0.1), VE, r"^l1:"),
    "chunk_rows_zero": (dict(chunk_rows=0), VE, r"^chunk_rows:"),
    "record_every_negative": (dict(record_every=-1), VE, r"^record_every:"),
    "reseed_string": (dict(reseed="no"), TE, r"^reseed:"),
    "n_expected_zero": (dict(n_expected=0), VE, r"^n_expected:"),
    "n_expected_nan": (dict(n_expected=float("nan")), VE, r"^n_expected:"),
    "n_expected_string": (dict(n_expected="100"), TE, r"^n_expected:"),
    "seed_negative": (dict(seed=-1), VE, r"^seed:"),
    "seed_float": (dict(seed=1.5), TE, r"^seed:"),
    "device_unknown": (dict(device="warp-drive"), VE, r"^device:"),
    "layers_not_sequence": (dict(layers=5), TE, r"^layers:"),
    "layers_dict": (dict(layers={"n_kernels": 2}), TE, r"^layers:"),
    "layers_unknown_key": (dict(layers=[{"n_kernel": 2}]), VE,
                           r"^layers: block 0 has unknown settings \['n_kernel'\]"),
    "layers_bad_value": (dict(layers=[{"n_kernels": 2}, {"n_kernels": 0}]), VE, r"^n_kernels:"),
    "layers_bad_item": (dict(layers=[3]), TE, r"^layers: block 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_settings_name_the_parameter(case):
    params, exc, pattern = BAD_SETTINGS[case]
    with pytest.raises(exc, match=pattern):
        SparKer(**{"epochs": 5, **params}).fit(R0, D0)


def test_cuda_device_refused_cleanly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=r"^device: cannot use 'cuda'"):
        SparKer(epochs=5, device="cuda").fit(R0, D0)


def test_numpy_scalar_settings_accepted_and_saved(tmp_path):
    m = SparKer(n_kernels=np.int64(2), epochs=np.int32(20), sigma_end=np.float32(0.5),
                a_max=np.float64(5.0), reseed=np.bool_(False), seed=np.int64(1),
                layers=[sparker.LayerConfig(n_kernels=2)]).fit(R0, D0)
    m.save(tmp_path / "m.npz")
    loaded = SparKer.load(tmp_path / "m.npz")
    assert loaded.statistic_ == m.statistic_
    np.testing.assert_array_equal(loaded.log_ratio(D0), m.log_ratio(D0))


def test_set_params_and_get_params():
    m = SparKer()
    assert m.set_params(n_kernels=3) is m and m.get_params()["n_kernels"] == 3
    with pytest.raises(ValueError, match=r"^bogus: not a parameter"):
        m.set_params(bogus=1)


# ---------------------------------------------------------------- weights, n_expected, odd data


def test_zero_variance_reference_feature():
    R, D = make_samples(n_ref=300, n_data=100, n_signal=20, d=3)
    R[:, 2] = 7.0
    D[:, 2] = 7.0
    m = SparKer(**SMALL).fit(R, D)
    assert np.isfinite(m.statistic_) and m.statistic_ > 0
    assert np.all(np.isfinite(m.log_ratio(D)))
    assert m.standardizer_.scale[2] == 1.0
    np.testing.assert_allclose(m.centres_[:, 2], 7.0, atol=1e-6)  # no gradient along a constant feature


def test_n_expected_changes_the_weights(samples):
    R, D = samples
    base = SparKer(**SMALL).fit(R, D).statistic_
    same = SparKer(**SMALL, n_expected=len(D)).fit(R, D).statistic_
    assert same == base
    more = SparKer(**SMALL, n_expected=2.0 * len(D)).fit(R, D)
    assert abs(more.statistic_ - base) > 1.0
    # twice the expected count: the data under-populate the reference on the whole, so the
    # learned log ratio over the reference falls (the value at one point depends on how the
    # kernels share the clump, so it is not asserted)
    assert more.log_ratio(R).mean() < SparKer(**SMALL).fit(R, D).log_ratio(R).mean()
    assert sum(k["n_reference"] for k in more.kernels_) > sum(k["n_reference"] for k in
                                                               SparKer(**SMALL).fit(R, D).kernels_)


def test_reference_weight_normalisation(samples):
    R, D = samples
    base = SparKer(**SMALL).fit(R, D).statistic_
    # constant user weights are rescaled to sum to N_D: same as unweighted
    scaled = SparKer(**SMALL).fit(R, D, reference_weight=np.full(len(R), 7.0)).statistic_
    assert scaled == pytest.approx(base, rel=1e-6)
    # not normalised: the caller's weights are used as they are
    raw_ok = SparKer(**SMALL).fit(R, D, reference_weight=np.full(len(R), len(D) / len(R)),
                                  normalize_reference=False).statistic_
    assert raw_ok == pytest.approx(base, rel=1e-6)
    raw_ones = SparKer(**SMALL).fit(R, D, reference_weight=np.ones(len(R)), normalize_reference=False)
    assert abs(raw_ones.statistic_ - base) > 1.0
    # normalised non-uniform weights sum to N_D: check through the soft counts of a one-kernel
    # model whose single gate is 1 everywhere (softmax with one kernel)
    rng = np.random.default_rng(1)
    u = rng.uniform(0.1, 3.0, size=len(R))
    one = SparKer(n_kernels=1, epochs=5, competition="softmax", seed=0).fit(R, D, reference_weight=u)
    assert one.kernels_[0]["n_reference"] == pytest.approx(len(D), rel=1e-9)
    assert one.kernels_[0]["n_data"] == pytest.approx(len(D), rel=1e-9)


def test_data_weight_scales_the_expected_count(samples):
    R, D = samples
    wd = np.full(len(D), 2.0)
    m = SparKer(n_kernels=1, epochs=5, competition="softmax", seed=0).fit(R, D, data_weight=wd)
    assert m.kernels_[0]["n_data"] == pytest.approx(2 * len(D), rel=1e-9)
    assert m.kernels_[0]["n_reference"] == pytest.approx(2 * len(D), rel=1e-9)


def test_fewer_data_points_than_kernels_tops_up_from_reference(samples):
    R, D = samples
    m = SparKer(n_kernels=4, epochs=20, seed=0).fit(R, D[:2])
    assert np.isfinite(m.statistic_) and m.centres_.shape == (4, 2)


# ---------------------------------------------------------------- device


def test_device_defaults_to_cpu(samples, monkeypatch):
    import sparker.estimator as est

    seen = []
    real = est.fit_stack

    def spy(X, *args, **kwargs):
        seen.append(X.device)
        return real(X, *args, **kwargs)

    monkeypatch.setattr(est, "fit_stack", spy)
    R, D = samples
    a = SparKer(**SMALL).fit(R, D)
    b = SparKer(**SMALL, device="cpu").fit(R, D)
    c = SparKer(**SMALL, device=torch.device("cpu")).fit(torch.as_tensor(R), torch.as_tensor(D))
    assert [d.type for d in seen] == ["cpu", "cpu", "cpu"]
    assert a.statistic_ == b.statistic_ == c.statistic_


# ---------------------------------------------------------------- localisation (paper, fig. 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_square2d_kernels_find_the_clumps(seed):
    reference, data, truth = sparker.scenarios.make("square2d", seed=seed)
    m = SparKer(n_kernels=4, seed=seed).fit(reference, data)
    dist = np.linalg.norm(truth["centres"][:, None, :] - m.centres_[None], axis=-1).min(1)  # (3,)
    assert np.sum(dist < 0.1) >= 2, dist
    assert m.statistic_ > 50.0


def test_estimator_defaults_agree_with_training_config_defaults():
    # the defaults live in two signatures (SparKer's and TrainingConfig's): they must not drift apart
    from sparker.config import TrainingConfig

    assert SparKer().training_config() == TrainingConfig()
