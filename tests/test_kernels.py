"""Tests for sparker.core.kernels and sparker.core.schedules against naive reference implementations."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from sparker.core.kernels import (
    COMPETITIONS,
    augment_centres,
    augment_pool,
    evaluate,
    get_competition,
    log_kernels,
)
from sparker.core.schedules import SCHEDULES, pairwise_distance_quantiles, width_schedule

MODES = sorted(COMPETITIONS)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These problems are tiny: with 2 intra-op threads on a busy 2-core machine every small
    op waits for a descheduled thread (a square2d fit went from 3 s to 150 s), so use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- naive reference


def naive_point(x, centres, amplitudes, sigma, mode):
    """f(x) and the gates phi_i(x) of one point, one kernel at a time (plain Python floats)."""
    logk = [-sum((xj - cj) ** 2 for xj, cj in zip(x, c)) / (2.0 * sigma**2) for c in centres]
    top = max(logk)
    lse = top + math.log(sum(math.exp(li - top) for li in logk))
    phis = []
    for li in logk:
        k, s = math.exp(li), math.exp(li - lse)
        phis.append({"none": k, "softmax": s, "kernel-softmax": k * s}[mode])
    return sum(a * p for a, p in zip(amplitudes, phis)), phis


def _problem(n=9, B=2, M=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    C = torch.randn(B, M, d, generator=g, dtype=torch.float64)
    A = torch.randn(B, M, generator=g, dtype=torch.float64)
    return X, C, A


# ---------------------------------------------------------------- log_kernels / evaluate


def test_log_kernels_matches_loops():
    X, C, _ = _problem()
    sigma = 1.3
    l = log_kernels(X, C, sigma)
    assert l.shape == (9, 2, 3)
    for n in range(X.shape[0]):
        for b in range(C.shape[0]):
            for i in range(C.shape[1]):
                want = -sum((float(X[n, j]) - float(C[b, i, j])) ** 2 for j in range(4)) / (2 * sigma**2)
                assert float(l[n, b, i]) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_log_kernels_unbatched_centres_and_clamp():
    X, C, _ = _problem()
    l2 = log_kernels(X, C[0], 0.7)  # centres (M, d)
    assert l2.shape == (9, 3)
    torch.testing.assert_close(l2, log_kernels(X, C, 0.7)[:, 0])
    # a point sitting on a centre gives exactly 0, never a positive rounding error
    l3 = log_kernels(C[0, :1] * 1e3, C[0, :1] * 1e3, 0.1)
    assert float(l3) == 0.0


def test_augmented_product_equals_log_kernels():
    X, C, _ = _problem()
    torch.testing.assert_close(
        (augment_pool(X) @ augment_centres(C, 0.9)).view(9, 2, 3), log_kernels(X, C, 0.9)
    )


@pytest.mark.parametrize("mode", MODES)
def test_evaluate_matches_loops(mode):
    X, C, A = _problem()
    sigma = 0.8
    f, phi = evaluate(X, C, A, sigma, get_competition(mode))
    assert f.shape == (9, 2) and phi.shape == (9, 2, 3)
    for n in range(X.shape[0]):
        for b in range(C.shape[0]):
            want_f, want_phi = naive_point(X[n].tolist(), C[b].tolist(), A[b].tolist(), sigma, mode)
            assert float(f[n, b]) == pytest.approx(want_f, rel=1e-10, abs=1e-12)
            np.testing.assert_allclose(phi[n, b].numpy(), want_phi, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_dfdl_matches_autograd(mode):
    comp = COMPETITIONS[mode]
    g = torch.Generator().manual_seed(1)
    l = (-3.0 * torch.rand(7, 2, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    a = torch.randn(2, 4, generator=g, dtype=torch.float64)
    lse = torch.logsumexp(l, -1, keepdim=True) if comp.needs_lse else None
    phi = torch.exp(comp.log_gate(l, lse))
    f = (phi * a).sum(-1)  # (n, B); f[n, b] depends on l[n, b] only
    (auto,) = torch.autograd.grad(f.sum(), l)
    with torch.no_grad():
        lse0 = torch.logsumexp(l, -1, keepdim=True) if comp.needs_lse else None
        phi0 = torch.exp(comp.log_gate(l, lse0))
        analytic = comp.dfdl(l, lse0, phi0, a, (phi0 * a).sum(-1, keepdim=True))
    torch.testing.assert_close(analytic, auto, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_evaluate_differentiable(mode):
    X, C, A = _problem()
    C = C.clone().requires_grad_(True)
    f, _ = evaluate(X, C, A, 1.0, COMPETITIONS[mode])
    f.sum().backward()
    assert C.grad is not None and torch.isfinite(C.grad).all()


# ---------------------------------------------------------------- locality and underflow


@pytest.mark.parametrize("mode", MODES)
def test_locality(mode):
    C = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    A = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    far = torch.tensor([[40.0, 30.0], [-50.0, 0.0]], dtype=torch.float64)
    f, _ = evaluate(far, C, A, 0.5, COMPETITIONS[mode])
    if COMPETITIONS[mode].local:
        assert mode in ("none", "kernel-softmax")
        assert torch.all(f.abs() < 1e-30)
    else:
        assert mode == "softmax"
        # far away the nearest kernel owns the point: f -> its amplitude, not 0
        torch.testing.assert_close(f[:, 0], torch.tensor([-1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
def test_no_nan_when_every_kernel_underflows(mode, dtype):
    d = 512
    g = torch.Generator().manual_seed(2)
    C = torch.randn(2, 5, d, generator=g).to(dtype)
    X = (torch.randn(6, d, generator=g) + 30.0).to(dtype)  # ~680 standard units from every centre
    A = torch.randn(2, 5, generator=g).to(dtype)
    l = log_kernels(X, C, 0.5)
    assert torch.all(torch.exp(l) == 0)  # every kernel underflows
    f, phi = evaluate(X, C, A, 0.5, COMPETITIONS[mode])
    assert torch.isfinite(f).all() and torch.isfinite(phi).all()
    if mode == "softmax":
        torch.testing.assert_close(phi.sum(-1), torch.ones(6, 2, dtype=dtype))
    else:
        assert torch.all(f == 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sigma=st.floats(0.05, 20.0), shift=st.floats(-1e3, 1e3),
       M=st.integers(1, 5))
def test_gate_invariants(seed, sigma, shift, M):
    """Softmax gates sum to 1; k s <= min(k, s); f is translation invariant and bounded by max |a|."""
    g = torch.Generator().manual_seed(seed)
    X = 2.0 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    C = 2.0 * torch.randn(1, M, 3, generator=g, dtype=torch.float64)
    A = 5.0 * torch.randn(1, M, generator=g, dtype=torch.float64)
    out = {m: evaluate(X, C, A, sigma, COMPETITIONS[m]) for m in MODES}
    k, s, ks = out["none"][1], out["softmax"][1], out["kernel-softmax"][1]
    torch.testing.assert_close(s.sum(-1), torch.ones(6, 1, dtype=torch.float64))
    assert torch.all(ks <= torch.minimum(k, s) * (1 + 1e-12) + 1e-300)
    assert torch.all((k >= 0) & (k <= 1) & (ks >= 0))
    bound = float(A.abs().max()) * (1 + 1e-9)
    for mode in ("softmax", "kernel-softmax"):
        assert torch.all(out[mode][0].abs() <= bound)
    moved = evaluate(X + shift, C + shift, A, sigma, COMPETITIONS["kernel-softmax"])[0]
    torch.testing.assert_close(moved, out["kernel-softmax"][0], rtol=1e-6, atol=1e-6 * bound)


def test_unknown_competition_names_the_argument():
    with pytest.raises(ValueError, match=r"^competition: unknown mode 'nope'"):
        get_competition("nope")


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("name", ["linear", "geometric"])
@pytest.mark.parametrize("start,end", [(3.0, 0.2), (0.2, 3.0)])
def test_schedule_endpoints_reach_and_monotone(name, start, end):
    epochs = 50
    w = width_schedule(name, epochs, start, end)
    assert w.shape == (epochs,)
    assert w[0] == pytest.approx(start, rel=1e-12)
    reach = int(0.9 * epochs)  # 45
    np.testing.assert_allclose(w[reach:], end, rtol=1e-12)
    assert np.all(np.abs(w[:reach] - end) > 1e-9 * end)  # not earlier
    steps = np.diff(w)
    assert np.all(steps <= 0) if start > end else np.all(steps >= 0)
    assert np.all(steps[: reach - 1] != 0)  # strictly moving until reached


def test_schedule_shapes():
    lin = width_schedule("linear", 101, 4.0, 1.0)
    geo = width_schedule("geometric", 101, 4.0, 1.0)
    # halfway to the reach point: arithmetic vs geometric mean
    assert lin[45] == pytest.approx(2.5)
    assert geo[45] == pytest.approx(2.0)
    np.testing.assert_allclose(width_schedule("constant", 7, 4.0, 1.0), np.ones(7))


def test_schedule_reach_parameter():
    w = width_schedule("linear", 10, 2.0, 1.0, reach=0.5)
    np.testing.assert_allclose(w, [2.0, 1.8, 1.6, 1.4, 1.2, 1, 1, 1, 1, 1])


def test_schedule_registry_and_errors():
    assert set(SCHEDULES) == {"linear", "geometric", "constant"}
    with pytest.raises(ValueError, match=r"^schedule: unknown schedule 'cosine'"):
        width_schedule("cosine", 10, 1.0, 0.5)
    for s0, s1 in [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))]:
        with pytest.raises(ValueError, match=r"^sigma_start/sigma_end:"):
            width_schedule("linear", 10, s0, s1)
    with pytest.raises(ValueError, match=r"^reach:"):
        width_schedule("linear", 10, 1.0, 0.5, reach=0.0)


def test_schedule_tiny_epoch_counts():
    assert width_schedule("geometric", 0, 2.0, 1.0).shape == (0,)
    np.testing.assert_allclose(width_schedule("geometric", 1, 2.0, 1.0), [2.0])


# ---------------------------------------------------------------- pairwise distance quantiles


def test_pairwise_quantiles_match_naive():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    q = [0.05, 0.5, 0.9]
    got = pairwise_distance_quantiles(X, q, rng=np.random.default_rng(0))
    naive = [math.dist(X[i], X[j]) for i in range(60) for j in range(i + 1, 60)]
    np.testing.assert_allclose(got, np.quantile(naive, q), rtol=1e-10)
    assert np.ndim(pairwise_distance_quantiles(X, 0.5, rng=np.random.default_rng(0))) == 0


def test_pairwise_quantiles_subsample_uses_rng():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    got = pairwise_distance_quantiles(X, 0.3, max_points=50, rng=np.random.default_rng(7))
    idx = np.sort(np.random.default_rng(7).choice(300, size=50, replace=False))
    np.testing.assert_allclose(got, np.quantile(pdist(X[idx]), 0.3), rtol=1e-10)
    again = pairwise_distance_quantiles(X, 0.3, max_points=50, rng=np.random.default_rng(7))
    assert got == again


def test_pairwise_quantiles_ignore_duplicates_and_refuse_all_equal():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    got = pairwise_distance_quantiles(X, [0.0, 1.0], rng=np.random.default_rng(0))
    np.testing.assert_allclose(got, [5.0, 5.0])
    with pytest.raises(ValueError, match=r"^reference: all points coincide"):
        pairwise_distance_quantiles(np.ones((5, 3)), 0.5, rng=np.random.default_rng(0))
