"""Where SparKer's active kernels sit on ``gauss_highd``: on the anomalous cluster or not.

For each seed this draws ``gauss_highd`` (default d = 1024, 10,000 reference and 1,000 data
points, a 1% cluster), fits SparKer with its defaults and prints, for every active kernel,
its distance to the cluster centre, to the nearest anomalous point and to the nearest
reference point, its local Z and its soft data count.  A kernel "on the cluster" is nearer
to an anomalous point than to any reference point.

Usage::

    python benchmarks/highd_localisation.py                    # d = 1024, seeds 100-102
    python benchmarks/highd_localisation.py --d 256 --seeds 0 1
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

import sparker


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--n-reference", type=int, default=10_000)
    p.add_argument("--n-data", type=int, default=1_000)
    p.add_argument("--eps", type=float, default=0.01)
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    on_cluster = fits = 0
    for seed in args.seeds:
        R, D, truth = sparker.scenarios.make("gauss_highd", seed=seed, n_reference=args.n_reference,
                                             n_data=args.n_data, d=args.d, eps=args.eps)
        model = sparker.SparKer(seed=seed).fit(R, D)
        anomalous, centre = D[truth["is_anomaly"]], truth["centres"][0]
        print(f"seed {seed}: t = {model.statistic_:.1f}")
        hit = False
        for k in model.kernels_:
            if not k["active"]:
                continue
            x = np.array(list(k["centre"].values()))
            d_anom = float(np.linalg.norm(anomalous - x, axis=1).min())
            d_ref = float(np.linalg.norm(R - x, axis=1).min())
            hit |= d_anom < d_ref
            print(f"  active kernel {k['index']}: {np.linalg.norm(x - centre):5.1f} from the cluster centre, "
                  f"{d_anom:5.1f} from the nearest anomalous point, {d_ref:5.1f} from the nearest reference "
                  f"point; local Z {k['local_z']:.1f}, n_data {k['n_data']:.2f}")
        fits += 1
        on_cluster += hit
    print(f"fits with an active kernel on the cluster: {on_cluster}/{fits}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
