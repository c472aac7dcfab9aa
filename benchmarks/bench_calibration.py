"""Wall time of a calibrated ``sparker.test`` against running its fits one after another.

``sparker.test`` fits the observed samples and ``n_null`` resampled null toys,
the toys as batched replicas (chunks of ``--replica-chunk``).  The baseline
runs the same number of fits (``n_null + 1``) sequentially with
``SparKer.fit``, each on its own resampled split, with the same settings.
Both run in this process, one after the other; the ratio is what to read.

Usage::

    python benchmarks/bench_calibration.py                  # N_R=20000, N_D=2000, d=32, 100 toys
    python benchmarks/bench_calibration.py --n-null 20 --epochs 300   # quicker look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sparker


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=20_000)
    p.add_argument("--n-data", type=int, default=2_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--n-null", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--kernels", type=int, default=8)
    p.add_argument("--replica-chunk", type=int, default=64)
    p.add_argument("--sequential-fits", type=int, default=None,
                   help="time only this many sequential fits and scale to n_null + 1 (default: all)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    R = rng.standard_normal((args.n_reference, args.dim))
    D = rng.standard_normal((args.n_data, args.dim))
    settings = dict(n_kernels=args.kernels, epochs=args.epochs)

    t0 = time.perf_counter()
    res = sparker.test(R, D, n_null=args.n_null, null="resample", seed=0,
                       replica_chunk=args.replica_chunk, **settings)
    t_batched = time.perf_counter() - t0

    n_fits = args.n_null + 1
    n_seq = min(n_fits, args.sequential_fits or n_fits)
    t0 = time.perf_counter()
    for b in range(n_seq):
        pick = rng.permutation(args.n_reference)
        Rb, Db = R[pick[args.n_data:]], R[pick[: args.n_data]]
        sparker.SparKer(seed=b, **settings).fit(Rb, Db)
    t_seq = (time.perf_counter() - t0) * n_fits / n_seq

    print(f"N_R={args.n_reference} N_D={args.n_data} d={args.dim} M={args.kernels} "
          f"epochs={args.epochs} n_null={args.n_null} replica_chunk={args.replica_chunk}")
    print(f"sparker.test (observed + {args.n_null} toys, batched): {t_batched:8.1f} s  "
          f"(t={res.statistic:.2f}, p={res.pvalue:.3f})")
    scaled = "" if n_seq == n_fits else f" (timed {n_seq}, scaled)"
    print(f"{n_fits} sequential SparKer.fit calls:            {t_seq:8.1f} s{scaled}")
    print(f"speed-up: {t_seq / t_batched:.2f}x")


if __name__ == "__main__":
    main()
