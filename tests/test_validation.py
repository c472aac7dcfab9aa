"""Tests for sparker._validation: input conversion and every error path."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sparker._validation import (
    check_array,
    check_feature_names,
    check_n_features,
    check_weights,
)

# ---------------------------------------------------------------- check_array: accepted input


@pytest.mark.parametrize(
    "dtype", [np.float64, np.float32, np.float16, np.int8, np.int64, np.uint16, np.bool_]
)
def test_numpy_dtypes_converted_to_float64(dtype):
    X = (np.arange(12).reshape(4, 3) % 2).astype(dtype)
    array, names, device = check_array(X, name="reference")
    assert array.dtype == np.float64
    assert array.flags.c_contiguous and array.flags.writeable
    np.testing.assert_array_equal(array, X.astype(np.float64))
    assert names is None and device is None


def test_fortran_order_becomes_c_contiguous():
    X = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    array, _, _ = check_array(X, name="data")
    assert array.flags.c_contiguous
    np.testing.assert_array_equal(array, X)


def test_read_only_input_gives_writable_array():
    X = np.arange(6.0).reshape(3, 2)
    X.flags.writeable = False
    array, _, _ = check_array(X, name="data")
    assert array.flags.writeable


def test_nested_list_and_numeric_strings():
    array, _, _ = check_array([[1, 2.5], [3, 4]], name="data")
    np.testing.assert_array_equal(array, [[1.0, 2.5], [3.0, 4.0]])
    array, _, _ = check_array(np.array([["1", "2e3"]]), name="data")
    np.testing.assert_array_equal(array, [[1.0, 2000.0]])


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int32, torch.bool]
)
def test_torch_tensor_returns_device(dtype):
    X = torch.ones(5, 2, dtype=dtype, requires_grad=dtype.is_floating_point)
    array, names, device = check_array(X, name="data")
    assert device == torch.device("cpu")
    assert names is None
    assert array.dtype == np.float64 and array.shape == (5, 2)
    np.testing.assert_array_equal(array, np.ones((5, 2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_returns_cuda_device():
    X = torch.arange(6.0, device="cuda").reshape(3, 2)
    array, _, device = check_array(X, name="data")
    assert device.type == "cuda"
    np.testing.assert_array_equal(array, np.arange(6.0).reshape(3, 2))


def test_dataframe_names_kept():
    frame = pd.DataFrame(
        {"mass": [1.0, 2.0], 3: [True, False], "n": pd.array([1, 2], dtype="Int64")}
    )
    array, names, device = check_array(frame, name="reference")
    assert names == ["mass", "3", "n"]
    assert device is None
    np.testing.assert_array_equal(array, [[1.0, 1.0, 1.0], [2.0, 0.0, 2.0]])


def test_dataframe_nullable_missing_becomes_nan_error():
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64")})
    with pytest.raises(ValueError, match=r"^reference: .*1 non-finite.*row 1"):
        check_array(frame, name="reference")


def test_min_samples_satisfied():
    array, _, _ = check_array(np.zeros((3, 1)), name="data", min_samples=3)
    assert array.shape == (3, 1)


# ---------------------------------------------------------------- check_array: errors


@pytest.mark.parametrize("X", [None, 3, 2.5, "abc", {}, np.float64(1.0)])
def test_none_and_scalars_are_type_errors(X):
    with pytest.raises(TypeError, match=r"^reference: "):
        check_array(X, name="reference")


@pytest.mark.parametrize(
    "X",
    [
        [["a", "b"], ["c", "d"]],
        np.array([[None, object()]], dtype=object),
        np.array([[1 + 2j]]),
        np.array([["2020-01-01"]], dtype="datetime64[D]"),
        torch.ones(2, 2, dtype=torch.complex64),
    ],
)
def test_non_numeric_content_is_type_error(X):
    with pytest.raises(TypeError, match=r"^data: "):
        check_array(X, name="data")


def test_dataframe_non_numeric_column_named():
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "y"]})
    with pytest.raises(TypeError, match=r"^data: column 'label' is not numeric"):
        check_array(frame, name="data")


def test_dataframe_complex_column_named():
    frame = pd.DataFrame({"z": np.array([1 + 1j, 2])})
    with pytest.raises(TypeError, match=r"^data: column 'z' is complex"):
        check_array(frame, name="data")


def test_sparse_input_is_type_error():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"^data: sparse matrices"):
        check_array(scipy_sparse.eye(3).tocsr(), name="data")
    with pytest.raises(TypeError, match=r"^data: sparse tensors"):
        check_array(torch.eye(3).to_sparse(), name="data")


def test_series_is_value_error():
    with pytest.raises(ValueError, match=r"^data: .*pandas Series.*to_frame"):
        check_array(pd.Series([1.0, 2.0]), name="data")


def test_one_dimensional_suggests_reshape():
    with pytest.raises(ValueError, match=r"^data: .*got 1-D.*reshape\(-1, 1\)"):
        check_array(np.arange(5.0), name="data")


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 1, 1, 1)])
def test_more_than_two_dimensions(shape):
    with pytest.raises(ValueError, match=rf"^data: .*got {len(shape)}-D"):
        check_array(np.zeros(shape), name="data")


def test_ragged_nested_list():
    with pytest.raises(ValueError, match=r"^data: cannot be converted"):
        check_array([[1.0, 2.0], [3.0]], name="data")


def test_zero_features():
    with pytest.raises(ValueError, match=r"^reference: has 0 features"):
        check_array(np.zeros((4, 0)), name="reference")


@pytest.mark.parametrize("n_samples, min_samples", [(0, 1), (2, 3)])
def test_too_few_samples_says_given_and_needed(n_samples, min_samples):
    with pytest.raises(
        ValueError, match=rf"^data: has {n_samples} sample\(s\) but at least {min_samples}"
    ):
        check_array(np.zeros((n_samples, 2)), name="data", min_samples=min_samples)


def test_nan_and_inf_counted_with_first_row():
    X = np.zeros((6, 3))
    X[2, 1] = np.nan
    X[4, 0] = np.inf
    X[4, 2] = -np.inf
    message = r"^data: contains 3 non-finite entries \(1 NaN, 2 inf\); first in row 2$"
    with pytest.raises(ValueError, match=message):
        check_array(X, name="data")


def test_overflowing_python_int():
    with pytest.raises(ValueError, match=r"^data: .*too large"):
        check_array([[10**400]], name="data")


def test_torch_inf_detected():
    X = torch.full((2, 2), float("inf"))
    with pytest.raises(ValueError, match=r"^data: contains 4 non-finite"):
        check_array(X, name="data")


# ---------------------------------------------------------------- check_array: properties

_REAL_DTYPES = st.sampled_from(
    [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_]
)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        dtype=_REAL_DTYPES,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements={"allow_nan": False, "allow_infinity": False},
    )
)
def test_property_valid_arrays_round_trip(X):
    array, names, device = check_array(X, name="reference")
    assert array.shape == X.shape
    assert array.dtype == np.float64 and array.flags.c_contiguous
    np.testing.assert_array_equal(array, X.astype(np.float64))
    assert names is None and device is None


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_injected_nan_is_reported(data):
    n_rows = data.draw(st.integers(1, 15), label="n_rows")
    n_cols = data.draw(st.integers(1, 6), label="n_cols")
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]), label="dtype")
    X = np.ones((n_rows, n_cols), dtype=dtype)
    flat = data.draw(
        st.sets(st.integers(0, n_rows * n_cols - 1), min_size=1, max_size=n_rows * n_cols),
        label="positions",
    )
    X.flat[sorted(flat)] = np.nan
    first_row = min(flat) // n_cols
    as_tensor = data.draw(st.booleans(), label="as_tensor")
    message = rf"^inspected: contains {len(flat)} non-finite .*first in row {first_row}$"
    with pytest.raises(ValueError, match=message):
        check_array(torch.from_numpy(X) if as_tensor else X, name="inspected")


@settings(max_examples=30, deadline=None)
@given(
    n_rows=st.integers(1, 10),
    n_cols=st.integers(1, 5),
    min_samples=st.integers(1, 12),
)
def test_property_min_samples(n_rows, n_cols, min_samples):
    X = np.zeros((n_rows, n_cols))
    if n_rows >= min_samples:
        assert check_array(X, name="data", min_samples=min_samples)[0].shape == (n_rows, n_cols)
    else:
        with pytest.raises(ValueError, match=rf"^data: has {n_rows} sample"):
            check_array(X, name="data", min_samples=min_samples)


# ---------------------------------------------------------------- check_weights


def test_weights_none_passes_through():
    assert check_weights(None, 5, name="weights") is None


@pytest.mark.parametrize(
    "w",
    [
        [1, 2, 0],
        np.array([1, 2, 0], dtype=np.int32),
        np.array([1.0, 2.0, 0.0], dtype=np.float32),
        torch.tensor([1.0, 2.0, 0.0]),
        pd.Series([1.0, 2.0, 0.0]),
        pd.Series([1, 2, 0], dtype="Int64"),
    ],
)
def test_weights_accepted(w):
    out = check_weights(w, 3, name="weights")
    assert out.dtype == np.float64 and out.shape == (3,)
    np.testing.assert_array_equal(out, [1.0, 2.0, 0.0])


def test_weights_wrong_length_names_both():
    message = r"^reference_weights: has 2 weights but the sample has 3"
    with pytest.raises(ValueError, match=message):
        check_weights([1.0, 2.0], 3, name="reference_weights")


def test_weights_not_one_dimensional():
    with pytest.raises(ValueError, match=r"^w: expected a 1-D array"):
        check_weights(np.ones((3, 1)), 3, name="w")


def test_weights_scalar_is_type_error():
    with pytest.raises(TypeError, match=r"^w: "):
        check_weights(1.0, 3, name="w")


def test_weights_non_numeric_is_type_error():
    with pytest.raises(TypeError, match=r"^w: "):
        check_weights(["a", "b"], 2, name="w")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_non_finite(bad):
    with pytest.raises(ValueError, match=r"^w: contains 1 non-finite weights.*first at index 1"):
        check_weights([1.0, bad, 2.0], 3, name="w")


def test_weights_negative():
    message = r"^w: weights must be >= 0, found 2 negative \(first at index 1"
    with pytest.raises(ValueError, match=message):
        check_weights([1.0, -1.0, -2.0], 3, name="w")


def test_weights_all_zero():
    with pytest.raises(ValueError, match=r"^w: all weights are zero"):
        check_weights(np.zeros(4), 4, name="w")


# ---------------------------------------------------------------- features


def test_check_n_features():
    check_n_features(3, 3, name="data")
    with pytest.raises(ValueError, match=r"^data: has 2 features but the reference has 3$"):
        check_n_features(3, 2, name="data")


def test_check_feature_names_match_or_missing():
    check_feature_names(["a", "b"], ["a", "b"], name="data")
    check_feature_names(None, ["a", "b"], name="data")
    check_feature_names(["a", "b"], None, name="data")


def test_check_feature_names_first_mismatch():
    with pytest.raises(ValueError, match=r"^data: .*column 1: got 'c', expected 'b'"):
        check_feature_names(["a", "b", "x"], ["a", "c", "y"], name="data")


def test_check_feature_names_length_mismatch():
    with pytest.raises(ValueError, match=r"^data: has 1 feature names but the reference has 2"):
        check_feature_names(["a", "b"], ["a"], name="data")
