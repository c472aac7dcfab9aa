"""Command line of SparKer (entry point ``sparker``, also ``python -m sparker``).

Subcommands live in the :data:`COMMANDS` registry (name -> adder of arguments and
runner), so adding one is one function pair and one dict entry.

- ``sparker demo``: the embedded default. Builds the ``square2d`` scenario (paper,
  fig. 4: a uniform square with three small clumps), fits 4 kernels, prints the
  statistic, the kernel table and how close the kernels came to the true clumps,
  and writes ``result.json`` and ``model.npz``.
- ``sparker fit --reference R --data D``: fits one model to two files
  (``.npy``, ``.npz``, ``.csv``, ``.csv.gz``, ``.parquet``) and writes its summary as
  JSON to stdout or ``--out``. The training flags are generated from the fields of
  :class:`sparker.config.TrainingConfig` (``n_kernels`` -> ``--n-kernels``, booleans as
  ``--reseed/--no-reseed``); a flag left out keeps the estimator's default.
- ``sparker test --reference R --data D``: the calibrated test (:func:`sparker.test`):
  fits the observed samples and ``--n-null`` null toys and prints the p-value, Z and
  null distribution as JSON, or writes ``DIR/result.json`` and ``DIR/model.npz`` with
  ``--out DIR``. A training flag may take a comma-separated list (``--n-kernels 4,8``):
  one configuration per value, run on the same toys and aggregated (``--aggregation``).
  ``--calibration FILE`` reuses saved toys instead; flags the calibration fixes must then
  be left out or agree with it.
- ``sparker calibrate --reference R --n-data N --out FILE``: runs the null toys once
  (:func:`sparker.calibrate`), saves them and prints a short JSON summary.

User errors (bad input, missing file, refused overwrite, bad flag) print one line
``sparker: error: <message>`` on stderr and exit with status 2; ``--debug`` adds the
traceback. Any other exception (a bug) is also reported on one line, with status 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import sys
import time
import traceback
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np

from .._version import __version__
from ..core.backends import BACKENDS
from ..baselines import BASELINES
from ..calibration import Calibration
from ..calibration import calibrate as calibrate_reference
from ..calibration import test as calibrated_test
from ..config import TrainingConfig
from ..estimator import SparKer
from ..io import _to_jsonable, read_table, write_json
from ..core.kernels import COMPETITIONS
from ..core.nulls import NULL_MODES
from ..scenarios import make
from ..core.schedules import SCHEDULES
from ..stats import AGGREGATIONS

__all__ = ["main", "COMMANDS", "training_flags"]

log = logging.getLogger(__name__)

PROG = "sparker"

#: Exceptions reported as one-line user errors (raised by validation and I/O).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError)

#: Training settings that are not command-line flags (multi-scale stacks need nested
#: per-layer settings; use the Python API).
_SKIPPED_SETTINGS = frozenset({"layers"})

#: Registries behind the settings that take a name: their keys are the choices.
_SETTING_CHOICES: dict[str, typing.Mapping] = {"competition": COMPETITIONS, "schedule": SCHEDULES}

#: Help for settings the SparKer docstring lists without a description of their own.
_FALLBACK_HELP = {
    "sigma_start_quantile": "Quantile of pairwise reference distances used as the start width",
    "sigma_end_quantile": "Quantile of pairwise reference distances used as the end width",
}

DEMO_SCENARIO = "square2d"
DEMO_KERNELS = 4
#: A true clump counts as found when a kernel centre lies within this distance.
DEMO_TOLERANCE = 0.1


class _UsageError(Exception):
    """An argparse usage error, reported by :func:`main` on one line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors reach :func:`main` instead of exiting."""

    def error(self, message: str) -> typing.NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------ training flags


def _parameter_help() -> dict[str, str]:
    """First sentence of each parameter's description in the ``SparKer`` docstring."""
    lines = inspect.cleandoc(SparKer.__doc__ or "").splitlines()
    helps: dict[str, str] = {}
    names: list[str] = []
    inside = False
    for line, underline in zip(lines, lines[1:] + [""]):
        if set(underline) == {"-"} and line.strip():
            inside = line.strip() == "Parameters"  # a section header starts
            continue
        if not inside or set(line) == {"-"}:
            continue
        if line and not line[0].isspace() and " : " in line:
            names = [n.strip() for n in line.split(" : ")[0].split(",")]
        elif line.strip() and names:
            for n in names:
                helps.setdefault(n, "")
                if not helps[n].endswith("."):
                    helps[n] = f"{helps[n]} {line.strip()}".strip()
    return {n: _plain(h.split(". ")[0]) for n, h in helps.items()}


