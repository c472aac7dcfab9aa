"""Same seeds, same numbers: record or compare the statistics of a few fixed runs.

Run it with ``--write FILE`` before a change that must not alter any result
(a refactoring), and with ``--check FILE`` after it: every number is compared
exactly (bit for bit, as the hexadecimal form of the float64).

Covered: scenario draws (a hash of the arrays), single fits (one layer,
a multi-scale stack, a weighted reference, a ``softmax`` model), the per-kernel
table and scores, a calibrated test (resample toys with several settings
aggregated, permutation toys), a reusable calibration and every baseline.

Usage::

    python benchmarks/identical_statistics.py --write before.json
    python benchmarks/identical_statistics.py --check before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np
import torch

import sparker


def _hex(values) -> list[str]:
    return [float(v).hex() for v in np.ravel(np.asarray(values, dtype=np.float64))]


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()


def _fit_record(model) -> dict:
    return {
        "statistic": _hex([model.statistic_]),
        "centres": _digest(model.centres_),
        "amplitudes": _hex(model.amplitudes_),
        "kernels": _digest([[k["n_data"], k["n_reference"], k["local_z"] or 0.0, float(k["active"])]
                            for k in model.kernels_]),
    }


def collect() -> dict:
    torch.set_num_threads(1)
    out: dict = {}
    for name, params in [("square2d", {}), ("expo1d", {}), ("gauss_highd", {"d": 16}),
                         ("digits_novelty", {}), ("genval", {})]:
        R, D, _ = sparker.scenarios.make(name, seed=3, **params)
        out[f"scenario/{name}"] = _digest(R, D)

    R, D, _ = sparker.scenarios.make("square2d", seed=1)
    m = sparker.SparKer(n_kernels=4, epochs=200, seed=2).fit(R, D)
    out["fit/square2d"] = _fit_record(m)
    out["fit/square2d/log_ratio"] = _digest(m.log_ratio(D[:50]))
    ex = m.explain(D[:50])
    out["fit/square2d/explain"] = _digest(ex.log_ratio, ex.owner, ex.region, ex.contributions)

    layers = [{"n_kernels": 2, "sigma_end_quantile": 0.1}, {"n_kernels": 3}]
    m = sparker.SparKer(epochs=150, layers=layers, seed=5).fit(R, D)
    out["fit/stack"] = _fit_record(m)

    rng = np.random.default_rng(0)
    Rg = rng.standard_normal((1500, 3))
    Dg = np.vstack([rng.standard_normal((140, 3)), 0.1 * rng.standard_normal((15, 3)) + 1.5])
    w = np.exp(-0.2 * Rg[:, 0])
    m = sparker.SparKer(n_kernels=3, epochs=150, seed=1).fit(Rg, Dg, reference_weight=w)
    out["fit/weighted"] = _fit_record(m)
    m = sparker.SparKer(n_kernels=3, epochs=150, competition="softmax", reseed=False, seed=4).fit(Rg, Dg)
    out["fit/softmax"] = _fit_record(m)

    res = sparker.test(Rg, Dg, n_null=20, seed=7, epochs=120, n_kernels=[2, 4])
    out["test/resample"] = {"statistic": _hex([res.statistic]), "pvalue": _hex([res.pvalue]),
                            "null": _hex(res.null_distribution)}
    Rp, Dp = Rg[:300], Dg
    res = sparker.test(Rp, Dp, n_null=18, seed=8, epochs=100, n_kernels=3)
    out["test/permutation"] = {"statistic": _hex([res.statistic]), "null": _hex(res.null_distribution)}

    cal = sparker.calibrate(Rg, 150, n_null=17, seed=9, epochs=100, n_kernels=3)
    out["calibration/null"] = _hex(cal.null)
    res = cal.test(Dg[:150])
    out["calibration/test"] = {"statistic": _hex([res.statistic]), "pvalue": _hex([res.pvalue])}

    for name, fn in sparker.baselines.BASELINES.items():
        kw = {"n_null": 19, "seed": 11}
        res = fn(Rg[:600], Dg, **kw)
        out[f"baseline/{name}"] = {"statistic": _hex([res.statistic]), "null": _hex(res.null_distribution)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="FILE")
    g.add_argument("--check", metavar="FILE")
    args = p.parse_args(argv)
    got = collect()
    if args.write:
        with open(args.write, "w") as fh:
            json.dump(got, fh, indent=1, sort_keys=True)
        print(f"wrote {len(got)} records to {args.write}")
        return 0
    with open(args.check) as fh:
        want = json.load(fh)
    bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    for k in bad:
        print(f"DIFFERS: {k}")
    print(f"{len(want) - len(bad)} of {len(want)} records identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
