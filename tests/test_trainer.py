"""Tests for sparker.model.trainer and sparker.model.ensemble: loss, gradients, batching, chunking, stacks."""

import math

import numpy as np
import pytest
import torch

from sparker.config import LayerConfig, TrainingConfig
from sparker.model.ensemble import fit_stack, init_centres, resolve_widths
from sparker.model.stack import KernelStack
from sparker.core.kernels import COMPETITIONS, augment_pool, evaluate
from sparker.core.schedules import width_schedule
from sparker.model.trainer import _loss_and_grad, evaluate_loss, train_replicas

MODES = sorted(COMPETITIONS)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These problems are tiny: with 2 intra-op threads on a busy 2-core machine every small
    op waits for a descheduled thread (a square2d fit went from 3 s to 150 s), so use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- problems and naive references


def shifted_pool(n_ref=300, n_data=100, n_signal=25, d=2, seed=0, dtype=torch.float64):
    """Standard-normal reference and data, with a clump of signal at (1.5, 1.5, 0, ...).

    Returns X (N, d), ref weight (N, 1) with w = N_D / N_R, data weight (N, 1).
    """
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n_ref, d))
    D = rng.normal(size=(n_data, d))
    D[:n_signal, :2] = 1.5 + 0.2 * rng.normal(size=(n_signal, 2))
    X = torch.as_tensor(np.concatenate([R, D]), dtype=dtype)
    r = torch.zeros(n_ref + n_data, 1, dtype=dtype)
    dw = torch.zeros_like(r)
    r[:n_ref] = n_data / n_ref
    dw[n_ref:] = 1.0
    return X, r, dw


def toy_weights(X, r, dw, n_toys, seed):
    """Observed column plus ``n_toys`` permutation-like columns with random roles and weights."""
    rng = np.random.default_rng(seed)
    N = X.shape[0]
    n_data = int(dw.sum())
    R = [r[:, 0].numpy()]
    Dw = [dw[:, 0].numpy()]
    for _ in range(n_toys):
        perm = rng.permutation(N)
        data_rows, ref_rows = perm[:n_data], perm[n_data:]
        rc = np.zeros(N)
        dc = np.zeros(N)
        rc[ref_rows] = rng.uniform(0.5, 1.5, size=len(ref_rows))
        rc *= n_data / rc.sum()
        dc[data_rows] = 1.0
        R.append(rc)
        Dw.append(dc)
    as_t = lambda cols: torch.as_tensor(np.stack(cols, 1), dtype=X.dtype)  # noqa: E731
    return as_t(R), as_t(Dw)


def naive_loss(X, centres, amps, sigma, r, dw, mode, offset=None):
    """NPLM loss of every replica, one point and one kernel at a time, in Python floats."""
    B, M, d = centres.shape
    out = []
    for b in range(B):
        total = 0.0
        for n in range(X.shape[0]):
            logk = [-sum((float(X[n, j]) - float(centres[b, i, j])) ** 2 for j in range(d)) / (2 * sigma**2)
                    for i in range(M)]
            top = max(logk)
            lse = top + math.log(sum(math.exp(v - top) for v in logk))
            gate = {
                "none": lambda v: math.exp(v),
                "softmax": lambda v: math.exp(v - lse),
                "kernel-softmax": lambda v: math.exp(2 * v - lse),
            }[mode]
            f = sum(float(amps[b, i]) * gate(logk[i]) for i in range(M))
            if offset is not None:
                f += float(offset[n, b])
            total += float(r[n, b]) * (math.exp(f) - 1.0) - float(dw[n, b]) * f
        out.append(total)
    return np.array(out)


def torch_naive_loss(X, centres, amps, sigma, r, dw, mode, offset=None):
    """Same loss written with explicit differences (no augmented product), for autograd."""
    diff = X[:, None, None, :] - centres[None]  # (n, B, M, d)
    l = -(diff**2).sum(-1) / (2 * sigma**2)  # (n, B, M)
    k, s = torch.exp(l), torch.softmax(l, dim=-1)
    phi = {"none": k, "softmax": s, "kernel-softmax": k * s}[mode]
    f = (phi * amps).sum(-1)  # (n, B)
    if offset is not None:
        f = f + offset
    return (r * (torch.exp(f) - 1.0) - dw * f).sum(0)  # (B,)


