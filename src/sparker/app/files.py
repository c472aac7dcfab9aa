"""Input files and output paths of the commands.

Inputs (``--reference``, ``--data``, their weights, ``--key``, ``--delimiter``,
``--columns``) are read by :func:`sparker.io.read_table`; a table with a header
becomes a DataFrame, so that the kernel table keeps the column names.  When both
tables have headers, the data's columns are matched to the reference's by name.
Outputs are refused before any work when they exist (unless ``--force``) or their
folder cannot be written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import typing
from pathlib import Path

import numpy as np

from ..io import WHITESPACE, read_table, to_jsonable

__all__ = [
    "add_input_flags", "read_inputs", "refuse_existing", "result_files", "report_files", "print_json",
    "WEIGHTS",
]

log = logging.getLogger(__name__)

#: the per-point weight inputs, in the order of their flags
WEIGHTS = ("reference_weight", "data_weight")
#: ``--delimiter`` names -> the delimiter
DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "whitespace": WHITESPACE,
              "space": WHITESPACE}
_CSV = (".csv", ".csv.gz")


def _delimiter(text: str) -> str:
    """argparse type of ``--delimiter``: a name of :data:`DELIMITERS` or one character."""
    value = DELIMITERS.get(text.lower(), text)
    if value != WHITESPACE and (len(value) != 1 or value in '"\r\n'):
        raise argparse.ArgumentTypeError(
            f"expected comma, semicolon, tab, whitespace or one character, got {text!r}")
    return value


def _columns(text: str) -> list[str]:
    """argparse type of ``--columns``: comma-separated, distinct column names."""
    names = [name.strip() for name in text.split(",")]
    if not all(names) or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated column names, got {text!r}")
    return names


def add_input_flags(parser: argparse.ArgumentParser, *, data: bool = True) -> argparse._ArgumentGroup:
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
    group.add_argument("--delimiter", type=_delimiter, metavar="SEP",
                       help="field separator of .csv inputs: comma, semicolon, tab, whitespace or one "
                            "character (default: detected from the first lines)")
    group.add_argument("--columns", type=_columns, metavar="A,B,...",
                       help="use these columns, in this order, of the reference"
                            + (" and data tables" if data else " table") + " (needs a header row)")
    return group


def _read(path: Path, name: str, args: argparse.Namespace, columns: list[str] | None = None):
    """One input file, with ``--key``, ``--delimiter`` (.csv files) and ``columns``."""
    csv = path.name.lower().endswith(_CSV)
    try:
        return read_table(path, name=name, key=args.key if path.name.lower().endswith(".npz") else None,
                          delimiter=args.delimiter if csv else None, columns=columns)
    except ValueError as error:
        if str(error).startswith(("columns: ", "delimiter: ")):
            raise ValueError(f"--{error}") from None
        raise


def _read_weights(path: Path | None, name: str, args: argparse.Namespace) -> np.ndarray | None:
    """Read a weight file; a single-column table becomes a vector."""
    if path is None:
        return None
    weights, _ = _read(path, name, args)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    return weights


def _named(table: np.ndarray, names: list[str] | None):
    """A table with column names as a DataFrame, so the kernel table keeps them."""
    if names is None:
        return table
    import pandas as pd

    return pd.DataFrame(table, columns=names, copy=False)  # a view: no second copy of a large table


def _match_columns(tables: dict) -> None:
    """Put the data's columns in the reference's order when both tables name them.

    ``tables``: input -> (array, names), changed in place.  Names that differ are an error.
    """
    (_, ref), (data, names) = tables["reference"], tables.get("data", (None, None))
    if ref is None or names is None or names == ref:
        return
    if sorted(names) == sorted(ref) and len(set(ref)) == len(ref):
        tables["data"] = data[:, [names.index(name) for name in ref]], list(ref)
        log.info("--data: columns matched to the reference's by name (%s)", ", ".join(ref))
        return
    missing, unexpected = [n for n in ref if n not in names], [n for n in names if n not in ref]
    raise ValueError(f"data: columns {names} do not match the reference's {ref} (missing {missing}, "
                     f"unexpected {unexpected}); rename them, or pick the common ones with --columns")


def read_inputs(args: argparse.Namespace) -> tuple[dict, dict]:
    """Read the input files named by :func:`add_input_flags`.

    Returns the arrays (``reference``, ``data``, ``reference_weight``, ``data_weight``;
    a table with a header becomes a DataFrame, an absent input None) and their
    provenance for the JSON output (file and shape of each given input).
    """
    tables = {name: getattr(args, name, None) for name in ("reference", "data")}
    weights = {name: getattr(args, name, None) for name in WEIGHTS}
    given = {name: path for name, path in tables.items() if path is not None}
    if args.key is not None and not any(p.name.lower().endswith(".npz") for p in given.values()):
        raise ValueError(f"--key: only used when {' or '.join('--' + n for n in given)} is a .npz file")
    files = [*given.values(), *(p for p in weights.values() if p is not None)]
    if args.delimiter is not None and not any(p.name.lower().endswith(_CSV) for p in files):
        raise ValueError("--delimiter: only used for .csv inputs")
    read = {name: _read(path, name, args, args.columns) for name, path in given.items()}
    _match_columns(read)
    arrays = {name: _named(*read[name]) if name in read else None for name in tables}
    arrays.update({name: _read_weights(path, name, args) for name, path in weights.items()})
    inputs = {
        name: {"file": os.fspath(path), "shape": list(np.shape(arrays[name]))}
        for name, path in {**tables, **weights}.items()
        if path is not None
    }
    return arrays, inputs


def refuse_existing(paths: typing.Iterable[tuple[str, Path | None]], force: bool) -> None:
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


def result_files(folder: Path, force: bool) -> tuple[Path, Path]:
    """``folder/result.json`` and ``folder/model.npz``, refused up front if they exist."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--out: {folder} exists and is not a folder")
    paths = folder / "result.json", folder / "model.npz"
    refuse_existing([("--out", path) for path in paths], force)
    return paths


def report_files(folder: Path, force: bool) -> tuple[Path, Path, Path]:
    """``folder/result.json``, ``folder/model.npz`` and ``folder/report.html``, refused up front."""
    from .report import REPORT_FILE

    result_path, model_path = result_files(folder, force)
    report_path = folder / REPORT_FILE
    refuse_existing([("--out", report_path)], force)
    return result_path, model_path, report_path


def print_json(obj) -> None:
    """``obj`` as indented JSON on stdout (NaN and infinities as null)."""
    json.dump(to_jsonable(obj, "result"), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
