"""Tests of the public-benchmark scenarios: perturbed_uniform, the NPLM Expo1D alternatives, fashion_mnist."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_deterministic_per_seed, assert_null_like_reference
from scipy import stats

from sparker import scenarios
from sparker.scenarios import make, perturbation_bump, perturbed_uniform_density, scenario_names

NEW_SCENARIOS = ("perturbed_uniform", "expo1d_h1", "expo1d_h2", "expo1d_h3", "expo1d_h4", "fashion_mnist")
EXPO_H = ("expo1d_h1", "expo1d_h2", "expo1d_h3", "expo1d_h4")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")


def _real_fashion_dir() -> Path | None:
    directory = Path(os.environ.get(scenarios.FASHION_MNIST_ENV) or scenarios.FASHION_MNIST_DIR)
    ok = all((directory / f"{n}.gz").is_file() or (directory / n).is_file() for n in FASHION_FILES)
    return directory if ok else None


# ---------------------------------------------------------------------------
# A small fake Fashion-MNIST in the IDX format (the loader and the split run without the data)
# ---------------------------------------------------------------------------

FAKE_PER_CLASS = (12, 4)  # training, test images per class


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _fake_fashion(directory: Path, compress: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write 10 classes of 28 x 28 images (class c is brighter by 20 c); return all images and labels."""
    rng = np.random.default_rng(seed)
    parts = []
    for n_per_class in FAKE_PER_CLASS:
        labels = np.repeat(np.arange(10), n_per_class)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(len(labels), 28, 28)) + 20 * labels[:, None, None]
        parts.append((images.astype(np.uint8), labels.astype(np.uint8)))
    directory.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = parts
    for name, array in zip(FASHION_FILES, (train_x, train_y, test_x, test_y)):
        _write_idx(directory / name, array, compress)
    return np.concatenate([train_x, test_x]).reshape(-1, 784), np.concatenate([train_y, test_y])


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fashion")
    images, labels = _fake_fashion(directory)
    return directory, images, labels


FAKE_FASHION_PARAMS = {"n_reference": 30, "n_data": 12, "fraction": 0.25}

# Small settings per generator: (name, params); fashion_mnist runs on the fake files.
CASES = [
    pytest.param("perturbed_uniform", {"n_reference": 300, "n_data": 200}, id="perturbed-d1"),
    pytest.param("perturbed_uniform", {"n_reference": 300, "n_data": 200, "d": 2, "scale": 1.0},
                 id="perturbed-d2"),
    *[pytest.param(name, {"n_reference": 2_000}, id=name) for name in EXPO_H],
    pytest.param("expo1d_h2", {"n_reference": 500, "n_signal": 40, "poisson": False}, id="expo1d_h2-exact"),
    pytest.param("fashion_mnist", FAKE_FASHION_PARAMS, id="fashion-raw"),
    pytest.param("fashion_mnist", {**FAKE_FASHION_PARAMS, "pca": 5}, id="fashion-pca"),
]

NULL_CASES = [
    pytest.param("perturbed_uniform", {"n_reference": 2_000, "n_data": 2_000, "scale": 0.0},
                 id="perturbed-d1"),
    pytest.param("perturbed_uniform", {"n_reference": 2_000, "n_data": 2_000, "d": 2, "scale": 0.0},
                 id="perturbed-d2"),
    pytest.param("expo1d_h1", {"n_reference": 20_000, "n_signal": 0}, id="expo1d_h1"),
    pytest.param("expo1d_h2", {"n_reference": 20_000, "n_signal": 0}, id="expo1d_h2"),
    pytest.param("expo1d_h3", {"n_reference": 20_000, "n_signal": 0}, id="expo1d_h3"),
    pytest.param("expo1d_h4", {"n_reference": 20_000, "deficit": 0.0}, id="expo1d_h4"),
]


@pytest.fixture
def fashion_env(monkeypatch, fake_fashion):
    """Point SPARKER_FASHION_MNIST at the fake files (so recorded params rebuild the scenario)."""
    monkeypatch.setenv(scenarios.FASHION_MNIST_ENV, str(fake_fashion[0]))
    return fake_fashion


# ---------------------------------------------------------------------------
# Registry and properties shared by every new generator
# ---------------------------------------------------------------------------