def _random_params(B=2, M=3, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(B, M, d, generator=g, dtype=torch.float64)
    A = 0.7 * torch.randn(B, M, generator=g, dtype=torch.float64)
    return C, A


def _init(X, r, dw, M, seeds):
    return init_centres(X, r, dw, M, [np.random.default_rng(s) for s in seeds])


# ---------------------------------------------------------------- loss and gradient


@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_evaluate_loss_matches_naive_loop(mode, with_offset):
    X, r, dw = shifted_pool(n_ref=30, n_data=12, n_signal=4)
    r2, d2 = toy_weights(X, r, dw, 1, seed=1)
    C, A = _random_params()
    off = 0.3 * torch.randn(X.shape[0], 2, generator=torch.Generator().manual_seed(5),
                            dtype=torch.float64) if with_offset else None
    got = evaluate_loss(X, C, A, 0.9, r2, d2, competition=mode, offset=off, chunk_rows=5)
    want = naive_loss(X, C, A, 0.9, r2, d2, mode, offset=off)
    assert got.dtype == np.float64 and got.shape == (2,)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_analytic_gradient_matches_autograd(mode, with_offset):
    X, r, dw = shifted_pool(n_ref=40, n_data=15, n_signal=5, d=3)
    r2, d2 = toy_weights(X, r, dw, 2, seed=2)  # B = 3
    C, A = _random_params(B=3, M=4, d=3, seed=1)
    off = 0.3 * torch.randn(X.shape[0], 3, generator=torch.Generator().manual_seed(6),
                            dtype=torch.float64) if with_offset else None
    sigma = 1.1
    chunks = [(0, 13), (13, 26), (26, 39), (39, 55)]
    loss, ga, gmu = _loss_and_grad(augment_pool(X), chunks, C.clone(), A.clone(), sigma, r2, d2, off,
                                   COMPETITIONS[mode])
    Cg, Ag = C.clone().requires_grad_(True), A.clone().requires_grad_(True)
    ref = torch_naive_loss(X, Cg, Ag, sigma, r2, d2, mode, offset=off)
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(ga, Ag.grad, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(gmu, Cg.grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode,l1", [("kernel-softmax", 0.0), ("softmax", 0.0), ("none", 0.0),
                                     ("kernel-softmax", 0.5)])
def test_training_matches_autograd_adam_reference(mode, l1):
    """Whole trajectory vs torch.optim.Adam on the naive loss (float64, no re-seeding)."""
    X, r, dw = shifted_pool(n_ref=60, n_data=30, n_signal=8)
    R, Dw = toy_weights(X, r, dw, 1, seed=9)  # B = 2
    c0 = _init(X, R, Dw, 3, [0, 1])
    widths = width_schedule("geometric", 40, 2.0, 0.5)
    lr_c, lr_a, a_max = 0.05, 0.08, 0.9
    res = train_replicas(X, R, Dw, c0, widths, competition=mode, lr_centres=lr_c, lr_amplitudes=lr_a,
                         a_max=a_max, l1=l1, reseed=False, chunk_rows=32)

    C = c0.clone().requires_grad_(True)
    A = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([{"params": [C], "lr": lr_c}, {"params": [A], "lr": lr_a}])
    losses = []
    for sigma in widths:
        # per-coordinate centre step: lr * sigma / sqrt(d), a move of about lr widths
        opt.param_groups[0]["lr"] = lr_c * sigma / math.sqrt(X.shape[1])
        opt.zero_grad()
        loss = torch_naive_loss(X, C, A, float(sigma), R, Dw, mode)
        losses.append(loss.detach().numpy())
        (loss.sum() + l1 * A.abs().sum()).backward()
        opt.step()
        with torch.no_grad():
            A.clamp_(-a_max, a_max)
    np.testing.assert_allclose(res.loss, np.array(losses), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(res.centres, C.detach(), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(res.amplitudes, A.detach(), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- starts at H0, t >= 0


@pytest.mark.parametrize("mode", MODES)
def test_zero_amplitudes_give_exactly_zero_loss(mode):
    X, r, dw = shifted_pool()
    C, _ = _random_params()
    r2, d2 = toy_weights(X, r, dw, 1, seed=0)
    got = evaluate_loss(X, C, torch.zeros(2, 3, dtype=torch.float64), 0.5, r2, d2, competition=mode)
    assert np.all(got == 0.0)


@pytest.mark.parametrize("mode", MODES)
def test_training_starts_at_h0_and_ends_with_t_positive(mode):
    X, r, dw = shifted_pool(dtype=torch.float32)
    c0 = _init(X, r, dw, 3, [0])
    widths = width_schedule("geometric", 150, 2.0, 0.3)
    res = train_replicas(X, r, dw, c0, widths, competition=mode, l1=0.0)
    assert res.loss[0, 0] == 0.0  # loss before the first update: a = 0, f = 0
    assert res.statistic.shape == (1,) and res.statistic.dtype == np.float64
    assert res.statistic[0] > 10.0  # 25 signal points in a clump: clearly detected
    # the statistic is -2 L at the final parameters
    final = evaluate_loss(X, res.centres, res.amplitudes, res.sigma, r, dw, competition=mode)
    np.testing.assert_allclose(res.statistic, -2.0 * final, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_t_non_negative_on_null_samples(mode):
    for seed in range(3):
        X, r, dw = shifted_pool(n_signal=0, seed=seed, dtype=torch.float32)
        c0 = _init(X, r, dw, 3, [seed])
        res = train_replicas(X, r, dw, c0, width_schedule("geometric", 80, 2.0, 0.3), competition=mode,
                             l1=0.0)
        assert res.statistic[0] >= -1e-6


def test_tiny_learning_rate_keeps_t_at_zero():
    X, r, dw = shifted_pool(dtype=torch.float32)
    c0 = _init(X, r, dw, 3, [0])
    res = train_replicas(X, r, dw, c0, np.full(5, 0.5), lr_amplitudes=1e-12, lr_centres=1e-12, l1=0.0,
                         reseed=False)
    assert abs(res.statistic[0]) < 1e-8
    assert torch.allclose(res.centres, c0, atol=1e-9)


# ---------------------------------------------------------------- chunking, batching, determinism


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_chunked_equals_unchunked(dtype, rtol):
    X, r, dw = shifted_pool(dtype=dtype)
    r2, d2 = toy_weights(X, r, dw, 2, seed=3)
    c0 = _init(X, r2, d2, 3, [0, 1, 2])
    widths = width_schedule("geometric", 80, 2.0, 0.4)
    a = train_replicas(X, r2, d2, c0, widths, l1=0.0, chunk_rows=7)
    b = train_replicas(X, r2, d2, c0, widths, l1=0.0, chunk_rows=None)
    torch.testing.assert_close(a.centres, b.centres, rtol=rtol, atol=rtol)
    torch.testing.assert_close(a.amplitudes, b.amplitudes, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.statistic, b.statistic, rtol=rtol)
    np.testing.assert_array_equal(a.n_reseeded, b.n_reseeded)


def _batched_vs_separate(dtype, reseed, seed=0, epochs=100):
    X, r, dw = shifted_pool(n_ref=240, n_data=80, n_signal=20, dtype=dtype, seed=seed)
    R, Dw = toy_weights(X, r, dw, 5, seed=seed)  # B = 6
    cfg = TrainingConfig(n_kernels=3, epochs=epochs, reseed=reseed, record_every=0)
    widths = [(2.0, 0.3)]
    seeds = [10, 11, 12, 13, 14, 15]
    together = fit_stack(X, R, Dw, cfg, widths, seeds)
    alone = [fit_stack(X, R[:, b:b + 1], Dw[:, b:b + 1], cfg, widths, [seeds[b]]) for b in range(6)]
    return together.layers[0], [a.layers[0] for a in alone]


@pytest.mark.parametrize("reseed", [False, True])
def test_batched_equals_separate_float64(reseed):
    together, alone = _batched_vs_separate(torch.float64, reseed)
    for b, one in enumerate(alone):
        torch.testing.assert_close(together.centres[b], one.centres[0], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(together.amplitudes[b], one.amplitudes[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(together.statistic[b], one.statistic[0], rtol=1e-9)
        assert together.n_reseeded[b] == one.n_reseeded[0]
    if reseed:
        assert together.n_reseeded.sum() > 0  # re-seeding actually happened and kept equality


def test_batched_equals_separate_float32():
    """float32: the (N x d) @ (d x B*M) product rounds differently with B; seen ~4e-6."""
    together, alone = _batched_vs_separate(torch.float32, reseed=True)
    for b, one in enumerate(alone):
        torch.testing.assert_close(together.centres[b], one.centres[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(together.amplitudes[b], one.amplitudes[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(together.statistic[b], one.statistic[0], rtol=1e-4)
        assert together.n_reseeded[b] == one.n_reseeded[0]


def test_same_seed_is_deterministic():
    X, r, dw = shifted_pool(dtype=torch.float32)
    R, Dw = toy_weights(X, r, dw, 2, seed=4)
    cfg = TrainingConfig(n_kernels=3, epochs=60)
    widths = [(2.0, 0.3)]
    a = fit_stack(X, R, Dw, cfg, widths, [1, 2, 3]).layers[0]
    b = fit_stack(X, R, Dw, cfg, widths, [1, 2, 3]).layers[0]
    assert torch.equal(a.centres, b.centres) and torch.equal(a.amplitudes, b.amplitudes)
    np.testing.assert_array_equal(a.statistic, b.statistic)
    np.testing.assert_array_equal(a.loss, b.loss)
    c = fit_stack(X, R, Dw, cfg, widths, [4, 2, 3]).layers[0]
    assert not torch.equal(a.centres[0], c.centres[0])  # another seed, other start
    assert torch.equal(a.centres[1:], c.centres[1:])  # other replicas untouched


def test_init_centres_distinct_data_points_and_top_up():
    X, r, dw = shifted_pool(n_ref=20, n_data=3, n_signal=0)
    c = _init(X, r, dw, 5, [0])
    rows = [int(torch.nonzero((X == c[0, i]).all(1))[0]) for i in range(5)]
    assert len(set(rows)) == 5
    assert set(range(20, 23)) <= set(rows)  # all three data points, topped up from the reference
    with pytest.raises(ValueError, match=r"^n_kernels:"):
        _init(X, r, dw, 24, [0])


# ---------------------------------------------------------------- clipping, history, reseeding


def test_amplitudes_clipped_even_where_reference_is_empty():
    rng = np.random.default_rng(0)
    R = rng.uniform(-1, 1, size=(200, 2))
    D = np.concatenate([rng.uniform(-1, 1, size=(60, 2)), 5.0 + 0.05 * rng.normal(size=(20, 2))])
    X = torch.as_tensor(np.concatenate([R, D]), dtype=torch.float32)
    r = torch.zeros(280, 1)
    dw = torch.zeros(280, 1)
    r[:200] = 80 / 200
    dw[200:] = 1.0
    c0 = X[[270, 275, 0]].to(torch.float64)[None]  # two kernels on the clump, one in the bulk
    a_max = 0.7
    res = train_replicas(X, r, dw, c0, np.full(60, 0.3), lr_amplitudes=0.5, a_max=a_max, l1=0.0,
                         record_every=1, reseed=False)
    amps = res.history["amplitudes"]  # (61, 1, 3)
    assert amps.shape == (61, 1, 3)
    assert np.abs(amps).max() <= a_max
    assert res.amplitudes.abs().max() == pytest.approx(a_max)  # the bound is reached
    assert np.isfinite(res.statistic).all()


def test_history_recorded_at_stride():
    X, r, dw = shifted_pool(dtype=torch.float32)
    R, Dw = toy_weights(X, r, dw, 2, seed=5)
    c0 = _init(X, R, Dw, 4, [0, 1, 2])
    widths = width_schedule("linear", 25, 2.0, 0.5)
    seen = []
    res = train_replicas(X, R, Dw, c0, widths, l1=0.0, record_every=10, record_replicas=(0, 2),
                         callback=lambda e, loss: seen.append((e, loss.shape)))
    h = res.history
    np.testing.assert_array_equal(h["epoch"], [0, 10, 20, 25])
    np.testing.assert_allclose(h["sigma"], [widths[0], widths[10], widths[20], widths[-1]])
    assert h["loss"].shape == (4, 2)
    np.testing.assert_allclose(h["loss"][:3], res.loss[[0, 10, 20]][:, [0, 2]])
    np.testing.assert_allclose(h["loss"][3], -0.5 * res.statistic[[0, 2]])
    assert h["centres"].shape == (4, 2, 4, 2) and h["amplitudes"].shape == (4, 2, 4)
    np.testing.assert_allclose(h["centres"][0], c0[[0, 2]].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(h["centres"][-1], res.centres[[0, 2]].numpy())
    np.testing.assert_array_equal(h["replicas"], [0, 2])
    assert res.loss.shape == (25, 3)
    assert seen == [(e, (3,)) for e in range(25)]
    off = train_replicas(X, R, Dw, c0, widths, l1=0.0, record_every=0)
    assert off.history["epoch"].shape == (0,)


def test_reseed_rescues_kernels_started_in_a_quiet_corner():
    X, r, dw = shifted_pool(dtype=torch.float32)
    # every kernel starts far from the clump at (1.5, 1.5); the width is too narrow to feel it
    c0 = torch.tensor([[[-2.0, -2.0], [-2.2, -1.8], [-1.8, -2.2]]], dtype=torch.float64)
    kw = dict(competition="kernel-softmax", l1=0.0)
    stuck = train_replicas(X, r, dw, c0, np.full(100, 0.3), reseed=False, **kw)
    moved = train_replicas(X, r, dw, c0, np.full(100, 0.3), reseed=True, **kw)
    assert moved.n_reseeded[0] >= 1
    assert moved.statistic[0] > stuck.statistic[0] + 10.0
    assert float(((moved.centres[0] - torch.tensor([1.5, 1.5], dtype=torch.float64)) ** 2)
                 .sum(1).sqrt().min()) < 0.4


def test_shape_mismatch_is_refused():
    X, r, dw = shifted_pool(dtype=torch.float32)
    c0 = torch.zeros(1, 2, 3, dtype=torch.float64)  # d = 3, pool has d = 2
    with pytest.raises(ValueError, match="shape mismatch"):
        train_replicas(X, r, dw, c0, np.full(3, 1.0))


# ---------------------------------------------------------------- multi-scale stack


def test_two_layer_stack_uses_first_layer_as_offset():
    X, r, dw = shifted_pool(dtype=torch.float64)
    base = dict(n_kernels=3, epochs=100, record_every=0)
    cfg2 = TrainingConfig(**base, layers=(LayerConfig(n_kernels=2, sigma_start=3.0, sigma_end=1.0),
                                          LayerConfig(n_kernels=3, sigma_start=1.0, sigma_end=0.3)))
    widths = resolve_widths(X.numpy(), cfg2, 0)
    assert widths == [(3.0, 1.0), (1.0, 0.3)]
    stack = fit_stack(X, r, dw, cfg2, widths, [7])
    assert len(stack.layers) == 2
    first, second = stack.layers
    assert first.centres.shape == (1, 2, 2) and second.centres.shape == (1, 3, 2)

    # the first layer is exactly the one-layer fit with the same settings and seed
    cfg1 = TrainingConfig(**base, layers=(LayerConfig(n_kernels=2, sigma_start=3.0, sigma_end=1.0),))
    alone = fit_stack(X, r, dw, cfg1, [(3.0, 1.0)], [7]).layers[0]
    assert torch.equal(alone.centres, first.centres)
    np.testing.assert_array_equal(alone.statistic, first.statistic)

    # the second layer is trained on top of the first: t of the stack is the loss of f1 + f2
    f1 = KernelStack.from_layers([first], "kernel-softmax").log_ratio(X)[:, None]  # (N, 1)
    assert second.loss[0, 0] == pytest.approx(-0.5 * first.statistic[0], rel=1e-9)
    t_stack = -2.0 * evaluate_loss(X, second.centres, second.amplitudes, second.sigma, r, dw,
                                   competition="kernel-softmax", offset=f1)
    np.testing.assert_allclose(stack.statistic, t_stack, rtol=1e-9)
    f_all = stack.kernel_stack().log_ratio(X)[:, None]  # (N, 1)
    f2 = evaluate(X, second.centres, second.amplitudes, second.sigma, COMPETITIONS["kernel-softmax"])[0]
    torch.testing.assert_close(f_all, f1 + f2)
    assert stack.statistic[0] >= first.statistic[0] - 1e-6 * max(1.0, first.statistic[0])
    assert stack.converged.shape == (1,)


def test_replica_without_data_points_with_reseed():
    X, r, dw = shifted_pool(dtype=torch.float32)
    R, Dw = toy_weights(X, r, dw, 1, seed=0)
    Dw[:, 1] = 0.0  # replica 1: an empty pseudo-data sample
    c0 = _init(X, R, Dw, 3, [0, 1])  # tops up from the reference
    res = train_replicas(X, R, Dw, c0, np.full(20, 0.5), l1=0.0, reseed=True)
    alone = train_replicas(X, R[:, :1], Dw[:, :1], c0[:1], np.full(20, 0.5), l1=0.0, reseed=True)
    np.testing.assert_allclose(res.statistic[0], alone.statistic[0], rtol=1e-4)
    assert np.isfinite(res.statistic).all()


def test_candidate_gain_leaves_the_candidate_out():
    """A lone data point is no clump: its own point does not count as evidence around it."""
    from sparker.core.kernels import get_competition
    from sparker.model.reseed import reseed_scores
    from sparker.model.trainer import chunk_elements

    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (2_000, 2))
    clump = 5.0 + 0.01 * rng.standard_normal((6, 2))  # six data points together, far from the reference
    lone = np.array([[-5.0, -5.0]])  # one data point on its own
    X = torch.as_tensor(np.concatenate([ref, clump, lone]))
    n = len(X)
    dw = torch.zeros(n, 1, dtype=torch.float64)
    dw[2_000:] = 1.0
    r = torch.zeros(n, 1, dtype=torch.float64)
    r[:2_000] = 0.1
    Xa = augment_pool(X)
    centres = torch.zeros(1, 2, 2, dtype=torch.float64)  # two idle kernels at the origin
    amps = torch.zeros(1, 2, dtype=torch.float64)
    cand = torch.tensor([[2_000, n - 1]])  # a clump point and the lone point
    _, gain = reseed_scores(Xa, [(0, n)], centres, amps, 0.1, r, dw, None,
                            get_competition("kernel-softmax"), cand, budget=chunk_elements())
    # the clump candidate sees its five neighbours (n_D about 5 against ~0 expected); the lone one none
    n_d = np.exp(-((clump[1:] - clump[0]) ** 2).sum(1) / (2 * 0.1**2)).sum()
    assert 4.9 < n_d < 5.0
    assert gain[0, 0] == pytest.approx(n_d * math.log(n_d / 1e-12) - n_d, rel=1e-4)
    assert gain[0, 1] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------- re-seeding candidates
def test_candidate_subsets_change_between_reseedings_and_cover_the_data():
    from sparker.model.reseed import candidate_rows

    N, B = 3000, 2
    dw = torch.zeros(N, B)
    dw[::3, 0] = 1.0  # replica 0: 1,000 data rows
    dw[1::2, 1] = 1.0  # replica 1: 1,500 data rows
    steps = [candidate_rows(dw, 128, step=s) for s in range(9)]
    for c in steps:
        assert c.shape == (B, 128)
        assert bool((dw[c[0], 0] > 0).all()) and bool((dw[c[1], 1] > 0).all())  # data rows only
        assert len(set(c[0].tolist())) == 128  # distinct within one call
    # successive calls score different points; nine calls cover 9 * 128 distinct rows (< 1,000)
    union = set().union(*(set(c[0].tolist()) for c in steps))
    assert len(union) == 9 * 128 or len(union) == 1000
    assert set(steps[0][0].tolist()) != set(steps[1][0].tolist())
    # a replica's candidates do not depend on the other replicas in the batch
    alone = candidate_rows(dw[:, :1], 128, step=4)
    np.testing.assert_array_equal(alone[0].numpy(), steps[4][0].numpy())
    # deterministic
    np.testing.assert_array_equal(candidate_rows(dw, 128, step=2).numpy(), steps[2].numpy())


def test_reseeding_finds_a_clump_missed_by_the_first_candidates():
    """Three clumps, four kernels: re-seeding (rotating candidates, nine calls) puts a kernel
    on each clump, including on a layout where a fixed strided candidate set left one bare."""
    from sparker import SparKer
    from sparker.scenarios import make

    clumps = np.array([[0.592, 0.422], [0.713, 0.154], [0.585, 0.786]])
    R, D, _ = make("square2d", seed=5, centres=clumps, n_reference=10_000, n_background=1_000,
                   n_per_clump=20)
    m = SparKer(n_kernels=4, seed=5, epochs=600).fit(R, D)
    dist = np.linalg.norm(m.centres_[:, None] - clumps[None], axis=-1)
    assert (dist.min(0) <= 0.1).all(), m.centres_


def test_settling_is_judged_after_the_last_reseeding():
    """A re-seeding at 90% moves the loss on purpose; the fit is settled if the loss is flat
    over the second half of what follows, and not settled if it still moves there."""
    from sparker.model.trainer import _settled

    epochs = 1000
    flat_after_jump = np.full((epochs, 1), -50.0)
    flat_after_jump[900:930, 0] = np.linspace(-40.0, -50.0, 30)  # a kernel regrows after the move
    assert _settled(flat_after_jump, flat_after_jump[-1], 1e-2, since=900)[0]
    assert not _settled(flat_after_jump, flat_after_jump[-1], 1e-2, since=0)[0]  # the last tenth sees the jump
    drifting = np.linspace(-40.0, -60.0, epochs)[:, None]
    assert not _settled(drifting, drifting[-1], 1e-2, since=900)[0]


# ---------------------------------------------------------------- amplitudes solved where the width ends


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("l1", [0.0, 0.5])
def test_solved_amplitudes_meet_the_optimality_conditions(mode, l1):
    """For fixed centres the penalised loss is convex in the amplitudes; the solution meets its
    conditions: zero gradient of loss plus penalty where an amplitude is free, a loss slope no
    steeper than the penalty where it is zero, and a slope pushing outwards at a bound."""
    from sparker.model.polish import pool_rows, solve_amplitudes

    X, r, dw = shifted_pool(n_ref=400, n_data=120, n_signal=30)
    R, Dw = toy_weights(X, r, dw, 3, seed=2)  # B = 4
    C = _init(X, R, Dw, 4, [0, 1, 2, 3])
    a_max, sigma = 2.0, 0.4
    Xa = augment_pool(X)
    start = torch.zeros(4, 4, dtype=torch.float64)
    A = solve_amplitudes(pool_rows(Xa, Xa, R, Dw, None, [(0, 200), (200, X.shape[0])]), C, start, sigma,
                         COMPETITIONS[mode], l1=l1, a_min=-a_max, a_max=a_max, dtype=torch.float64)
    assert torch.equal(start, torch.zeros(4, 4, dtype=torch.float64))  # the start is left alone
    Ag = A.clone().requires_grad_(True)
    torch_naive_loss(X, C, Ag, sigma, R, Dw, mode).sum().backward()
    g, a = Ag.grad, A
    tol = 1e-5 * (1.0 + g.abs().max())
    free = (a.abs() > 1e-12) & (a.abs() < a_max)
    assert (g + l1 * torch.sign(a))[free].abs().max() < tol
    assert (g.abs()[a == 0] <= l1 + tol).all()
    assert (g[a >= a_max] + l1 <= tol).all() and (g[a <= -a_max] - l1 >= -tol).all()
    penalised = torch_naive_loss(X, C, A, sigma, R, Dw, mode) + l1 * A.abs().sum(1)
    assert (penalised <= torch_naive_loss(X, C, start, sigma, R, Dw, mode) + 1e-12).all()


def test_solving_the_amplitudes_settles_a_climbing_fit():
    """Four kernels on a dense clump (30 points, std 0.01, in 400 uniform data points), 200
    epochs: with Adam alone the clump's amplitude is still climbing when training ends (not
    settled); solved where the width schedule ends, the loss is flat after it."""
    from sparker import ConvergenceWarning, SparKer
    from sparker.model.polish import solve_epoch

    rng = np.random.default_rng(1)
    reference = rng.uniform(size=(4000, 2))
    data = np.concatenate([rng.uniform(size=(400, 2)), 0.5 + 0.01 * rng.normal(size=(30, 2))])
    with pytest.warns(ConvergenceWarning):
        adam = SparKer(n_kernels=4, epochs=200, seed=0).fit(reference, data)
    solved = SparKer(n_kernels=4, epochs=200, seed=0, solve_amplitudes=True).fit(reference, data)
    assert not adam.converged_ and solved.converged_
    assert solve_epoch(200) == 180 and solve_epoch(5) == -1
    assert solved.statistic_ > adam.statistic_
    for name in ("solve_amplitudes", "reseed"):
        with pytest.raises(TypeError, match=f"^{name}: must be True or False, got 'yes'"):
            SparKer(**{name: "yes"}).fit(reference, data)


# ---------------------------------------------------------------- precision of the log-kernels


def test_logits_move_to_float64_where_float32_cancels():
    """Narrow kernels far from the origin (a 1-d tail at 6.5 standard deviations, width 0.003):
    float32 log-kernels are off by about 0.1; the trainer's pool for them is float64 there, and
    stays the float32 pool where float32 is accurate."""
    from sparker.core.kernels import augment_centres
    from sparker.model.trainer import logit_pool

    x = torch.tensor([[6.5], [6.501], [6.4995], [0.2]], dtype=torch.float32)
    Xa = augment_pool(x)
    c = x[:3].double().view(1, 3, 1)
    sigma = 0.003
    exact = -((x.double()[:, None, :] - c[0][None]) ** 2).sum(-1) / (2 * sigma**2)  # (4, 3)
    f32 = (Xa @ augment_centres(c.float(), sigma)).double()
    Xl = logit_pool(Xa, sigma)
    f64 = Xl @ augment_centres(c, sigma)
    near = exact > -10
    assert (f32 - exact)[near].abs().max() > 0.05
    assert Xl.dtype == torch.float64 and (f64 - exact)[near].abs().max() < 1e-6
    X, _, _ = shifted_pool(dtype=torch.float32)
    Xa = augment_pool(X)
    assert logit_pool(Xa, 0.3) is Xa


def test_a_narrow_fit_in_a_far_tail_settles():
    """The default narrow ensemble on a 1-d exponential sample (lone points far in the tail,
    where the width is 0.003 standard deviations) settles: with float32 log-kernels its loss
    jumped by whole units of t from epoch to epoch to the end."""
    from sparker import SparKer

    rng = np.random.default_rng(5)
    reference, data = rng.exponential(size=(4000, 1)), rng.exponential(size=(400, 1))
    model = SparKer(seed=0).fit(reference, data)
    assert model.converged_
