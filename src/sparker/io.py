"""Reading samples from files and writing results safely.

Tables are read by file suffix through a registry (``.npy``, ``.npz``, ``.csv``,
``.csv.gz``, ``.parquet``), so the command line and the Python API accept the same
formats. Files are written atomically: the content goes to a temporary file in the
target directory, is flushed to disk, and then replaces the target in one
``os.replace``, so a reader never sees a half-written file and a failed write leaves
any previous file intact.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.util
import io
import itertools
import json
import math
import os
import secrets
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import frame_to_array

__all__ = [
    "SUPPORTED_SUFFIXES",
    "WHITESPACE",
    "write_archive",
    "read_archive",
    "check_format",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_table",
    "to_jsonable",
    "write_json",
]

# Errors raised by numpy, pandas and pyarrow on truncated or corrupted files. pyarrow's
# ArrowInvalid derives from ValueError and ArrowIOError from OSError.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    UnicodeDecodeError,
)


#: ``delimiter`` of a CSV file whose fields are separated by runs of spaces or tabs
WHITESPACE = "whitespace"
#: lines of a CSV file read to detect its delimiter
_SNIFF_LINES = 20
_CSV_SUFFIXES = (".csv", ".csv.gz")


def read_table(
    path: str | os.PathLike[str], *, name: str, key: str | None = None, delimiter: str | None = None,
    columns: list[str] | tuple[str, ...] | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """Read a sample of shape (n_samples, n_features) from a file.

    The format is chosen by suffix (case-insensitive):

    - ``.npy``: memory-mapped read-only with ``numpy.load(mmap_mode="r")``, no pickle.
    - ``.npz``: the only array in the archive, or the one named ``key``; no pickle.
    - ``.csv``, ``.csv.gz``: read with :func:`pandas.read_csv`; the delimiter is the first of
      tab, semicolon, comma that splits the first lines alike, else whitespace, else comma. The
      first row is a header unless all its cells are numbers (or ``true``/``false``). A first
      column with an empty header (the index written by ``DataFrame.to_csv``) is dropped.
    - ``.parquet``: read with :func:`pandas.read_parquet` (needs pyarrow or fastparquet).

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    name : str
        Name of the argument (e.g. ``"reference"``), the prefix of every error message.
    key : str, optional
        Name of the array to use in a ``.npz`` archive holding several arrays. Only
        valid for ``.npz`` files.
    delimiter : str, optional
        Field separator of a CSV file, one character or :data:`WHITESPACE`; default:
        detected. Only valid for CSV files.
    columns : list of str, optional
        Read only these columns, in this order (by header name); needs a CSV file with
        a header row or a Parquet file.

    Returns
    -------
    array : numpy.ndarray
        The table as stored: any dtype and shape for ``.npy``/``.npz`` (a read-only
        memory map for ``.npy``), float64 of shape (n_samples, n_features) for tables
        (Parquet columns of one float dtype keep it: float32 stays float32).
        Not yet checked for shape or NaN: pass it to :func:`sparker._validation.check_array`.
    feature_names : list of str or None
        Column names of a CSV file with a header or of a Parquet file, else None.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the suffix is not supported, ``key`` is missing, unknown or given for a
        format without keys, ``delimiter`` or ``columns`` is invalid for the file (a
        column it lacks is named), or the file is truncated or corrupted.
    TypeError
        If a CSV or Parquet column is not numeric (the column is named).
    ImportError
        If a Parquet file is read without pyarrow or fastparquet installed.
    """
    path = Path(path)
    suffix = _match_suffix(path)
    if suffix is None:
        raise ValueError(
            f"{name}: unsupported file type {path.name!r}; supported suffixes are "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.exists():
        raise FileNotFoundError(f"{name}: file not found: {path}")
    if key is not None and suffix != ".npz":
        raise ValueError(f"{name}: key={key!r} is only used for .npz files, got {path.name!r}")
    options = _table_options(path, suffix, delimiter, columns, name=name)
    reader = _READERS[suffix]
    try:
        return reader(path, name=name, key=key, **options)
    except _ReadError as error:
        raise ValueError(str(error)) from None
    except _READ_ERRORS as error:
        if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise type(error)(f"{name}: cannot read {path}: {error}") from error
        raise ValueError(
            f"{name}: cannot read {path} (truncated or corrupted {suffix} file?): "
            f"{type(error).__name__}: {str(error).strip()}"
        ) from error


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> None:
    """Write bytes to a file atomically.

    The bytes go to a temporary file in the same directory, are flushed and
    ``fsync``-ed, and the temporary file then replaces ``path`` with ``os.replace``.
    Missing parent directories are created. On failure the temporary file is removed
    and an existing file at ``path`` is left untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    data : bytes
        Content to write (any bytes-like object).
    overwrite : bool, default=False
        Replace ``path`` if it exists. Otherwise an existing file is an error.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    IsADirectoryError
        If ``path`` is a directory.
    TypeError
        If ``data`` is not bytes-like.

    Notes
    -----
    The existence check and the final replace are two steps, so a file created by
    another process in between is replaced.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True to replace it "
            "(--force on the command line)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary, descriptor = _create_temporary(path)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc  # say which file
        raise
    _fsync_directory(path.parent)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, overwrite: bool = False
) -> None:
    """Write text (UTF-8) to a file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    text : str
        Content to write, encoded as UTF-8; newlines are written as given.
    overwrite : bool, default=False
        Replace ``path`` if it exists.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    TypeError
        If ``text`` is not a str.

    See Also
    --------
    atomic_write_bytes : the underlying atomic write.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def write_json(path: str | os.PathLike[str], obj: Any, *, overwrite: bool = False) -> None:
    """Write an object as indented JSON, atomically.

    NumPy scalars and arrays, torch tensors (anything with ``tolist``), tuples,
    ``pathlib`` paths, dataclasses and objects with a ``to_dict`` method are converted
    to JSON types. Non-finite floats (NaN, inf, -inf) are written as ``null``, since
    JSON has no such values.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    obj : object
        The object to write.
    overwrite : bool, default=False
        Replace ``path`` if it exists.

    Raises
    ------
    TypeError
        If ``obj`` contains a value that cannot be converted; the location within the
        object is given.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    text = json.dumps(to_jsonable(obj, "obj"), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text, overwrite=overwrite)