def test_new_scenarios_are_registered_with_a_summary():
    assert set(NEW_SCENARIOS) <= set(scenario_names())
    for name in NEW_SCENARIOS:
        assert scenarios.SCENARIOS[name].__doc__.strip().splitlines()[0], name
    with pytest.raises(TypeError, match="n_signal: unknown parameter of scenario 'expo1d_h4'"):
        make("expo1d_h4", n_signal=3)


@pytest.mark.parametrize("name, params", CASES)
def test_shapes_dtypes_truth_and_rebuild(name, params, fashion_env):
    reference, data, truth = make(name, seed=3, **params)
    for array in (reference, data):
        assert array.dtype == np.float64 and array.ndim == 2 and array.flags.c_contiguous
        assert np.isfinite(array).all()
    d = reference.shape[1]
    assert data.shape[1] == d and len(truth["feature_names"]) == d
    is_anomaly = truth["is_anomaly"]
    assert is_anomaly.dtype == bool and is_anomaly.shape == (len(data),)
    assert not is_anomaly[: len(data) - int(is_anomaly.sum())].any()  # anomalies last
    assert truth["centres"].dtype == np.float64 and truth["centres"].shape[1:] == (d,)
    json.dumps(truth["params"])
    again = make(name, seed=3, **truth["params"])
    np.testing.assert_array_equal(again[0], reference)
    np.testing.assert_array_equal(again[1], data)


@pytest.mark.parametrize("name, params", CASES)
def test_deterministic_per_seed_and_seeds_differ(name, params, fashion_env):
    assert_deterministic_per_seed(name, params)


@pytest.mark.parametrize("name, params", NULL_CASES)
def test_null_version_has_no_anomaly_and_the_reference_distribution(name, params):
    assert_null_like_reference(name, params)


@pytest.mark.parametrize(
    "name, params, exc, match",
    [
        ("perturbed_uniform", {"scale": 1.5}, ValueError, "scale: expected a fraction"),
        ("perturbed_uniform", {"d": 0}, ValueError, "d: expected an integer"),
        ("perturbed_uniform", {"d": 9}, ValueError, "d: .*bump centres"),
        ("perturbed_uniform", {"n_perturbations": 0}, ValueError, "n_perturbations"),
        ("perturbed_uniform", {"n_data": 0}, ValueError, "n_data"),
        ("expo1d_h1", {"n_signal": -1}, ValueError, "n_signal"),
        ("expo1d_h2", {"poisson": "yes"}, TypeError, "poisson"),
        ("expo1d_h3", {"n_background": 0}, ValueError, "n_background"),
        ("expo1d_h4", {"deficit": 1.2}, ValueError, "deficit: expected a fraction"),
        ("expo1d_h4", {"cut": -1.0}, ValueError, "cut"),
        ("fashion_mnist", {"held_out": 1}, ValueError, "held_out: class 1 is also"),
        ("fashion_mnist", {"held_out": 10}, ValueError, "held_out"),
        ("fashion_mnist", {"classes": (0, 0)}, ValueError, "classes: expected distinct"),
        ("fashion_mnist", {"classes": ("a", 1)}, TypeError, "classes"),
        ("fashion_mnist", {"fraction": 2.0}, ValueError, "fraction"),
        ("fashion_mnist", {"pca": 0}, ValueError, "pca"),
        ("fashion_mnist", {"pca": 40, "n_reference": 30}, ValueError, "pca"),
    ],
)
def test_bad_values_name_the_parameter(name, params, exc, match):
    with pytest.raises(exc, match=match):
        make(name, **params)


# ---------------------------------------------------------------------------
# perturbed_uniform
# ---------------------------------------------------------------------------


def test_bump_shape():
    e = math.exp(-1.0)
    np.testing.assert_allclose(perturbation_bump([-0.75, -0.25]), [e, -e])
    np.testing.assert_array_equal(perturbation_bump([-1.5, -1.0, -0.5, 0.0, 0.3]), 0.0)
    u = np.linspace(-1.0, 0.0, 200_001)[1:-1]
    g = perturbation_bump(u)
    assert g.max() <= e and g.min() >= -e
    np.testing.assert_allclose(g[u < -0.5], -g[u > -0.5][::-1], atol=1e-15)  # odd about -1/2: integral 0


def _naive_density(x, theta, scale):
    """f_theta by the formula: a sum over every cell j in {1..p}^d of a product of bumps."""
    p, d = theta.shape[0], theta.ndim
    out = []
    for point in x:
        total = 0.0
        for j in itertools.product(range(1, p + 1), repeat=d):
            bumps = [perturbation_bump(p * point[r] - j[r]) for r in range(d)]
            total += theta[tuple(np.array(j) - 1)] * np.prod(bumps)
        inside = np.all((point >= 0) & (point <= 1))
        out.append((1.0 + scale * math.e**d * total) if inside else 0.0)
    return np.array(out)


