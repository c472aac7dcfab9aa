"""Type-I error and power of :class:`sparker.Monitor` over windows of varying size.

Each of ``--references`` references (``--n-reference`` uniform points in the unit square) gets
its own monitor (grid ``--min-size`` .. ``--max-size``, ratio ``--grid-ratio``, ``--n-null``
toys per grid size, seed ``seed + j``); the ``--windows`` null windows are split evenly among
the references. A null window has a size drawn uniformly in ``[min_size, max_size]`` and
uniform points, so every size of the grid (and every subsample fraction it implies) is
exercised. Windows that share a monitor share its reference and calibrations, so their
rate is conditional on that reference; several references average over it (the monitor's
p-values are exact averaged over references, as every resample test's are).

Type-I rows (all windows, then by third of the size range):

- ``rejections``/``tests`` at alpha = 0.05 against the central 99% binomial band of 0.05;
- the KS test of uniformity of the randomised p-values ``p - U / (B + 1)`` (exactly uniform
  under the null for any number ``B`` of toys), passing at KS p >= 0.01;
- the mean share of a window's points that was tested (``grid_size / n``, above
  ``1 / grid_ratio``).

Power row: ``--power-windows`` windows of the same sizes in which a fraction
``--signal-fraction`` of the points (at least one) comes from a Gaussian clump (centre
(0.3, 0.7), std 0.02): the rejection rate with its 99% Clopper-Pearson interval, the median
Z, and the mean ratio of the estimated excess to the planted count, with the share of
windows whose excess is positive.

Usage (on an idle machine; the defaults take tens of minutes on a few cores)::

    python benchmarks/monitor_type1.py --out monitor_type1.json
    python benchmarks/monitor_type1.py --windows 5 --power-windows 2 --references 1 \
        --n-reference 400 --min-size 30 --max-size 60 --n-null 9 --n-kernels 2 --epochs 30   # smoke
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import scipy.stats as st
import torch

import sparker
from sparker.monitor import GRID_RATIO
from sparker.stats import binomial_interval

ALPHA = 0.05
CLUMP_CENTRE, CLUMP_STD = np.array([0.3, 0.7]), 0.02


def null_window(rng, n):
    return rng.uniform(size=(n, 2))


def signal_window(rng, n, fraction):
    """``n`` points of which ``max(1, round(fraction n))`` come from the clump; returns (window, planted)."""
    planted = max(1, int(round(fraction * n)))
    clump = CLUMP_CENTRE + CLUMP_STD * rng.standard_normal((planted, 2))
    return np.concatenate([rng.uniform(size=(n - planted, 2)), clump]), planted


def type1_row(name, p, used, n_null, rng) -> dict:
    """Rejections at ALPHA against the 99% band, and the KS test of the randomised p-values."""
    k, n = int((p <= ALPHA).sum()), len(p)
    band = [int(st.binom.ppf(0.005, n, ALPHA)), int(st.binom.ppf(0.995, n, ALPHA))]
    randomised = p - rng.uniform(size=n) / (n_null + 1)
    ks = float(st.kstest(randomised, "uniform").pvalue)
    return {"row": name, "tests": n, "rejections": k, "rate": k / n, "band_99": band,
            "in_band": bool(band[0] <= k <= band[1]), "ks_pvalue": ks, "mean_pvalue": float(np.mean(p)),
            "mean_share_tested": float(np.mean(used))}


def power_row(pvalues, zscores, excess, planted) -> dict:
    k, n = int((pvalues <= ALPHA).sum()), len(pvalues)
    lo, hi = binomial_interval(k, n, level=0.99)
    return {"row": "power", "tests": n, "rejections": k, "rate": k / n, "rate_interval_99": [lo, hi],
            "median_z": float(np.median(zscores)), "excess_over_planted": float(np.mean(excess / planted)),
            "share_with_excess": float(np.mean(excess > 0))}


def run_study(args) -> dict:
    settings = {} if args.default_settings else {"n_kernels": args.n_kernels, "epochs": args.epochs}
    rng = np.random.default_rng([args.seed, 18])
    null, signal = [], []  # (p, share tested, size) and (p, Z, excess, planted)
    for j in range(args.references):
        start = time.perf_counter()
        reference = rng.uniform(size=(args.n_reference, 2))
        monitor = sparker.Monitor(reference, args.min_size, args.max_size, n_null=args.n_null,
                                  grid_ratio=args.grid_ratio, seed=args.seed + j, **settings)
        sizes = rng.integers(args.min_size, args.max_size + 1, size=args.windows // args.references)
        for r in monitor.run(null_window(rng, int(n)) for n in sizes):
            null.append((r.pvalue, r.grid_size / r.n_points, r.n_points))
        sizes = rng.integers(args.min_size, args.max_size + 1, size=args.power_windows // args.references)
        for n in sizes:
            window, planted = signal_window(rng, int(n), args.signal_fraction)
            r = monitor.test(window, index=len(signal))
            signal.append((r.pvalue, r.zscore, r.excess, planted))
        print(f"reference {j}: {len(monitor.sizes_)} grid sizes, {len(null)} null and {len(signal)} signal "
              f"windows so far ({time.perf_counter() - start:.0f} s)", flush=True)
    if not null:
        raise SystemExit("--windows: at least one null window per reference is needed")
    p, used, n = (np.asarray(c, dtype=float) for c in zip(*null))
    thirds = np.linspace(args.min_size, args.max_size + 1, 4)
    rows = [type1_row("all sizes", p, used, args.n_null, rng)]
    for lo, hi in zip(thirds[:-1], thirds[1:]):
        keep = (n >= lo) & (n < hi)
        if not keep.any():
            continue
        rows.append(type1_row(f"sizes [{int(np.ceil(lo))}, {int(np.ceil(hi)) - 1}]", p[keep], used[keep],
                              args.n_null, rng))
    if signal:
        rows.append(power_row(*(np.asarray(c, dtype=float) for c in zip(*signal))))
    return {"rows": rows, "settings": settings or "default", "arguments": vars(args),
            "sparker_version": sparker.__version__}


def print_table(study: dict) -> None:
    for row in study["rows"]:
        if row["row"] == "power":
            lo, hi = row["rate_interval_99"]
            print(f"{'power':22s} {row['rejections']:4d}/{row['tests']:<4d} rate {row['rate']:.3f} "
                  f"[{lo:.3f}, {hi:.3f}] median Z {row['median_z']:.2f} excess/planted "
                  f"{row['excess_over_planted']:.2f} (positive in {row['share_with_excess']:.0%})")
            continue
        print(f"{row['row']:22s} {row['rejections']:4d}/{row['tests']:<4d} rate {row['rate']:.3f} "
              f"band {row['band_99']} in_band {row['in_band']} KS p {row['ks_pvalue']:.3f} "
              f"mean p {row['mean_pvalue']:.3f} tested {row['mean_share_tested']:.1%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--references", type=int, default=4,
                    help="references (monitors); the windows are split among them")
    ap.add_argument("--windows", type=int, default=400, help="null windows in all")
    ap.add_argument("--power-windows", type=int, default=100, help="signal windows in all")
    ap.add_argument("--n-reference", type=int, default=2000)
    ap.add_argument("--min-size", type=int, default=50)
    ap.add_argument("--max-size", type=int, default=200)
    ap.add_argument("--grid-ratio", type=float, default=GRID_RATIO)
    ap.add_argument("--n-null", type=int, default=99)
    ap.add_argument("--signal-fraction", type=float, default=0.05)
    ap.add_argument("--n-kernels", type=int, default=4, help="reduced settings (see --default-settings)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--default-settings", action="store_true", help="SparKer's default settings instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file for the table (refuses to overwrite)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparker.ConvergenceWarning)  # reduced settings settle late
        study = run_study(args)
    print_table(study)
    if args.out:
        with open(args.out, "x") as fh:
            json.dump(study, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