class _ReadError(ValueError):
    """A reader's own ValueError, whose message is complete (not a corrupted file)."""


def write_archive(path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *,
                  overwrite: bool = False) -> None:
    """Write plain arrays plus a JSON header (``__meta__``) as one ``.npz``, atomically.

    The header is converted to JSON first, so an unserialisable value fails
    before anything is written.  No pickle is involved.
    """
    header = json.dumps(to_jsonable(dict(meta), "meta")).encode()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(header, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def read_archive(path, *, kind: str, format_name: str, version: int, name: str = "path"
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an archive written by :func:`write_archive` and check its header.

    Raises FileNotFoundError for a missing file and ValueError (starting with
    ``name``) for a file that is not a readable ``.npz`` with a JSON header, is
    of another format, or of another format version.  ``allow_pickle`` is off:
    nothing in the file is executed.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode(), parse_constant=_no_constant)
    except Exception as exc:  # zip, json, unicode, missing header, pickled content, memory
        raise ValueError(f"{name}: {path} is not a readable {kind} file ({type(exc).__name__}: {exc})") from None
    check_format(meta, path, what=f"{kind} file", format_name=format_name, version=version, name=name)
    return arrays, meta


def check_format(header: Any, path, *, what: str, format_name: str, version: int, name: str = "path") -> None:
    """Raise a ValueError (starting with ``name``) unless ``header`` is a dict of ``format_name``
    at format version ``version`` (an int, not a bool).  ``what`` names the file in the message."""
    if not isinstance(header, dict) or header.get("format") != format_name:
        raise ValueError(f"{name}: {path} is not a {what}")
    found = header.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found != version:
        raise ValueError(f"{name}: {path} has format version {found!r}; this SparKer reads version {version}")


def _no_constant(token: str):
    """``json`` hook: our headers never hold NaN or Infinity (written as null)."""
    raise ValueError(f"unexpected {token} in the JSON header")


def _table_options(path: Path, suffix: str, delimiter, columns, *, name: str) -> dict:
    """The checked ``delimiter`` and ``columns`` of :func:`read_table`, as reader keywords."""
    options = {}
    if delimiter is not None:
        if suffix not in _CSV_SUFFIXES:
            raise ValueError(f"delimiter: only used for .csv files, got {name} file {path.name!r}")
        if not isinstance(delimiter, str) or (delimiter != WHITESPACE and (
                len(delimiter) != 1 or delimiter in '"\r\n')):
            raise ValueError(f"delimiter: expected one character or {WHITESPACE!r}, got {delimiter!r}")
        options["delimiter"] = delimiter
    if columns is not None:
        if isinstance(columns, str) or not isinstance(columns, (list, tuple)) or not columns \
                or not all(isinstance(c, str) and c for c in columns) or len(set(columns)) < len(columns):
            raise ValueError(f"columns: expected a non-empty list of distinct column names, got {columns!r}")
        if suffix not in (*_CSV_SUFFIXES, ".parquet"):
            raise ValueError(f"columns: {name} file {path.name!r} has no column names; picking columns "
                             "needs a .csv file with a header row or a .parquet file")
        options["columns"] = list(columns)
    return options


def _csv_separator(path: Path) -> str:
    """The field separator of a CSV file, detected from its first non-empty lines.

    The first of tab, semicolon and comma that splits every line into the same number
    (more than one) of fields (quotes respected); else runs of whitespace, if they split
    two lines or more alike; else comma (pandas then reports what is wrong).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as stream:
            lines = [line for line in itertools.islice(stream, _SNIFF_LINES) if line.strip()]
    except (OSError, EOFError, zlib.error):
        return ","
    for candidate in ("\t", ";", ","):
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1 and counts.pop() > 1:
            return candidate
    counts = {len(line.split()) for line in lines}
    return r"\s+" if len(lines) > 1 and len(counts) == 1 and counts.pop() > 1 else ","


def _picked(frame, columns: list[str] | None, *, name: str, path: Path):
    """``frame``'s ``columns``, in that order; a column it lacks is named."""
    if columns is None:
        return frame
    labels = {str(column): column for column in frame.columns}
    missing = [column for column in columns if column not in labels]
    if missing:
        raise _ReadError(f"columns: {name} file {path} has no column {', '.join(map(repr, missing))}; "
                         f"its columns are {list(labels)}")
    return frame[[labels[column] for column in columns]]


def _read_npy(path: Path, *, name: str, key: str | None) -> tuple[np.ndarray, None]:
    """Read a ``.npy`` file as a read-only memory map."""
    loaded = np.load(path, allow_pickle=False, mmap_mode="r")
    if isinstance(loaded, Mapping):
        loaded.close()
        raise _ReadError(f"{name}: {path} is a .npz archive, not a .npy file; rename it")
    return np.asarray(loaded), None


def _read_npz(path: Path, *, name: str, key: str | None) -> tuple[np.ndarray, None]:
    """Read one array of a ``.npz`` archive."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, Mapping):
        raise _ReadError(f"{name}: {path} is a .npy file, not a .npz archive; rename it")
    with loaded as archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise _ReadError(
                    f"{name}: {path} holds {len(keys)} arrays {keys}; choose one with key="
                )
            key = keys[0]
        elif key not in keys:
            raise _ReadError(f"{name}: {path} has no array {key!r}; its keys are {keys}")
        return np.asarray(archive[key]), None


def _read_csv(path: Path, *, name: str, key: str | None, delimiter: str | None = None,
              columns: list[str] | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Read a CSV file, detecting its delimiter (unless given) and a header row."""
    import pandas as pd

    sep = _csv_separator(path) if delimiter is None else r"\s+" if delimiter == WHITESPACE else delimiter
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, sep=sep)
    except pd.errors.EmptyDataError as error:
        raise _ReadError(f"{name}: {path} is empty") from error
    has_header = not all(_is_number(cell) for cell in first.iloc[0])
    if columns is not None:
        if not has_header:
            raise _ReadError(f"columns: {name} file {path} has no header row to pick columns from")
        _picked(pd.read_csv(path, header=0, sep=sep, nrows=0), columns, name=name, path=path)  # names
        wanted = set(columns)  # the other columns are never parsed
        frame = pd.read_csv(path, header=0, sep=sep, usecols=lambda column: str(column) in wanted)
        frame = _picked(frame, columns, name=name, path=path)
    else:
        frame = pd.read_csv(path, header=0 if has_header else None, sep=sep)
        if has_header and frame.shape[1] > 0 and pd.isna(first.iloc[0, 0]):
            frame = frame.iloc[:, 1:]  # unnamed first column: the index written by to_csv
    return _table_to_array(frame, name=name, path=path, has_names=has_header)


