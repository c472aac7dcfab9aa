"""The command ``sparker monitor``: a stream of windows tested against one reference.

``sparker monitor --reference REF --windows WIN.csv --window-column COL --out DIR`` groups the
rows of ``WIN`` into windows by the value of column ``COL`` (in order of first appearance),
builds a :class:`sparker.Monitor` covering their sizes (``--min-size``/``--max-size``,
default: the smallest and the largest window) and tests every window.  It prints one line per
window (index, label, size, p-value, Z, estimated excess) as the tests finish and writes

- ``DIR/monitor.json``: the monitor (grid, seeds, settings) and every window's result;
- ``DIR/monitor.csv``: one row per window (:meth:`sparker.monitor.MonitorRun.to_frame`, plus
  ``alarm``: ``pvalue <= --alpha``);
- ``DIR/timeline.html``: a self-contained page with the p-values over the windows on a log
  axis, the ``--alpha`` line and the table of windows; the figure is an inline SVG, so the
  page needs neither matplotlib nor the network.

Outputs are refused before any work when they exist (unless ``--force``); window sizes
outside ``[--min-size, --max-size]`` are refused before any toy runs.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from .._validation import column_names
from .._version import __version__
from ..config import NullConfig
from ..io import atomic_write_text, read_table, write_json
from ..monitor import GRID_RATIO, Monitor, MonitorRun, WindowResult
from .files import add_input_flags, read_inputs, refuse_existing
from .flags import add_training_flags, positive_int, training_settings, tty_default

__all__ = ["HELP", "OUT_FILES", "add_arguments", "run", "group_windows", "timeline_html"]

log = logging.getLogger(__name__)

HELP = ("test a stream of windows (rows grouped by --window-column) against one reference: an exact "
        "calibrated test per window, its excess, and a timeline in --out")
#: What ``--out DIR`` receives.
OUT_FILES = ("monitor.json", "monitor.csv", "timeline.html")
#: Default level of an alarm.
ALPHA = 0.05
#: The monitor's parameters whose errors are reported as their flags.
_FLAGGED = ("min_size", "max_size", "grid_ratio", "n_null", "seed")

_NULL = NullConfig()
_CSV = (".csv", ".csv.gz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker monitor``."""
    io_group = add_input_flags(parser, data=False)
    io_group.add_argument("--windows", required=True, type=Path, metavar="FILE",
                          help="the stream: a table with a header (.csv or .parquet) holding the features "
                               "and --window-column")
    io_group.add_argument("--window-column", required=True, metavar="NAME",
                          help="numeric column of --windows whose value names each row's window; windows "
                               "come in the order of their first row")
    io_group.add_argument("--out", required=True, type=Path, metavar="DIR",
                          help="write DIR/monitor.json, DIR/monitor.csv and DIR/timeline.html")
    io_group.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    group = parser.add_argument_group("monitor", "one exact-count calibration per size of a geometric grid; "
                                      "a window is tested at the largest grid size below its own")
    group.add_argument("--min-size", type=positive_int, metavar="N",
                       help="smallest window to cover (default: the smallest window)")
    group.add_argument("--max-size", type=positive_int, metavar="N",
                       help="largest window to cover (default: the largest window)")
    group.add_argument("--grid-ratio", type=float, default=GRID_RATIO, metavar="R",
                       help="ratio of consecutive grid sizes, > 1: a window drops less than 1 - 1/R of its "
                            "points (default: %(default)s)")
    group.add_argument("--n-null", type=positive_int, default=_NULL.n_null, metavar="B",
                       help="null toys per grid size; p-value resolution 1/(B+1) (default: %(default)s)")
    group.add_argument("--seed", type=int, default=_NULL.seed, help="seed of every random choice "
                       "(default: %(default)s)")
    group.add_argument("--alpha", type=float, default=ALPHA, help="level of an alarm (default: %(default)s)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction,
                       help="progress bar of the toys on stderr (default: when stderr is a terminal)")
    group.add_argument("--device", help="torch device to train on (default: cpu)")
    add_training_flags(parser, lists=True)


# ------------------------------------------------------------------ reading the stream
def _label(value: float):
    """A window's label: an integer when the column's value is one."""
    return int(value) if float(value).is_integer() else float(value)


