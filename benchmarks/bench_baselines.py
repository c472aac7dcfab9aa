"""Wall time of one calibrated test per method (SparKer and the baselines) on the same inputs.

Every method first runs once on a tiny problem (imports and first-call set-up
are not timed).  Every method then runs ``n_null`` null toys plus the observed fit on the same
reference and data (both N(0, I_d): timing does not need a signal), one after
the other in this process.  ``per fit`` is the wall time divided by
``n_null + 1`` (for the MMD tests the kernel work is shared by all
permutations, so it is an average, not a marginal cost).  With ``--scale``
each method also runs with both sample sizes multiplied by that factor, and
the ratio of the two wall times shows how the cost grows with N (about 2 for
linear, 4 for quadratic at ``--scale 2``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py            # N_D=2000, N_R=20000, d=16
    python benchmarks/bench_baselines.py --n-data 500 --n-reference 5000 --n-null 10 --epochs 300
    python benchmarks/bench_baselines.py --methods mmd,nplm_kernel --no-scale
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import sparker
from sparker.baselines import BASELINES


def _run(method: str, R, D, n_null: int, null: str, sparker_settings: dict):
    if method == "sparker":
        return sparker.test(R, D, n_null=n_null, seed=0, null=null, **sparker_settings)
    fn = BASELINES[method]
    return fn(R, D, n_null=n_null, seed=0, null="auto" if method.startswith("mmd") else null)


def _timed(method, n_ref, n_data, dim, n_null, null, settings):
    rng = np.random.default_rng(0)
    R = rng.standard_normal((n_ref, dim))
    D = rng.standard_normal((n_data, dim))
    t0 = time.perf_counter()
    res = _run(method, R, D, n_null, null, settings)
    return time.perf_counter() - t0, res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=20_000)
    p.add_argument("--n-data", type=int, default=2_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--n-null", type=int, default=20)
    p.add_argument("--null", default="auto", choices=["auto", "resample", "permutation"],
                   help="null mode of SparKer, nplm_kernel and c2st (the MMD tests always permute)")
    p.add_argument("--methods", default="sparker," + ",".join(BASELINES),
                   help="comma-separated subset of: sparker," + ",".join(BASELINES))
    p.add_argument("--scale", type=float, default=2.0, help="size factor of the growth run")
    p.add_argument("--no-scale", action="store_true", help="skip the growth run")
    p.add_argument("--epochs", type=int, default=None, help="SparKer epochs (default: the library's)")
    p.add_argument("--kernels", type=int, default=None, help="SparKer kernels (default: the library's)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - {"sparker", *BASELINES})
    if unknown:
        p.error(f"--methods: unknown {unknown}")
    settings = {k: v for k, v in (("epochs", args.epochs), ("n_kernels", args.kernels)) if v is not None}

    print(f"N_R={args.n_reference} N_D={args.n_data} d={args.dim} n_null={args.n_null} "
          f"null={args.null} torch threads={torch.get_num_threads()} sparker settings={settings or 'defaults'}")
    head = f"{'method':12s} {'null':12s} {'wall [s]':>9s} {'per fit [s]':>11s}"
    if not args.no_scale:
        head += f" {'wall x' + format(args.scale, 'g') + ' N [s]':>15s} {'ratio':>6s}"
    print(head + "   t_obs      p")
    rows = []
    for method in methods:  # warm up: imports and first-call set-up are not timed
        _timed(method, 60, 20, args.dim, 2, "permutation", {**settings, "epochs": 5} if method == "sparker" else {})
    for method in methods:
        wall, res = _timed(method, args.n_reference, args.n_data, args.dim, args.n_null, args.null, settings)
        row = {"method": method, "null_mode": res.null_mode, "n_null": args.n_null, "wall_s": wall,
               "per_fit_s": wall / (args.n_null + 1), "statistic": res.statistic, "pvalue": res.pvalue}
        line = f"{method:12s} {res.null_mode:12s} {wall:9.2f} {row['per_fit_s']:11.3f}"
        if not args.no_scale:
            n_ref2, n_data2 = int(args.scale * args.n_reference), int(args.scale * args.n_data)
            wall2, _ = _timed(method, n_ref2, n_data2, args.dim, args.n_null, args.null, settings)
            row.update(wall_scaled_s=wall2, growth_ratio=wall2 / wall)
            line += f" {wall2:15.2f} {wall2 / wall:6.2f}"
        print(line + f" {res.statistic:9.4g} {res.pvalue:6.3f}", flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
