"""Data batches (``data_batch``) and the bounded re-seeding pass: what keeps an epoch's cost
from growing with the data and the reference."""

import numpy as np
import pytest
import torch

import sparker
from sparker.config import AUTO_BATCH_MAX, TrainingConfig, resolve_data_batch, resolve_reference_batch
from sparker.core.kernels import augment_pool, get_competition
from sparker.model import reseed as reseed_mod
from sparker.model.batches import RowBatches, batch_loss_and_grad
from sparker.model.reseed import candidate_rows, reseed_scores, reseed_scores_batched
from sparker.model.trainer import _loss_and_grad

COMP = get_competition("kernel-softmax")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(n=3000, d=3, B=4, M=5, n_data=(600, 600, 600, 450), seed=0):
    """A pool shared by B replicas with their own data rows (counts ``n_data``), uneven
    reference weights, an offset, and random centres and amplitudes."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    r = torch.rand(n, B, generator=g)
    dw = torch.zeros(n, B)
    for b in range(B):
        rows = torch.randperm(n, generator=g)[: n_data[b]]
        dw[rows, b] = 1.0 + torch.rand(len(rows), generator=g)  # weighted data rows
        r[rows, b] = 0.0
    off = 0.1 * torch.randn(n, B, generator=g)
    C = torch.randn(B, M, d, generator=g, dtype=torch.float64)
    a = torch.randn(B, M, generator=g, dtype=torch.float64)
    return augment_pool(X), r, dw, off, C, a


def _chunks(n, step=700):
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def test_auto_reads_at_most_ten_thousand_rows_per_epoch():
    assert resolve_data_batch("auto", AUTO_BATCH_MAX) is None  # every row up to the cap
    assert resolve_data_batch("auto", AUTO_BATCH_MAX + 1) == AUTO_BATCH_MAX
    assert resolve_data_batch("auto", 10**6) == AUTO_BATCH_MAX
    assert resolve_data_batch(200, 1000) == 200
    assert resolve_data_batch(200, 150) is None
    assert resolve_data_batch("all", 10**6) is None and resolve_data_batch(None, 10**6) is None
    # the reference slices are capped alike (a tenth below the cap)
    assert resolve_reference_batch("auto", 60_000) == 6_000
    assert resolve_reference_batch("auto", 10**6) == AUTO_BATCH_MAX
    assert TrainingConfig().data_batch == "auto" and sparker.SparKer().data_batch == "auto"


def test_one_pass_of_data_slices_averages_to_the_exact_loss_and_gradient():
    """Replicas with 600 data rows read 3 slices of 200 per pass; the one with 150 reads all
    of its rows every epoch; the reference is read whole.  The mean over a pass is exact."""
    Xa, r, dw, off, C, a = _problem(n_data=(600, 600, 600, 150))
    exact = _loss_and_grad(Xa, _chunks(len(Xa)), C, a, 0.7, r, dw, off, COMP)
    rows = torch.ones(len(Xa), dtype=torch.bool)
    batches = RowBatches(Xa, Xa, r, dw, off, len(Xa), rows, np.random.default_rng(1), data_m=200)
    assert batches.data_m == 200 and batches.rows == len(Xa) + 200
    steps = [batch_loss_and_grad(batches, 256, C, a, 0.7, COMP) for _ in range(3)]
    for k, e in enumerate(exact):
        scale = float(e.abs().max())
        mean = torch.stack([s[k] for s in steps]).mean(0)
        assert torch.allclose(mean, e, atol=1e-4 * scale), k
        assert float((steps[0][k] - e).abs().max()) > 1e-3 * scale  # one slice is an estimate
    # the small replica's own terms are exact at every epoch
    for s in steps:
        assert torch.allclose(s[0][3], exact[0][3], rtol=1e-5)


def test_data_slices_follow_each_replicas_own_rows():
    """A replica's slices depend on its own number of rows only: disjoint within a pass,
    every whole slice of a pass used once, and a replica at or below the slice size reads
    every row."""
    Xa, r, dw, off, _, _ = _problem(n_data=(600, 500, 600, 100))
    batches = RowBatches(Xa, Xa, r, dw, off, 500, torch.ones(len(Xa), dtype=torch.bool),
                         np.random.default_rng(0), data_m=200)
    slices = [batches.data_slice() for _ in range(6)]
    for b, count in enumerate((600, 500, 600)):
        per_pass = count // 200
        for p in range(0, 6, per_pass):
            seen = torch.cat([s[b] for s in slices[p:p + per_pass]])
            assert len(set(seen.tolist())) == len(seen) and int(seen.max()) < count
    assert all(torch.equal(s[3], torch.arange(200)) for s in slices)  # 100 rows: all of them (and padding)
    assert torch.allclose(batches.data_scale, torch.tensor([3.0, 2.5, 3.0, 1.0]))


def test_batched_reseeding_with_data_slices_scores_its_best_candidates_exactly():
    """Candidates are screened on one data slice (their own point left out) and one reference
    slice; the kernel gains and the scored candidates' gains are exact."""
    Xa, r, dw, off, C, a = _problem()
    chunks = _chunks(len(Xa))
    cand = candidate_rows(dw, 64)
    kg, cg = reseed_scores(Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand, budget=1 << 18)
    batches = RowBatches(Xa, Xa, r, dw, off, 600, torch.ones(len(Xa), dtype=torch.bool),
                         np.random.default_rng(0), data_m=200)
    kg2, cg2 = reseed_scores_batched(batches, Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand,
                                     budget=1 << 18, top=16)
    assert torch.allclose(kg, kg2, rtol=1e-5, atol=1e-4)
    scored = torch.isfinite(cg2)
    assert (scored.sum(1) == 16).all()
    assert torch.allclose(cg[scored], cg2[scored], rtol=1e-4, atol=1e-3)
    # the screening, on a third of the data and a fifth of the reference, keeps the best
    # candidate and many of the 16 best
    assert (cg2.argmax(1) == cg.argmax(1)).all()
    overlap = [len(set(cg[b].topk(16).indices.tolist()) & set(torch.nonzero(scored[b]).flatten().tolist()))
               for b in range(cg.shape[0])]
    assert min(overlap) >= 6, overlap


