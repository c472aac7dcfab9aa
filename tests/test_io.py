"""Tests for sparker.io: reading tables by suffix and atomic, non-clobbering writes."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from sparker import io
from sparker._validation import check_array
from sparker.io import (
    SUPPORTED_SUFFIXES,
    atomic_write_bytes,
    atomic_write_text,
    read_table,
    write_json,
)

X = np.arange(15.0).reshape(5, 3) / 4.0
NAMES = ["mass", "pt", "eta"]


# ---------------------------------------------------------------- round trips


def test_npy_round_trip_is_memory_mapped(tmp_path):
    path = tmp_path / "sample.npy"
    np.save(path, X)
    array, names = read_table(path, name="reference")
    assert names is None
    np.testing.assert_array_equal(array, X)
    assert not array.flags.writeable  # read-only memory map
    clean, _, _ = check_array(array, name="reference")
    assert clean.flags.writeable
    np.testing.assert_array_equal(clean, X)


def test_npz_single_array(tmp_path):
    path = tmp_path / "sample.npz"
    np.savez_compressed(path, anything=X)
    array, names = read_table(str(path), name="data")
    np.testing.assert_array_equal(array, X)
    assert names is None


def test_npz_with_key(tmp_path):
    path = tmp_path / "sample.npz"
    np.savez(path, reference=X, data=2 * X)
    array, _ = read_table(path, name="data", key="data")
    np.testing.assert_array_equal(array, 2 * X)


def test_csv_with_header(tmp_path):
    path = tmp_path / "sample.csv"
    pd.DataFrame(X, columns=NAMES).to_csv(path, index=False)
    array, names = read_table(path, name="data")
    assert names == NAMES
    np.testing.assert_allclose(array, X)


def test_csv_without_header(tmp_path):
    path = tmp_path / "sample.csv"
    pd.DataFrame(X).to_csv(path, index=False, header=False)
    array, names = read_table(path, name="data")
    assert names is None
    assert array.shape == X.shape
    np.testing.assert_allclose(array, X)


def test_csv_with_index_column_drops_it(tmp_path):
    path = tmp_path / "sample.csv"
    pd.DataFrame(X, columns=NAMES).to_csv(path)
    array, names = read_table(path, name="data")
    assert names == NAMES
    np.testing.assert_allclose(array, X)


def test_csv_booleans_and_gzip(tmp_path):
    path = tmp_path / "sample.CSV.GZ"
    frame = pd.DataFrame({"flag": [True, False], "x": [1.5, 2.5]})
    frame.to_csv(path, index=False, compression="gzip")
    array, names = read_table(path, name="data")
    assert names == ["flag", "x"]
    np.testing.assert_array_equal(array, [[1.0, 1.5], [0.0, 2.5]])


def test_csv_missing_value_left_for_check_array(tmp_path):
    path = tmp_path / "sample.csv"
    path.write_text("a,b\n1,2\n3,\n")
    array, _ = read_table(path, name="data")
    assert np.isnan(array[1, 1])
    with pytest.raises(ValueError, match=r"^data: contains 1 non-finite.*row 1"):
        check_array(array, name="data")


def test_csv_header_only_gives_zero_rows(tmp_path):
    path = tmp_path / "sample.csv"
    path.write_text("a,b\n")
    array, names = read_table(path, name="data")
    assert array.shape == (0, 2) and names == ["a", "b"]
    with pytest.raises(ValueError, match=r"^data: has 0 sample"):
        check_array(array, name="data")


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "sample.parquet"
    pd.DataFrame(X, columns=NAMES).to_parquet(path)
    array, names = read_table(path, name="reference")
    assert names == NAMES
    np.testing.assert_array_equal(array, X)


# ---------------------------------------------------------------- read errors


# ---------------------------------------------------------------- CSV delimiters and columns (issue #18)


@pytest.mark.parametrize("sep, suffix", [(";", ".csv"), ("\t", ".csv"), (",", ".csv"), (";", ".csv.gz")])
def test_csv_delimiter_is_detected(tmp_path, sep, suffix):
    path = tmp_path / f"sample{suffix}"
    pd.DataFrame(X, columns=NAMES).to_csv(path, sep=sep, index=False)
    array, names = read_table(path, name="data")
    np.testing.assert_array_equal(array, X)
    assert names == NAMES


def test_csv_whitespace_and_semicolon_without_header(tmp_path):
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("mass   pt eta\n" + "\n".join("  ".join(map(repr, row)) for row in X.tolist()) + "\n")
    array, names = read_table(spaced, name="data")
    np.testing.assert_array_equal(array, X)
    assert names == NAMES
    bare = tmp_path / "bare.csv"
    bare.write_text("1.5;2\n3;4\n")
    array, names = read_table(bare, name="data")
    np.testing.assert_array_equal(array, [[1.5, 2.0], [3.0, 4.0]])
    assert names is None


def test_csv_delimiter_can_be_given(tmp_path):
    path = tmp_path / "sample.csv"
    pd.DataFrame(X, columns=NAMES).to_csv(path, sep="|", index=False)
    array, names = read_table(path, name="data", delimiter="|")
    np.testing.assert_array_equal(array, X)
    assert names == NAMES
    with pytest.raises(TypeError, match=r"column 'mass\|pt\|eta' is not numeric"):
        read_table(path, name="data", delimiter=",")  # as told
    with pytest.raises(ValueError, match=r"^delimiter: expected one character or 'whitespace', got '::'"):
        read_table(path, name="data", delimiter="::")
    np.save(tmp_path / "sample.npy", X)
    with pytest.raises(ValueError, match=r"^delimiter: only used for \.csv files.*sample\.npy"):
        read_table(tmp_path / "sample.npy", name="data", delimiter=";")


def test_csv_columns_picks_by_name_in_the_given_order(tmp_path):
    path = tmp_path / "sample.csv"
    frame = pd.DataFrame(X, columns=NAMES)
    frame.insert(1, "label", ["a", "b", "c", "d", "e"])  # a text column, never parsed
    frame.to_csv(path, sep=";", index=False)
    array, names = read_table(path, name="reference", columns=["eta", "mass"])
    np.testing.assert_array_equal(array, X[:, [2, 0]])
    assert names == ["eta", "mass"]
    with pytest.raises(ValueError, match=r"^columns: reference file .*sample\.csv has no column 'phi'; "
                                         r"its columns are \['mass', 'label', 'pt', 'eta'\]"):
        read_table(path, name="reference", columns=["mass", "phi"])
    with pytest.raises(ValueError, match=r"^columns: expected a non-empty list of distinct"):
        read_table(path, name="reference", columns=["mass", "mass"])
    pd.DataFrame(X).to_csv(tmp_path / "bare.csv", index=False, header=False)
    with pytest.raises(ValueError, match=r"^columns: data file .*bare\.csv has no header row"):
        read_table(tmp_path / "bare.csv", name="data", columns=["mass"])
    np.save(tmp_path / "sample.npy", X)
    with pytest.raises(ValueError, match=r"^columns: data file 'sample\.npy' has no column names"):
        read_table(tmp_path / "sample.npy", name="data", columns=["mass"])


def test_parquet_columns(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "sample.parquet"
    pd.DataFrame(X, columns=NAMES).to_parquet(path)
    array, names = read_table(path, name="data", columns=["pt"])
    np.testing.assert_array_equal(array, X[:, [1]])
    assert names == ["pt"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^reference: file not found"):
        read_table(tmp_path / "absent.npy", name="reference")


def test_unknown_suffix_lists_supported(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_text("1 2\n")
    with pytest.raises(ValueError, match=r"^data: unsupported file type.*\.npy, \.npz, \.csv"):
        read_table(path, name="data")
    assert {".npy", ".npz", ".csv", ".parquet"} <= set(SUPPORTED_SUFFIXES)


def test_npz_several_arrays_needs_key(tmp_path):
    path = tmp_path / "sample.npz"
    np.savez(path, a=X, b=X)
    message = r"^data: .*holds 2 arrays \['a', 'b'\]; choose one with key="
    with pytest.raises(ValueError, match=message):
        read_table(path, name="data")


def test_npz_unknown_key_lists_keys(tmp_path):
    path = tmp_path / "sample.npz"
    np.savez(path, a=X, b=X)
    with pytest.raises(ValueError, match=r"^data: .*no array 'c'; its keys are \['a', 'b'\]"):
        read_table(path, name="data", key="c")


def test_key_for_non_npz_is_error(tmp_path):
    path = tmp_path / "sample.npy"
    np.save(path, X)
    with pytest.raises(ValueError, match=r"^data: key='a' is only used for \.npz"):
        read_table(path, name="data", key="a")


def test_npy_and_npz_swapped(tmp_path):
    npz_named_npy = tmp_path / "a.npy"
    with open(npz_named_npy, "wb") as stream:
        np.savez(stream, a=X)
    with pytest.raises(ValueError, match=r"^data: .*is a \.npz archive"):
        read_table(npz_named_npy, name="data")
    npy_named_npz = tmp_path / "b.npz"
    with open(npy_named_npz, "wb") as stream:
        np.save(stream, X)
    with pytest.raises(ValueError, match=r"^data: .*is a \.npy file"):
        read_table(npy_named_npz, name="data")


def test_npy_object_array_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"^data: cannot read .*objects\.npy"):
        read_table(path, name="data")


def _write_truncated(tmp_path, suffix, writer):
    full = tmp_path / f"full{suffix}"
    writer(full)
    content = full.read_bytes()
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(content[: len(content) // 2])
    return truncated


_WRITERS = {
    ".npy": lambda path: np.save(path, X),
    ".npz": lambda path: np.savez(path, a=X),
    ".parquet": lambda path: pd.DataFrame(X, columns=NAMES).to_parquet(path),
}


@pytest.mark.parametrize("suffix", sorted(_WRITERS))
def test_truncated_file_is_value_error_with_path(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = _write_truncated(tmp_path, suffix, _WRITERS[suffix])
    with pytest.raises(ValueError, match=rf"^reference: cannot read .*truncated{suffix}"):
        read_table(path, name="reference")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".parquet"])
def test_garbage_file_is_value_error(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a table " * 20)
    with pytest.raises(ValueError, match=rf"^data: cannot read .*garbage{suffix}"):
        read_table(path, name="data")


def test_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2\n3,4,5\n")
    with pytest.raises(ValueError, match=r"^data: cannot read .*bad\.csv"):
        read_table(path, name="data")


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=r"^data: .*empty\.csv is empty"):
        read_table(path, name="data")


def test_csv_non_numeric_column_named(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("x,label\n1.0,cat\n2.0,dog\n")
    with pytest.raises(TypeError, match=r"^data .*column 'label' is not numeric.*'cat' in row 0"):
        read_table(path, name="data")


def test_parquet_non_numeric_column_named(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "labels.parquet"
    when = pd.to_datetime(["2020-01-01", "2021-01-01"])
    pd.DataFrame({"x": [1.0, 2.0], "when": when}).to_parquet(path)
    with pytest.raises(TypeError, match=r"^reference .*column 'when' is not numeric"):
        read_table(path, name="reference")


def test_parquet_without_engine_is_clear_import_error(tmp_path, monkeypatch):
    path = tmp_path / "sample.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setattr(io.importlib.util, "find_spec", lambda module_name: None)
    with pytest.raises(ImportError, match=r"^data: reading \.parquet files needs pyarrow"):
        read_table(path, name="data")


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["out.bin"]


def test_atomic_write_text_utf8(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "Z = 5σ\n")
    assert path.read_text(encoding="utf-8") == "Z = 5σ\n"


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(FileExistsError, match=r"overwrite=True.*--force"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    atomic_write_text(path, "new", overwrite=True)
    assert path.read_text() == "new"


def test_failed_replace_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new", overwrite=True)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_fsync_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def failing_fsync(descriptor):
        raise OSError("I/O error")

    monkeypatch.setattr(io.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_bytes(path, b"new", overwrite=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_type_errors_and_directory(tmp_path):
    with pytest.raises(TypeError, match=r"^data: expected bytes"):
        atomic_write_bytes(tmp_path / "x", "text")
    with pytest.raises(TypeError, match=r"^text: expected str"):
        atomic_write_text(tmp_path / "x", b"bytes")
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(tmp_path, b"", overwrite=True)


def test_new_file_respects_umask(tmp_path):
    path = tmp_path / "out.txt"
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    atomic_write_text(path, "x")
    assert (path.stat().st_mode & 0o777) == (reference.stat().st_mode & 0o777)


# ---------------------------------------------------------------- JSON


def test_write_json_converts_numpy_torch_and_non_finite(tmp_path):
    path = tmp_path / "result.json"
    obj = {
        "statistic": np.float32(12.5),
        "n": np.int64(3),
        "significant": np.bool_(True),
        "pvalue": float("nan"),
        "zscore": np.float64(np.inf),
        "null": np.array([1.0, np.nan, 2.0]),
        "centres": torch.tensor([[0.5, 1.0]]),
        "shape": (2, 3),
        "path": tmp_path / "report.html",
        np.int64(7): "numpy key",
    }
    write_json(path, obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert text.startswith('{\n  "statistic"') and text.endswith("\n")
    loaded = json.loads(text)
    assert loaded == {
        "statistic": 12.5,
        "n": 3,
        "significant": True,
        "pvalue": None,
        "zscore": None,
        "null": [1.0, None, 2.0],
        "centres": [[0.5, 1.0]],
        "shape": [2, 3],
        "path": str(tmp_path / "report.html"),
        "7": "numpy key",
    }


def test_write_json_uses_to_dict(tmp_path):
    class Result:
        def to_dict(self):
            return {"pvalue": np.float64(0.01)}

    path = tmp_path / "result.json"
    write_json(path, [Result()])
    assert json.loads(path.read_text()) == [{"pvalue": 0.01}]


def test_write_json_unsupported_object_located(tmp_path):
    message = r"^obj\['a'\]\[1\]: cannot write an object of type complex"
    with pytest.raises(TypeError, match=message):
        write_json(tmp_path / "x.json", {"a": [1, 2j]})
    assert not (tmp_path / "x.json").exists()


def test_write_json_refuses_to_overwrite(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"a": 1})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_json(path, {"a": 2})
    write_json(path, {"a": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"a": 2}


def test_archive_round_trip_and_refusals(tmp_path):
    from sparker.io import read_archive, write_archive

    path = tmp_path / "a.npz"
    write_archive(path, {"x": np.arange(3.0)}, {"format": "demo", "format_version": 1, "k": [1, 2]})
    arrays, meta = read_archive(path, kind="demo", format_name="demo", version=1)
    np.testing.assert_array_equal(arrays["x"], np.arange(3.0))
    assert meta["k"] == [1, 2]
    with pytest.raises(FileExistsError):
        write_archive(path, {}, {"format": "demo", "format_version": 1})
    with pytest.raises(ValueError, match=r"^path: .* has format version 1"):
        read_archive(path, kind="demo", format_name="demo", version=2)
    with pytest.raises(ValueError, match=r"^path: .* is not a other file"):
        read_archive(path, kind="other", format_name="other", version=1)
    npy = tmp_path / "b.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"^path: .*not a readable demo file"):
        read_archive(npy, kind="demo", format_name="demo", version=1)
    with pytest.raises(FileNotFoundError, match=r"^path: file not found"):
        read_archive(tmp_path / "missing.npz", kind="demo", format_name="demo", version=1)
