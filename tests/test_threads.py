"""Thread discipline: results that do not depend on the thread count, and fits that give
busy cores back (sparker.core.threads)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

import sparker
from sparker.core import threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_importing_sparker_asks_for_reproducible_products():
    assert os.environ.get("MKL_CBWR") is not None  # set by sparker unless the user had set it
    if torch.backends.mkl.is_available() and os.environ["MKL_CBWR"] == "AUTO,STRICT":
        assert threads.reproducible_products()


@pytest.mark.skipif(not threads.reproducible_products(), reason="this BLAS is not thread-reproducible")
def test_toys_are_identical_with_one_thread_and_two(two_threads):
    # the case: most toy statistics differed by ~1e-3, two by 0.39 and 3.84
    rng = np.random.default_rng(1)
    R = rng.normal(size=(5000, 4))
    null = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        null[n] = sparker.calibrate(R, 500, n_null=16, seed=5, epochs=300, scales="single").null
    np.testing.assert_array_equal(null[1], null[2])


def test_busy_cores_sees_no_one_else_in_an_idle_window():
    busy = threads.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= len(os.sched_getaffinity(0))


def test_a_fit_gives_busy_cores_back_and_says_so_once(monkeypatch, caplog, two_threads):
    monkeypatch.setattr(threads, "_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.1: 2.6)
    monkeypatch.setattr(threads, "_state", {**threads._state, "measured_at": -float("inf"), "told": False})
    torch.set_num_threads(4)
    seen = []
    with caplog.at_level(logging.WARNING, logger="sparker.core.threads"):
        with threads.adapted_threads() as n:
            seen.append((n, torch.get_num_threads()))
        with threads.adapted_threads() as n:
            seen.append(n)
    assert torch.get_num_threads() == 4  # restored
    if threads.reproducible_products():
        assert seen == [(1, 1), 1]  # 4 cores, 2.6 busy: 1.4 left -> one thread
        assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
        assert "instead of 4" in caplog.records[0].getMessage()
    else:  # the numbers would change with the thread count: keep it, but say so
        assert seen == [(4, 4), 4] and "keeps 4 threads" in caplog.records[0].getMessage()
    assert len(caplog.records) == 1


def test_free_cores_or_opt_out_leave_the_threads_alone(monkeypatch, two_threads):
    monkeypatch.setattr(threads, "_cpus", lambda: {0, 1})
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.1: 0.2)
    monkeypatch.setattr(threads, "_state", {**threads._state, "measured_at": -float("inf")})
    torch.set_num_threads(2)
    with threads.adapted_threads() as n:
        assert n == 2 == torch.get_num_threads()
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.1: 2.0)
    monkeypatch.setattr(threads, "_state", {**threads._state, "measured_at": -float("inf")})
    with threads.adapted_threads("cuda") as n:  # a GPU fit: the host's threads only launch kernels
        assert n == 2 == torch.get_num_threads()
    monkeypatch.setenv("SPARKER_ADAPT_THREADS", "0")
    with threads.adapted_threads() as n:
        assert n == 2 == torch.get_num_threads()
