"""Type-I error of ``sparker.test`` at alpha = 0.05 with the default training procedure.

Draws ``--tests`` independent pairs (R, D) from the same distribution, runs a
calibrated test on each (``--n-null`` toys) and prints the rejection rate with
its 99% Clopper-Pearson interval.  Unlike the slow unit tests (which switch
re-seeding off to stay fast), this keeps every default of the training
procedure (annealing, re-seeding, L1) except the sizes given on the command line.

Usage::

    python benchmarks/type1_error.py --scenario uniform2d --tests 200
    python benchmarks/type1_error.py --scenario gauss16d --n-reference 300 --n-data 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sparker
from sparker.stats import binomial_interval

SCENARIOS = {
    "uniform2d": lambda rng, n: rng.uniform(size=(n, 2)),
    "gauss16d": lambda rng, n: rng.standard_normal((n, 16)),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="uniform2d")
    p.add_argument("--n-reference", type=int, default=1000)
    p.add_argument("--n-data", type=int, default=100)
    p.add_argument("--tests", type=int, default=200)
    p.add_argument("--n-null", type=int, default=19)
    p.add_argument("--n-kernels", type=int, default=4)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--alpha", type=float, default=0.05)
    args = p.parse_args(argv)
    draw = SCENARIOS[args.scenario]
    pvalues, modes = [], set()
    t0 = time.perf_counter()
    for i in range(args.tests):
        rng = np.random.default_rng(10_000 + i)
        R, D = draw(rng, args.n_reference), draw(rng, args.n_data)
        res = sparker.test(R, D, n_null=args.n_null, seed=i, replica_chunk=args.n_null,
                           n_kernels=args.n_kernels, epochs=args.epochs)
        pvalues.append(res.pvalue)
        modes.add(res.null_mode)
    pvalues = np.asarray(pvalues)
    k = int(np.sum(pvalues <= args.alpha))
    low, high = binomial_interval(k, args.tests, level=0.99)
    print(f"{args.scenario}: N_R={args.n_reference} N_D={args.n_data} null={'/'.join(sorted(modes))} "
          f"n_null={args.n_null} n_kernels={args.n_kernels} epochs={args.epochs} (other settings default)")
    print(f"rejected {k}/{args.tests} = {k / args.tests:.3f} at alpha={args.alpha}; "
          f"99% interval [{low:.3f}, {high:.3f}]; {'inside' if low <= args.alpha <= high else 'OUTSIDE'}; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
