"""Ablations behind SparKer's defaults: power and cost of training variants on several scenarios.

Each variant is SparKer with a few settings changed from the defaults; every
variant runs the same power study (same draws, same seeds; statistic mode:
thresholds from null draws) on each scenario at one rare signal fraction.
Printed per variant and scenario: power at alpha = 0.05 with its 68 %
interval, median Z, seconds per fit, and power per CPU-second of the fits.
Results go to ``OUT/tuning.json`` and ``OUT/tuning.md``; a variant and
scenario already in ``OUT/`` is read back, not rerun.

Usage::

    python benchmarks/tune_defaults.py --out tuning
    python benchmarks/tune_defaults.py --variants default,M4,M16 --scenarios square2d --n-toys 10 --out /tmp/t
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sparker.bench import power_study

#: label -> SparKer settings changed from the defaults
VARIANTS = {
    "default": {},
    "M4": {"n_kernels": 4},
    "M16": {"n_kernels": 16},
    "epochs300": {"epochs": 300},
    "constant-width": {"schedule": "constant"},
    "no-reseed": {"reseed": False},
    "competition-none": {"competition": "none"},
    "competition-softmax": {"competition": "softmax"},
}


def _run(scenario, label, args):
    path = args.out / f"{scenario}-{label}.json"
    if path.exists():
        return json.loads(path.read_text())
    study = power_study(scenario, methods=["sparker"], fractions=[0.0, args.fraction], n_toys=args.n_toys,
                        n_null_draws=args.n_null_draws, seed=args.seed, backend="processes",
                        n_workers=args.n_workers, threads=1, options={"sparker": VARIANTS[label]})
    row = study.rows[1]
    out = {"scenario": scenario, "variant": label, "settings": VARIANTS[label], **row,
           "params": study.params}
    path.write_text(json.dumps(out))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--scenarios", default="square2d,expo1d,gauss_highd")
    p.add_argument("--fraction", type=float, default=0.01)
    p.add_argument("--n-toys", type=int, default=15)
    p.add_argument("--n-null-draws", type=int, default=30)
    p.add_argument("--n-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = args.variants.split(",")
    unknown = sorted(set(labels) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    rows = [_run(s, v, args) for s in args.scenarios.split(",") for v in labels]
    lines = [f"Signal fraction {args.fraction:g}; {args.n_toys} signal and {args.n_null_draws} null draws each.",
             "", "| scenario | variant | power (68% CI) | median Z | s/fit | power / CPU-s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        z = "-" if r["median_z"] is None else f"{r['median_z']:.2f}"
        lines.append(f"| {r['scenario']} | {r['variant']} | {r['power']:.2f} [{r['ci_low']:.2f}, "
                     f"{r['ci_high']:.2f}] | {z} | {r['seconds_per_draw']:.2f} | "
                     f"{r['power'] / r['seconds_per_draw']:.3f} |")
    (args.out / "tuning.json").write_text(json.dumps(rows, indent=1))
    (args.out / "tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
