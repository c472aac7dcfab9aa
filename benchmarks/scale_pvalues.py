"""Which scale of the default calibrated test is off: per-scale p-values of a type-I study's tests.

``sparker bench power --scenario S --mode calibrated --fractions 0 --n-toys N`` stores only
each test's aggregated p-value.  This script makes the first ``--n-tests`` of those tests
again from the study's seeds (``sparker.app.bench.draw_seeds``; the aggregated p-values come
out identical) and prints, for every scale, its mean p-value, how many p-values are at most
0.25, and in how many tests the observed statistic lies above the median of its own toys,
with the one-sided binomial probability of so many (exchangeable toys put the observation
above their median half the time).

With ``--scale K`` each test runs only the default test's ``K``-th scale
(``sparker.config.SCALES["multi"][K]``, ``scales="single"``): about a third of the cost, so
that one scale can be checked on many more draws.  Pick another ``--seed`` than the study's
for draws that no earlier look has seen.

Usage (one study at a time on an idle machine)::

    python benchmarks/scale_pvalues.py --scenario gauss_highd --n-tests 20 --workers 2
    python benchmarks/scale_pvalues.py --scenario gauss_highd --n-tests 80 --scale 2 --seed 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

#: p-values counted as "at most 0.25" (a tolerance for sums that land a rounding error above it)
AT_MOST = 0.25 + 1e-12


def _test(task: tuple) -> dict:
    scenario, n_null, scenario_seed, method_seed, scale = task
    import torch

    from sparker.app.bench import CI_SIZES, SIGNAL_PARAMETERS, TESTS
    from sparker.config import SCALES
    from sparker.scenarios import make

    torch.set_num_threads(1)
    params = {**CI_SIZES[scenario], **SIGNAL_PARAMETERS[scenario](0.0, CI_SIZES[scenario])}
    reference, data, _ = make(scenario, seed=scenario_seed, **params)
    if scale is None:
        result = TESTS["sparker"](reference, data, n_null=n_null, seed=method_seed)
        pc = result.per_config
        t, null, scale_p = pc["statistics"], np.asarray(pc["null_statistics"], float), pc["pvalues"]
    else:  # that scale alone, as a single calibrated test
        result = TESTS["sparker"](reference, data, n_null=n_null, seed=method_seed, scales="single",
                                  **SCALES["multi"][scale])
        t, null, scale_p = [result.statistic], np.asarray(result.null_distribution, float)[:, None], [result.pvalue]
    return {"p": float(result.pvalue), "scale_p": np.asarray(scale_p, float).tolist(),
            "t": np.asarray(t, float).tolist(), "toy_median": np.median(null, axis=0).tolist(),
            "toys": null.T.tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--n-tests", type=int, default=20)
    ap.add_argument("--n-null", type=int, default=19, help="toys per test (the study's --n-null)")
    ap.add_argument("--seed", type=int, default=0, help="the study's --seed")
    ap.add_argument("--scale", type=int, choices=range(3), default=None,
                    help="run only this scale of the default test (0 narrow, 1 the 2%% quantile, 2 the median)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="write the per-test results here (JSON; with every toy's statistic)")
    args = ap.parse_args(argv)
    from sparker.app.bench import draw_seeds

    tasks = [(args.scenario, args.n_null, int(a), int(b), args.scale)
             for a, b in draw_seeds(args.seed, 0, args.n_tests)]
    with ProcessPoolExecutor(args.workers) as ex:
        rows = list(ex.map(_test, tasks))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f)
    p = np.array([r["scale_p"] for r in rows])
    above = np.array([r["t"] for r in rows]) > np.array([r["toy_median"] for r in rows])
    n = len(rows)
    print(f"{args.scenario}: {n} tests, aggregated p <= 0.25 in {sum(r['p'] <= AT_MOST for r in rows)}")
    print("| scale | mean p | p <= 0.25 | observed above toys' median | binomial probability |")
    print("| --- | --- | --- | --- | --- |")
    for k in range(p.shape[1]):
        label = args.scale if args.scale is not None else k
        k_above = int(above[:, k].sum())
        prob = stats.binomtest(k_above, n, 0.5, alternative="greater").pvalue
        print(f"| {label} | {p[:, k].mean():.3f} | {int((p[:, k] <= AT_MOST).sum())} | {k_above} of {n} | {prob:.4f} |")


if __name__ == "__main__":
    main()
