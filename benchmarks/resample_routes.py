"""Is a resample toy fitted like an observation? Three routes to a null statistic.

Diagnostic for the small conservative residue of resample p-values (docs/measurements.md):
for each of ``--references`` references (16-d standard normal, N_R = 1,000, N_D = 100,
exact counts, default settings), a calibration of ``--toys`` toys and, per toy,

- **T**: the toy's statistic from the batched calibration;
- **F**: the same split (the toy's data rows and its reference) fitted by ``SparKer.fit``
  with the calibration's widths and the same standardisation (the whole reference), i.e.
  the toy refitted by the observation's code path with another starting seed;
- **O**: an observation, a fresh null sample tested with ``Calibration.test``.

If T and F agree, the batched trainer and the single fit are equivalent; if O falls below
both, what differs is that a toy's data are rows of the reference (in its standardisation)
while an observation's are not. Printed: the three means with standard errors.

Usage::

    python benchmarks/resample_routes.py --references 2 --toys 120
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import sparker
from sparker.calibration.calibration import with_widths
from sparker.calibration.toys import TOY_KEY, child_seed
from sparker.core.nulls import NullSpec, toy_weights
from sparker.core.order import canonical_order


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--references", type=int, default=2)
    p.add_argument("--toys", type=int, default=120)
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(args.seed)
    n_ref, n_data, B = 1000, 100, args.toys
    T, F, O = [], [], []
    t0 = time.perf_counter()
    for j in range(args.references):
        R = rng.standard_normal((n_ref, args.d))
        cal = sparker.calibrate(R, n_data, n_null=B, seed=j, poisson=False)
        T += list(cal.null[:, 0])
        Rc = R[canonical_order([R], [None])]  # the toys' pool order
        spec = NullSpec("resample", n_ref, n_data, None, False)
        params = with_widths(cal.configs[0], cal.widths[0]).to_dict()
        params["layers"] = params["layers"] or None
        for b in range(B):
            r, d = toy_weights(spec, child_seed(j, TOY_KEY, b, 0), None)
            F.append(sparker.SparKer(**params, seed=1000 * j + b).fit(Rc, Rc[d > 0], reference_weight=r).statistic_)
            O.append(cal.test(rng.standard_normal((n_data, args.d))).statistic)
    T, F, O = map(np.asarray, (T, F, O))

    def se(x):
        return x.std() / np.sqrt(len(x))

    print(f"{args.references} references x {B} toys: T {T.mean():.2f} +- {se(T):.2f}, F {F.mean():.2f} +- "
          f"{se(F):.2f}, O {O.mean():.2f} +- {se(O):.2f} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
