"""Large inputs: memory-mapped and float32 samples take the row-chunked path
(:mod:`sparker.core.streaming`) and give bit for bit the model of the same values held
in memory as float64, without a float64 copy of the whole sample."""

import hashlib
import tracemalloc

import numpy as np
import pytest
import torch

import sparker
from sparker.core import streaming as _streaming
from sparker._validation import check_array
from sparker.model.ensemble import resolve_widths
from sparker.core.standardize import Standardizer
from sparker.io import read_table
from sparker.core.kernels import augment_pool
from sparker.model.trainer import train_replicas


def _sample(n, d, dtype, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2, 2, size=d)  # features of very different magnitudes
    return ((rng.standard_normal((n, d)) + shift) * scales + 3.0).astype(dtype)


@pytest.fixture(scope="module")
def memmapped(tmp_path_factory):
    """A 200k x 20 float32 reference on disk, opened memory-mapped, and a data sample."""
    path = tmp_path_factory.mktemp("scale") / "reference.npy"
    np.save(path, _sample(200_000, 20, np.float32))
    return np.load(path, mmap_mode="r"), _sample(2_000, 20, np.float32, shift=0.3, seed=1)


# ------------------------------------------------------------------ chunked moments
@pytest.mark.parametrize("shape", [(5_000, 1), (5_001, 2), (4_099, 7), (3_000, 64)])
def test_chunked_moments_equal_numpy_bit_for_bit(shape):
    X = _sample(*shape, np.float64)
    small = 8 * 300 * shape[1]  # ~300-row chunks, a short tail merged
    assert len(_streaming.row_chunks(shape[0], shape[1], chunk_bytes=small)) == (1 if shape[1] == 1 else
                                                                               shape[0] // 300)
    mean = _streaming.column_mean(X, chunk_bytes=small)
    var = _streaming.column_mean(X, center=mean, chunk_bytes=small)
    np.testing.assert_array_equal(mean, np.average(X, axis=0))
    np.testing.assert_array_equal(var, np.average((X - mean) ** 2, axis=0))
    np.testing.assert_array_equal(_streaming.column_absmax(X, chunk_bytes=small), np.abs(X).max(axis=0))


def test_row_chunks_cover_rows_without_short_tail():
    chunks = _streaming.row_chunks(10_200, 4, chunk_bytes=8 * 4 * 1_000)
    assert chunks[0] == (0, 1_000) and chunks[-1] == (9_000, 10_200)  # a 200-row tail is merged
    assert all(hi - lo >= _streaming.MIN_ROWS for lo, hi in chunks)
    assert [lo for lo, _ in chunks[1:]] == [hi for _, hi in chunks[:-1]]
    assert _streaming.row_chunks(0, 3) == []


def test_fingerprint_equals_hash_of_the_stacked_float64_array():
    R, D = _sample(700, 3, np.float32), _sample(300, 3, np.float32, seed=2)
    w = np.linspace(0.5, 1.5, 1_000)
    stacked = np.concatenate([R, D]).astype(np.float64)
    h = hashlib.sha256()
    h.update(np.asarray(stacked.shape, dtype=np.int64).tobytes())
    h.update(stacked.tobytes())
    h.update(w.tobytes())
    assert _streaming.fingerprint([R, D], w) == h.hexdigest()


# ------------------------------------------------------------------ validation
def test_lean_check_array_keeps_a_memory_map_and_locates_bad_rows(tmp_path, monkeypatch):
    X = _sample(3_000, 5, np.float32)
    X[2_500, 3] = np.nan
    X[2_900, 1] = np.inf
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    monkeypatch.setattr("sparker._validation._FINITE_CHUNK_BYTES", 4 * 5 * 100)  # 100-row chunks
    with pytest.raises(ValueError) as lean:
        check_array(mm, name="reference", lean=True)
    with pytest.raises(ValueError) as plain:
        check_array(X, name="reference")
    assert str(lean.value) == str(plain.value) == (
        "reference: contains 2 non-finite entries (1 NaN, 1 inf); first in row 2500")
    np.save(tmp_path / "y.npy", X[:2_000])
    good = np.load(tmp_path / "y.npy", mmap_mode="r")
    out, _, _ = check_array(good, name="reference", lean=True)
    assert np.shares_memory(out, good) and out.dtype == np.float32  # no copy
    full, _, _ = check_array(good, name="reference")
    assert full.dtype == np.float64 and full.flags.writeable  # the default contract is unchanged


def test_parquet_float32_columns_stay_float32(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = _sample(500, 4, np.float32)
    pd.DataFrame(X, columns=list("abcd")).to_parquet(tmp_path / "x.parquet")
    table, names = read_table(tmp_path / "x.parquet", name="reference")
    assert table.dtype == np.float32 and names == list("abcd")
    np.testing.assert_array_equal(table, X)


# ------------------------------------------------------------------ the lean fit
def test_memmap_fit_is_bit_identical_to_in_memory_float64(memmapped):
    R, D = memmapped
    R64, D64 = np.array(R, dtype=np.float64), D.astype(np.float64)
    settings = {"n_kernels": 4, "epochs": 4, "seed": 3}
    lean = sparker.SparKer(**settings).fit(R, D)
    full = sparker.SparKer(**settings).fit(R64, D64)
    assert lean.statistic_ == full.statistic_
    np.testing.assert_array_equal(lean.centres_, full.centres_)
    np.testing.assert_array_equal(lean.amplitudes_, full.amplitudes_)
    assert lean.kernels_ == full.kernels_
    np.testing.assert_array_equal(lean.top_points(5), full.top_points(5))


def test_chunked_pool_and_widths_equal_the_in_memory_formula(memmapped):
    """What the estimator builds from a memory map equals the plain float64 formulas."""
    R, D = memmapped
    R64, D64 = np.array(R, dtype=np.float64), D.astype(np.float64)
    mean = np.average(R64, axis=0)
    scale = np.sqrt(np.average((R64 - mean) ** 2, axis=0))
    std = Standardizer.fit(R)
    np.testing.assert_array_equal(std.mean, mean)
    np.testing.assert_array_equal(std.scale, scale)
    Rs, Ds = (R64 - mean) / scale, (D64 - mean) / scale
    pool = torch.as_tensor(np.concatenate([Rs, Ds]), dtype=torch.float32)
    parts = [_streaming.StandardizedRows(R, std), _streaming.StandardizedRows(D, std)]
    Xa = _streaming.standardized_pool(parts)
    assert torch.equal(Xa[:, :20], pool)
    assert torch.equal(Xa[:, 20:], torch.cat([torch.ones(len(pool), 1), (pool * pool).sum(1, keepdim=True)], 1))
    cfg = sparker.SparKer().training_config()
    seed = np.random.SeedSequence(0)
    assert resolve_widths(parts[0], cfg, seed) == resolve_widths(Rs, cfg, seed)


def test_lean_fit_makes_no_float64_copy_of_the_sample(tmp_path, monkeypatch):
    n, d = 100_000, 64
    np.save(tmp_path / "r.npy", _sample(n, d, np.float32))
    R = np.load(tmp_path / "r.npy", mmap_mode="r")
    D = _sample(1_000, d, np.float32, shift=0.2, seed=4)
    monkeypatch.setattr(_streaming, "CHUNK_BYTES", 1 << 20)  # 1 MiB chunks: 2,048 rows
    monkeypatch.setattr("sparker._validation._FINITE_CHUNK_BYTES", 1 << 20)
    # fixed widths: the default ones come from a 2,000-point subsample (a fixed ~100 MB of
    # pairwise distances, whatever the sample size), which would hide what is measured here
    model = sparker.SparKer(n_kernels=2, epochs=2, reseed=False, sigma_start=8.0, sigma_end=4.0)
    tracemalloc.start()  # NumPy buffers are traced; torch's (the float32 pool) are not
    try:
        model.fit(R, D)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full64 = 8 * n * d  # 51 MB
    assert peak < 0.25 * full64, f"traced peak {peak / 1e6:.1f} MB vs a float64 copy of {full64 / 1e6:.1f} MB"


def test_calibrate_and_test_accept_memory_maps(memmapped):
    R, D = memmapped
    R, D = R[:20_000], D[:500]  # a memmap slice is still memory-mapped
    R64, D64 = np.array(R, dtype=np.float64), D.astype(np.float64)
    opts = {"n_null": 2, "seed": 1, "n_kernels": 2, "epochs": 3, "reseed": False}
    a = sparker.calibrate(R, 500, **opts)
    b = sparker.calibrate(R64, 500, **opts)
    np.testing.assert_array_equal(a.null, b.null)
    assert a.fingerprint == b.fingerprint
    ta, tb = a.test(D), b.test(D64)
    assert ta.statistic == tb.statistic and ta.pvalue == tb.pvalue
    pa = sparker.test(R[:1_500], D, null="permutation", **opts)
    pb = sparker.test(R64[:1_500], D64, null="permutation", **opts)
    np.testing.assert_array_equal(pa.null_distribution, pb.null_distribution)
    assert pa.statistic == pb.statistic


# ------------------------------------------------------------------ the trainer
def test_given_augmented_pool_gives_the_same_training():
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((3_000, 5)), dtype=torch.float32)
    r = torch.full((3_000, 2), 0.05)
    dw = torch.zeros(3_000, 2)
    dw[:150] = 1.0
    r[:150] = 0.0
    c0 = X[:8].double().view(2, 4, 5).clone()
    widths = np.geomspace(2.0, 0.5, 12)
    Xa = augment_pool(X)
    a = train_replicas(X, r, dw, c0, widths, l1=0.0, chunk_rows=700)
    b = train_replicas(Xa[:, :5], r, dw, c0, widths, l1=0.0, chunk_rows=700, augmented=Xa)
    np.testing.assert_array_equal(a.statistic, b.statistic)
    assert torch.equal(a.centres, b.centres)
    with pytest.raises(ValueError, match="^augmented:"):
        train_replicas(X, r, dw, c0, widths, augmented=Xa[:, :6])


def test_command_line_reads_npy_memory_mapped(tmp_path, monkeypatch, capsys):
    import json

    from sparker.app import cli, files
    from sparker.io import read_table as real_read_table

    R, D = _sample(3_000, 4, np.float32), _sample(300, 4, np.float32, shift=0.5, seed=5)
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)
    seen = []

    def spy(path, **kw):  # what the command line hands to the estimator
        table, names = real_read_table(path, **kw)
        seen.append(isinstance(table.base, np.memmap) or isinstance(table, np.memmap))
        return table, names

    monkeypatch.setattr(files, "read_table", spy)
    assert cli.main(["fit", "--reference", str(tmp_path / "r.npy"), "--data", str(tmp_path / "d.npy"),
                     "--epochs", "3", "--n-kernels", "2"]) == 0
    assert seen == [True, True]
    statistic = json.loads(capsys.readouterr().out)["statistic"]
    assert statistic == sparker.SparKer(epochs=3, n_kernels=2).fit(R.astype(np.float64), D).statistic_


def test_chunk_budget_on_the_cpu_is_cache_sized():
    from sparker.model.trainer import _CHUNK_ELEMENTS, chunk_elements, default_chunk_rows

    assert chunk_elements() == chunk_elements("cpu") == _CHUNK_ELEMENTS
    assert default_chunk_rows(10**7, 128, "cpu") == default_chunk_rows(10**7, 128) == _CHUNK_ELEMENTS // 128
    assert default_chunk_rows(100, 128) == 100  # never more rows than there are
    assert default_chunk_rows(10**7, 10**6) == 256  # at least 256 rows per chunk
