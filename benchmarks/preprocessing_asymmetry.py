"""Does a resample toy's preprocessing seeing its own pseudo-data make the test conservative?

A resample toy's standardisation and default widths come from the whole reference, which
contains the toy's pseudo-data; the observation's come from the reference, which does not
contain the observed data. If widths adapted to a toy's own fluctuations, toys would have
larger statistics than observations and p-values would be conservative.

This compares, on independent null draws (2-d uniform by default, at the smallest allowed
ratio N_R = 2 N_D, where the pseudo-data are half of the preprocessing sample):

- *toy-like*: a pool of N_R points split at random into N_R - N_D reference and N_D data
  rows, fitted with standardisation and widths from the whole pool;
- *observation-like*: N_R reference points of which N_D random rows are held out (weight 0),
  and N_D fresh data points, fitted with standardisation and widths from the reference.

Printed: the mean statistic of each with its standard error, the 95% quantile of the
toy-like statistics, and how often an observation-like statistic exceeds it (0.05 if the
two agree).

Usage::

    python benchmarks/preprocessing_asymmetry.py --draws 1500
    python benchmarks/preprocessing_asymmetry.py --n-reference 1000 --n-data 100 --d 16 --gauss
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sparker import SparKer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=200)
    p.add_argument("--n-data", type=int, default=100)
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--gauss", action="store_true", help="standard normal instead of uniform")
    p.add_argument("--draws", type=int, default=1500)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    n_ref, n_data, d = args.n_reference, args.n_data, args.d

    def draw(m):
        return rng.standard_normal((m, d)) if args.gauss else rng.uniform(size=(m, d))

    settings = dict(n_kernels=4, epochs=200)
    toy, obs, t0 = [], [], time.perf_counter()
    for i in range(args.draws):
        pool, idx = draw(n_ref), rng.permutation(n_ref)
        m = SparKer(seed=i, standardize="pooled", **settings).fit(pool[idx[n_data:]], pool[idx[:n_data]])
        toy.append(m.statistic_)
        R, D = draw(n_ref), draw(n_data)
        w = np.ones(n_ref)
        w[rng.choice(n_ref, n_data, replace=False)] = 0.0
        obs.append(SparKer(seed=i, **settings).fit(R, D, reference_weight=w).statistic_)
    toy, obs = np.asarray(toy), np.asarray(obs)
    q95 = float(np.quantile(toy, 0.95))
    n = len(toy)
    print(f"{n} draws, N_R {n_ref}, N_D {n_data}, d {d} ({'normal' if args.gauss else 'uniform'}): "
          f"toy-like mean t {toy.mean():.2f} +- {toy.std() / np.sqrt(n):.2f}; observation-like "
          f"{obs.mean():.2f} +- {obs.std() / np.sqrt(n):.2f}; toy-like 95% quantile {q95:.2f}, "
          f"exceeded by {np.mean(obs > q95):.3f} of observation-like statistics "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
