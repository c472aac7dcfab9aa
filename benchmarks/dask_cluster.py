"""Null toys on a Dask cluster against the same toys in this process: identical numbers, wall time.

Runs ``sparker.calibrate`` three ways on the same reference and seed, one after the
other: in this process (``backend="batched"``, torch's default thread count), in local
worker processes (``backend="processes"``, one thread each) and on a
``distributed.LocalCluster`` of ``--workers`` worker processes with one thread each
(``backend="dask"``; a multi-machine cluster is the same call with its scheduler's
address, ``sparker calibrate --backend dask --scheduler tcp://HOST:8786``).  Prints the
wall times and whether the null statistics are bit-identical.  Needs the ``dask`` extra.

Usage::

    python benchmarks/dask_cluster.py                      # 20,000 points, d = 8, 64 toys
    python benchmarks/dask_cluster.py --n-null 128 --workers 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=20_000)
    p.add_argument("--n-data", type=int, default=2_000)
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--n-null", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scales", default="single", help="scales of the calibration (single: one configuration)")
    args = p.parse_args(argv)

    import sparker
    from distributed import LocalCluster

    R = np.random.default_rng(0).standard_normal((args.n_reference, args.dim))
    kw = dict(n_null=args.n_null, seed=3, scales=args.scales)
    runs = {}
    start = time.perf_counter()
    runs["in this process"] = sparker.calibrate(R, args.n_data, **kw).null
    runs["in this process", "s"] = time.perf_counter() - start
    start = time.perf_counter()
    runs["local processes"] = sparker.calibrate(R, args.n_data, backend="processes", n_workers=args.workers,
                                                **kw).null
    runs["local processes", "s"] = time.perf_counter() - start
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        start = time.perf_counter()
        runs["Dask LocalCluster"] = sparker.calibrate(R, args.n_data, backend="dask",
                                                      scheduler=cluster.scheduler_address, **kw).null
        runs["Dask LocalCluster", "s"] = time.perf_counter() - start
    base = runs["in this process"]
    print(f"{args.n_null} toys, {args.n_reference:,} / {args.n_data:,} points, d = {args.dim}, "
          f"{args.workers} workers of one thread")
    print("| where | wall s | ratio to in-process | identical toys |")
    print("| --- | --- | --- | --- |")
    for name in ("in this process", "local processes", "Dask LocalCluster"):
        same = bool(np.array_equal(runs[name], base))
        print(f"| {name} | {runs[name, 's']:.1f} | {runs[name, 's'] / runs['in this process', 's']:.2f} "
              f"| {same} (max difference {np.abs(runs[name] - base).max():.3g}) |")


if __name__ == "__main__":
    main()
