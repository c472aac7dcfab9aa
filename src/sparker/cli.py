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

User errors (bad input, missing file, refused overwrite, bad flag) print one line
``sparker: error: <message>`` on stderr and exit with status 2; ``--debug`` adds the
traceback.
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

from . import __version__
from .config import TrainingConfig
from .estimator import SparKer
from .io import _to_jsonable, read_table, write_json
from .kernels import COMPETITIONS
from .scenarios import make
from .schedules import SCHEDULES

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


def _add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per training setting; an absent flag keeps the estimator default."""
    group = parser.add_argument_group(
        "training settings", "fields of sparker.TrainingConfig; omitted flags keep the defaults"
    )
    hints = typing.get_type_hints(TrainingConfig)
    defaults = inspect.signature(SparKer).parameters
    helps = _parameter_help()
    for name, flag in training_flags().items():
        kind = _flag_type(hints[name])
        default = defaults[name].default if name in defaults else None
        text = helps.get(name) or _FALLBACK_HELP.get(name, name.replace("_", " "))
        text = f"{text} (default: {'automatic' if default is None else default})"
        options: dict = {"dest": name, "default": argparse.SUPPRESS, "help": text.replace("%", "%%")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif name in _SETTING_CHOICES:
            options["choices"] = sorted(_SETTING_CHOICES[name])
        else:
            options["type"] = kind
            options["metavar"] = kind.__name__.upper()
        group.add_argument(flag, **options)


# ------------------------------------------------------------------------- fit


def _add_fit(parser: argparse.ArgumentParser) -> None:
    io_group = parser.add_argument_group("inputs and outputs")
    io_group.add_argument("--reference", required=True, type=Path, metavar="FILE",
                          help="reference sample, shape (n_reference, n_features)")
    io_group.add_argument("--data", required=True, type=Path, metavar="FILE",
                          help="inspected sample, shape (n_data, n_features)")
    io_group.add_argument("--reference-weight", type=Path, metavar="FILE",
                          help="per-point reference weights, shape (n_reference,)")
    io_group.add_argument("--data-weight", type=Path, metavar="FILE",
                          help="per-point data weights, shape (n_data,)")
    io_group.add_argument("--key", help="array name inside .npz reference/data files holding several")
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

    return pd.DataFrame(table, columns=names)


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


def _run_fit(args: argparse.Namespace) -> int:
    _refuse_existing([("--out", args.out), ("--model", args.model)], args.force)
    inputs = (args.reference, args.data)
    if args.key is not None and not any(p.name.lower().endswith(".npz") for p in inputs):
        raise ValueError("--key: only used when --reference or --data is a .npz file")
    reference, names_r = read_table(args.reference, name="reference", key=_npz_key(args.reference, args.key))
    data, names_d = read_table(args.data, name="data", key=_npz_key(args.data, args.key))
    reference_weight = _read_weights(args.reference_weight, name="reference_weight")
    data_weight = _read_weights(args.data_weight, name="data_weight")
    reference, data = _named(reference, names_r), _named(data, names_d)

    settings = {name: getattr(args, name) for name in training_flags() if hasattr(args, name)}
    model = SparKer(seed=args.seed, n_expected=args.n_expected, device=args.device, **settings)
    log.info("fitting %s to %s, settings %s", args.reference, args.data, settings or "default")
    start = time.perf_counter()
    model.fit(reference, data, reference_weight=reference_weight, data_weight=data_weight,
              normalize_reference=args.normalize_reference)
    log.info("fitted in %.1f s, t = %.4g", time.perf_counter() - start, model.statistic_)

    result = model.to_dict()
    result["inputs"] = {
        flag: {"file": os.fspath(path), "shape": list(np.shape(array))}
        for flag, path, array in (
            ("reference", args.reference, reference),
            ("data", args.data, data),
            ("reference_weight", args.reference_weight, reference_weight),
            ("data_weight", args.data_weight, data_weight),
        )
        if path is not None
    }
    result["sparker_version"] = __version__
    if args.model is not None:
        model.save(args.model, overwrite=args.force)
        log.info("saved the model to %s", args.model)
    if args.out is None:
        json.dump(_to_jsonable(result, "result"), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        write_json(args.out, result, overwrite=args.force)
        log.info("wrote %s", args.out)
    return 0


# ------------------------------------------------------------------------ demo


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenario and the fit (default: 0)")
    parser.add_argument("--out", type=Path, default=Path("sparker-demo"), metavar="DIR",
                        help="folder for result.json and model.npz (default: ./sparker-demo)")
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
        f"SparKer demo: scenario {DEMO_SCENARIO} (seed {seed}), {len(reference)} reference points, "
        f"{len(data)} data points of which {int(truth['is_anomaly'].sum())} in {n_clumps} clumps "
        f"(std {params['clump_std']})",
        f"fitted {DEMO_KERNELS} kernels in {seconds:.1f} s: t = {model.statistic_:.2f}"
        + ("" if model.converged_ else " (loss not yet settled)"),
        "",
        f"{'kernel':>6}  {'centre':<16}  {'amplitude':>9}  {'n_data':>8}  {'n_reference':>11}  "
        f"{'log ratio':>9}",
    ]
    for k, c in zip(model.kernels_, model.centres_):
        ratio = "-" if k["log_ratio"] is None else f"{k['log_ratio']:+.2f}"
        lines.append(f"{k['kernel']:>6}  {_fmt_point(c):<16}  {k['amplitude']:>+9.2f}  "
                     f"{k['n_data']:>8.1f}  {k['n_reference']:>11.1f}  {ratio:>9}")
    lines += ["", f"{'true clump':<16}  {'nearest kernel':>14}  {'distance':>8}"]
    for row in comparison:
        lines.append(f"{_fmt_point(row['clump']):<16}  {row['nearest_kernel']:>14}  {row['distance']:>8.3f}")
    n_found = sum(row["found"] for row in comparison)
    lines += [
        "",
        f"{n_found} of {n_clumps} clumps have a kernel within {DEMO_TOLERANCE}",
        "higher log ratio = more anomalous; t is not a p-value until calibrated on null samples",
    ]
    return "\n".join(lines)


def _run_demo(args: argparse.Namespace) -> int:
    result_path, model_path = args.out / "result.json", args.out / "model.npz"
    if args.out.exists() and not args.out.is_dir():
        raise NotADirectoryError(f"--out: {args.out} exists and is not a folder")
    _refuse_existing([("--out", result_path), ("--out", model_path)], args.force)

    reference, data, truth = make(DEMO_SCENARIO, seed=args.seed)
    model = SparKer(n_kernels=DEMO_KERNELS, seed=args.seed)
    start = time.perf_counter()
    model.fit(reference, data)
    seconds = time.perf_counter() - start
    comparison = _nearest_kernels(model.centres_, np.asarray(truth["centres"]), model.amplitudes_)

    result = model.to_dict()
    result.update({
        "scenario": DEMO_SCENARIO,
        "scenario_seed": args.seed,
        "scenario_params": truth["params"],
        "truth": {
            "centres": truth["centres"],
            "n_anomalies": int(truth["is_anomaly"].sum()),
            "tolerance": DEMO_TOLERANCE,
            "nearest_kernels": comparison,
            "n_found": sum(row["found"] for row in comparison),
        },
        "fit_seconds": seconds,
        "sparker_version": __version__,
    })
    print(_demo_report(model, reference, data, truth, comparison, seconds, args.seed))
    write_json(result_path, result, overwrite=args.force)
    model.save(model_path, overwrite=args.force)
    print(f"\nwrote {result_path} and {model_path}")
    return 0


# --------------------------------------------------------------------- parser

#: Subcommand -> (help, adds its arguments, runs it and returns the exit status).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the square2d scenario end to end (4 kernels, 3 clumps) and write a report",
             _add_demo, _run_demo),
    "fit": ("fit SparKer to a reference and a data file; JSON summary on stdout or --out",
            _add_fit, _run_fit),
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
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level)
