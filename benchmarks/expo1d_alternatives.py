"""Median significance on the NPLM Expo1D alternatives H1-H4, beside the ideal Z.

The NPLM papers' one-dimensional benchmark (``sparker.scenarios.expo1d_h1`` ... ``_h4``:
200,000 Exp(1) reference events, a Poisson background of expected 2,000 events, and a
narrow tail peak, a broad excess, a narrow bulk peak or a tail deficit).  Every method
runs with its own defaults in statistic mode: ``--n-null`` draws of the null version
(shared by the four alternatives: for a given seed their null versions are the same
arrays) and ``--n-signal`` draws of each alternative at its published size.

Printed per method and alternative:

- the power at alpha = 0.05 against thresholds from the null draws, with its 68%
  Clopper-Pearson interval (SparKer's three scales combined by the calibrated test's
  aggregation, ``sparker.stats.DEFAULT_AGGREGATION``);
- the median Z from a chi2 fit of the null draws, the NPLM papers' convention for
  significances beyond the toys' resolution (SparKer: each scale's statistic through its
  own fit, the smallest p-value times 3, a Bonferroni bound for the three scales);
- the median empirical Z, capped by the null draws' resolution;
- the ideal Z (the Neyman-Pearson test that knows the alternative), which no
  signal-agnostic test can exceed.

Draws run in ``--workers`` processes with one torch thread each; finished draws are kept
in ``OUT/draws.json``, so an interrupted study resumes.  Results: ``OUT/expo1d.json`` and
``OUT/expo1d.md``.

Usage::

    python benchmarks/expo1d_alternatives.py --out expo1d --n-null 20 --n-signal 10 --workers 2
    python benchmarks/expo1d_alternatives.py --out /tmp/e --n-null 4 --n-signal 2 --n-reference 20000
    python benchmarks/expo1d_alternatives.py --out expo1d-rb --methods sparker --option sparker.reference_batch=2000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from scipy import stats as st

#: the alternatives and their published sizes (EXPO1D_ALTERNATIVES), the null version first
HYPOTHESES = ("null", "H1", "H2", "H3", "H4")
#: seeds of the null draws start here, so that no null draw shares a seed with a signal draw
NULL_SEED = 100_000


def _draw(method: str, hypothesis: str, seed: int, n_reference: int, options: dict | None = None) -> dict:
    """One draw of ``hypothesis`` (the null version for "null"): the method's statistic(s)."""
    import torch

    from sparker.app.bench import STATISTICS
    from sparker.scenarios import EXPO1D_ALTERNATIVES, make

    torch.set_num_threads(1)
    if hypothesis == "null":
        reference, data, _ = make("expo1d_h1", seed=seed, n_reference=n_reference, n_signal=0)
    else:
        reference, data, _ = make(EXPO1D_ALTERNATIVES[hypothesis]["scenario"], seed=seed, n_reference=n_reference)
    start = time.process_time()
    t = STATISTICS[method](reference, data, seed=seed, **(options or {}).get(method, {}))
    return {"t": np.atleast_1d(np.asarray(t, dtype=np.float64)).tolist(), "cpu_s": time.process_time() - start}


def _key(method: str, hypothesis: str, seed: int) -> str:
    return f"{method}/{hypothesis}/{seed}"


def _tasks(methods, n_null: int, n_signal: int) -> list[tuple[str, str, int]]:
    tasks = []
    for m in methods:
        tasks += [(m, "null", NULL_SEED + i) for i in range(n_null)]
        tasks += [(m, h, i) for h in HYPOTHESES[1:] for i in range(n_signal)]
    return tasks


