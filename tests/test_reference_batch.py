"""Reference batches (``reference_batch``): each epoch reads a slice of the reference."""

import numpy as np
import pytest
import torch

import sparker
from sparker.core.kernels import augment_pool, get_competition
from sparker.model.reseed import candidate_rows, reseed_scores, reseed_scores_batched
from sparker.model.batches import RowBatches as _RowBatches, batch_loss_and_grad as _batch_loss_and_grad
from sparker.model.trainer import _loss_and_grad, train_replicas


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(n=3000, d=3, B=4, M=5, seed=0, dtype=torch.float32):
    """A pool shared by B replicas, each with its own data rows (reference weight 0 there),
    uneven reference weights, an offset, and random centres and amplitudes."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    r = torch.rand(n, B, generator=g, dtype=dtype)
    dw = torch.zeros(n, B, dtype=dtype)
    for b in range(B):
        rows = torch.randperm(n, generator=g)[: 300 + 10 * b]  # replicas of different sizes
        dw[rows, b] = 1.0
        r[rows, b] = 0.0
    off = 0.1 * torch.randn(n, B, generator=g, dtype=dtype)
    C = torch.randn(B, M, d, generator=g, dtype=torch.float64)
    a = torch.randn(B, M, generator=g, dtype=torch.float64)
    return augment_pool(X), r, dw, off, C, a


COMP = get_competition("kernel-softmax")


def _chunks(n, step=700):
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


@pytest.mark.parametrize("logits64", [False, True])
def test_a_slice_of_the_whole_reference_is_the_full_step(logits64):
    Xa, r, dw, off, C, a = _problem()
    Xl = augment_pool(Xa[:, :-2].double()) if logits64 else Xa  # log-kernels in float64 (logit_pool)
    exact = _loss_and_grad(Xa, _chunks(len(Xa)), C, a, 0.7, r, dw, off, COMP, Xl=Xl)
    rows = torch.ones(len(Xa), dtype=torch.bool)
    batches = _RowBatches(Xa, Xl, r, dw, off, 10**9, rows, np.random.default_rng(0))
    got = _batch_loss_and_grad(batches, 500, C, a, 0.7, COMP)
    for e, g in zip(exact, got):
        assert torch.allclose(e, g, rtol=1e-4, atol=1e-3 * float(e.abs().max()))


def test_one_pass_of_slices_averages_to_the_exact_loss_and_gradient():
    """The slices of one pass partition the reference rows, so their mean estimate is exact."""
    Xa, r, dw, off, C, a = _problem(n=3000)
    exact = _loss_and_grad(Xa, _chunks(len(Xa)), C, a, 0.7, r, dw, off, COMP)
    rows = torch.ones(len(Xa), dtype=torch.bool)  # 3000 rows: 6 slices of 500 per pass
    batches = _RowBatches(Xa, Xa, r, dw, off, 500, rows, np.random.default_rng(1))
    steps = [_batch_loss_and_grad(batches, 256, C, a, 0.7, COMP) for _ in range(6)]
    single = steps[0]
    for k, e in enumerate(exact):
        mean = torch.stack([s[k] for s in steps]).mean(0)
        scale = float(e.abs().max())
        assert torch.allclose(mean, e, atol=1e-4 * scale), k
        # ... while one slice alone is only an estimate
        assert float((single[k] - e).abs().max()) > 1e-3 * scale
    # every reference row once per pass: six distinct, disjoint slices
    batches = _RowBatches(Xa, Xa, r, dw, off, 500, rows, np.random.default_rng(1))
    seen = torch.cat([batches.reference_slice() for _ in range(6)])
    assert sorted(seen.tolist()) == list(range(3000))


@pytest.mark.parametrize("logits64", [False, True])
def test_batched_reseeding_scores_agree_with_the_full_pass(logits64):
    """Also with the log-kernels in float64 (a narrow width far from the origin: ``logit_pool``)."""
    Xa, r, dw, off, C, a = _problem()
    if logits64:
        Xa = augment_pool(Xa[:, :-2].double())
    chunks = _chunks(len(Xa))
    cand = candidate_rows(dw, 64)
    kg, cg = reseed_scores(Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand, budget=1 << 18)
    rows = torch.ones(len(Xa), dtype=torch.bool)
    for m in (10**9, 300):  # a slice of the whole reference, and a small one
        batches = _RowBatches(Xa, Xa, r, dw, off, m, rows, np.random.default_rng(0))
        kg2, cg2 = reseed_scores_batched(batches, Xa, chunks, C, a, 0.5, r, dw, off, COMP, cand,
                                         budget=1 << 18, top=16)
        assert torch.allclose(kg, kg2, rtol=1e-5, atol=1e-4)  # kernel gains: exact
        scored = torch.isfinite(cg2)
        assert (scored.sum(1) == 16).all()
        assert torch.allclose(cg[scored], cg2[scored], rtol=1e-4, atol=1e-3)  # exact where scored
        assert (cg2.argmax(1) == cg.argmax(1)).all()  # the best candidate is among them
        if m > len(Xa):  # the exact screening keeps exactly the 16 best
            for b in range(cg.shape[0]):
                assert set(cg[b].topk(16).indices.tolist()) == set(torch.nonzero(scored[b]).flatten().tolist())


def test_reference_batch_at_least_the_reference_changes_nothing():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(600, 2))
    D = rng.normal(size=(60, 2))
    kw = dict(n_kernels=3, epochs=60, seed=1)
    a = sparker.SparKer(**kw).fit(R, D)
    b = sparker.SparKer(reference_batch=600, **kw).fit(R, D)
    assert a.statistic_ == b.statistic_


@pytest.mark.parametrize("n_data, n_clump, data_batch", [(1_000, 40, None), (2_000, 60, 400)])
def test_fit_with_batches_finds_the_clump_and_checks_settling_on_the_whole_pool(n_data, n_clump, data_batch):
    """Reference slices alone, and with data slices (a fifth of the data per epoch)."""
    rng = np.random.default_rng(3)
    R = rng.normal(size=(20_000, 2))
    D = rng.normal(size=(n_data, 2))
    D[:n_clump] = np.array([1.5, -1.0]) + 0.1 * rng.normal(size=(n_clump, 2))
    null = rng.normal(size=(n_data, 2))
    kw = dict(n_kernels=4, epochs=300, seed=0, reference_batch=1_000, data_batch=data_batch)
    model = sparker.SparKer(**kw).fit(R, D)
    t_null = sparker.SparKer(**kw).fit(R, null).statistic_
    assert model.statistic_ > t_null + 30
    top = max(model.kernels_, key=lambda k: k["local_z"] or -np.inf)
    assert np.linalg.norm(np.asarray(list(top["centre"].values())) - [1.5, -1.0]) < 0.3
    assert model.history_["loss"].shape[0] > 0
    assert isinstance(model.converged_, bool)


def test_train_replicas_batches_need_every_weighted_row_among_the_slice_rows():
    Xa, r, dw, _, C, _ = _problem(n=400, B=2, M=3)
    X = Xa[:, :-2]
    rows = torch.zeros(len(X), dtype=torch.bool)
    with pytest.raises(ValueError, match="reference_rows"):
        train_replicas(X, r, dw, C[:2, :3], np.full(5, 0.5), reference_batch=50, reference_rows=rows)


def test_a_replica_gets_the_same_result_in_its_fixed_block():
    """Toys are trained in fixed blocks, so a calibrated test with reference batches is reproducible."""
    rng = np.random.default_rng(0)
    R = rng.normal(size=(3_000, 2))
    D = rng.normal(size=(150, 2))
    kw = dict(n_null=16, seed=3, scales="single", n_kernels=3, epochs=80, reference_batch=300)
    a = sparker.test(R, D, **kw)
    b = sparker.test(R, D, **kw, replica_chunk=16)
    assert np.array_equal(a.null_distribution, b.null_distribution)
    assert a.statistic == b.statistic


@pytest.mark.parametrize("name", ["reference_batch", "data_batch"])
@pytest.mark.parametrize("value", [0, -5, 2.5, "many"])
def test_bad_batch_sizes_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        sparker.SparKer(**{name: value}).fit(np.zeros((50, 2)) + np.arange(50)[:, None], np.ones((5, 2)))


@pytest.mark.parametrize("name", ["reference_batch", "data_batch"])
def test_permutation_toys_refuse_batches(name):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=f"{name}: needs resample toys"):
        sparker.test(rng.normal(size=(200, 2)), rng.normal(size=(100, 2)), n_null=4, scales="single", epochs=5,
                     **{name: 50})


def test_auto_slices_a_tenth_of_large_references_only():
    from sparker.config import AUTO_BATCH_MAX, AUTO_BATCH_ROWS, resolve_reference_batch

    assert resolve_reference_batch("auto", AUTO_BATCH_ROWS - 1) is None  # small: the exact step
    assert resolve_reference_batch("auto", AUTO_BATCH_ROWS) == AUTO_BATCH_ROWS // 10
    assert resolve_reference_batch("auto", 10**5) == 10**4
    assert resolve_reference_batch("auto", 10**6) == AUTO_BATCH_MAX  # at most 10,000 rows
    assert resolve_reference_batch("all", 10**6) is None
    assert resolve_reference_batch(None, 10**6) is None
    assert resolve_reference_batch(300, 10) == 300


def test_the_default_is_auto_and_batches_a_large_reference():
    from sparker.config import AUTO_BATCH_ROWS

    rng = np.random.default_rng(0)
    R = rng.normal(size=(AUTO_BATCH_ROWS, 1))
    D = rng.normal(size=(500, 1))
    kw = dict(n_kernels=2, epochs=12, seed=0)
    assert sparker.SparKer().reference_batch == "auto"
    auto = sparker.SparKer(**kw).fit(R, D).statistic_
    assert auto == sparker.SparKer(reference_batch=AUTO_BATCH_ROWS // 10, **kw).fit(R, D).statistic_
    assert auto != sparker.SparKer(reference_batch="all", **kw).fit(R, D).statistic_
    small = sparker.SparKer(**kw).fit(R[:1000], D).statistic_  # below the threshold: the whole pool
    assert small == sparker.SparKer(reference_batch="all", **kw).fit(R[:1000], D).statistic_


def test_permutation_toys_read_the_whole_pool_under_auto():
    rng = np.random.default_rng(1)
    res = sparker.test(rng.normal(size=(200, 2)), rng.normal(size=(100, 2)), n_null=4, scales="single",
                       epochs=5, n_kernels=2)
    assert res.null_mode == "permutation"
    assert res.settings[0]["reference_batch"] is None


def test_reference_batch_flag_takes_rows_auto_and_all():
    from sparker.app.flags import rows

    assert rows("auto") == "auto" and rows("all") is None and rows("2000") == 2000
    with pytest.raises(ValueError):
        rows("many")


def test_settings_saved_before_reference_batches_keep_the_whole_pool():
    """A calibration or model written by SparKer < 0.3 has no reference_batch: its toys read the
    whole pool, so its observed fits must too (not "auto")."""
    from sparker.config import TrainingConfig

    old = TrainingConfig().to_dict()
    del old["reference_batch"]
    assert TrainingConfig.from_dict(old).reference_batch is None
    assert TrainingConfig.from_dict(TrainingConfig().to_dict()).reference_batch == "auto"