@pytest.mark.parametrize("d, p", [(1, 2), (1, 3), (2, 2), (2, 3), (3, 2)])
def test_density_matches_the_naive_sum_over_cells(d, p):
    rng = np.random.default_rng(d * 10 + p)
    theta = rng.choice([-1.0, 1.0], size=(p,) * d)
    x = rng.uniform(-0.1, 1.1, size=(300, d))
    np.testing.assert_allclose(perturbed_uniform_density(x, theta, 0.7), _naive_density(x, theta, 0.7),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("d, n_grid", [(1, 200_000), (2, 1_000)])
@pytest.mark.parametrize("scale", [0.3, 0.5, 1.0])
def test_density_is_non_negative_and_integrates_to_one(d, n_grid, scale):
    theta = np.random.default_rng(0).choice([-1.0, 1.0], size=(2,) * d)
    axis = (np.arange(n_grid) + 0.5) / n_grid  # midpoint rule on [0, 1]
    grid = np.stack(np.meshgrid(*([axis] * d), indexing="ij"), axis=-1).reshape(-1, d)
    f = perturbed_uniform_density(grid, theta, scale)
    assert f.min() >= 0.0 and f.min() <= 1.0 - scale + 1e-3 and f.max() <= 1.0 + scale
    assert abs(f.mean() - 1.0) < 1e-9  # the integral over the unit cube (smooth integrand)


def test_density_at_the_bump_centres_is_one_plus_signed_scale():
    _, _, truth = make("perturbed_uniform", seed=2, d=2, n_perturbations=3, scale=0.4, n_data=10,
                       n_reference=10)
    centres, signs = truth["centres"], truth["signs"]
    assert centres.shape == (36, 2) and set(np.unique(signs)) == {-1.0, 1.0}
    np.testing.assert_allclose(perturbed_uniform_density(centres, truth["theta"], 0.4), 1.0 + 0.4 * signs)


def _cell_masses(theta, scale, n_halves, n_grid=400):
    """Probability of each half-cell under f_theta, by the midpoint rule within the cell."""
    d = theta.ndim
    k = np.arange(n_halves)
    masses = np.empty((n_halves,) * d)
    offsets = (np.arange(n_grid) + 0.5) / n_grid / n_halves  # (n_grid,)
    for idx in itertools.product(k, repeat=d):
        axes = [offsets + i / n_halves for i in idx]
        local = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
        masses[idx] = perturbed_uniform_density(local, theta, scale).mean() / n_halves**d
    return masses


@pytest.mark.parametrize("d, n_data, scale", [(1, 20_000, 0.5), (2, 20_000, 1.0)])
def test_data_histogram_follows_the_signed_pattern(d, n_data, scale):
    _, data, truth = make("perturbed_uniform", seed=11, d=d, n_data=n_data, n_reference=10, scale=scale)
    n_halves = 4  # two cells per axis, two half bumps per cell
    counts = np.histogramdd(data, bins=[np.linspace(0, 1, n_halves + 1)] * d)[0]  # (4,)*d
    expected = _cell_masses(truth["theta"], scale, n_halves)  # (4,)*d, sums to 1
    assert abs(expected.sum() - 1.0) < 1e-9
    # every half-cell moves away from the uniform 1/4^d in the sign of its bump, by far
    # more than the binomial noise: 0.075 at d=1, s=0.5 (sd 0.003); 0.023 at d=2, s=1 (sd 0.0017)
    share, uniform = counts.ravel() / n_data, 1.0 / n_halves**d
    signs = truth["signs"]  # same order as the C-ordered half-cells
    np.testing.assert_array_equal(np.sign(share - uniform), signs)
    np.testing.assert_array_equal(np.sign(expected.ravel() - uniform), signs)
    sd = np.sqrt(expected.ravel() * (1 - expected.ravel()) / n_data)
    assert np.all(np.abs(share - expected.ravel()) < 4.5 * sd)  # 4.5 sd: family-wise ~1e-4 over 16 cells
    chi2 = stats.chisquare(counts.ravel(), n_data * expected.ravel())
    assert chi2.pvalue > 1e-3


def test_perturbed_null_and_signal_share_the_reference_and_theta():
    r0, d0, t0 = make("perturbed_uniform", seed=4, scale=0.0)
    r1, d1, t1 = make("perturbed_uniform", seed=4, scale=0.5)
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_array_equal(t0["theta"], t1["theta"])
    assert t0["signs"].shape == (0,) and t1["signs"].shape == (4,)
    assert r1.shape == d1.shape == (500, 1)  # the papers' n = m = 500
    assert ((d1 >= 0) & (d1 <= 1)).all()


# ---------------------------------------------------------------------------
# The NPLM Expo1D alternatives
# ---------------------------------------------------------------------------


def test_h1_is_expo1d_with_the_published_tail_signal():
    a = make("expo1d_h1", seed=7, n_reference=3_000)
    b = make("expo1d", seed=7, n_reference=3_000, n_signal=10, signal="tail", poisson=True)
    for x, y in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[2]["is_anomaly"], b[2]["is_anomaly"])