def _plain(text: str) -> str:
    """Docstring text without reST markup and cross-references, for --help."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")
    return re.sub(r"\s*\(see [^)]*\)", "", text).rstrip(".")


def _flag_type(hint) -> type:
    """The scalar type behind a field annotation such as ``float | None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def training_flags() -> dict[str, str]:
    """Training setting -> its command-line flag, one per field of TrainingConfig."""
    return {
        f.name: "--" + f.name.replace("_", "-")
        for f in fields(TrainingConfig)
        if f.name not in _SKIPPED_SETTINGS
    }


class _Values:
    """argparse type: one value, or a comma-separated list of distinct values.

    A list such as ``4,8`` becomes ``[4, 8]``: one training configuration per value,
    run on the same null toys and aggregated (:func:`sparker.test`).
    """

    def __init__(self, kind: type, choices: typing.Iterable[str] | None = None):
        self.kind = kind
        self.choices = None if choices is None else sorted(choices)

    def _one(self, item: str):
        if self.choices is not None and item not in self.choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {item!r} (choose from {', '.join(self.choices)})")
        try:
            return self.kind(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.kind.__name__} value: {item!r}") from None

    def __call__(self, text: str):
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"empty value in the list {text!r}")
        values = [self._one(item) for item in items]
        if len(set(values)) < len(values):
            raise argparse.ArgumentTypeError(f"repeated value in the list {text!r}")
        return values[0] if len(values) == 1 else values


def _add_training_flags(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    """Add one flag per training setting; an absent flag keeps the estimator default.

    With ``lists``, every non-boolean flag also takes a comma-separated list of values
    (several configurations, aggregated by the calibrated test).
    """
    description = "fields of sparker.TrainingConfig; omitted flags keep the defaults"
    if lists:
        description += ("; a comma-separated list (--n-kernels 4,8) runs one configuration "
                        "per value (every combination when several flags have lists), "
                        "calibrated together and aggregated with --aggregation")
    group = parser.add_argument_group("training settings", description)
    hints = typing.get_type_hints(TrainingConfig)
    defaults = inspect.signature(SparKer).parameters
    helps = _parameter_help()
    for name, flag in training_flags().items():
        kind = _flag_type(hints[name])
        default = defaults[name].default if name in defaults else None
        text = helps.get(name) or _FALLBACK_HELP.get(name, name.replace("_", " "))
        text = f"{text} (default: {'automatic' if default is None else default})"
        options: dict = {"dest": name, "default": argparse.SUPPRESS}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif lists:
            choices = _SETTING_CHOICES.get(name)
            options["type"] = _Values(kind, choices)
            metavar = "NAME" if choices is not None else kind.__name__.upper()
            options["metavar"] = f"{metavar}[,{metavar}...]"
            if choices is not None:
                text = f"{text}; one of {', '.join(sorted(choices))}"
        elif name in _SETTING_CHOICES:
            options["choices"] = sorted(_SETTING_CHOICES[name])
        else:
            options["type"] = kind
            options["metavar"] = kind.__name__.upper()
        group.add_argument(flag, help=text.replace("%", "%%"), **options)


def _settings(args: argparse.Namespace) -> dict:
    """The training settings given on the command line (absent flags are left out)."""
    return {name: getattr(args, name) for name in training_flags() if hasattr(args, name)}


# ----------------------------------------------------------- inputs, outputs


def _add_input_flags(parser: argparse.ArgumentParser, *, data: bool = True) -> argparse._ArgumentGroup:
    """The input files shared by fit, test (``data``) and calibrate (reference only)."""
    group = parser.add_argument_group("inputs and outputs")
    group.add_argument("--reference", required=True, type=Path, metavar="FILE",
                       help="reference sample, shape (n_reference, n_features)")
    if data:
        group.add_argument("--data", required=True, type=Path, metavar="FILE",
                           help="inspected sample, shape (n_data, n_features)")
    group.add_argument("--reference-weight", type=Path, metavar="FILE",
                       help="per-point reference weights, shape (n_reference,)")
    if data:
        group.add_argument("--data-weight", type=Path, metavar="FILE",
                           help="per-point data weights, shape (n_data,)")
    group.add_argument("--key", help="array name inside .npz input files holding several")
    return group


def _read_weights(path: Path | None, *, name: str) -> np.ndarray | None:
    """Read a weight file; a single-column table becomes a vector."""
    if path is None:
        return None
    weights, _ = read_table(path, name=name)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    return weights


def _named(table: np.ndarray, names: list[str] | None):
    """A table with column names as a DataFrame, so the kernel table keeps them."""
    if names is None:
        return table
    import pandas as pd

    return pd.DataFrame(table, columns=names, copy=False)  # a view: no second copy of a large table


def _npz_key(path: Path, key: str | None) -> str | None:
    return key if path.name.lower().endswith(".npz") else None


def _refuse_existing(paths: typing.Iterable[tuple[str, Path | None]], force: bool) -> None:
    """Fail before any work if an output exists and ``--force`` is not given."""
    for flag, path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise IsADirectoryError(f"{flag}: {path} is a directory, expected a file")
        if path.exists() and not force:
            raise FileExistsError(f"{flag}: {path} already exists; pass --force to replace it")
        _check_writable_folder(flag, path.parent)


def _check_writable_folder(flag: str, folder: Path) -> None:
    """Fail before any work if ``folder`` can neither be written nor created."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{flag}: cannot create {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag}: cannot write to {existing}: permission denied")


def _result_files(folder: Path, force: bool) -> tuple[Path, Path]:
    """``folder/result.json`` and ``folder/model.npz``, refused up front if they exist."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--out: {folder} exists and is not a folder")
    paths = folder / "result.json", folder / "model.npz"
    _refuse_existing([("--out", path) for path in paths], force)
    return paths


