"""Everything runs on a CUDA device when given one (``device="cuda"``).

Each test computes the same thing on the CPU and on the device and compares.  The
module is skipped without a GPU; ``SPARKER_TEST_DEVICE=cpu`` runs the same checks
with the CPU standing in for the device (a check of the tests themselves).
"""

import os

import numpy as np
import pytest
import torch

import sparker
from sparker.baselines import mmd, nplm_kernel
from sparker.core.kernels import augment_pool
from sparker.model.trainer import default_chunk_rows, train_replicas

DEVICE = os.environ.get("SPARKER_TEST_DEVICE", "cuda")

pytestmark = pytest.mark.skipif(
    DEVICE != "cpu" and not torch.cuda.is_available(), reason="needs a CUDA GPU"
)


def _samples(n_ref=3_000, n_data=300, d=4, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n_ref, d))
    D = rng.standard_normal((n_data, d))
    D[:30] = 0.15 * rng.standard_normal((30, d)) + 1.0  # a small clump
    return R, D


def test_trainer_on_device_matches_cpu():
    rng = np.random.default_rng(1)
    X = torch.as_tensor(rng.standard_normal((4_000, 6)), dtype=torch.float32)
    r = torch.full((4_000, 3), 0.1)
    dw = torch.zeros(4_000, 3)
    dw[:400] = 1.0
    r[:400] = 0.0
    c0 = X[:24].double().view(3, 8, 6).clone()
    widths = np.geomspace(2.5, 0.8, 40)
    cpu = train_replicas(X, r, dw, c0, widths, l1=0.0, fused="eager")
    dev = train_replicas(X.to(DEVICE), r.to(DEVICE), dw.to(DEVICE), c0.to(DEVICE), widths, l1=0.0,
                         fused="eager")
    assert dev.centres.device.type == "cpu"  # results come back to the CPU
    np.testing.assert_allclose(dev.statistic, cpu.statistic, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(dev.centres, cpu.centres, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("data_batch", [None, 150])
def test_reference_batches_on_device_match_cpu(data_batch):
    """The batched step (slices shared by the replicas, gathered data rows, and data slices) and
    its re-seeding."""
    rng = np.random.default_rng(2)
    X = torch.as_tensor(rng.standard_normal((4_000, 5)), dtype=torch.float32)
    r = torch.full((4_000, 3), 0.1)
    dw = torch.zeros(4_000, 3)
    for b in range(3):
        rows = torch.as_tensor(rng.choice(4_000, 300 + 20 * b, replace=False))
        dw[rows, b], r[rows, b] = 1.0, 0.0
    c0 = X[:24].double().view(3, 8, 5).clone()
    widths = np.geomspace(2.5, 0.8, 40)
    kw = dict(l1=0.0, fused="eager", reference_batch=500, data_batch=data_batch)
    cpu = train_replicas(X, r, dw, c0, widths, batch_rng=np.random.default_rng(0), **kw)
    dev = train_replicas(X.to(DEVICE), r.to(DEVICE), dw.to(DEVICE), c0.to(DEVICE), widths,
                         batch_rng=np.random.default_rng(0), **kw)
    np.testing.assert_allclose(dev.statistic, cpu.statistic, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(dev.centres, cpu.centres, rtol=1e-3, atol=1e-3)


def test_augmented_pool_and_chunks_on_device():
    X = torch.randn(1_000, 5, device=DEVICE)
    Xa = augment_pool(X)
    assert Xa.device.type == torch.device(DEVICE).type and Xa.shape == (1_000, 7)
    rows = default_chunk_rows(10**7, 128)
    assert 256 <= rows <= 10**7


def test_fit_on_device_matches_cpu():
    R, D = _samples()
    settings = {"n_kernels": 4, "epochs": 60, "seed": 2}
    cpu = sparker.SparKer(**settings).fit(R, D)
    dev = sparker.SparKer(device=DEVICE, **settings).fit(R, D)
    assert dev.statistic_ == pytest.approx(cpu.statistic_, rel=1e-2, abs=1e-2)
    np.testing.assert_allclose(dev.centres_, cpu.centres_, rtol=1e-2, atol=1e-2)
    f = dev.log_ratio(D)  # scoring after a device fit works on CPU arrays
    assert f.shape == (len(D),) and np.isfinite(f).all()


def test_fit_infers_the_device_of_tensor_inputs():
    R, D = _samples(n_ref=1_000, n_data=100)
    Rt = torch.as_tensor(R, dtype=torch.float32, device=DEVICE)
    Dt = torch.as_tensor(D, dtype=torch.float32, device=DEVICE)
    model = sparker.SparKer(n_kernels=2, epochs=10, seed=0).fit(Rt, Dt)
    reference = sparker.SparKer(n_kernels=2, epochs=10, seed=0).fit(R.astype(np.float32), D.astype(np.float32))
    assert model.statistic_ == pytest.approx(reference.statistic_, rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("null", ["resample", "permutation"])
def test_calibrated_test_with_toys_on_device(null):
    R, D = _samples(n_ref=2_000 if null == "resample" else 600)
    opts = {"n_null": 8, "null": null, "seed": 3, "n_kernels": 3, "epochs": 40, "reseed": False}
    cpu = sparker.test(R, D, **opts)
    dev = sparker.test(R, D, device=DEVICE, **opts)
    assert dev.null_mode == cpu.null_mode == null
    assert dev.statistic == pytest.approx(cpu.statistic, rel=1e-2, abs=1e-2)
    np.testing.assert_allclose(dev.null_distribution, cpu.null_distribution, rtol=2e-2, atol=2e-2)
    assert 0 < dev.pvalue <= 1


def test_calibrate_on_device_and_reuse():
    R, D = _samples(n_ref=2_000)
    cal = sparker.calibrate(R, len(D), n_null=4, seed=1, n_kernels=2, epochs=30, device=DEVICE)
    res = cal.test(D, device=DEVICE)
    assert np.isfinite(cal.null).all() and np.isfinite(res.statistic)


def test_baselines_on_device_match_cpu():
    R, D = _samples(n_ref=800, n_data=200)
    m_cpu = mmd(R, D, n_null=10, seed=0, dtype="float64")
    m_dev = mmd(R, D, n_null=10, seed=0, dtype="float64", device=DEVICE)
    assert m_dev.statistic == pytest.approx(m_cpu.statistic, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(m_dev.null_distribution, m_cpu.null_distribution, rtol=1e-9, atol=1e-12)
    n_cpu = nplm_kernel(R, D, n_null=4, seed=0, n_centres=100)
    n_dev = nplm_kernel(R, D, n_null=4, seed=0, n_centres=100, device=DEVICE)
    assert n_dev.statistic == pytest.approx(n_cpu.statistic, rel=1e-4, abs=1e-6)  # other LAPACK
    np.testing.assert_allclose(n_dev.null_distribution, n_cpu.null_distribution, rtol=1e-4, atol=1e-6)


def test_chunks_on_a_gpu_are_sized_from_its_free_memory():
    from sparker.model.trainer import _CHUNK_ELEMENTS, _GPU_CHUNK_ELEMENTS_MAX, chunk_elements

    budget = chunk_elements(DEVICE)
    if torch.device(DEVICE).type == "cuda":
        assert _CHUNK_ELEMENTS <= budget <= _GPU_CHUNK_ELEMENTS_MAX
        free, _ = torch.cuda.mem_get_info(torch.device(DEVICE))
        assert budget * 4 * 12 <= max(free, 4 * 12 * _CHUNK_ELEMENTS)  # a quarter of free memory at most
    else:
        assert budget == _CHUNK_ELEMENTS