def test_defaults_are_the_published_sizes():
    reference, data, truth = make("expo1d_h1", seed=0)
    assert reference.shape == (200_000, 1)
    assert abs(reference.mean() - 1.0) < 4 / math.sqrt(200_000)  # Exp(1)
    assert 1_800 < len(data) < 2_200
    assert truth["n_expected"] == 2_000.0 and truth["n_expected_alternative"] == 2_010.0
    assert truth["params"] == {"n_reference": 200_000, "n_background": 2_000, "poisson": True, "n_signal": 10}


@pytest.mark.parametrize("name, location", [("expo1d_h1", 6.4), ("expo1d_h3", 1.6)])
def test_gaussian_signal_location_and_width(name, location):
    _, data, truth = make(name, seed=1, n_reference=10, n_signal=400, poisson=False)
    signal = data[truth["is_anomaly"], 0]
    assert len(signal) == 400 and len(data) == 2_400
    assert abs(signal.mean() - location) < 4 * 0.16 / math.sqrt(400)
    assert abs(signal.std() - 0.16) < 4 * 0.16 / math.sqrt(2 * 400)
    np.testing.assert_array_equal(truth["centres"], [[location]])


def test_h2_signal_is_gamma_3():
    _, data, truth = make("expo1d_h2", seed=1, n_reference=10, n_signal=3_000, poisson=False)
    signal = data[truth["is_anomaly"], 0]
    assert stats.kstest(signal, stats.gamma(3.0).cdf).pvalue > 1e-3
    assert truth["centres"].shape == (0, 1) and truth["effect"] == "excess"


def test_the_four_null_versions_are_the_same_background():
    off = {name: {"deficit": 0.0} if name == "expo1d_h4" else {"n_signal": 0} for name in EXPO_H}
    nulls = [make(name, seed=9, n_reference=100, **off[name]) for name in EXPO_H]
    for reference, data, _ in nulls[1:]:
        np.testing.assert_array_equal(reference, nulls[0][0])
        np.testing.assert_array_equal(data, nulls[0][1])
    for name in EXPO_H:  # the reference never depends on the departure
        np.testing.assert_array_equal(make(name, seed=9, n_reference=100)[0], nulls[0][0])


def test_h4_truncates_the_tail():
    _, null, _ = make("expo1d_h4", seed=2, n_reference=10, n_background=200_000, deficit=0.0)
    _, half, t_half = make("expo1d_h4", seed=2, n_reference=10, n_background=200_000, deficit=0.5)
    _, full, t_full = make("expo1d_h4", seed=2, n_reference=10, n_background=200_000)
    above = null[null[:, 0] > 5.07, 0]  # about 200,000 e^-5.07 = 1,257 events
    assert not (full > 5.07).any() and not t_full["is_anomaly"].any()
    np.testing.assert_array_equal(full[:, 0], null[null[:, 0] <= 5.07, 0])
    assert t_full["n_removed"] == len(above) == len(null) - len(full)
    assert set(half[:, 0]) >= set(full[:, 0])  # more deficit, fewer events: nested samples
    share = t_half["n_removed"] / len(above)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(above))
    assert t_full["n_expected_alternative"] == pytest.approx(200_000 * (1 - math.exp(-5.07)))


