"""Ablations behind SparKer's defaults: power and cost of training variants on several scenarios.

Each variant is SparKer with a few settings changed from the defaults; every
variant runs the same power study (same draws, same seeds; statistic mode:
thresholds from null draws) on each scenario at one rare signal fraction
(``--scenarios name:fraction,...``; the fraction where the defaults are neither
certain to detect nor hopeless).  Printed per variant and scenario: power at
alpha = 0.05 with its 68 % interval, median Z, CPU seconds per fit, and power
per CPU-second.  The fits run one at a time in this process with one torch
thread, so the CPU seconds are the fit's own.  Results go to ``OUT/tuning.json``
and ``OUT/tuning.md``; a variant and scenario already in ``OUT/`` is read back,
not rerun, so an interrupted study resumes.

Usage::

    python benchmarks/tune_defaults.py --out tuning
    python benchmarks/tune_defaults.py --variants default,M4,M16 --scenarios square2d:0.05 --n-toys 10 --out /tmp/t
    python benchmarks/tune_defaults.py --variants default,broad4 --aggregate default+broad4 --out tuning
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sparker.app.bench import power_from_draws, power_study
from sparker.stats import AGGREGATIONS

#: the calibrated test's two broader scales as they were measured first (sparker.config.SCALES
#: without the widest scale's a_max of 5, which 0.5.0 added: that one is ``wider4-amax5``)
MID4 = {"n_kernels": 4, "sigma_end_quantile": 0.02, "epochs": 500}
WIDER4 = {"n_kernels": 4, "sigma_end_quantile": 0.5, "epochs": 300}

#: label -> SparKer settings changed from the defaults (one configuration, the default narrow
#: ensemble, unless ``scales`` says otherwise)
VARIANTS = {
    "default": {},
    # the calibrated test's default: the three scales of sparker.config.SCALES, min-p
    "multi": {"scales": "multi"},
    "M4": {"n_kernels": 4},
    "M16": {"n_kernels": 16},
    "epochs300": {"epochs": 300},
    "constant-width": {"schedule": "constant"},
    "no-reseed": {"reseed": False},
    "competition-none": {"competition": "none"},
    "competition-softmax": {"competition": "softmax"},
    "lr-x2": {"lr_centres": 0.14, "lr_amplitudes": 0.1},
    "end-q0.01": {"sigma_end_quantile": 0.01},
    "end-q0.05": {"sigma_end_quantile": 0.05},
    # a broad block (4 kernels ending at the 5 % distance quantile) fitted first, then
    # the default block on top of it: for signals broader than the default end width
    "two-scale": {"layers": [{"n_kernels": 4, "sigma_end_quantile": 0.05}, {}]},
    # the same with a short broad block (300 epochs): about 1.15x the default's cost
    "two-scale-short": {"layers": [{"n_kernels": 4, "sigma_end_quantile": 0.05, "epochs": 300}, {}]},
    # broad, medium and narrow blocks, as the authors' hierarchical layers (about 1.75x)
    "three-scale": {"layers": [{"n_kernels": 2, "sigma_end_quantile": 0.3, "epochs": 300},
                               {"n_kernels": 4, "sigma_end_quantile": 0.05, "epochs": 500}, {}]},
    # the same with four broad kernels (smooth signed modulations such as perturbed_uniform)
    "three-scale-b4": {"layers": [{"n_kernels": 4, "sigma_end_quantile": 0.3, "epochs": 300},
                                  {"n_kernels": 4, "sigma_end_quantile": 0.05, "epochs": 500}, {}]},
    # cheap broad configurations, for min-p aggregation with the default (``--aggregate``)
    "broad4": {"n_kernels": 4, "sigma_end_quantile": 0.05, "epochs": 300},
    "broad2": {"n_kernels": 2, "sigma_end_quantile": 0.3, "epochs": 300},
    "mid4": MID4,
    # broader still: four kernels ending at the 20 % or 50 % distance quantile
    "wide4": {"n_kernels": 4, "sigma_end_quantile": 0.2, "epochs": 300},
    "wider4": WIDER4,
}

#: tag -> one change applied to each of the three scales: ``TAG`` (the narrow ensemble),
#: ``mid4-TAG`` and ``wider4-TAG``
PER_SCALE = {
    # reference batches (``reference_batch``): each epoch reads the data and 1,000 reference
    # rows (about N_D at the study's sizes)
    "rb1000": {"reference_batch": 1000},
    # ... and data batches (``data_batch``): a quarter of the data rows per epoch, a harsher
    # ratio of slice to signal than "auto" meets at large sizes (a proxy: at CI sizes a rare
    # signal has a few points per slice)
    "rb1000-db250": {"reference_batch": 1000, "data_batch": 250},
    # a lower amplitude clip: a kernel on a lone point gains about one loss unit per unit of
    # amplitude, so the clip bounds the noise it fits
    "amax5": {"a_max": 5.0},
    "amax3": {"a_max": 3.0},
    # a stronger L1 penalty: from 1 on, a kernel on one lone data point no longer pays for
    # its amplitude
    "l1-1": {"l1": 1.0},
    "l1-2": {"l1": 2.0},
}
for _tag, _change in PER_SCALE.items():
    VARIANTS.update({_tag: _change, f"mid4-{_tag}": {**MID4, **_change}, f"wider4-{_tag}": {**WIDER4, **_change}})
# the three scales of the 0.6 default test (l1-1, mid4, wider4-amax5, the amplitudes where Adam
# got them) with the amplitudes solved where the width ends (``solve_amplitudes``, 0.7's default)
for _label in ("l1-1", "mid4", "wider4-amax5"):
    VARIANTS[f"{_label}-solve"] = {**VARIANTS[_label], "solve_amplitudes": True}
# the default test's narrow scale with its schedule stretched by half (1,500 epochs): a longer
# settling window after the solve (docs/defaults.md, "Settling")
VARIANTS["l1-1-solve-e1500"] = {**VARIANTS["l1-1-solve"], "epochs": 1500}
# the widest scale ending further out: at the 80 % or 90 % distance quantile (kernel NPLM's
# width is the 90 % quantile), for excesses as broad as a third of the range (Expo1D H2)
for _q in (0.8, 0.9):
    VARIANTS[f"widest-q{_q:g}"] = {**VARIANTS["wider4-amax5-solve"], "sigma_end_quantile": _q}

#: scenario -> the rare signal fraction the study uses by default
SCENARIOS = {"square2d": 0.05, "expo1d": 0.01, "gauss_highd": 0.01, "digits_novelty": 0.02,
             "shuttle_intrusion": 0.01, "genval": 0.01, "perturbed_uniform": 0.3}


def _cell(out: Path, scenario: str, fraction: float, label: str) -> Path:
    """Where one (scenario, fraction, variant) cell of the study is kept."""
    return out / f"{scenario}-{fraction:g}-{label}.json"


def _run(scenario, fraction, label, args):
    path = _cell(args.out, scenario, fraction, label)
    if path.exists():
        return json.loads(path.read_text())
    settings = {"scales": "single", **VARIANTS[label]}  # a variant is one configuration unless it says
    study = power_study(scenario, methods=["sparker"], fractions=[0.0, fraction], n_toys=args.n_toys,
                        n_null_draws=args.n_null_draws, seed=args.seed, threads=1,
                        options={"sparker": settings})
    row = study.rows[1]
    null, signal = (v.tolist() for v in study.statistics["sparker"])
    out = {"scenario": scenario, "variant": label, "settings": VARIANTS[label], **row,
           "params": study.params, "null_statistics": null, "signal_statistics": signal}
    path.write_text(json.dumps(out))
    return out


def _aggregated(rows, combo: str, rule: str, alpha: float = 0.05) -> list[dict]:
    """Rows of the calibrated min-p (or ``rule``) aggregation of the variants in ``combo``
    ("a+b+c"): every variant ran on the same draws, so each draw has one statistic per
    variant; each signal draw is tested against the null draws with :func:`power_from_draws`.
    The CPU cost is the sum of the variants' (the configurations share the toys, not the fits)."""
    parts = combo.split("+")
    cell = {(r["variant"], r["scenario"]): r for r in rows}
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        cells = [cell.get((v, scenario)) for v in parts]
        if any(c is None or "null_statistics" not in c for c in cells):
            continue
        null = np.column_stack([c["null_statistics"] for c in cells])  # (n_null, K)
        signal = np.column_stack([c["signal_statistics"] for c in cells])  # (n_signal, K)
        found = power_from_draws(null, signal, alpha, method=rule)
        out.append({**cells[0], "variant": combo, "settings": [c["settings"] for c in cells],
                    "power": found["power"], "ci_low": found["ci_low"], "ci_high": found["ci_high"],
                    "median_z": found["median_z"],
                    "cpu_seconds_per_draw": sum(c["cpu_seconds_per_draw"] for c in cells)})
    return out


