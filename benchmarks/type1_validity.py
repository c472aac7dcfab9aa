"""Type-I error of every calibrated path: rate at alpha = 0.05 and uniformity of the p-values.

Every test draws a fresh reference and a fresh null data sample (the data come from the
reference's distribution) and runs a complete calibrated test on them (``sparker.test``,
``--n-null`` toys of its own). Tests are therefore independent, calibrations included, and the
rate measures the validity users get on average over references; a design that calibrates once
and tests many samples against it would measure one reference's fluctuation instead, shared by
all its tests.

A row passes when its rejection count lies in the central 99% binomial interval of 0.05 for
its number of tests and the KS test of uniformity of its randomised p-values (``p - U / (B + 1)``,
exactly uniform under the null for any number B of toys) has p >= 0.01. The pooled rate over
all rows is compared with 0.05 by a one-sided binomial test (significantly below?). The mean
observed statistic is printed beside the mean toy statistic: a conservative test shows the
toys above the observations.

``--design once`` is the affordable design for expensive (default-settings) rows: each of
``--references`` references is calibrated once with ``--n-null`` toys (at least 1,000, so that
the calibration's own noise on the rate stays small), and ``--tests`` fresh null samples, split
evenly among the references, are tested against it at one fit each (``Calibration.test``).
Tests that share a calibration share its fluctuation; several references average over them.

Usage (one study at a time on an idle machine; rows can run as separate processes)::

    python benchmarks/type1_validity.py --out type1.json
    python benchmarks/type1_validity.py --rows uniform2d --tests 100 --threads 1
    python benchmarks/type1_validity.py --rows uniform2d_default --design once --references 4 \
        --n-null 1000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.stats as st
import torch

import sparker
from sparker.stats import binomial_interval

ALPHA = 0.05
FAST = dict(n_kernels=4, epochs=200)  # reduced settings; rows named *_default use none


def _uniform(d):
    return lambda rng, n: rng.uniform(size=(n, d))


def _gauss(d, shift=0.0):
    return lambda rng, n: rng.standard_normal((n, d)) + np.eye(d)[0] * shift


def _importance_weights(X):
    """w(x) = N(x; (0.3, 0, ...), I) / N(x; 0, I): weighted N(0, I) reference = the shifted law."""
    return np.exp(0.3 * X[:, 0] - 0.045)


#: name -> (reference sampler, data sampler, n_reference, n_data, null mode, settings, weights)
ROWS = {
    "uniform2d": (_uniform(2), _uniform(2), 1000, 100, "resample", FAST, None),
    "gauss16d": (_gauss(16), _gauss(16), 1000, 100, "resample", FAST, None),
    "ratio2": (_uniform(2), _uniform(2), 200, 100, "resample", FAST, None),
    "weighted_reference": (_gauss(2), _gauss(2, 0.3), 1000, 100, "resample", FAST, _importance_weights),
    "permutation": (_gauss(2), _gauss(2), 150, 150, "permutation", FAST, None),
    "uniform2d_default": (_uniform(2), _uniform(2), 1000, 100, "resample", {}, None),
    "gauss16d_default": (_gauss(16), _gauss(16), 1000, 100, "resample", {}, None),
}


def _independent(name, rng, *, tests, n_null, seed):
    """Every test a complete calibrated test of its own: (p, t_obs, mean toy t) per test."""
    ref_draw, data_draw, n_ref, n_data, mode, settings, weights_fn = ROWS[name]
    poisson = mode == "resample" and n_ref >= 3 * n_data  # exact counts at the smallest ratio
    out = []
    for k in range(tests):
        R = ref_draw(rng, n_ref)
        D = data_draw(rng, int(rng.poisson(n_data)) if poisson else n_data)
        w = None if weights_fn is None else weights_fn(R)
        res = sparker.test(R, D, n_null=n_null, seed=seed + k, null=mode, poisson=poisson,
                           reference_weight=w, **settings)
        out.append((res.pvalue, res.statistic, float(np.mean(res.null_distribution))))
    return out


def _once(name, rng, *, tests, n_null, seed, references):
    """``references`` calibrations of ``n_null`` toys, each testing ``tests / references`` samples."""
    ref_draw, data_draw, n_ref, n_data, mode, settings, weights_fn = ROWS[name]
    if mode != "resample":
        raise SystemExit(f"--design once: row {name} uses {mode} toys, which need the data; use independent")
    out = []
    for j in range(references):
        R = ref_draw(rng, n_ref)
        w = None if weights_fn is None else weights_fn(R)
        cal = sparker.calibrate(R, n_data, n_null=n_null, seed=seed + j, reference_weight=w,
                                n_expected=n_data, poisson=True, **settings)
        for _ in range(tests // references):
            res = cal.test(data_draw(rng, int(rng.poisson(n_data))))
            out.append((res.pvalue, res.statistic, float(np.mean(res.null_distribution))))
    return out


def run_row(name: str, *, tests: int, n_null: int, seed: int, design: str = "independent",
            references: int = 4) -> dict:
    _, _, n_ref, n_data, mode, settings, weights_fn = ROWS[name]
    rng = np.random.default_rng([seed, sorted(ROWS).index(name)])
    t0 = time.perf_counter()
    if design == "once":
        rows = _once(name, rng, tests=tests, n_null=n_null, seed=seed, references=references)
    else:
        rows = _independent(name, rng, tests=tests, n_null=n_null, seed=seed)
    p, t_obs, t_toys = (np.asarray(c, dtype=float) for c in zip(*rows))
    rand_p = p - rng.uniform(size=len(p)) / (n_null + 1)
    k = int((p <= ALPHA).sum())
    lo, hi = binomial_interval(k, len(p), level=0.99)
    band = [int(st.binom.ppf(0.005, len(p), ALPHA)), int(st.binom.ppf(0.995, len(p), ALPHA))]
    ks = float(st.kstest(rand_p, "uniform").pvalue)
    return {
        "row": name, "mode": mode, "design": design, "references": references if design == "once" else len(p),
        "n_reference": n_ref, "n_data": n_data, "n_null": n_null,
        "settings": settings or "default", "weighted_reference": weights_fn is not None,
        "tests": len(p), "rejections": k, "rate": k / len(p), "rate_interval_99": [float(lo), float(hi)],
        "band_99": band, "in_band": bool(band[0] <= k <= band[1]), "ks_pvalue": ks,
        "mean_pvalue": float(p.mean()), "mean_t_observed": float(np.mean(t_obs)),
        "mean_t_toys": float(np.mean(t_toys)), "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=",".join(r for r in ROWS if not r.endswith("_default")),
                    help="comma-separated rows: " + ", ".join(ROWS))
    ap.add_argument("--tests", type=int, default=500)
    ap.add_argument("--n-null", type=int, default=39)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--design", choices=("independent", "once"), default="independent",
                    help="a calibration per test, or one per reference shared by its tests")
    ap.add_argument("--references", type=int, default=4, help="references (calibrations) for --design once")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file for the table (refuses to overwrite)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = []
    for name in args.rows.split(","):
        row = run_row(name, tests=args.tests, n_null=args.n_null, seed=args.seed, design=args.design,
                      references=args.references)
        out.append(row)
        print(f"{name:20s} {row['rejections']:4d}/{row['tests']:<4d} rate {row['rate']:.3f} "
              f"band {row['band_99']} in_band {row['in_band']} KS p {row['ks_pvalue']:.3f} "
              f"mean p {row['mean_pvalue']:.3f} t_obs {row['mean_t_observed']:.2f} "
              f"t_toys {row['mean_t_toys']:.2f} ({row['seconds']} s)", flush=True)
    k, n = sum(r["rejections"] for r in out), sum(r["tests"] for r in out)
    below = float(st.binomtest(k, n, ALPHA, alternative="less").pvalue)
    print(f"pooled {k}/{n} = {k / n:.3f}; one-sided binomial p of so few: {below:.3f}")
    if args.out:
        with open(args.out, "x") as fh:
            json.dump({"rows": out, "pooled": [k, n], "pooled_below_p": below}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
