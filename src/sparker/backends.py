"""Execution back ends for chunks of null toys: in-process, local processes, Dask.

A back end runs ``fn(*args)`` for every argument tuple and yields
``(index, result)`` pairs as tasks finish (in any order).  Work is cut into the
same chunks whatever the back end, and every toy depends only on its own seed,
so results are identical across back ends on the same machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Callable, Iterable, Iterator

__all__ = ["BACKENDS", "get_backend"]


class InProcess:
    """Run chunks one after another in this process (the default)."""

    name = "batched"

    def __init__(self, **_):
        pass

    def imap(self, fn: Callable, tasks: list[tuple]) -> Iterator[tuple[int, object]]:
        for i, args in enumerate(tasks):
            yield i, fn(*args)

    def close(self):
        pass


def _init_worker(threads: int):
    import torch

    torch.set_num_threads(threads)


class Processes:
    """Run chunks in local worker processes (spawned, one torch thread each by default)."""

    name = "processes"

    def __init__(self, n_workers: int | None = None, threads_per_worker: int = 1, **_):
        self.n_workers = n_workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
        self.pool = cf.ProcessPoolExecutor(
            self.n_workers, mp_context=mp.get_context("spawn"),
            initializer=_init_worker, initargs=(threads_per_worker,),
        )

    def imap(self, fn, tasks):
        futures = {self.pool.submit(fn, *args): i for i, args in enumerate(tasks)}
        for fut in cf.as_completed(futures):
            yield futures[fut], fut.result()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class Dask:
    """Run chunks as tasks on a Dask cluster.

    Parameters
    ----------
    scheduler : str or distributed.Client
        A scheduler address (``tcp://host:8786``) or an existing client.
    """

    name = "dask"

    def __init__(self, scheduler=None, **_):
        try:
            from distributed import Client
        except ImportError as exc:  # optional dependency
            raise ImportError(
                "backend: the 'dask' back end needs dask.distributed; pip install 'dask[distributed]'"
            ) from exc
        if scheduler is None:
            raise ValueError("scheduler: the 'dask' back end needs a scheduler address or a Client")
        self._own = not isinstance(scheduler, Client)
        self.client = Client(scheduler) if self._own else scheduler

    def imap(self, fn, tasks):
        from distributed import as_completed

        shared = {}
        futures = {}
        for i, args in enumerate(tasks):
            # large shared arguments (the pool) are scattered once, not per task
            scattered = []
            for a in args:
                key = id(a)
                if getattr(a, "nbytes", 0) > 1 << 20 or hasattr(a, "pool"):
                    if key not in shared:
                        shared[key] = self.client.scatter(a, broadcast=True)
                    scattered.append(shared[key])
                else:
                    scattered.append(a)
            futures[self.client.submit(fn, *scattered, pure=False)] = i
        for fut in as_completed(list(futures)):
            yield futures[fut], fut.result()

    def close(self):
        if self._own:
            self.client.close()


BACKENDS = {b.name: b for b in (InProcess, Processes, Dask)}


def get_backend(name: str, **options):
    """Instantiate a back end by name (``batched``, ``processes``, ``dask``)."""
    if name not in BACKENDS:
        raise ValueError(f"backend: unknown back end {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](**options)


def run_all(backend, fn: Callable, tasks: Iterable[tuple], on_result: Callable[[int, object], None]):
    """Feed every finished task's result to ``on_result``, closing the back end at the end."""
    try:
        for i, res in backend.imap(fn, list(tasks)):
            on_result(i, res)
    finally:
        backend.close()
