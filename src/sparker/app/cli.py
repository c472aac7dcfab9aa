"""Command line of SparKer (entry point ``sparker``, also ``python -m sparker``).

Subcommands live in the :data:`COMMANDS` registry (name -> help, adder of arguments and
runner), so adding one is one function pair and one dict entry; the commands are in
:mod:`sparker.app.commands` and :mod:`sparker.app.demo`, their flags are built by
:mod:`sparker.app.flags` from the configuration dataclasses.

- ``sparker demo``: the embedded default. Builds the ``square2d`` scenario (paper,
  fig. 4: a uniform square with three small clumps), fits 4 kernels, prints the
  statistic, the kernel table and how close the kernels came to the true clumps,
  and writes ``report.html``, ``result.json`` and ``model.npz``.
- ``sparker fit --reference R --data D``: fits one model to two files
  (``.npy``, ``.npz``, ``.csv``, ``.csv.gz``, ``.parquet``) and writes its summary as
  JSON to stdout or ``--out``. The training flags are generated from the fields of
  :class:`sparker.config.TrainingConfig` (``n_kernels`` -> ``--n-kernels``, booleans as
  ``--reseed/--no-reseed``, ``--layers`` as JSON); a flag left out keeps the default.
- ``sparker test --reference R --data D``: the calibrated test (:func:`sparker.test`):
  fits the observed samples and ``--n-null`` null toys and prints the p-value, Z and
  null distribution as JSON, or writes ``DIR/result.json`` and ``DIR/model.npz`` with
  ``--out DIR``. A training flag may take a comma-separated list (``--n-kernels 4,8``):
  one configuration per value, run on the same toys and aggregated (``--aggregation``).
  ``--calibration FILE`` reuses saved toys instead; flags the calibration fixes must then
  be left out or agree with it. ``--method NAME`` runs a baseline instead
  (:data:`sparker.methods.METHODS`). The null-toy and execution flags are generated from
  :class:`sparker.config.NullConfig` and :class:`sparker.config.RunConfig`.
- ``sparker calibrate --reference R --n-data N --out FILE``: runs the null toys once
  (:func:`sparker.calibrate`), saves them and prints a short JSON summary.
- ``sparker bench power --scenario S``: the power study of :mod:`sparker.app.bench`.

User errors (bad input, missing file, refused overwrite, bad flag) print one line
``sparker: error: <message>`` on stderr and exit with status 2; ``--debug`` adds the
traceback. Any other exception (a bug) is also reported on one line, with status 1.
Flags are never abbreviated (``--n-kernel`` is not ``--n-kernels``), and an unknown flag
is reported before anything else, with the closest known flag as a suggestion.
Warnings (:class:`sparker.SparKerWarning` and its subclass
:class:`sparker.ConvergenceWarning`) are printed as one ``WARNING: ...`` line each, as
the log lines are.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
import traceback
import typing
import warnings
from collections.abc import Callable

from .._version import __version__
from .._warnings import SparKerWarning
from . import commands, demo, monitor_cmd
from .flags import training_flags

__all__ = ["main", "build_parser", "COMMANDS", "training_flags"]

PROG = "sparker"

#: Exceptions reported as one-line user errors (raised by validation and I/O).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError)


class _UsageError(Exception):
    """An argparse usage error, reported by :func:`main` on one line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors reach :func:`main` instead of exiting; no abbreviated flags."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # subcommand -> its parser

    def error(self, message: str) -> typing.NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


#: Subcommand -> (help, adds its arguments, runs it and returns the exit status).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "demo": (demo.HELP, demo.add_arguments, demo.run),
    "fit": (commands.FIT_HELP, commands.add_fit, commands.run_fit),
    "test": (commands.TEST_HELP, commands.add_test, commands.run_test),
    "calibrate": (commands.CALIBRATE_HELP, commands.add_calibrate, commands.run_calibrate),
    "bench": (commands.BENCH_HELP, commands.add_bench, commands.run_bench),
    "monitor": (monitor_cmd.HELP, monitor_cmd.add_arguments, monitor_cmd.run),
}


def _global_flags(parser: argparse.ArgumentParser, default) -> None:
    """``-v``/``--verbose`` and ``--debug``, on the main parser and on every command."""
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
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _global_flags(common, default=argparse.SUPPRESS)  # do not reset flags given before the command
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        add_arguments(command)
        command.set_defaults(run=run)
        parser.commands[name] = command
    return parser


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _unknown_flag(parser: _Parser, argv: typing.Sequence[str]) -> str | None:
    """The first flag of ``argv`` that neither ``sparker`` nor its command has, with a suggestion.

    Checked before parsing, so that a typo such as ``--refrence`` is reported as itself
    rather than as a missing ``--reference``.  Returns the error message, or None.
    """
    known, prog = _flags(parser), parser.prog
    for token in argv:
        if token == "--":
            break
        if not token.startswith("-"):
            if prog == parser.prog and token in parser.commands:  # the command: its flags count too
                known, prog = known | _flags(parser.commands[token]), parser.commands[token].prog
            continue
        flag = token.split("=", 1)[0]
        if flag in known or _is_number(token):
            continue
        close = difflib.get_close_matches(flag, sorted(f for f in known if f.startswith("--")), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown flag {flag}{hint} (see '{prog} --help')"
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command line: one line, as the log lines.

    SparKer's own warnings start with what they are about; others say their category.
    """
    kind = "" if issubclass(category, SparKerWarning) else f"{category.__name__}: "
    print(f"WARNING: {kind}{message}", file=sys.stderr if file is None else file)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush fails silently."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (captured)
        pass


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    0 on success, 2 for a user error (one line on stderr), 1 for an internal
    error or a closed stdout, 130 when interrupted.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    problem = _unknown_flag(parser, argv)
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
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
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning  # one line each, as the log lines
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