def test_counts_are_poisson_by_default_and_exact_on_request():
    n_b, n_s = [], []
    for seed in range(40):
        _, data, truth = make("expo1d_h3", seed=seed, n_reference=1)
        n_s.append(int(truth["is_anomaly"].sum()))
        n_b.append(len(data) - n_s[-1])
    assert len(set(n_b)) > 20 and len(set(n_s)) > 5
    assert abs(np.mean(n_b) - 2_000) < 4 * math.sqrt(2_000 / 40)
    assert abs(np.mean(n_s) - 90) < 4 * math.sqrt(90 / 40)
    _, data, truth = make("expo1d_h3", seed=0, n_reference=1, n_background=500, n_signal=7, poisson=False)
    assert len(data) == 507 and truth["is_anomaly"].sum() == 7


def test_z_ideal_only_at_the_published_settings():
    published = {name: make(name, seed=0, n_reference=1)[2]["z_ideal"] for name in EXPO_H}
    assert published == {"expo1d_h1": 4.8, "expo1d_h2": 4.5, "expo1d_h3": 5.6, "expo1d_h4": 4.5}
    assert math.isnan(make("expo1d_h1", n_reference=1, n_signal=20)[2]["z_ideal"])
    assert math.isnan(make("expo1d_h3", n_reference=1, poisson=False)[2]["z_ideal"])
    assert math.isnan(make("expo1d_h4", n_reference=1, cut=4.0)[2]["z_ideal"])


def _gauss(mu):
    return lambda x: np.exp(-0.5 * ((x - mu) / 0.16) ** 2) / (0.16 * math.sqrt(2 * math.pi))


@pytest.mark.parametrize(
    "name, signal_pdf",
    [("expo1d_h1", _gauss(6.4)), ("expo1d_h2", lambda x: x**2 * np.exp(-x) / 2), ("expo1d_h3", _gauss(1.6))],
)
def test_z_ideal_matches_the_known_shape_likelihood_ratio(name, signal_pdf):
    """Median Z of the exact likelihood-ratio test, by importance sampling of the generator's draws.

    t = 2 log(L_alt / L_ref) = 2 [sum_i log(1 + N_S n_S(x_i) / (N_0 e^-x_i)) - N_S]; since
    dP_ref / dP_alt = exp(-t / 2), the null tail P_ref(t >= t_med) is E_alt[exp(-t/2) 1{t >= t_med}].
    With 1,500 draws the estimate of Z scatters by about 0.04.
    """
    ts = []
    for seed in range(1_500):
        _, data, truth = make(name, seed=seed, n_reference=1)
        x, n_s, n_0 = data[:, 0], truth["params"]["n_signal"], truth["n_expected"]
        ts.append(2 * (np.log1p(n_s * signal_pdf(x) / (n_0 * np.exp(-x))).sum() - n_s))
    ts = np.array(ts)
    p = np.mean(np.exp(-ts / 2) * (ts >= np.median(ts)))
    assert abs(stats.norm.isf(p) - truth["z_ideal"]) < 0.15


def test_z_ideal_of_the_deficit_is_the_empty_tail_probability():
    _, data, truth = make("expo1d_h4", seed=0, n_reference=1)
    # the ideal test rejects when no event lies above the cut: null probability exp(-N_0 e^-cut)
    missing = truth["n_expected"] - truth["n_expected_alternative"]
    assert missing == pytest.approx(2_000 * math.exp(-5.07))
    assert round(stats.norm.isf(math.exp(-missing)), 1) == truth["z_ideal"] == 4.5
    assert not (data > 5.07).any()


# ---------------------------------------------------------------------------
# fashion_mnist
# ---------------------------------------------------------------------------


def test_fashion_split_on_fake_files(fake_fashion):
    directory, images, labels = fake_fashion
    reference, data, truth = make("fashion_mnist", seed=0, data_dir=str(directory), **FAKE_FASHION_PARAMS)
    assert reference.shape == (30, 784) and data.shape == (12, 784)
    assert 0.0 <= min(reference.min(), data.min()) and max(reference.max(), data.max()) <= 1.0
    is_anomaly, row_labels = truth["is_anomaly"], np.asarray(truth["labels"])
    assert is_anomaly.sum() == 3 and (row_labels[is_anomaly] == 3).all()
    assert set(row_labels[~is_anomaly]) <= {0, 1, 2}
    # every row is one of the images of its class, scaled to [0, 1], and none is used twice
    lookup = {img.tobytes(): i for i, img in enumerate(images)}
    rows = np.rint(np.concatenate([reference, data]) * 255).astype(np.uint8)
    used = [lookup[row.tobytes()] for row in rows]
    assert len(set(used)) == 42
    assert set(labels[used[:30]]) <= {0, 1, 2}
    np.testing.assert_array_equal(labels[used[30:]], row_labels)
    np.testing.assert_allclose(truth["centres"][0], images[labels == 3].mean(0) / 255)
    names = truth["feature_names"]
    assert names[:2] == ["pixel_0_0", "pixel_0_1"] and names[-1] == "pixel_27_27"


