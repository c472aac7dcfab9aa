"""Does SparKer put one kernel on each of the three square2d clumps? (paper, fig. 4)

For seeds 0..4 and several training variants (default annealing with
re-seeding, constant width at sigma_end, both without re-seeding, and one
change of default at a time), fit
``SparKer(n_kernels=4)`` on the square2d scenario (20,000 reference points,
2,000 uniform data points plus three clumps of 30 points, std 0.02) and count
the clumps that have a kernel centre within 0.1.

Usage::

    python benchmarks/square2d_localisation.py [--seeds 5] [--epochs 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sparker
from sparker.scenarios import make

VARIANTS = {
    "annealing + reseed (default)": {},
    "constant sigma_end + reseed": {"schedule": "constant"},
    "annealing, no reseed": {"reseed": False},
    "constant sigma_end, no reseed": {"schedule": "constant", "reseed": False},
    "no L1 penalty (l1=0)": {"l1": 0.0},
    "L1 penalty 1 (l1=1)": {"l1": 1.0},
    "sigma_end_quantile=0.01": {"sigma_end_quantile": 0.01},
    "sigma_end_quantile=0.001": {"sigma_end_quantile": 0.001},
    "linear schedule": {"schedule": "linear"},
    "competition=none": {"competition": "none"},
    "competition=softmax": {"competition": "softmax"},
}


def clumps_found(model, centres, radius=0.1) -> int:
    dist = np.linalg.norm(model.centres_[:, None, :] - centres[None], axis=-1)
    return int((dist.min(0) < radius).sum())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--variants", default=None,
                   help="comma-separated subset of variant numbers (0-based); default: all")
    args = p.parse_args(argv)
    chosen = list(VARIANTS.items())
    if args.variants:
        chosen = [chosen[int(i)] for i in args.variants.split(",")]
    print(f"{'variant':<32} {'clumps found per seed':<24} {'seeds with 3/3':>14} {'mean t':>8} {'s/fit':>6}")
    for name, over in chosen:
        found, ts = [], []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            R, D, truth = make("square2d", seed=seed)
            m = sparker.SparKer(n_kernels=4, epochs=args.epochs, seed=seed, **over).fit(R, D)
            found.append(clumps_found(m, truth["centres"]))
            ts.append(m.statistic_)
        dt = (time.perf_counter() - t0) / args.seeds
        print(f"{name:<32} {str(found):<24} {sum(f == 3 for f in found):>9}/{args.seeds:<4} "
              f"{np.mean(ts):>8.1f} {dt:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