def _print_json(obj) -> None:
    json.dump(_to_jsonable(obj, "result"), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def _read_inputs(args: argparse.Namespace) -> tuple[dict, dict]:
    """Read the input files named by :func:`_add_input_flags`.

    Returns the arrays (``reference``, ``data``, ``reference_weight``, ``data_weight``;
    a table with a header becomes a DataFrame, an absent input None) and their
    provenance for the JSON output (file and shape of each given input).
    """
    tables = {name: getattr(args, name, None) for name in ("reference", "data")}
    weights = {name: getattr(args, name, None) for name in ("reference_weight", "data_weight")}
    given = {name: path for name, path in tables.items() if path is not None}
    if args.key is not None and not any(p.name.lower().endswith(".npz") for p in given.values()):
        raise ValueError(f"--key: only used when {' or '.join('--' + n for n in given)} is a .npz file")
    arrays = {
        name: None if path is None else _named(*read_table(path, name=name, key=_npz_key(path, args.key)))
        for name, path in tables.items()
    }
    arrays.update({name: _read_weights(path, name=name) for name, path in weights.items()})
    inputs = {
        name: {"file": os.fspath(path), "shape": list(np.shape(arrays[name]))}
        for name, path in {**tables, **weights}.items()
        if path is not None
    }
    return arrays, inputs


# ------------------------------------------------------------------------- fit


def _add_fit(parser: argparse.ArgumentParser) -> None:
    io_group = _add_input_flags(parser)
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
    _add_training_flags(parser)


def _run_fit(args: argparse.Namespace) -> int:
    _refuse_existing([("--out", args.out), ("--model", args.model)], args.force)
    arrays, inputs = _read_inputs(args)
    settings = _settings(args)
    model = SparKer(seed=args.seed, n_expected=args.n_expected, device=args.device, **settings)
    log.info("fitting %s to %s, settings %s", args.reference, args.data, settings or "default")
    start = time.perf_counter()
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
        _print_json(result)
    else:
        write_json(args.out, result, overwrite=args.force)
        log.info("wrote %s", args.out)
    return 0


# ------------------------------------------------------------- test, calibrate

#: Defaults of the calibrated test, shown in --help (a flag left out keeps them).
_TEST_DEFAULTS = {name: p.default for name, p in inspect.signature(calibrated_test).parameters.items()}

#: Null-toy options passed on to sparker.test / sparker.calibrate when given.
_NULL_OPTIONS = ("n_null", "null", "seed", "n_expected", "poisson", "aggregation",
                 "replica_chunk", "backend", "scheduler", "n_workers", "checkpoint", "device")

#: Options a saved calibration fixes (Calibration attributes of the same names).
_FIXED_BY_CALIBRATION = ("n_null", "seed", "n_expected", "poisson", "aggregation")

#: Options that only steer how toys run: meaningless when reusing a calibration.
_TOY_RUNNING = ("replica_chunk", "backend", "scheduler", "n_workers", "checkpoint")

#: Back-end options and the one back end that uses each.
_BACKEND_OPTIONS = {"scheduler": "dask", "n_workers": "processes"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_null_flags(parser: argparse.ArgumentParser, *, null: bool) -> None:
    """Flags of the null toys (how many, how drawn) and of where they run."""
    d = _TEST_DEFAULTS
    toys = parser.add_argument_group(
        "null toys", "samples drawn under the null hypothesis and refitted with the same settings")
    toys.add_argument("--n-null", type=_positive_int, metavar="B",
                      help=f"number of null toys; p-value resolution 1/(B+1) (default: {d['n_null']})")
    if null:
        toys.add_argument("--null", choices=["auto", *sorted(NULL_MODES)],
                          help="how toys are made: resample the reference, permute the pooled "
                               "samples, or auto: resample when n_reference >= 5 n_data "
                               f"(default: {d['null']})")
    toys.add_argument("--seed", type=int, help=f"seed of every random choice (default: {d['seed']})")
    toys.add_argument("--n-expected", type=float, metavar="N0",
                      help="N_0, data count expected under the reference (default: the data count)")
    toys.add_argument("--poisson", action=argparse.BooleanOptionalAction,
                      help="draw each toy's data count from Poisson(N_0) "
                           "(default: yes when --n-expected is given)")
    toys.add_argument("--aggregation", choices=sorted(AGGREGATIONS),
                      help="how configurations given as lists are combined "
                           f"(default: {d['aggregation']})")
    run = parser.add_argument_group("execution")
    run.add_argument("--replica-chunk", type=_positive_int, metavar="N",
                     help=f"toys per task, rounded up to whole blocks of 16 toys that train together "
                          f"(default: {d['replica_chunk']})")
    run.add_argument("--backend", choices=sorted(BACKENDS),
                     help=f"where chunks of toys run (default: {d['backend']}, in this process)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address, for --backend dask")
    run.add_argument("--n-workers", type=_positive_int, metavar="N",
                     help="worker processes for --backend processes (default: one per CPU)")
    run.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="store finished toys here; rerunning the same command resumes from it")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    run.add_argument("--device", help="torch device to train on (default: cpu)")


def _null_options(args: argparse.Namespace) -> dict:
    """The null-toy options given on the command line, as keyword arguments."""
    options = {name: getattr(args, name) for name in _NULL_OPTIONS if getattr(args, name, None) is not None}
    backend = options.get("backend", _TEST_DEFAULTS["backend"])
    for name, needs in _BACKEND_OPTIONS.items():
        if name in options and backend != needs:
            raise ValueError(f"{_flag(name)}: only used with --backend {needs}")
    return options


def _progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def _load_calibration(path: Path) -> Calibration:
    if not path.exists():
        raise FileNotFoundError(f"--calibration: file not found: {path}")
    try:
        return Calibration.load(path)
    except ValueError as error:
        raise ValueError(f"--calibration: {str(error).removeprefix('path: ')}") from error


def _values(value) -> str:
    return ",".join(str(v) for v in (value if isinstance(value, list) else [value]))


def _check_against_calibration(cal: Calibration, options: dict, settings: dict, reference_weight) -> None:
    """Flags that a calibration fixes must be left out or agree with it."""
    for name in _TOY_RUNNING:
        if name in options:
            raise ValueError(f"{_flag(name)}: only used when running null toys, not with --calibration")
    for name in _FIXED_BY_CALIBRATION:
        if name in options and options[name] != getattr(cal, name):
            raise ValueError(f"{_flag(name)}: {options[name]} differs from the calibration's "
                             f"{getattr(cal, name)}; leave it out or calibrate again")
    if options.get("null", "auto") not in ("auto", cal.null_mode):
        raise ValueError(f"--null: the calibration's toys are {cal.null_mode!r}, not {options['null']!r}")
    configs = cal.settings_dicts()
    for name, value in settings.items():
        used = list(dict.fromkeys(config[name] for config in configs))  # in calibration order
        if (value if isinstance(value, list) else [value]) != used:
            raise ValueError(f"{_flag(name)}: {_values(value)} differs from the calibration's "
                             f"{_values(used)}; leave it out or calibrate again")
    if reference_weight is not None and (
        cal.reference_weight is None or not np.array_equal(reference_weight, cal.reference_weight)
    ):
        raise ValueError("--reference-weight: differs from the reference weights of the calibration")


def _add_test(parser: argparse.ArgumentParser) -> None:
    io_group = _add_input_flags(parser)
    io_group.add_argument("--calibration", type=Path, metavar="FILE",
                          help="reuse a calibration written by 'sparker calibrate' (same reference, "
                               "data size and settings) instead of running null toys")
    io_group.add_argument("--out", type=Path, metavar="DIR",
                          help="write DIR/result.json, DIR/report.html (self-contained, figures "
                               "embedded) and DIR/model.npz instead of printing the JSON")
    io_group.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    io_group.add_argument("--method", default="sparker", choices=["sparker", *sorted(BASELINES)],
                          help="test to run: SparKer (default) or a baseline with its own defaults "
                               "(training flags apply to SparKer only)")
    _add_null_flags(parser, null=True)
    _add_training_flags(parser, lists=True)


#: null-toy options a baseline accepts from the command line
_BASELINE_OPTIONS = ("n_null", "seed", "null")


def _run_baseline(args, arrays, settings, options):
    if settings:
        raise ValueError(f"--method: training flags ({', '.join(_flag(k) for k in settings)}) "
                         f"apply to SparKer only, not to {args.method}")
    if args.calibration is not None:
        raise ValueError(f"--method: --calibration applies to SparKer only, not to {args.method}")
    extra = sorted(set(options) - set(_BASELINE_OPTIONS))
    if extra or arrays["reference_weight"] is not None or arrays["data_weight"] is not None:
        flags = [_flag(k) for k in extra] + [f for f, k in (("--reference-weight", "reference_weight"),
                                                          ("--data-weight", "data_weight"))
                                             if arrays[k] is not None]
        raise ValueError(f"--method: {', '.join(flags)} not supported by {args.method} on the command line")
    kwargs = {k: v for k, v in options.items() if k in _BASELINE_OPTIONS}
    return BASELINES[args.method](arrays["reference"], arrays["data"], **kwargs)


def _report_files(folder: Path, force: bool) -> tuple[Path, Path, Path]:
    """``folder/result.json``, ``folder/model.npz`` and ``folder/report.html``, refused up front."""
    from .report import REPORT_FILE

    result_path, model_path = _result_files(folder, force)
    report_path = folder / REPORT_FILE
    _refuse_existing([("--out", report_path)], force)
    return result_path, model_path, report_path


def _run_test(args: argparse.Namespace) -> int:
    files = None if args.out is None else _report_files(args.out, args.force)
    arrays, inputs = _read_inputs(args)
    settings, options = _settings(args), _null_options(args)
    start = time.perf_counter()
    if args.method != "sparker":
        log.info("testing %s against %s with %s", args.data, args.reference, args.method)
        result = _run_baseline(args, arrays, settings, options)
    elif args.calibration is not None:
        cal = _load_calibration(args.calibration)
        _check_against_calibration(cal, options, settings, arrays["reference_weight"])
        inputs["calibration"] = {"file": os.fspath(args.calibration)}
        log.info("testing %s against the calibration %s", args.data, args.calibration)
        result = calibrated_test(arrays["reference"], arrays["data"], calibration=cal,
                                 data_weight=arrays["data_weight"], device=options.get("device"))
    else:
        log.info("testing %s against %s, settings %s", args.data, args.reference, settings or "default")
        result = calibrated_test(arrays["reference"], arrays["data"],
                                 reference_weight=arrays["reference_weight"],
                                 data_weight=arrays["data_weight"], progress=_progress(args),
                                 **options, **settings)
    seconds = time.perf_counter() - start
    log.info("done in %.1f s: t = %.4g, p = %.4g, Z = %.2f", seconds, result.statistic,
             result.pvalue, result.zscore)

    output = result.to_dict()
    output.update({"inputs": inputs, "seconds": seconds, "sparker_version": __version__})
    if files is None:
        _print_json(output)
        return 0
    from .report import write_report

    _, model_path, report_path = files
    extra = {key: output[key] for key in ("inputs", "seconds", "sparker_version")}
    write_report(args.out, result, reference=arrays["reference"], data=arrays["data"],
                 reference_weight=arrays["reference_weight"], extra=extra, overwrite=args.force,
                 title=f"SparKer test: {args.data.name} against {args.reference.name}")
    if result.model is not None:
        result.model.save(model_path, overwrite=args.force)
    log.info("wrote %s; report: %s", args.out, report_path)
    return 0


#: Quantiles of the null statistics reported by ``sparker calibrate``.
CALIBRATE_QUANTILES = (0.5, 0.9, 0.99)


def _add_calibrate(parser: argparse.ArgumentParser) -> None:
    io_group = _add_input_flags(parser, data=False)
    io_group.add_argument("--n-data", required=True, type=_positive_int, metavar="N",
                          help="size of the inspected samples the calibration will test")
    io_group.add_argument("--out", required=True, type=Path, metavar="FILE",
                          help="where to write the calibration (.npz, no pickle)")
    io_group.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    _add_null_flags(parser, null=False)
    _add_training_flags(parser, lists=True)


def _run_calibrate(args: argparse.Namespace) -> int:
    _refuse_existing([("--out", args.out)], args.force)
    arrays, inputs = _read_inputs(args)
    settings = _settings(args)
    log.info("calibrating %s for %d data points, settings %s", args.reference, args.n_data,
             settings or "default")
    start = time.perf_counter()
    cal = calibrate_reference(arrays["reference"], args.n_data, reference_weight=arrays["reference_weight"],
                              progress=_progress(args), **_null_options(args), **settings)
    seconds = time.perf_counter() - start
    cal.save(args.out, overwrite=args.force)
    log.info("calibrated in %.1f s; wrote %s", seconds, args.out)
    _print_json({
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


# ------------------------------------------------------------------------ demo


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenario and the fit (default: 0)")
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


def _demo_report(model: SparKer, reference, data, truth, comparison, seconds: float, seed: int) -> str:
    params = truth["params"]
    n_clumps = len(truth["centres"])
    lines = [
        (f"SparKer demo: scenario {DEMO_SCENARIO} (seed {seed}), {len(reference)} reference points, "
         f"{len(data)} data points of which {int(truth['is_anomaly'].sum())} in {n_clumps} clumps "
         f"(std {params['clump_std']})"),
        f"fitted {DEMO_KERNELS} kernels in {seconds:.1f} s: t = {model.statistic_:.2f}"
        + ("" if model.converged_ else " (loss not yet settled)"),
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
        "higher log ratio = more anomalous; t is not a p-value until calibrated on null samples",
    ]
    return "\n".join(lines)


def _active_on_clumps(model: SparKer, true_centres: np.ndarray) -> dict[int, bool]:
    """Active kernel -> whether its centre lies within the demo tolerance of a true clump."""
    centres = model.centres_
    return {
        i: bool(np.linalg.norm(true_centres - centres[i], axis=1).min() <= DEMO_TOLERANCE)
        for i, k in enumerate(model.kernels_) if k.get("active")
    }


def _run_demo(args: argparse.Namespace) -> int:
    from .report import write_report

    result_path, model_path, report_path = _report_files(args.out, args.force)

    reference, data, truth = make(DEMO_SCENARIO, seed=args.seed)
    model = SparKer(n_kernels=DEMO_KERNELS, seed=args.seed)
    start = time.perf_counter()
    model.fit(reference, data)
    seconds = time.perf_counter() - start
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
        "fit_seconds": seconds,
        "sparker_version": __version__,
    }
    print(_demo_report(model, reference, data, truth, comparison, seconds, args.seed))
    write_report(args.out, model=model, reference=reference, data=data, extra=extra, overwrite=args.force,
                 title=f"SparKer demo: {DEMO_SCENARIO}, seed {args.seed}")
    model.save(model_path, overwrite=args.force)
    print(f"\nwrote {result_path} and {model_path}\nreport: {report_path}")
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


def _add_bench(parser: argparse.ArgumentParser) -> None:
    from .bench import CI_SIZES, MODES, STATISTICS

    parser.add_argument("study", choices=["power"], help="what to measure (power: power against "
                        "signal fraction, every method, one scenario)")
    parser.add_argument("--scenario", required=True, choices=sorted(CI_SIZES), help="scenario to draw")
    parser.add_argument("--methods", default="sparker,nplm_kernel,mmd_agg,c2st",
                        help=f"comma-separated methods among {','.join(STATISTICS)} "
                        "(default: %(default)s)")
    parser.add_argument("--fractions", type=_fractions, default=[0.0, 0.005, 0.01, 0.02],
                        help="comma-separated signal fractions (default: 0,0.005,0.01,0.02)")
    parser.add_argument("--n-toys", type=_positive_int, default=30, metavar="N",
                        help="draws per method and fraction (default: %(default)s)")
    parser.add_argument("--n-null-draws", type=_positive_int, metavar="N",
                        help="draws of the null version (default: --n-toys)")
    parser.add_argument("--mode", choices=MODES, default="statistic",
                        help="statistic: thresholds from null draws, one fit per draw; calibrated: "
                        "a full calibrated test per draw (default: %(default)s)")
    parser.add_argument("--n-null", type=_positive_int, default=19, metavar="N",
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
    parser.add_argument("--n-workers", type=_positive_int, metavar="N",
                        help="worker processes for --backend processes")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address, for --backend dask")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="torch threads per draw")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write power.json, power.csv and power.png here (default: JSON on stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files in --out")


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import format_summary, power_study, write_study

    if args.out is not None and not args.force:
        _refuse_existing([("--out", args.out / name) for name in ("power.json", "power.csv", "power.png")],
                         False)
    options = {}
    if args.backend == "processes" and args.n_workers is not None:
        options["n_workers"] = args.n_workers
    if args.backend == "dask":
        options["scheduler"] = args.scheduler
    method_options: dict[str, dict] = {}
    for method, key, value in args.option:
        method_options.setdefault(method, {})[key] = value
    study = power_study(args.scenario, methods=args.methods, fractions=args.fractions, n_toys=args.n_toys,
                        n_null_draws=args.n_null_draws, mode=args.mode, n_null=args.n_null,
                        alpha=args.alpha, sizes=args.sizes, params=dict(args.param), seed=args.seed,
                        backend=args.backend, threads=args.threads, progress=_progress(args),
                        options=method_options, **options)
    if args.out is None:
        _print_json(study.to_dict())
        return 0
    paths = write_study(study, args.out, overwrite=args.force)
    print(format_summary(study))
    print("wrote " + ", ".join(paths.values()))
    return 0


# --------------------------------------------------------------------- parser

#: Subcommand -> (help, adds its arguments, runs it and returns the exit status).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the square2d scenario end to end (4 kernels, 3 clumps) and write a report",
             _add_demo, _run_demo),
    "fit": ("fit SparKer to a reference and a data file; JSON summary on stdout or --out",
            _add_fit, _run_fit),
    "test": ("calibrated test of a data file against a reference file: p-value and Z from null "
             "toys (or a saved calibration); JSON on stdout or in --out",
             _add_test, _run_test),
    "calibrate": ("run the null toys of a reference once and save them, for many "
                  "'sparker test --calibration' runs",
                  _add_calibrate, _run_calibrate),
    "bench": ("benchmark studies: 'sparker bench power --scenario S' measures the power of SparKer "
              "and the baselines against the signal fraction",
              _add_bench, _run_bench),
}


def _global_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log progress (INFO level) on stderr")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    """The ``sparker`` argument parser (global flags work before or after the subcommand)."""
    parser = _Parser(prog=PROG, description="SparKer: sparse, self-organising ensembles of local "
                     "kernels that detect rare anomalies in a data sample relative to a reference.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _global_flags(parser, default=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, default=argparse.SUPPRESS)  # do not reset flags given before the command
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush fails silently."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (captured)
        pass


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0

    package_log = logging.getLogger("sparker")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    level = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.run(args)
    except BrokenPipeError:  # stdout closed early, as in `sparker test ... | head`
        _silence_stdout()
        return 1
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (a bug, not a user error: still one line unless --debug)
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(error).split())
        print(f"{PROG}: internal error: {type(error).__name__}{': ' + message if message else ''} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level)