def _summary(rows, labels, plan) -> list[str]:
    """One line per variant: power per scenario, then (once every scenario is done) the
    summed power, the summed CPU seconds per fit, and their ratio (power per CPU-second)."""
    cell = {(r["variant"], r["scenario"]): r for r in rows}
    names = [s for s, _ in plan]
    out = ["| variant | " + " | ".join(names) + " | sum of power | CPU s per fit, summed | power / CPU-s |",
           "| --- |" + " --- |" * (len(names) + 3)]
    for v in labels:
        done = [cell[(v, s)] for s in names if (v, s) in cell]
        if not done:
            continue
        pw = sum(r["power"] for r in done)
        cpu = sum(r["cpu_seconds_per_draw"] for r in done)
        cols = [f"{cell[(v, s)]['power']:.2f}" if (v, s) in cell else "-" for s in names]
        sums = f"{pw:.2f} | {cpu:.1f} | {pw / cpu:.3f}" if len(done) == len(names) else "- | - | -"
        out.append(f"| {v} | " + " | ".join(cols) + f" | {sums} |")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--scenarios", default=",".join(s for s in SCENARIOS if s != "genval"),
                   help="comma-separated name[:fraction] (default fraction: SCENARIOS; genval, at "
                        "about 10 CPU s per fit, is left out by default)")
    p.add_argument("--n-toys", type=int, default=10)
    p.add_argument("--n-null-draws", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--aggregate", default="",
                   help="comma-separated combinations of variants joined by '+' (e.g. default+broad4), "
                        "each evaluated as a calibrated aggregation of its variants' statistics on the "
                        "same draws (every variant in it must be in --variants)")
    p.add_argument("--rule", default="minp", choices=sorted(AGGREGATIONS))
    p.add_argument("--report", action="store_true",
                   help="only tabulate the results already in --out (run nothing)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = args.variants.split(",")
    unknown = sorted(set(labels) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    plan = []
    for item in args.scenarios.split(","):
        name, _, frac = item.partition(":")
        if name not in SCENARIOS and not frac:
            p.error(f"--scenarios: give a fraction for {name!r} (name:fraction)")
        plan.append((name, float(frac) if frac else SCENARIOS[name]))
    # variant-major: an interrupted study has every scenario for its first variants
    if args.report:
        rows = [json.loads(q.read_text()) for v in labels for s, f in plan
                if (q := _cell(args.out, s, f, v)).exists()]
    else:
        rows = [_run(s, f, v, args) for v in labels for s, f in plan]
    combos = [c for c in args.aggregate.split(",") if c]
    for combo in combos:
        missing = sorted(set(combo.split("+")) - set(labels))
        if missing:
            p.error(f"--aggregate: {combo!r} uses variants {missing} that are not in --variants")
        rows += _aggregated(rows, combo, args.rule)
    labels = labels + combos
    lines = [f"{args.n_toys} signal and {args.n_null_draws} null draws per cell; CPU seconds per fit, "
             "one thread.", "",
             "| scenario | fraction | variant | power (68% CI) | median Z | CPU s/fit | power / CPU-s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["scenario"], labels.index(r["variant"]))):
        z = "-" if r["median_z"] is None else f"{r['median_z']:.2f}"
        cpu = r["cpu_seconds_per_draw"]
        lines.append(f"| {r['scenario']} | {r['fraction']:g} | {r['variant']} | {r['power']:.2f} "
                     f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {z} | {cpu:.2f} | {r['power'] / cpu:.3f} |")
    lines += ["", *_summary(rows, labels, plan)]
    (args.out / "tuning.json").write_text(json.dumps(rows, indent=1))
    (args.out / "tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