def test_fashion_null_has_no_held_out_class(fake_fashion):
    _, data, truth = make("fashion_mnist", seed=1, data_dir=str(fake_fashion[0]), **{**FAKE_FASHION_PARAMS,
                                                                                      "fraction": 0.0})
    assert not truth["is_anomaly"].any() and truth["centres"].shape == (0, 784)
    assert 3 not in truth["labels"] and len(data) == 12


def test_fashion_pca_is_fitted_on_the_reference_alone(fake_fashion):
    kwargs = {"seed": 2, "data_dir": str(fake_fashion[0]), **FAKE_FASHION_PARAMS}
    raw_ref, raw_data, raw_truth = make("fashion_mnist", **kwargs)
    ref, data, truth = make("fashion_mnist", pca=4, **kwargs)
    assert ref.shape == (30, 4) and data.shape == (12, 4)
    assert truth["feature_names"] == ["pc0", "pc1", "pc2", "pc3"]
    mean = raw_ref.mean(0)
    eigval, eigvec = np.linalg.eigh(np.cov(raw_ref - mean, rowvar=False))
    axes = eigvec[:, ::-1][:, :4]  # the reference's leading principal axes, up to sign
    signs = np.sign(np.sum(((raw_ref - mean) @ axes) * ref, axis=0))
    np.testing.assert_allclose(ref, (raw_ref - mean) @ axes * signs, atol=1e-9)
    np.testing.assert_allclose(data, (raw_data - mean) @ axes * signs, atol=1e-9)
    np.testing.assert_allclose(np.var(ref, axis=0, ddof=1), eigval[::-1][:4], rtol=1e-9)
    centre = (raw_truth["centres"][0] - mean) @ axes * signs
    np.testing.assert_allclose(truth["centres"][0], centre, atol=1e-9)


def test_fashion_reads_uncompressed_files_and_the_environment_variable(tmp_path, monkeypatch, fake_fashion):
    _fake_fashion(tmp_path, compress=False)  # same seed: the same images as the fixture's, not gzipped
    monkeypatch.setenv(scenarios.FASHION_MNIST_ENV, str(tmp_path))
    a = make("fashion_mnist", seed=0, **FAKE_FASHION_PARAMS)
    b = make("fashion_mnist", seed=0, data_dir=str(fake_fashion[0]), **FAKE_FASHION_PARAMS)
    for x, y in zip(a[:2], b[:2]):
        np.testing.assert_array_equal(x, y)


def test_fashion_missing_files_name_them_and_the_installation(tmp_path):
    _fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        make("fashion_mnist", data_dir=str(tmp_path))
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and "train-images" not in message
    assert "apt-get install dataset-fashion-mnist" in message and "SPARKER_FASHION_MNIST" in message
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        make("fashion_mnist", data_dir=str(tmp_path / "absent"))


def test_fashion_rejects_a_file_that_is_not_idx(tmp_path):
    _fake_fashion(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"not an idx file")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: not an IDX file"):
        make("fashion_mnist", data_dir=str(tmp_path))


def test_fashion_too_many_anomalies_names_fraction(fake_fashion):
    with pytest.raises(ValueError, match="fraction: 18 anomalous rows requested .* only 16 images"):
        make("fashion_mnist", data_dir=str(fake_fashion[0]), n_reference=5, n_data=20, fraction=0.9)


def test_fashion_real_data():
    directory = _real_fashion_dir()
    if directory is None:
        pytest.skip("needs the Fashion-MNIST files (Debian package dataset-fashion-mnist, "
                    "or $SPARKER_FASHION_MNIST)")
    images, labels = scenarios.load_fashion_mnist(str(directory))
    assert images.shape == (70_000, 784) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [7_000] * 10)
    reference, data, truth = make("fashion_mnist", seed=0, data_dir=str(directory), n_reference=400,
                                  n_data=200, pca=10)
    assert reference.shape == (400, 10) and data.shape == (200, 10)
    assert truth["is_anomaly"].sum() == 20 and set(np.asarray(truth["labels"])[truth["is_anomaly"]]) == {3}
