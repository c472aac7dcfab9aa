"""The power table of docs/measurements.md: ``sparker bench power`` on several scenarios, one Markdown table.

Each scenario's study is written to ``OUT/<scenario>/`` (power.json, power.csv,
power.png) as soon as it finishes, and a study already there is read back
instead of rerun, so an interrupted run resumes scenario by scenario.

Usage::

    python benchmarks/power_table.py --out power-results            # every scenario, CI sizes
    python benchmarks/power_table.py --scenarios square2d,expo1d --n-toys 10 --out /tmp/power
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
    return [{"scenario": study["scenario"], **r} for r in study["rows"]]


def _cell(row: dict) -> str:
    if row["power"] is None:
        return "-"
    z = row["median_z"]
    z = "" if z is None else f", Z {z:.1f}" if abs(z) != float("inf") else f", Z {'>' if z > 0 else '<'}"
    return f"{row['power']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]{z}"


def markdown(rows: list[dict], methods: list[str]) -> str:
    lines = ["| scenario | fraction | " + " | ".join(methods) + " |",
             "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    keys = sorted({(r["scenario"], r["fraction"]) for r in rows if r["fraction"] > 0},
                  key=lambda k: (list(CI_SIZES).index(k[0]), k[1]))
    for scen, f in keys:
        cells = []
        for m in methods:
            match = [r for r in rows if r["scenario"] == scen and r["fraction"] == f and r["method"] == m]
            cells.append(_cell(match[0]) if match else "n/a")
        lines.append(f"| {scen} | {f:g} | " + " | ".join(cells) + " |")
    lines += ["", "| method | " + " | ".join(sorted({r['scenario'] for r in rows},
                                                    key=list(CI_SIZES).index)) + " |"]
    scens = sorted({r["scenario"] for r in rows}, key=list(CI_SIZES).index)
    lines.append("| --- | " + " | ".join("---" for _ in scens) + " |")
    for m in methods:
        cells = []
        for s in scens:
            secs = [r["seconds_per_draw"] for r in rows if r["scenario"] == s and r["method"] == m]
            cells.append(f"{sum(secs) / len(secs):.2f} s" if secs else "n/a")
        lines.append(f"| {m} (per draw) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    p.add_argument("--methods", default="sparker,nplm_kernel,mmd,mmd_agg,c2st")
    p.add_argument("--fractions", default="0,0.005,0.01,0.02")
    p.add_argument("--n-toys", type=int, default=15)
    p.add_argument("--n-null-draws", type=int, default=30)
    p.add_argument("--n-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    rows = []
    for scen in args.scenarios.split(","):
        target = args.out / scen / "power.json"
        if not target.exists():
            start = time.perf_counter()
            study = power_study(scen, methods=methods, fractions=[float(f) for f in args.fractions.split(",")],
                                n_toys=args.n_toys, n_null_draws=args.n_null_draws, seed=args.seed,
                                backend="processes", n_workers=args.n_workers, threads=1,
                                progress=args.progress)
            write_study(study, args.out / scen)
            print(f"{scen}: {time.perf_counter() - start:.0f} s", flush=True)
        rows += _rows(target)
    table = markdown(rows, methods)
    (args.out / "power_table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