def _read_parquet(
    path: Path, *, name: str, key: str | None, columns: list[str] | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """Read a Parquet file with pandas."""
    if not any(importlib.util.find_spec(engine) for engine in ("pyarrow", "fastparquet")):
        raise ImportError(
            f"{name}: reading .parquet files needs pyarrow (or fastparquet); install it "
            "with `pip install pyarrow`"
        )
    import pandas as pd

    frame = _picked(pd.read_parquet(path), columns, name=name, path=path)
    return _table_to_array(frame, name=name, path=path, has_names=True, lean=True)


def _table_to_array(
    frame: Any, *, name: str, path: Path, has_names: bool, lean: bool = False
) -> tuple[np.ndarray, list[str] | None]:
    """Convert a DataFrame read from ``path`` to a float64 array and its column names.

    With ``lean``, columns of one float dtype keep it (no float64 copy of a float32 table).
    """
    array = frame_to_array(frame, name=f"{name} ({path})", lean=lean)
    names = [str(column) for column in frame.columns] if has_names else None
    return array, names


def _is_number(cell: Any) -> bool:
    """Tell whether a CSV cell read as text is a number, a boolean or missing."""
    if not isinstance(cell, str):
        return True  # missing value, read as NaN
    if cell.strip().lower() in ("true", "false"):
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


_READERS: dict[str, Callable[..., tuple[np.ndarray, list[str] | None]]] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".csv": _read_csv,
    ".csv.gz": _read_csv,
    ".parquet": _read_parquet,
}

SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_READERS)


def _match_suffix(path: Path) -> str | None:
    """Return the longest supported suffix that ``path`` ends with, or None."""
    lowered = path.name.lower()
    matches = [suffix for suffix in _READERS if lowered.endswith(suffix)]
    return max(matches, key=len) if matches else None


def _create_temporary(path: Path) -> tuple[Path, int]:
    """Create a new, empty temporary file beside ``path``; return it and its descriptor.

    The file is created with mode 0o666 so that the process umask applies, as for a
    file created with ``open``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return temporary, os.open(temporary, flags, 0o666)
        except FileExistsError:
            continue


def _fsync_directory(directory: Path) -> None:
    """Flush a directory entry to disk where the platform allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def to_jsonable(obj: Any, where: str) -> Any:
    """Recursively convert ``obj`` to JSON-compatible Python types.

    Parameters
    ----------
    obj : object
        ``None``, bools, strings, numbers (NumPy scalars too), mappings, lists,
        tuples, paths, arrays and tensors (``tolist``), objects with a
        ``to_dict`` method and dataclass instances, nested in any way.
    where : str
        Name of ``obj`` in error messages (``result``, ``meta``...); nested
        values are named ``where['key'][0]``.

    Returns
    -------
    object
        Plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``;
        NaN and infinite floats become ``None``.

    Raises
    ------
    TypeError
        Naming the first value (or mapping key) that has no JSON form.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer, np.bool_)):
        return obj.item() if isinstance(obj, np.generic) else obj
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Mapping):
        return {_json_key(key, where): to_jsonable(value, f"{where}[{key!r}]")
                for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value, f"{where}[{index}]") for index, value in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if callable(getattr(obj, "to_dict", None)) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict(), where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), where)
    if callable(getattr(obj, "tolist", None)):  # numpy arrays and scalars, torch tensors
        if hasattr(obj, "detach"):  # torch tensor
            obj = obj.detach().cpu()
        return to_jsonable(obj.tolist(), where)
    raise TypeError(f"{where}: cannot write an object of type {type(obj).__name__} as JSON")


def _json_key(key: Any, where: str) -> str | int | float | bool | None:
    """Convert a mapping key to a type ``json`` accepts as a key."""
    if isinstance(key, np.generic):
        key = key.item()
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    raise TypeError(f"{where}: cannot write a key of type {type(key).__name__} as JSON")
