"""Execution back ends for chunks of null toys: in-process, local processes, Dask.

A back end evaluates ``fn(shared, *args)`` for every argument tuple of a list
of tasks and yields ``(index, result)`` pairs as tasks finish (in any order).
``shared`` is what every task needs (for the null toys: the pool and the
training settings); it is sent to each worker once, not once per task.

The caller cuts the work into the same tasks whatever the back end, and every
null toy depends only on its own seed, so for a fixed seed all back ends give
the same null statistics, bit for bit: the matrix products do not depend on the
thread count (:mod:`sparker.core.threads`), so the main process's threads and a
worker's single thread give the same numbers.  Local processes and Dask tasks run
with one torch thread each (``threads_per_worker`` for local processes).

Back ends are registered in :data:`BACKENDS` under the names the API and the
command line use: ``batched`` (in this process, the default), ``processes``
(local worker processes, started with ``spawn``) and ``dask`` (a
``distributed`` cluster, given as a :class:`distributed.Client`, a cluster
object or a scheduler address).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Callable, Iterator

from .._validation import check_choice, check_int

__all__ = ["BACKENDS", "backend_options", "check_backend", "get_backend", "run_all"]


class InProcess:
    """Run the tasks one after another in this process (the default)."""

    name = "batched"

    def imap(self, fn: Callable, shared, tasks: list[tuple]) -> Iterator[tuple[int, object]]:
        for i, args in enumerate(tasks):
            yield i, fn(shared, *args)

    def close(self) -> None:
        pass


# What a worker process of :class:`Processes` received once at start-up.  It
# lives only in the (spawned, single-purpose) worker processes.
_WORKER: dict = {}


def _init_worker(threads: int, fn: Callable, shared) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["fn"], _WORKER["shared"] = fn, shared


def _call_in_worker(args: tuple):
    return _WORKER["fn"](_WORKER["shared"], *args)


class Processes:
    """Run the tasks in local worker processes.

    Workers are started with ``spawn`` (safe with torch and threads; a script
    using this back end needs the usual ``if __name__ == "__main__":`` guard)
    and receive ``fn`` and ``shared`` once, at start-up.

    Parameters
    ----------
    n_workers : int, optional
        Number of worker processes; default: CPUs // ``threads_per_worker``.
    threads_per_worker : int, default=1
        torch threads of each worker.
    """

    name = "processes"

    def __init__(self, n_workers: int | None = None, threads_per_worker: int = 1):
        for key, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if value is not None:
                check_int(value, name=key, minimum=1)
        self.threads_per_worker = threads_per_worker
        self.n_workers = n_workers or max(1, (os.cpu_count() or 1) // threads_per_worker)

    def imap(self, fn, shared, tasks):
        n = max(1, min(self.n_workers, len(tasks)))
        pool = cf.ProcessPoolExecutor(
            n, mp_context=mp.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads_per_worker, fn, shared),
        )
        try:
            futures = {pool.submit(_call_in_worker, args): i for i, args in enumerate(tasks)}
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


def _one_thread(fn: Callable, shared, *args):
    """One task on a Dask worker with one torch thread (the worker's count restored after):
    the worker's task threads share its cores, and torch would otherwise take them all."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(shared, *args)
    finally:
        torch.set_num_threads(before)


class Dask:
    """Run the tasks on a Dask ``distributed`` cluster.

    ``shared`` is scattered to the workers once; each task then only carries
    its own small arguments.

    Parameters
    ----------
    scheduler : distributed.Client, cluster object or str
        An existing client (left open), or anything :class:`distributed.Client`
        accepts, such as a ``LocalCluster`` or a scheduler address
        (``tcp://host:8786``), for which a client is opened and closed here.
    """

    name = "dask"

    def __init__(self, scheduler=None):
        try:
            from distributed import Client
        except ImportError as exc:  # optional dependency
            raise ImportError(
                "backend: the 'dask' back end needs dask.distributed; pip install 'dask[distributed]'"
            ) from exc
        if scheduler is None:
            raise ValueError("scheduler: the 'dask' back end needs a scheduler address, a cluster "
                             "or a Client")
        self._own = not isinstance(scheduler, Client)
        self.client = Client(scheduler) if self._own else scheduler

    def imap(self, fn, shared, tasks):
        from distributed import as_completed

        shared_future = self.client.scatter(shared, broadcast=True, hash=False)
        futures = [self.client.submit(_one_thread, fn, shared_future, *args, pure=False) for args in tasks]
        index = {fut.key: i for i, fut in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                yield index[fut.key], fut.result()
        finally:
            self.client.cancel([*futures, shared_future])

    def close(self) -> None:
        if self._own:
            self.client.close()


#: back ends by name (``batched``, ``processes``, ``dask``)
BACKENDS = {b.name: b for b in (InProcess, Processes, Dask)}

#: options each back end accepts
_OPTIONS = {"batched": (), "processes": ("n_workers", "threads_per_worker"), "dask": ("scheduler",)}


def check_backend(name: str, **options) -> None:
    """Raise a ValueError naming the argument if ``name`` or its options are wrong."""
    check_choice(name, BACKENDS, name="backend")
    extra = sorted(set(options) - set(_OPTIONS[name]))
    if extra:
        users = {opt: b for b, opts in _OPTIONS.items() for opt in opts}
        raise ValueError(
            f"{extra[0]}: only used by the {users.get(extra[0], 'no')!r} back end, not by {name!r}"
        )
    if name == "dask" and options.get("scheduler") is None:
        raise ValueError("scheduler: the 'dask' back end needs a scheduler address, a cluster or a Client")


def backend_options(scheduler=None, n_workers=None) -> dict:
    """The back-end options a caller was given (``None`` = not given), as keyword arguments."""
    return {k: v for k, v in (("scheduler", scheduler), ("n_workers", n_workers)) if v is not None}


def get_backend(name: str, **options):
    """Instantiate a back end by name, refusing options it does not use."""
    check_backend(name, **options)
    return BACKENDS[name](**options)


def run_all(backend, fn: Callable, shared, tasks: list[tuple],
            on_result: Callable[[int, object], None]) -> None:
    """Feed every finished task's result to ``on_result``, closing the back end at the end."""
    try:
        for i, res in backend.imap(fn, shared, list(tasks)):
            on_result(i, res)
    finally:
        backend.close()
