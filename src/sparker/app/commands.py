"""The commands ``sparker fit``, ``test``, ``calibrate`` and ``bench``: their flags and runners.

Each command is a pair ``add_<name>(parser)`` / ``run_<name>(args) -> exit status``
with a one-line ``<NAME>_HELP``, registered in :data:`sparker.app.cli.COMMANDS`.
``sparker test --method NAME`` runs any method of :data:`sparker.methods.METHODS`
(SparKer by default); what a method accepts from the command line is read from
its registry entry.

``fit`` and ``test`` always end with a short verdict (the statistic; for ``test`` also
p, Z, the p-value resolution ``1/(n_null+1)`` and whether the loss settled: the
``summary`` and ``text`` of :meth:`sparker.TestResult.verdict`) and where the files
went: on stdout when the result goes to ``--out``, on stderr when stdout carries the
JSON, so that it stays parseable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from .._progress import progress_bar
from .._version import __version__
from ..calibration import Calibration
from ..calibration import calibrate as calibrate_reference
from ..calibration.api import check_scales, fixed_mismatches
from ..config import LayerConfig, RunConfig
from ..core.backends import BACKENDS
from ..estimator import SparKer
from ..io import write_json
from ..methods import METHODS, Method
from ..model.ensemble import epoch_progress
from ..results import TestResult
from .files import (
    WEIGHTS, add_input_flags, print_json, read_inputs, refuse_existing, report_files,
)
from .flags import (
    add_option_flags, add_training_flags, flag_name, given_options, positive_int, training_settings,
    tty_default, tty_options,
)

__all__ = [
    "FIT_HELP", "TEST_HELP", "CALIBRATE_HELP", "BENCH_HELP", "add_fit", "run_fit", "add_test", "run_test",
    "add_calibrate", "run_calibrate", "add_bench", "run_bench", "CALIBRATE_QUANTILES",
]

log = logging.getLogger(__name__)

FIT_HELP = "fit SparKer to a reference and a data file; JSON summary on stdout or --out"
TEST_HELP = ("calibrated test of a data file against a reference file: p-value and Z from null "
             "toys (or a saved calibration); JSON on stdout or in --out")
CALIBRATE_HELP = ("run the null toys of a reference once and save them, for many "
                  "'sparker test --calibration' runs")
BENCH_HELP = ("benchmark studies: 'sparker bench power --scenario S' measures the power of SparKer "
              "and the baselines against the signal fraction")

#: The method of ``sparker test`` when --method is left out.
DEFAULT_METHOD = "sparker"


# ------------------------------------------------------------------------- fit
def add_fit(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker fit``."""
    io_group = add_input_flags(parser)
    io_group.add_argument("--out", type=Path, metavar="FILE.json",
                          help="write the JSON result here instead of stdout")
    io_group.add_argument("--model", type=Path, metavar="FILE.npz", help="also save the fitted model")
    io_group.add_argument("--force", action="store_true", help="overwrite existing --out/--model files")
    model = parser.add_argument_group("model")
    model.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    model.add_argument("--n-expected", type=float, metavar="N0",
                       help="N_0, data count expected under the reference (default: the data count)")
    model.add_argument("--normalize-reference", action=argparse.BooleanOptionalAction, default=True,
                       help="rescale --reference-weight to sum to N_0 (default: yes)")
    model.add_argument("--device", help="torch device to train on (default: cpu)")
    model.add_argument("--progress", action=argparse.BooleanOptionalAction,
                       help="progress bar over the epochs on stderr (default: when stderr is a terminal)")
    add_training_flags(parser)


@contextlib.contextmanager
def _epoch_bar(enabled: bool):
    """A tqdm bar over the epochs of the fits run inside the block (nothing if disabled or no tqdm)."""
    bar = progress_bar(None, enabled=enabled, desc="epochs", unit="epoch")
    if bar is None:
        yield
        return

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        if done == total or done % 10 == 0:
            bar.refresh()

    try:
        with epoch_progress(update):
            yield
    finally:
        bar.close()


