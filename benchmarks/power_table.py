"""The power table of docs/measurements.md: ``sparker bench power`` on several scenarios, one Markdown table.

Every method runs with its own defaults on the same draws (the draws' seeds depend only
on ``--seed``, the fraction's position in ``--fractions`` and the draw's index, so a study
with fewer draws uses the first draws of a larger one).  ``--methods`` get ``--n-toys``
signal draws per fraction and ``--n-null-draws`` null draws; ``--few-methods`` (the costly
baselines) get ``--few-n-toys`` and ``--few-null-draws``.  Each row names its strongest
baseline and SparKer's difference to it.

Each scenario's study is written to ``OUT/<scenario>/`` (and ``OUT/<scenario>/few/``;
power.json, power.csv, power.png) as soon as it finishes, and a study already there is
read back instead of rerun, so an interrupted run resumes scenario by scenario.

Usage::

    python benchmarks/power_table.py --out power-results            # every scenario, CI sizes
    python benchmarks/power_table.py --scenarios square2d,expo1d --n-toys 10 --out /tmp/power
    python benchmarks/power_table.py --methods sparker,nplm_kernel,mmd --n-toys 30 --n-null-draws 50 \\
        --few-methods mmd_agg,c2st --few-n-toys 10 --few-null-draws 20 --out power
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sparker.app.bench import CI_SIZES, power_study, write_study

DEFAULT_SCENARIOS = "square2d,expo1d,gauss_highd,digits_novelty,shuttle_intrusion,genval"


def _rows(path: Path) -> list[dict]:
    study = json.loads(path.read_text())
    n_null = study["settings"]["n_null_draws"]
    return [{"scenario": study["scenario"], "n_null_draws": n_null, **r} for r in study["rows"]]


def _cell(row: dict) -> str:
    if row["power"] is None:
        return "-"
    z = row["median_z"]
    z = "" if z is None else f", Z {z:.1f}" if abs(z) != float("inf") else f", Z {'>' if z > 0 else '<'}"
    return f"{row['power']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]{z}"


def _order(scenario: str) -> int:
    return list(CI_SIZES).index(scenario) if scenario in CI_SIZES else len(CI_SIZES)


def best_baseline(rows: list[dict], scenario: str, fraction: float) -> dict | None:
    """The row of the strongest baseline (not SparKer) at ``scenario`` and ``fraction``: the
    highest power, ties broken by more draws, then by the higher median Z."""
    cands = [r for r in rows if r["scenario"] == scenario and r["fraction"] == fraction
             and r["method"] != "sparker" and r["power"] is not None]
    if not cands:
        return None
    return max(cands, key=lambda r: (r["power"], r["n_toys"], r["median_z"] or 0.0))


def markdown(rows: list[dict], methods: list[str]) -> str:
    """The power table (one row per scenario and signal fraction, the strongest baseline and
    SparKer's difference to it) and the seconds per draw."""
    draws = {}
    for r in rows:
        if r["fraction"] > 0:
            draws.setdefault(r["method"], set()).add((r["n_toys"], r["n_null_draws"]))
    heads = [m + "".join(f" ({n}/{k})" for n, k in sorted(draws.get(m, ()))) for m in methods]
    lines = ["| scenario | fraction | " + " | ".join(heads) + " | strongest baseline | SparKer - it |",
             "| --- | --- | " + " | ".join("---" for _ in methods) + " | --- | --- |"]
    keys = sorted({(r["scenario"], r["fraction"]) for r in rows if r["fraction"] > 0},
                  key=lambda k: (_order(k[0]), k[0], k[1]))
    for scen, f in keys:
        cells = []
        for m in methods:
            match = [r for r in rows if r["scenario"] == scen and r["fraction"] == f and r["method"] == m]
            cells.append(_cell(match[0]) if match else "n/a")
        best = best_baseline(rows, scen, f)
        ours = [r for r in rows if r["scenario"] == scen and r["fraction"] == f and r["method"] == "sparker"]
        gap = f"{ours[0]['power'] - best['power']:+.2f}" if best and ours else "n/a"
        lines.append(f"| {scen} | {f:g} | " + " | ".join(cells) + f" | {best['method'] if best else 'n/a'} | {gap} |")
    scens = sorted({r["scenario"] for r in rows}, key=lambda s: (_order(s), s))
    lines += ["", "| method | " + " | ".join(scens) + " |", "| --- | " + " | ".join("---" for _ in scens) + " |"]
    for m in methods:
        cells = []
        for s in scens:
            secs = [r["cpu_seconds_per_draw"] for r in rows if r["scenario"] == s and r["method"] == m]
            cells.append(f"{sum(secs) / len(secs):.2f} s" if secs else "n/a")
        lines.append(f"| {m} (CPU per draw) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _study(scen: str, methods: list[str], n_toys: int, n_null_draws: int, target: Path, args) -> list[dict]:
    if not (target / "power.json").exists():
        start = time.perf_counter()
        study = power_study(scen, methods=methods, fractions=[float(f) for f in args.fractions.split(",")],
                            n_toys=n_toys, n_null_draws=n_null_draws, seed=args.seed,
                            backend="processes", n_workers=args.n_workers, threads=1,
                            progress=args.progress)
        write_study(study, target)
        print(f"{scen} ({','.join(methods)}): {time.perf_counter() - start:.0f} s", flush=True)
    return _rows(target / "power.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    p.add_argument("--methods", default="sparker,nplm_kernel,mmd,mmd_agg,c2st")
    p.add_argument("--fractions", default="0,0.005,0.01,0.02")
    p.add_argument("--n-toys", type=int, default=15, help="signal draws per fraction of --methods")
    p.add_argument("--n-null-draws", type=int, default=30, help="null draws of --methods")
    p.add_argument("--few-methods", default="", help="methods run on fewer draws (the first ones of the same draws)")
    p.add_argument("--few-n-toys", type=int, default=10)
    p.add_argument("--few-null-draws", type=int, default=20)
    p.add_argument("--n-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    few = [m for m in args.few_methods.split(",") if m]
    if set(methods) & set(few):
        p.error(f"--few-methods: {sorted(set(methods) & set(few))} also in --methods")
    rows = []
    for scen in args.scenarios.split(","):
        rows += _study(scen, methods, args.n_toys, args.n_null_draws, args.out / scen, args)
        if few:
            rows += _study(scen, few, args.few_n_toys, args.few_null_draws, args.out / scen / "few", args)
    table = markdown(rows, methods + few)
    (args.out / "power_table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