def test_reseeding_reads_a_bounded_subset_of_a_large_reference(monkeypatch):
    """Above RESEED_REFERENCE_ROWS reference rows, the exact pass reads a weighted random subset:
    the kernel gains are then unbiased estimates."""
    Xa, r, dw, off, C, a = _problem()
    chunks = _chunks(len(Xa))
    cand = candidate_rows(dw, 32)
    kg = reseed_scores(Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand, budget=1 << 18)[0]
    rows = torch.ones(len(Xa), dtype=torch.bool)
    monkeypatch.setattr(reseed_mod, "RESEED_REFERENCE_ROWS", 1000)
    batches = RowBatches(Xa, Xa, r, dw, off, 500, rows, np.random.default_rng(0))
    draws = torch.stack([reseed_scores_batched(batches, Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand,
                                               budget=1 << 18, top=8)[0] for _ in range(40)])
    assert float((draws[0] - kg).abs().max()) > 1e-3  # one subset is an estimate ...
    spread = draws.std(0) / np.sqrt(len(draws))
    assert ((draws.mean(0) - kg).abs() < 4 * spread + 1e-6).float().mean() > 0.9  # ... without bias


def test_data_batch_at_least_the_data_changes_nothing():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(600, 2))
    D = rng.normal(size=(60, 2))
    kw = dict(n_kernels=3, epochs=60, seed=1, reference_batch=200)
    assert sparker.SparKer(**kw).fit(R, D).statistic_ == sparker.SparKer(data_batch=60, **kw).fit(R, D).statistic_


def test_data_slices_alone_keep_the_whole_reference():
    """data_batch without reference slices: the reference term stays exact."""
    rng = np.random.default_rng(0)
    R = rng.normal(size=(2_000, 2))
    D = rng.normal(size=(400, 2))
    kw = dict(n_kernels=3, epochs=40, seed=0, reference_batch="all")
    sliced = sparker.SparKer(data_batch=100, **kw).fit(R, D).statistic_
    assert np.isfinite(sliced) and sliced != sparker.SparKer(**kw).fit(R, D).statistic_


def test_a_calibrated_test_with_data_slices_is_reproducible_and_sliced_alike():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(3_000, 2))
    D = rng.normal(size=(300, 2))
    kw = dict(n_null=16, seed=3, scales="single", n_kernels=3, epochs=60, reference_batch=300, data_batch=100)
    a = sparker.test(R, D, **kw)
    b = sparker.test(R, D, **kw, replica_chunk=16)
    assert np.array_equal(a.null_distribution, b.null_distribution) and a.statistic == b.statistic
    assert a.settings[0]["data_batch"] == 100
    whole = sparker.test(R, D, **{**kw, "data_batch": "all"})
    assert not np.array_equal(a.null_distribution, whole.null_distribution)


def test_permutation_toys_read_every_data_row_under_auto():
    rng = np.random.default_rng(0)
    res = sparker.test(rng.normal(size=(200, 2)), rng.normal(size=(100, 2)), n_null=4, scales="single", epochs=5,
                       n_kernels=2)
    assert res.null_mode == "permutation" and res.settings[0]["data_batch"] is None


def test_data_batch_flag(tmp_path, capsys):
    from sparker.app.cli import main

    rng = np.random.default_rng(0)
    for name, n in (("r.csv", 300), ("d.csv", 40)):
        np.savetxt(tmp_path / name, rng.normal(size=(n, 2)), delimiter=",", header="a,b", comments="")
    files = ["--reference", str(tmp_path / "r.csv"), "--data", str(tmp_path / "d.csv")]
    assert main(["fit", *files, "--data-batch", "many"]) == 2
    assert "--data-batch" in capsys.readouterr().err
    model = tmp_path / "model.npz"
    assert main(["fit", *files, "--data-batch", "10", "--epochs", "20", "--n-kernels", "2", "--model", str(model),
                 "--out", str(tmp_path / "fit.json")]) == 0
    assert sparker.SparKer.load(model).data_batch == 10


def test_settings_saved_before_data_batches_read_every_data_row(tmp_path):
    """Calibrations and models written by SparKer < 0.4 have no data_batch: their toys read
    every data row, so their observed fits must too."""
    old = TrainingConfig().to_dict()
    del old["data_batch"]
    assert TrainingConfig.from_dict(old).data_batch is None
    rng = np.random.default_rng(0)
    model = sparker.SparKer(n_kernels=2, epochs=5).fit(rng.normal(size=(200, 2)), rng.normal(size=(20, 2)))
    path = tmp_path / "model.npz"
    model.save(path)
    from sparker._persist import FORMAT_NAME, FORMAT_VERSION
    from sparker.io import read_archive, write_archive  # rewrite it as an older version would have

    arrays, meta = read_archive(path, kind="SparKer model", format_name=FORMAT_NAME, version=FORMAT_VERSION)
    del meta["params"]["data_batch"]
    del meta["config"]["data_batch"]
    write_archive(path, arrays, meta, overwrite=True)
    loaded = sparker.SparKer.load(path)
    assert loaded.data_batch is None and loaded.config_.data_batch is None