def group_windows(values: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """(label, row indices) of each window, in the order of the windows' first rows."""
    uniques, first = np.unique(values, return_index=True)
    return [(_label(uniques[k]), np.flatnonzero(values == uniques[k])) for k in np.argsort(first)]


def _feature_columns(names: list[str], column: str, args: argparse.Namespace, reference_names) -> list[str]:
    """The windows' feature columns, in the reference's order when it names its columns."""
    features = [n for n in names if n != column]
    wanted = args.columns if args.columns is not None else reference_names
    if wanted is None:
        return features
    missing = [n for n in wanted if n not in features]
    if missing:
        raise ValueError(f"--windows: has no column {', '.join(map(repr, missing))} (features of the "
                         f"reference); its feature columns are {features}")
    if args.columns is None and len(features) != len(wanted):
        extra = [n for n in features if n not in wanted]
        raise ValueError(f"--windows: columns {extra} are neither features of the reference nor "
                         "--window-column; pick the features with --columns")
    return list(wanted)


def _read_windows(args: argparse.Namespace, reference_names) -> tuple[list, list, dict]:
    """Labels and windows (arrays) of the stream, and its provenance for the JSON output."""
    path, column = args.windows, args.window_column
    csv = path.name.lower().endswith(_CSV)
    table, names = read_table(path, name="windows", delimiter=args.delimiter if csv else None)
    if names is None:
        raise ValueError(f"--windows: {path} has no header row naming its columns; --window-column "
                         "needs one (.csv with a header, or .parquet)")
    if column not in names:
        raise ValueError(f"--window-column: {column!r} is not a column of {path}; its columns are {names}")
    features = _feature_columns(names, column, args, reference_names)
    X = np.asarray(table[:, [names.index(n) for n in features]], dtype=np.float64)  # (n_rows, d)
    groups = group_windows(np.asarray(table[:, names.index(column)], dtype=np.float64))
    labels, windows = [g[0] for g in groups], [X[rows] for _, rows in groups]
    inputs = {"file": os.fspath(path), "shape": list(X.shape), "window_column": column,
              "features": features, "n_windows": len(windows)}
    return labels, windows, inputs


def _read_reference(args: argparse.Namespace) -> tuple[dict, dict]:
    """The reference and its weights (:func:`~sparker.app.files.read_inputs`).

    ``--delimiter`` may be meant for the windows alone: it is then not passed on.
    """
    files = [p for p in (args.reference, args.reference_weight) if p is not None]
    if args.delimiter is not None and not any(p.name.lower().endswith(_CSV) for p in files):
        if not args.windows.name.lower().endswith(_CSV):
            raise ValueError("--delimiter: only used for .csv inputs")
        args = argparse.Namespace(**{**vars(args), "delimiter": None})
    return read_inputs(args)


def _size_range(args: argparse.Namespace, labels: list, windows: list) -> tuple[int, int]:
    """``--min-size`` and ``--max-size`` (default: the windows' extremes), every window inside."""
    sizes = [len(w) for w in windows]
    if not sizes:
        raise ValueError(f"--windows: {args.windows} has no rows")
    low = min(sizes) if args.min_size is None else args.min_size
    high = max(sizes) if args.max_size is None else args.max_size
    for label, n in zip(labels, sizes):
        if n < low:
            raise ValueError(f"--min-size: window {label} has {n} points, fewer than {low}; lower --min-size")
        if n > high:
            raise ValueError(f"--max-size: window {label} has {n} points, more than {high}; raise --max-size")
    return low, high


def _flagged(error: ValueError) -> ValueError:
    """An error of the monitor's parameters, naming its flag (``min_size:`` -> ``--min-size:``)."""
    text = str(error)
    for name in _FLAGGED:
        if text.startswith(f"{name}:"):
            return ValueError("--" + name.replace("_", "-") + text[len(name):])
    return error


# ------------------------------------------------------------------ output
def window_line(result: WindowResult, alpha: float) -> str:
    """One printed line per window: index, label, size, p-value, Z, excess."""
    alarm = "  ALARM" if result.pvalue <= alpha else ""
    return (f"{result.index:4d}  window {result.label}  n = {result.n_points} (tested {result.grid_size})  "
            f"p = {result.pvalue:.3g}  Z = {result.zscore:+.2f}  excess = {result.excess:.1f} "
            f"({result.excess_fraction:.1%}){alarm}")


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 70em; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.alarm td { background: #fde0dd; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
svg text { font-size: 12px; fill: #333; }
"""

#: Size of the timeline figure and its margins (pixels).
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 900, 320, 60, 20, 20, 50


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _timeline_svg(results: list[WindowResult], alpha: float) -> str:
    """p-values over the windows on a log axis, with the alpha and resolution lines (inline SVG)."""
    resolution = min(1.0 / (r.n_null + 1) for r in results)
    bottom = 10.0 ** math.floor(math.log10(min(resolution, alpha, *(r.pvalue for r in results))))
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = len(results)

    def x(i):
        return _LEFT + (width / 2 if n == 1 else width * i / (n - 1))

    def y(p):
        return _TOP + height * math.log10(p) / math.log10(bottom)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' role='img' "
             "aria-label='p-value of each window'>",
             f"<rect x='{_LEFT}' y='{_TOP}' width='{width}' height='{height}' fill='none' stroke='#999'/>"]
    for k in range(0, round(-math.log10(bottom)) + 1):  # one grid line per decade
        p = 10.0 ** -k
        parts.append(f"<line x1='{_LEFT}' x2='{_LEFT + width}' y1='{y(p):.1f}' y2='{y(p):.1f}' "
                     "stroke='#eee'/>"
                     f"<text x='{_LEFT - 6}' y='{y(p) + 4:.1f}' text-anchor='end'>{p:g}</text>")
    # alpha labelled above its line on the right, the resolution below its line on the left
    for value, colour, dash, text, tx, dy, anchor in (
            (alpha, "#c51b8a", "6 4", f"alpha = {alpha:g}", _LEFT + width - 4, -4, "end"),
            (resolution, "#888", "2 3", "resolution 1/(B+1)", _LEFT + 4, 14, "start")):
        parts.append(f"<line x1='{_LEFT}' x2='{_LEFT + width}' y1='{y(value):.1f}' y2='{y(value):.1f}' "
                     f"stroke='{colour}' stroke-dasharray='{dash}'/><text x='{tx}' y='{y(value) + dy:.1f}' "
                     f"text-anchor='{anchor}'>{_e(text)}</text>")
    points = " ".join(f"{x(i):.1f},{y(r.pvalue):.1f}" for i, r in enumerate(results))
    parts.append(f"<polyline points='{points}' fill='none' stroke='#3182bd' stroke-width='1.2'/>")
    step = max(1, math.ceil(n / 20))  # at most about 20 labels on the x axis
    for i, r in enumerate(results):
        colour = "#c51b8a" if r.pvalue <= alpha else "#3182bd"
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(r.pvalue):.1f}' r='4' fill='{colour}'><title>window "
                     f"{_e(r.label)}: p = {r.pvalue:.3g}, n = {r.n_points}, excess = {r.excess:.1f}</title>"
                     "</circle>")
        if i % step == 0:
            parts.append(f"<text x='{x(i):.1f}' y='{_TOP + height + 16}' text-anchor='middle'>"
                         f"{_e(r.label)}</text>")
    parts.append(f"<text x='{_LEFT + width / 2}' y='{_H - 8}' text-anchor='middle'>window</text>"
                 f"<text x='14' y='{_TOP + height / 2}' text-anchor='middle' "
                 f"transform='rotate(-90 14 {_TOP + height / 2})'>p-value</text></svg>")
    return "".join(parts)


def _windows_table(results: list[WindowResult], alpha: float) -> str:
    head = ("<tr><th>#</th><th>window</th><th>points</th><th>tested</th><th>p-value</th><th>Z</th>"
            "<th>excess</th><th>excess fraction</th><th class='l'>where (largest share)</th></tr>")
    body = []
    for r in results:
        centre = r.kernels[0]["centre"].items() if r.kernels else ()
        where = ", ".join(f"{_e(k)} = {v:.4g}" for k, v in centre)
        body.append(f"<tr class='{'alarm' if r.pvalue <= alpha else 'ok'}'><td>{r.index}</td>"
                    f"<td>{_e(r.label)}</td><td>{r.n_points}</td><td>{r.grid_size}</td>"
                    f"<td>{r.pvalue:.3g}</td>"
                    f"<td>{r.zscore:+.2f}</td><td>{r.excess:.1f}</td><td>{r.excess_fraction:.1%}</td>"
                    f"<td class='l'>{where}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def timeline_html(run: MonitorRun, monitor: Monitor, alpha: float, title: str) -> str:
    """The self-contained timeline page: figure (inline SVG), table of windows, the monitor's settings."""
    results = list(run)
    alarms = sum(r.pvalue <= alpha for r in results)
    sizes = ", ".join(map(str, monitor.sizes_))
    summary = (f"{len(results)} windows, {alarms} with p &le; {alpha:g}. Each window was tested at the "
               f"largest calibrated size not above its own ({sizes}; {monitor.n_null} null toys each) on a "
               "random subset of its rows, so every p-value is exact. Across many "
               f"windows about a fraction {alpha:g} of null windows is expected below alpha. The excess is "
               "the estimated number of anomalous points of the window (active kernels only).")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>", f"<p>{summary}</p>",
        "<h2>p-value of each window</h2>", _timeline_svg(results, alpha) if results else "<p>No windows.</p>",
        "<h2>Windows</h2>", _windows_table(results, alpha),
        "<h2>Monitor</h2>", f"<pre>{_e(json.dumps(monitor.to_dict(), indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------ the command
def _build_monitor(args: argparse.Namespace, reference, reference_weight, low: int, high: int) -> Monitor:
    """The monitor of the command's flags (errors of its parameters name their flags)."""
    options = {"progress": tty_default(args.progress), **training_settings(args)}
    if args.device is not None:
        options["device"] = args.device
    try:
        return Monitor(reference, low, high, n_null=args.n_null, grid_ratio=args.grid_ratio, seed=args.seed,
                       reference_weight=reference_weight, **options)
    except ValueError as error:
        raise _flagged(error) from error


def run(args: argparse.Namespace) -> int:
    """Run ``sparker monitor``."""
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out: {args.out} exists and is not a folder")
    paths = {name: args.out / name for name in OUT_FILES}
    refuse_existing([("--out", p) for p in paths.values()], args.force)
    if not 0.0 < args.alpha < 1.0:
        raise ValueError(f"--alpha: expected a number in (0, 1), got {args.alpha!r}")
    arrays, inputs = _read_reference(args)
    labels, windows, inputs["windows"] = _read_windows(args, column_names(arrays["reference"]))
    low, high = _size_range(args, labels, windows)
    start = time.perf_counter()
    monitor = _build_monitor(args, arrays["reference"], arrays["reference_weight"], low, high)
    log.info("calibrated %d grid sizes in %.1f s", len(monitor.sizes_), time.perf_counter() - start)
    results = []
    for result in monitor.stream(windows, labels):
        print(window_line(result, args.alpha), flush=True)
        results.append(result)
    outcome = MonitorRun(tuple(results))
    seconds = time.perf_counter() - start
    output = {"monitor": monitor.to_dict(), "alpha": args.alpha, "n_windows": len(results),
              "n_alarms": sum(r.pvalue <= args.alpha for r in results), **outcome.to_dict(),
              "inputs": inputs, "seconds": seconds, "sparker_version": __version__}
    frame = outcome.to_frame()
    frame["alarm"] = frame["pvalue"] <= args.alpha
    write_json(paths["monitor.json"], output, overwrite=args.force)
    atomic_write_text(paths["monitor.csv"], frame.to_csv(index=False), overwrite=args.force)
    title = f"SparKer monitor: {args.windows.name} against {args.reference.name}"
    atomic_write_text(paths["timeline.html"], timeline_html(outcome, monitor, args.alpha, title),
                      overwrite=args.force)
    print(f"{output['n_alarms']} of {len(results)} windows with p <= {args.alpha:g}; wrote "
          + ", ".join(os.fspath(p) for p in paths.values()))
    return 0
