"""Cost of the default calibrated test (three scales) against one scale, in one run.

Times ``sparker.test(reference, data, n_null=B)`` with ``scales="multi"`` (the default:
the narrow ensemble plus two broader four-kernel ones on the same toys) and with
``scales="single"`` (the narrow ensemble alone, the default before the scales), on the
same samples, one after the other in this process, and prints the wall-time ratio.  Run
it on an idle machine: the ratio is what to read.

Usage::

    python benchmarks/scales_cost.py                          # square2d, 16-d and 32-d Gaussians, 31 toys
    python benchmarks/scales_cost.py --cases square2d --n-null 63
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sparker
from sparker.app.bench import CI_SIZES, SIGNAL_PARAMETERS
from sparker.scenarios import make


def _case(name: str, seed: int):
    """(reference, data) of one case: a CI-size scenario at a rare fraction, or a Gaussian."""
    rng = np.random.default_rng(seed)
    if name == "gauss16d":
        return rng.standard_normal((10_000, 16)), rng.standard_normal((1_000, 16))
    if name == "gauss32d":  # the first row of the README's run times
        return rng.standard_normal((20_000, 32)), rng.standard_normal((2_000, 32))
    base = dict(CI_SIZES[name])
    reference, data, _ = make(name, seed=seed, **base, **SIGNAL_PARAMETERS[name](0.01, base))
    return reference, data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="square2d,gauss16d,gauss32d",
                   help="comma-separated: scenario names (CI sizes, 1%% signal), gauss16d (10,000 / "
                        "1,000 points) or gauss32d (20,000 / 2,000, the README's run-time row)")
    p.add_argument("--n-null", type=int, default=31)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print("| case | N_R / N_D / d | toys | one scale (s) | three scales (s) | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.cases.split(","):
        reference, data = _case(name, args.seed)
        seconds = {}
        for scales in ("single", "multi"):
            start = time.perf_counter()
            sparker.test(reference, data, n_null=args.n_null, seed=args.seed, scales=scales)
            seconds[scales] = time.perf_counter() - start
        print(f"| {name} | {reference.shape[0]:,} / {data.shape[0]:,} / {reference.shape[1]} | {args.n_null} "
              f"| {seconds['single']:.1f} | {seconds['multi']:.1f} | {seconds['multi'] / seconds['single']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
