"""``sparker demo``: the embedded end-to-end example.

Builds the ``square2d`` scenario (paper, fig. 4: a uniform square with three
small clumps) and runs a small calibrated test (4 kernels, :data:`DEMO_N_NULL`
null toys: about a minute on two cores), so that the verdict and the report open
with a p-value and Z.  It prints the verdict, the kernel table and how close the
kernels came to the true clumps, and writes ``report.html`` (with the true clump
positions drawn on the 2-D view), ``result.json`` and ``model.npz``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..calibration import test as calibrated_test
from ..estimator import SparKer
from ..results import TestResult
from ..scenarios import make
from .files import report_files
from .flags import positive_int, tty_default

__all__ = ["HELP", "add_arguments", "run", "DEMO_SCENARIO", "DEMO_KERNELS", "DEMO_N_NULL", "DEMO_TOLERANCE"]

HELP = ("run the square2d scenario end to end (4 kernels, 3 clumps, a calibrated test with 19 null toys) "
        "and write a report")

DEMO_SCENARIO = "square2d"
DEMO_KERNELS = 4
#: Null toys of the demo's test: p = 1/20 = 0.05 at best, in about a minute on two cores.
DEMO_N_NULL = 19
#: A true clump counts as found when a kernel centre lies within this distance.
DEMO_TOLERANCE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker demo``."""
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the scenario, the fit and the toys (default: 0)")
    parser.add_argument("--n-null", type=positive_int, default=DEMO_N_NULL, metavar="N",
                        help="null toys of the test; p cannot go below 1/(N+1) (default: %(default)s)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        help="progress bar of the null toys on stderr (default: when stderr is a terminal)")
    parser.add_argument("--out", type=Path, default=Path("sparker-demo"), metavar="DIR",
                        help="folder for report.html, result.json and model.npz (default: ./sparker-demo)")
    parser.add_argument("--force", action="store_true", help="overwrite existing result files")


def _nearest_kernels(centres: np.ndarray, true_centres: np.ndarray, amplitudes: np.ndarray) -> list[dict]:
    """For each true anomaly centre, the nearest kernel centre and its distance."""
    distances = np.linalg.norm(true_centres[:, None, :] - centres[None, :, :], axis=-1)  # (k, M)
    rows = []
    for j, row in enumerate(distances):
        i = int(np.argmin(row))
        rows.append({
            "clump": true_centres[j].tolist(),
            "nearest_kernel": i,
            "distance": float(row[i]),
            "amplitude": float(amplitudes[i]),
            "found": bool(row[i] <= DEMO_TOLERANCE),
        })
    return rows


def _fmt_point(values) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _demo_report(result: TestResult, reference, data, truth, comparison, seconds: float, seed: int) -> str:
    model, verdict = result.model, result.verdict()
    params = truth["params"]
    n_clumps = len(truth["centres"])
    lines = [
        (f"SparKer demo: scenario {DEMO_SCENARIO} (seed {seed}), {len(reference)} reference points, "
         f"{len(data)} data points of which {int(truth['is_anomaly'].sum())} in {n_clumps} clumps "
         f"(std {params['clump_std']})"),
        (f"fitted {DEMO_KERNELS} kernels and {result.n_null} null toys in {seconds:.1f} s: "
         f"{verdict['summary']}"),
        verdict["text"],
        "",
        (f"{'kernel':>6}  {'centre':<16}  {'amplitude':>9}  {'n_data':>8}  {'n_reference':>11}  "
         f"{'log ratio':>9}  {'local Z':>7}  {'active':>6}"),
    ]
    for k, c in zip(model.kernels_, model.centres_):
        ratio = "-" if k["log_ratio"] is None else f"{k['log_ratio']:+.2f}"
        z = "-" if k.get("local_z") is None else f"{k['local_z']:+.2f}"
        lines.append(f"{k['kernel']:>6}  {_fmt_point(c):<16}  {k['amplitude']:>+9.2f}  "
                     f"{k['n_data']:>8.1f}  {k['n_reference']:>11.1f}  {ratio:>9}  {z:>7}  "
                     f"{'yes' if k.get('active') else 'no':>6}")
    lines += ["", f"{'true clump':<16}  {'nearest kernel':>14}  {'distance':>8}"]
    for row in comparison:
        lines.append(f"{_fmt_point(row['clump']):<16}  {row['nearest_kernel']:>14}  {row['distance']:>8.3f}")
    n_found = sum(row["found"] for row in comparison)
    active = [i for i, k in enumerate(model.kernels_) if k.get("active")]
    on_clump = _active_on_clumps(model, np.asarray(truth["centres"]))
    lines += [
        "",
        f"{n_found} of {n_clumps} clumps have a kernel within {DEMO_TOLERANCE}",
        (f"{len(active)} active kernels (|local Z| >= 3); {sum(on_clump.values())} of them within "
         f"{DEMO_TOLERANCE} of a clump; {int(model.flag(data).sum())} data points flagged"),
        (f"higher log ratio = more anomalous; with {result.n_null} toys p cannot go below "
         f"1/({result.n_null}+1) = {result.resolution:.3g}: more toys (--n-null) give a finer p-value"),
    ]
    return "\n".join(lines)


def _active_on_clumps(model: SparKer, true_centres: np.ndarray) -> dict[int, bool]:
    """Active kernel -> whether its centre lies within the demo tolerance of a true clump."""
    centres = model.centres_
    return {
        i: bool(np.linalg.norm(true_centres - centres[i], axis=1).min() <= DEMO_TOLERANCE)
        for i, k in enumerate(model.kernels_) if k.get("active")
    }


def run(args: argparse.Namespace) -> int:
    """Run ``sparker demo``: a calibrated test, the kernel table, the report and the model."""
    from .report import write_report

    result_path, model_path, report_path = report_files(args.out, args.force)

    reference, data, truth = make(DEMO_SCENARIO, seed=args.seed)
    start = time.perf_counter()
    result = calibrated_test(reference, data, n_kernels=DEMO_KERNELS, n_null=args.n_null, seed=args.seed,
                             progress=tty_default(args.progress))
    seconds = time.perf_counter() - start
    model = result.model
    comparison = _nearest_kernels(model.centres_, np.asarray(truth["centres"]), model.amplitudes_)

    on_clump = _active_on_clumps(model, np.asarray(truth["centres"]))
    extra = {
        "scenario": DEMO_SCENARIO,
        "scenario_seed": args.seed,
        "scenario_params": truth["params"],
        "truth": {
            "centres": truth["centres"],
            "n_anomalies": int(truth["is_anomaly"].sum()),
            "tolerance": DEMO_TOLERANCE,
            "nearest_kernels": comparison,
            "n_found": sum(row["found"] for row in comparison),
            "n_active": len(on_clump),
            "n_active_on_clumps": sum(on_clump.values()),
        },
        "seconds": seconds,
        "sparker_version": __version__,
    }
    print(_demo_report(result, reference, data, truth, comparison, seconds, args.seed))
    write_report(args.out, result, reference=reference, data=data, extra=extra, overwrite=args.force,
                 true_centres=truth["centres"], title=f"SparKer demo: {DEMO_SCENARIO}, seed {args.seed}")
    model.save(model_path, overwrite=args.force)
    print(f"\nwrote {result_path} and {model_path}\nreport: {report_path}")
    return 0