def _chi2_pvalues(null: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """p-value of every signal draw from chi2 fits of the null draws, (n_alt,).

    One statistic per draw: its fit's p-value.  K per draw (SparKer's scales): each column
    through its own fit, then ``min(1, K min_k p_k)`` (Bonferroni).
    """
    from sparker.stats import fit_chi2

    fits = [fit_chi2(null[:, k]) for k in range(null.shape[1])]
    p = np.column_stack([np.asarray(f.pvalue(alt[:, k]), dtype=np.float64) for k, f in enumerate(fits)])
    return np.minimum(1.0, p.shape[1] * p.min(1))


def summarise(draws: dict, methods, n_null: int, n_signal: int, alpha: float) -> list[dict]:
    from sparker.app.bench import power_from_draws
    from sparker.scenarios import EXPO1D_ALTERNATIVES

    rows = []
    for m in methods:
        null = np.array([draws[_key(m, "null", NULL_SEED + i)]["t"] for i in range(n_null)])
        for h in HYPOTHESES[1:]:
            alt = np.array([draws[_key(m, h, i)]["t"] for i in range(n_signal)])
            found = power_from_draws(null[:, 0] if null.shape[1] == 1 else null,
                                     alt[:, 0] if alt.shape[1] == 1 else alt, alpha)
            z_chi2 = st.norm.isf(_chi2_pvalues(null, alt))
            cpu = np.mean([draws[_key(m, h, i)]["cpu_s"] for i in range(n_signal)])
            rows.append({"method": m, "hypothesis": h, "power": found["power"], "ci_low": found["ci_low"],
                         "ci_high": found["ci_high"], "median_z_chi2": float(np.median(z_chi2)),
                         "median_z_empirical": found["median_z"],
                         "z_ideal": float(EXPO1D_ALTERNATIVES[h]["z_ideal"]), "cpu_s_per_draw": float(cpu),
                         "n_signal": n_signal, "n_null": n_null})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | alternative | power (68% interval) | median Z, chi2 fit | median Z, empirical | "
             "Z ideal | CPU s per draw |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['hypothesis']} | {r['power']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
                     f"| {r['median_z_chi2']:.2f} | {r['median_z_empirical']:.2f} | {r['z_ideal']:.1f} | "
                     f"{r['cpu_s_per_draw']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for draws.json, expo1d.json and expo1d.md")
    p.add_argument("--methods", default="sparker,nplm_kernel", help="comma-separated (default: sparker,nplm_kernel)")
    p.add_argument("--n-null", type=int, default=20, help="null draws per method (default: 20)")
    p.add_argument("--n-signal", type=int, default=10, help="signal draws per alternative (default: 10)")
    p.add_argument("--n-reference", type=int, default=200_000, help="reference events (default: 200,000)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--workers", type=int, default=1, help="processes, one torch thread each (default: 1)")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a setting of one method (repeatable), e.g. sparker.reference_batch=2000; the draws "
                        "in --out must come from the same options")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    options: dict = {}
    for item in args.option:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        if not name or method not in methods:
            p.error(f"--option: expected METHOD.KEY=VALUE with METHOD among {methods}, got {item!r}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass  # a plain string
        options.setdefault(method, {})[name] = value
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "draws.json"
    draws = json.loads(store.read_text()) if store.exists() else {}
    todo = [t for t in _tasks(methods, args.n_null, args.n_signal) if _key(*t) not in draws]
    print(f"{len(todo)} draws to run ({len(draws)} found in {store})", flush=True)
    os.environ["OMP_NUM_THREADS"] = "1"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        futures = {pool.submit(_draw, m, h, s, args.n_reference, options): (m, h, s) for m, h, s in todo}
        for i, fut in enumerate(as_completed(futures), 1):
            draws[_key(*futures[fut])] = fut.result()
            store.write_text(json.dumps(draws))
            m, h, s = futures[fut]
            print(f"  [{i}/{len(todo)}] {m} {h} seed {s}: t = {np.round(draws[_key(m, h, s)]['t'], 2).tolist()}",
                  flush=True)
    rows = summarise(draws, methods, args.n_null, args.n_signal, args.alpha)
    (args.out / "expo1d.json").write_text(json.dumps({"rows": rows, "n_reference": args.n_reference,
                                                      "options": options}, indent=1))
    md = table(rows)
    (args.out / "expo1d.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
