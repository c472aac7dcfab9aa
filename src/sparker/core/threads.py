"""Thread discipline: matrix products that do not depend on the thread count, and no
oversubscribed cores.

Two things make a run on a shared machine slow or its numbers depend on where it ran:

- **Reproducible products.** Intel MKL, torch's CPU BLAS, splits the long sums of a
  matrix product among its threads, so one thread and two give float32 results that differ
  in the last bits, and over a thousand epochs a re-seeding decision can flip (toy
  statistics then differ by whole units).  MKL's strict conditional numerical
  reproducibility (``MKL_CBWR=AUTO,STRICT``) makes every product bit-identical whatever
  the thread count; :mod:`sparker` sets it when imported, unless the variable is already
  set (MKL reads it at its first product, so a program that multiplied torch tensors
  before importing sparker keeps its own mode: :func:`reproducible_products` tells).
  Element-wise work and torch's own reductions do not depend on the thread count.
- **Busy cores.** torch's worker threads spin while they wait for each other; when another
  process keeps a core busy, a fit with as many threads as cores waits on descheduled
  threads and runs 10-40 times slower.  :func:`adapted_threads` measures how many cores
  other processes use (``/proc/stat`` against this process's own time, over 0.1 s) and, for
  the duration of a fit, lowers torch's thread count to the cores left (at least one),
  saying so once.  With reproducible products this changes no number.  Set the
  environment variable ``SPARKER_ADAPT_THREADS=0`` to keep the thread count as it is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["adapted_threads", "busy_cores", "reproducible_products", "REPRODUCIBLE_ENV"]

log = logging.getLogger(__name__)

#: The MKL setting that makes products independent of the thread count.
REPRODUCIBLE_ENV = ("MKL_CBWR", "AUTO,STRICT")

#: seconds a measurement of the other processes' load is reused
_MEASURE_EVERY = 10.0
#: seconds each measurement watches the CPU counters
_WINDOW = 0.1

_state: dict = {"measured_at": -float("inf"), "busy": 0.0, "told": False, "reproducible": None}


def _counters(cpus: set[int]) -> tuple[int, int, int] | None:
    """(busy, total) jiffies of ``cpus`` and this process's own jiffies; None off Linux."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    busy = total = 0
    for fields in lines:
        if int(fields[0][3:]) in cpus:
            values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return busy, total, int(own[11]) + int(own[12])  # utime + stime


def _cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def busy_cores(window: float = _WINDOW) -> float | None:
    """Cores of this process's CPU set kept busy by *other* processes, over ``window`` seconds.

    None where the counters are not available (not Linux).
    """
    cpus = _cpus()
    first = _counters(cpus)
    if first is None:
        return None
    time.sleep(window)
    second = _counters(cpus)
    busy, total, own = (b - a for a, b in zip(first, second))
    if total <= 0:
        return 0.0
    # own jiffies count time on any CPU; the busy share is over the CPU set's jiffies
    return max(0.0, (busy - own) / total * len(cpus))


def reproducible_products() -> bool:
    """Whether torch's CPU matrix products give the same bits with one thread and two.

    Checked once, on a product whose long sum MKL splits among threads unless
    ``MKL_CBWR=AUTO,STRICT`` was in force when it started.
    """
    if _state["reproducible"] is None:
        import torch

        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(993, 264, generator=g), torch.randn(993, 6, generator=g)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = a.T @ b
            torch.set_num_threads(max(2, before))
            _state["reproducible"] = bool(torch.equal(one, a.T @ b))
        finally:
            torch.set_num_threads(before)
    return _state["reproducible"]


@contextmanager
def adapted_threads(device=None) -> Iterator[int]:
    """torch's thread count, lowered for the block to the cores other processes leave free.

    Yields the thread count in force.  Does nothing when the cores are free, off Linux,
    with ``SPARKER_ADAPT_THREADS=0``, for work on a GPU (``device`` of type ``cuda``: the
    host's threads only launch kernels there), or when the products would then give other
    numbers (:func:`reproducible_products` False: then it only says once that the machine
    is busy).
    """
    import torch

    threads = torch.get_num_threads()
    on_gpu = device is not None and torch.device(device).type == "cuda"
    if threads <= 1 or on_gpu or os.environ.get("SPARKER_ADAPT_THREADS", "1") == "0":
        yield threads
        return
    now = time.monotonic()
    if now - _state["measured_at"] >= _MEASURE_EVERY:
        _state["busy"], _state["measured_at"] = busy_cores() or 0.0, now
    free = max(1, int(len(_cpus()) - _state["busy"] + 0.5))
    if free >= threads:
        yield threads
        return
    if not reproducible_products():
        _say_once("about %.1f of %d cores are busy with other processes, but this torch build's "
                  "matrix products depend on the thread count (set %s=%s before torch multiplies "
                  "anything), so SparKer keeps %d threads; expect a slow fit",
                  _state["busy"], len(_cpus()), *REPRODUCIBLE_ENV, threads)
        yield threads
        return
    _say_once("about %.1f of %d cores are busy with other processes: SparKer trains with %d torch "
              "thread(s) instead of %d while they are (the results do not depend on it)",
              _state["busy"], len(_cpus()), free, threads)
    torch.set_num_threads(free)
    try:
        yield free
    finally:
        torch.set_num_threads(threads)


def _say_once(message: str, *args) -> None:
    if not _state["told"]:
        _state["told"] = True
        log.warning(message, *args)