def run_fit(args: argparse.Namespace) -> int:
    """Run ``sparker fit``."""
    refuse_existing([("--out", args.out), ("--model", args.model)], args.force)
    arrays, inputs = read_inputs(args)
    settings = training_settings(args)
    model = SparKer(seed=args.seed, n_expected=args.n_expected, device=args.device, **settings)
    log.info("fitting %s to %s, settings %s", args.reference, args.data, settings or "default")
    start = time.perf_counter()
    with _epoch_bar(tty_default(args.progress)):
        model.fit(arrays["reference"], arrays["data"], reference_weight=arrays["reference_weight"],
                  data_weight=arrays["data_weight"], normalize_reference=args.normalize_reference)
    log.info("fitted in %.1f s, t = %.4g", time.perf_counter() - start, model.statistic_)

    result = model.to_dict()
    result["inputs"] = inputs
    result["sparker_version"] = __version__
    if args.model is not None:
        model.save(args.model, overwrite=args.force)
        log.info("saved the model to %s", args.model)
    if args.out is None:
        print_json(result)
    else:
        write_json(args.out, result, overwrite=args.force)
        log.info("wrote %s", args.out)
    from .report import fit_verdict

    verdict = fit_verdict(model)
    written = [os.fspath(path) for path in (args.out, args.model) if path is not None]
    _say([verdict["summary"], *(["wrote " + ", ".join(written)] if written else [])],
         json_out=args.out is None)
    return 0


def _say(lines: list[str], *, json_out: bool) -> None:
    """The closing lines of a command: on stdout, or on stderr when stdout carries the JSON."""
    stream = sys.stderr if json_out else sys.stdout
    for line in lines:
        print(line, file=stream)
    stream.flush()


# ------------------------------------------------------------- test, calibrate
def _load_calibration(path: Path) -> Calibration:
    if not path.exists():
        raise FileNotFoundError(f"--calibration: file not found: {path}")
    try:
        return Calibration.load(path)
    except ValueError as error:
        raise ValueError(f"--calibration: {str(error).removeprefix('path: ')}") from error


def _values(values: list) -> str:
    return ",".join(str(v) for v in values)


def _setting_values(name: str, value) -> list:
    """A setting's values in comparable form: a list of values, or ``layers`` as one JSON text.

    Blocks of ``layers`` are compared by their overrides (keys left None inherit).
    """
    if name == "layers":
        blocks = [asdict(LayerConfig(**block)) for block in value]
        return [json.dumps([{k: v for k, v in b.items() if v is not None} for b in blocks], sort_keys=True)]
    return value if isinstance(value, list) else [value]


def _check_against_calibration(cal: Calibration, options: dict, settings: dict, reference_weight) -> None:
    """Flags that a calibration fixes must be left out or agree with it."""
    for f in fields(RunConfig):
        if f.metadata.get("toys_only") and f.name in options:
            raise ValueError(f"{flag_name(f.name)}: only used when running null toys, not with --calibration")
    for name, value, theirs in fixed_mismatches(cal, options):
        raise ValueError(f"{flag_name(name)}: {value} differs from the calibration's {theirs}; "
                         "leave it out or calibrate again")
    check_scales(cal, options.get("scales", "auto"), settings, name="--scales")
    configs = cal.settings_dicts()
    for name, value in settings.items():
        given = _setting_values(name, value)
        used = list(dict.fromkeys(v for config in configs for v in _setting_values(name, config[name])))
        if given != used:  # in calibration order
            raise ValueError(f"{flag_name(name)}: {_values(given)} differs from the calibration's "
                             f"{_values(used)}; leave it out or calibrate again")
    if reference_weight is not None and (
        cal.reference_weight is None or not np.array_equal(reference_weight, cal.reference_weight)
    ):
        raise ValueError("--reference-weight: differs from the reference weights of the calibration")


def add_test(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker test``."""
    io_group = add_input_flags(parser)
    io_group.add_argument("--calibration", type=Path, metavar="FILE",
                          help="reuse a calibration written by 'sparker calibrate' (same reference, "
                               "data size and settings) instead of running null toys")
    io_group.add_argument("--out", type=Path, metavar="DIR",
                          help="write DIR/result.json, DIR/report.html (self-contained, figures "
                               "embedded) and DIR/model.npz instead of printing the JSON")
    io_group.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    io_group.add_argument("--method", default=DEFAULT_METHOD,
                          choices=[DEFAULT_METHOD, *sorted(set(METHODS) - {DEFAULT_METHOD})],
                          help="test to run: SparKer (default) or a baseline with its own defaults "
                               "(training flags apply to SparKer only)")
    add_option_flags(parser, "test")
    add_training_flags(parser, lists=True)


def _check_method_flags(method: Method, args: argparse.Namespace, arrays: dict, settings: dict,
                        options: dict) -> None:
    """Refuse the flags ``method`` does not take, naming them."""
    if settings and not method.settings:
        raise ValueError(f"--method: training flags ({', '.join(flag_name(k) for k in settings)}) "
                         f"apply to SparKer only, not to {method.name}")
    if args.calibration is not None and not method.calibration:
        raise ValueError(f"--method: --calibration applies to SparKer only, not to {method.name}")
    extra = sorted(set(options) - method.options)
    weights = [name for name in WEIGHTS if arrays[name] is not None and name not in method.options]
    if extra or weights:
        flags = ", ".join(flag_name(name) for name in [*extra, *weights])
        raise ValueError(f"--method: {flags} not supported by {method.name} on the command line")


def _run_method(method: Method, args: argparse.Namespace, arrays: dict, inputs: dict, settings: dict,
                options: dict) -> TestResult:
    """The test of ``method`` on the inputs: with a saved calibration, or running null toys."""
    _check_method_flags(method, args, arrays, settings, options)
    if args.calibration is not None:
        cal = _load_calibration(args.calibration)
        _check_against_calibration(cal, options, settings, arrays["reference_weight"])
        inputs["calibration"] = {"file": os.fspath(args.calibration)}
        log.info("testing %s against the calibration %s", args.data, args.calibration)
        return method.test(arrays["reference"], arrays["data"], calibration=cal,
                           data_weight=arrays["data_weight"], device=options.get("device"))
    how = f", settings {settings or 'default'}" if method.settings else f" with {method.name}"
    log.info("testing %s against %s%s", args.data, args.reference, how)
    weights = {name: arrays[name] for name in WEIGHTS if name in method.options}
    tty = {name: value for name, value in tty_options(args).items() if name in method.options}
    # with a progress bar, toys run in tasks of one block (calibration.toys.task_size)
    return method.test(arrays["reference"], arrays["data"], **weights, **tty, **options, **settings)


def run_test(args: argparse.Namespace) -> int:
    """Run ``sparker test``."""
    files = None if args.out is None else report_files(args.out, args.force)
    arrays, inputs = read_inputs(args)
    settings, options = training_settings(args), given_options(args)
    start = time.perf_counter()
    result = _run_method(METHODS[args.method], args, arrays, inputs, settings, options)
    seconds = time.perf_counter() - start
    log.info("done in %.1f s: t = %.4g, p = %.4g, Z = %.2f", seconds, result.statistic,
             result.pvalue, result.zscore)

    output = result.to_dict()
    output.update({"inputs": inputs, "seconds": seconds, "sparker_version": __version__})
    verdict = output["verdict"]
    if files is None:
        print_json(output)
        _say([verdict["summary"], verdict["text"]], json_out=True)
        return 0
    from .report import write_report

    result_path, model_path, report_path = files
    extra = {key: output[key] for key in ("inputs", "seconds", "sparker_version")}
    write_report(args.out, result, reference=arrays["reference"], data=arrays["data"],
                 reference_weight=arrays["reference_weight"], extra=extra, overwrite=args.force,
                 title=f"SparKer test: {args.data.name} against {args.reference.name}")
    written = [result_path]
    if result.model is not None:
        result.model.save(model_path, overwrite=args.force)
        written.append(model_path)
    log.info("wrote %s; report: %s", args.out, report_path)
    _say([verdict["summary"], verdict["text"], f"report: {report_path}",
          "wrote " + ", ".join(map(os.fspath, written))], json_out=False)
    return 0


#: Quantiles of the null statistics reported by ``sparker calibrate``.
CALIBRATE_QUANTILES = (0.5, 0.9, 0.99)


def add_calibrate(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker calibrate``."""
    io_group = add_input_flags(parser, data=False)
    io_group.add_argument("--n-data", required=True, type=positive_int, metavar="N",
                          help="size of the inspected samples the calibration will test")
    io_group.add_argument("--out", required=True, type=Path, metavar="FILE",
                          help="where to write the calibration (.npz, no pickle)")
    io_group.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    add_option_flags(parser, "calibrate")
    add_training_flags(parser, lists=True)


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``sparker calibrate``."""
    refuse_existing([("--out", args.out)], args.force)
    arrays, inputs = read_inputs(args)
    settings = training_settings(args)
    log.info("calibrating %s for %d data points, settings %s", args.reference, args.n_data,
             settings or "default")
    start = time.perf_counter()
    tty = tty_options(args)
    cal = calibrate_reference(arrays["reference"], args.n_data, reference_weight=arrays["reference_weight"],
                              **tty, **given_options(args), **settings)
    seconds = time.perf_counter() - start
    cal.save(args.out, overwrite=args.force)
    log.info("calibrated in %.1f s; wrote %s", seconds, args.out)
    print_json({
        "file": os.fspath(args.out),
        "n_null": cal.n_null,
        "n_data": cal.n_data,
        "n_expected": cal.n_expected,
        "poisson": cal.poisson,
        "null_mode": cal.null_mode,
        "seed": cal.seed,
        "aggregation": cal.aggregation,
        "n_settings": len(cal.configs),
        # one value per configuration, in the order of the settings
        "null_quantiles": {f"{q:g}": np.quantile(cal.null, q, axis=0) for q in CALIBRATE_QUANTILES},
        "inputs": inputs,
        "seconds": seconds,
        "sparker_version": __version__,
    })
    return 0


# --------------------------------------------------------------------- bench
def _param(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _method_option(text: str) -> tuple[str, str, object]:
    """``METHOD.KEY=VALUE`` -> (method, key, value)."""
    target, sep, _ = text.partition("=")
    method, dot, key = target.partition(".")
    if not sep or not dot or not method or not key:
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE, got {text!r}")
    return method, key.replace("-", "_"), _param(text)[1]


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one fraction")
    return values


def add_bench(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sparker bench``."""
    from .bench import CI_SIZES, MODES

    parser.add_argument("study", choices=["power"], help="what to measure (power: power against "
                        "signal fraction, every method, one scenario)")
    parser.add_argument("--scenario", required=True, choices=sorted(CI_SIZES), help="scenario to draw")
    parser.add_argument("--methods", default="sparker,nplm_kernel,mmd_agg,c2st",
                        help=f"comma-separated methods among {','.join(METHODS)} (default: %(default)s)")
    parser.add_argument("--fractions", type=_fractions, default=[0.0, 0.005, 0.01, 0.02],
                        help="comma-separated signal fractions (default: 0,0.005,0.01,0.02)")
    parser.add_argument("--n-toys", type=positive_int, default=30, metavar="N",
                        help="draws per method and fraction (default: %(default)s)")
    parser.add_argument("--n-null-draws", type=positive_int, metavar="N",
                        help="draws of the null version (default: --n-toys)")
    parser.add_argument("--mode", choices=MODES, default="statistic",
                        help="statistic: thresholds from null draws, one fit per draw; calibrated: "
                        "a full calibrated test per draw (default: %(default)s)")
    parser.add_argument("--n-null", type=positive_int, default=19, metavar="N",
                        help="toys per calibrated test (--mode calibrated; default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=0.05, help="test level (default: %(default)s)")
    parser.add_argument("--sizes", choices=["ci", "default"], default="ci",
                        help="scenario sizes: small presets or the generator's defaults")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                        help="scenario parameter (repeatable), e.g. --param d=1024")
    parser.add_argument("--option", type=_method_option, action="append", default=[],
                        metavar="METHOD.KEY=VALUE",
                        help="a setting of one method (repeatable), e.g. --option sparker.n_kernels=4; "
                        "for ablations: the study runs every method with its defaults")
    parser.add_argument("--seed", type=int, default=0, help="seed of the study (default: 0)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="batched",
                        help="where draws run (default: in this process)")
    parser.add_argument("--n-workers", type=positive_int, metavar="N",
                        help="worker processes for --backend processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address, for --backend dask")
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch threads per draw")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write power.json, power.csv and power.png here (default: JSON on stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files in --out")


def run_bench(args: argparse.Namespace) -> int:
    """Run ``sparker bench power``."""
    from .bench import format_summary, power_study, write_study

    if args.out is not None and not args.force:
        refuse_existing([("--out", args.out / name) for name in ("power.json", "power.csv", "power.png")],
                        False)
    backend_options = {f.name: getattr(args, f.name) for f in fields(RunConfig)
                       if f.metadata.get("backend") == args.backend and getattr(args, f.name) is not None}
    method_options: dict[str, dict] = {}
    for method, key, value in args.option:
        method_options.setdefault(method, {})[key] = value
    study = power_study(args.scenario, methods=args.methods, fractions=args.fractions, n_toys=args.n_toys,
                        n_null_draws=args.n_null_draws, mode=args.mode, n_null=args.n_null,
                        alpha=args.alpha, sizes=args.sizes, params=dict(args.param), seed=args.seed,
                        backend=args.backend, threads=args.threads, progress=tty_default(args.progress),
                        options=method_options, **backend_options)
    if args.out is None:
        print_json(study.to_dict())
        return 0
    paths = write_study(study, args.out, overwrite=args.force)
    print(format_summary(study))
    print("wrote " + ", ".join(paths.values()))
    return 0
