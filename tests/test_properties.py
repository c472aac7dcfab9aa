"""Property-based tests (Hypothesis) of hostile inputs, through the API and the command line.

Generated samples vary the shape (empty, one row, d = 0, d = 1, 1-D, 3-D, None, a
scalar), the dtype (integers, float16/32/64, bool, Python objects, numeric and
non-numeric strings), the container (NumPy, nested lists, torch, pandas), the values
(normal, uniform, Cauchy tails, duplicate rows, constant features, a large offset,
scales 1e-8 and 1e8) and corruptions (NaN, +-inf, text) at random places.

Every case either works (finite statistic, finite scores, JSON-ready output) or raises
the documented ``ValueError``/``TypeError`` whose message starts with the offending
argument, as predicted by :func:`expected_problem`.  The command line exits 0 with JSON
on stdout, or 2 with one line on stderr, never a traceback.

The number of cases comes from the Hypothesis profile (``tests/conftest.py``); the
training properties take a fraction of it because each case fits a model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st

import sparker
from sparker.baselines import BASELINES
from sparker.app.cli import main
from sparker.io import to_jsonable

#: tiny training: each fit takes a few milliseconds
TINY = {"n_kernels": 2, "epochs": 20, "reseed": False}
TINY_FLAGS = ["--n-kernels", "2", "--epochs", "20", "--no-reseed"]


def budget(fraction: float) -> settings:
    """Settings asking for ``fraction`` of the profile's ``max_examples`` (at least 5)."""
    return settings(max_examples=max(5, int(settings.default.max_examples * fraction)))


@pytest.fixture(autouse=True, scope="module")
def _quiet():
    """One torch thread (as in CI) and no convergence or clipping warnings in the output."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("sparker").setLevel(logging.ERROR)
    yield
    logging.getLogger("sparker").setLevel(logging.NOTSET)
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ samples
DISTRIBUTIONS = ("normal", "uniform", "cauchy", "duplicates", "constant_column", "integers", "offset")
SCALES = (1.0, 1e-8, 1e8)
DTYPES = ("float64", "float32", "float16", "int64", "int8", "uint8", "bool", "object", "str")
CORRUPTIONS = ("none", "none", "nan", "inf", "-inf", "text")
CONTAINERS = ("numpy", "numpy", "list", "torch", "pandas")
SHAPES = ("2d",) * 8 + ("1d", "3d", "none", "scalar")  # "2d" most of the time
NUMERIC_DTYPES = ("float64", "float32", "float16", "int64", "int8", "uint8", "bool")


def _base(dist: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Float64 values of shape (n, d) from a named distribution."""
    if dist == "normal":
        return rng.standard_normal((n, d))
    if dist == "uniform":
        return rng.uniform(-1, 1, (n, d))
    if dist == "cauchy":
        return rng.standard_cauchy((n, d))
    if dist == "duplicates":  # a few distinct rows, repeated
        rows = rng.standard_normal((max(1, min(n, 2)), d))
        return rows[rng.integers(0, len(rows), n)]
    if dist == "constant_column":
        X = rng.standard_normal((n, d))
        if d:
            X[:, rng.integers(0, d)] = 3.0
        return X
    if dist == "integers":
        return rng.integers(-3, 4, (n, d)).astype(np.float64)
    if dist == "offset":  # large offset, small spread
        return 1e8 + rng.standard_normal((n, d))
    raise AssertionError(dist)


def _cast(X: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype in ("float64", "float32", "float16"):
            return X.astype(dtype)
        if dtype == "int64":
            return np.clip(np.round(X), -9e18, 9e18).astype(np.int64)
        if dtype == "int8":
            return np.clip(np.round(X), -128, 127).astype(np.int8)
        if dtype == "uint8":
            return np.clip(np.round(np.abs(X)), 0, 255).astype(np.uint8)
        if dtype == "bool":
            return X > np.median(X) if X.size else X.astype(bool)
        if dtype == "object":
            return np.array(X.tolist(), dtype=object).reshape(X.shape)
        if dtype == "str":
            return np.array([repr(float(v)) for v in X.ravel()], dtype=str).reshape(X.shape)
    raise AssertionError(dtype)


@dataclass
class Sample:
    """A generated input and what check_array should make of it."""

    obj: object
    values: np.ndarray | None  # float64 values of a 2-D numeric-convertible input, else None
    kind: str  # "ok", or why it is invalid on its own: "type", "shape", "empty", "nonfinite"
    description: str

    @property
    def rows(self) -> int:
        return -1 if self.values is None else self.values.shape[0]

    @property
    def features(self) -> int:
        return -1 if self.values is None else self.values.shape[1]


@st.composite
def samples(draw, *, n_features=None, rows=(0, 12), ok_rows=2, shapes=SHAPES, containers=CONTAINERS,
            dtypes=DTYPES, corruptions=CORRUPTIONS):
    """A sample, hostile one time in three; ``n_features`` fixes d, else d is drawn.

    A hostile sample draws its shape (``shapes``), corruption (``corruptions``) and size
    (``rows``, d from 0) freely; the others are 2-D and uncorrupted, with at least
    ``ok_rows`` rows and one feature.  Values, dtype and container vary in both.
    """
    hostile = draw(st.sampled_from([False, False, True]))  # a third of the samples are hostile
    if n_features is not None:
        d = n_features
    else:
        d = draw(st.integers(0, 4) if hostile else st.integers(1, 4))
    n = draw(st.integers(*rows) if hostile else st.integers(max(rows[0], ok_rows), max(rows[1], ok_rows)))
    dist, scale = draw(st.sampled_from(DISTRIBUTIONS)), draw(st.sampled_from(SCALES))
    dtype, container = draw(st.sampled_from(dtypes)), draw(st.sampled_from(containers))
    if hostile:
        corruption, shape = draw(st.sampled_from(corruptions)), draw(st.sampled_from(shapes))
    else:
        corruption, shape = "none", "2d"
        if container == "pandas" and dtype in ("object", "str"):
            container = "numpy"
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    description = f"{n}x{d} {dist} x{scale:g} {dtype} {corruption} {container} {shape}"
    note(description)
    if shape == "none":
        return Sample(None, None, "type", description)
    if shape == "scalar":
        return Sample(draw(st.sampled_from([3, 2.5, "abc", np.float64(1.0)])), None, "type", description)

    X = _base(dist, n, d, rng) * (1.0 if dist == "offset" else scale)
    A = _cast(X, dtype)
    if n * d == 0:
        corruption = "none"
    if corruption in ("nan", "inf", "-inf"):
        if A.dtype.kind in "biu":
            A = A.astype(np.float64)
        A = A.copy()
        value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[corruption]
        for _ in range(int(rng.integers(1, 3))):
            A[rng.integers(0, n), rng.integers(0, d)] = value if A.dtype.kind != "U" else str(value)
    elif corruption == "text":
        A = A.astype(object) if A.dtype.kind != "U" else A.astype("<U32")
        A[rng.integers(0, n), rng.integers(0, d)] = "abc"
    with np.errstate(over="ignore", invalid="ignore"):
        values = None if corruption == "text" else np.asarray(A, dtype=np.float64)

    # what check_array makes of it (order of its checks: type, shape, features, rows, finite)
    if container == "torch" and A.dtype.kind in "biuf":
        obj = torch.from_numpy(np.ascontiguousarray(A))
    elif container == "pandas":
        obj = pd.DataFrame(A)
    elif container == "list":
        obj = A.tolist()
    else:
        obj = A
    if container == "pandas" and n * d == 0:
        kind = "empty"
    elif corruption == "text" or (container == "pandas" and A.dtype.kind in "OU"):
        kind = "type"  # pandas takes only numeric columns, NumPy also numeric text
    elif container == "list" and n == 0:
        kind = "shape"  # [] is 1-D
    elif n * d == 0:
        kind = "empty"
    elif not np.isfinite(values).all():
        kind = "nonfinite"
    else:
        kind = "ok"
    if shape != "2d" and kind in ("ok", "nonfinite"):  # a 1-D or 3-D array (a pandas Series)
        if isinstance(obj, pd.DataFrame):
            obj = obj.iloc[:, 0]
        elif isinstance(obj, list):
            obj = [row[0] for row in obj] if shape == "1d" else [[row] for row in obj]
        else:
            obj = obj[:, 0] if shape == "1d" else obj[:, :, None]
        kind, values = "shape", None
    return Sample(obj, values, kind, description)


@dataclass
class Problem:
    """The error the API must raise: its type, the argument named, and why."""

    type: type
    name: str
    reason: str  # "input" (the argument alone), "mismatch", "null" or "coincide"


def expected_problem(samples_by_name: dict, *, min_rows: dict, null_refused: bool = False,
                     pooled: bool = False) -> Problem | None:
    """The error the API must raise for these inputs, or None if they are valid.

    ``samples_by_name`` maps argument names to :class:`Sample` in the order they are
    checked and ``min_rows`` gives each one's minimum number of rows.  Then come the
    feature count, the null mode (``null_refused``: resampling with too small a
    reference) and a reference whose points all coincide (no kernel width); with
    ``pooled`` (permutation toys: widths from reference and data stacked) only when the
    data coincide with them too.
    """
    for name, s in samples_by_name.items():
        if s.kind == "type":
            return Problem(TypeError, name, "input")
        if s.kind in ("shape", "empty", "nonfinite") or s.rows < min_rows[name]:
            return Problem(ValueError, name, "input")
    ref, data = samples_by_name["reference"], samples_by_name["data"]
    if data.features != ref.features:
        return Problem(ValueError, "data", "mismatch")
    if null_refused:
        return Problem(ValueError, "null", "null")
    points = np.concatenate([ref.values, data.values]) if pooled else ref.values
    if len(np.unique(points, axis=0)) < 2:
        return Problem(ValueError, "reference", "coincide")
    return None


def assert_raises_named(call, problem: Problem):
    exc_type, name = problem.type, problem.name
    event(f"refused: {problem.reason} ({exc_type.__name__}, {name})")
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert message.startswith((f"{name}:", f"{name} (")), message
    assert isinstance(info.value, exc_type), f"{type(info.value).__name__}: {message}"


def assert_json_ready(obj):
    json.dumps(to_jsonable(obj, "result"), allow_nan=False)


# ------------------------------------------------------------------ the estimator
@budget(1.0)
@given(reference=samples(rows=(0, 14)), data=st.data())
def test_fit_works_or_names_the_bad_argument(reference, data):
    d = reference.features if reference.features >= 0 and data.draw(st.booleans()) else None
    sample = data.draw(samples(n_features=d, rows=(0, 8), ok_rows=1), label="data")
    problem = expected_problem({"reference": reference, "data": sample},
                               min_rows={"reference": 2, "data": 1})
    model = sparker.SparKer(**TINY)
    if problem is not None:
        assert_raises_named(lambda: model.fit(reference.obj, sample.obj), problem)
        return
    model.fit(reference.obj, sample.obj)
    event("works")
    assert math.isfinite(model.statistic_)
    assert isinstance(model.converged_, bool)
    for X in (reference.values, sample.values):
        assert np.isfinite(model.log_ratio(X)).all()
    assert np.isfinite(model.amplitudes_).all() and not np.isnan(model.centres_).any()
    assert_json_ready(model.to_dict())


@budget(0.5)
@given(reference=samples(rows=(2, 14), shapes=("2d",), corruptions=("none",)), data=st.data())
def test_fit_survives_a_save_load_round_trip(reference, data):
    assume(reference.kind == "ok" and reference.features > 0
           and len(np.unique(reference.values, axis=0)) >= 2)
    sample = data.draw(samples(n_features=reference.features, rows=(1, 6), shapes=("2d",),
                               corruptions=("none",), containers=("numpy",)))
    assume(sample.kind == "ok")
    model = sparker.SparKer(**TINY).fit(reference.obj, sample.obj)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        model.save(path)
        back = sparker.SparKer.load(path)
    np.testing.assert_array_equal(back.log_ratio(sample.values), model.log_ratio(sample.values))
    assert back.statistic_ == model.statistic_


WEIGHT_KINDS = ("ok", "ok", "ok", "negative", "all_zero", "nan", "inf", "short", "long", "2d",
                "huge", "tiny", "text", "scalar")


def _weights(kind: str, n: int, rng: np.random.Generator):
    """Weights of a given kind for ``n`` points, and the error they must cause (or None)."""
    w = rng.uniform(1e-3, 1e3, n)
    if kind == "ok":
        return w, None
    if kind in ("negative", "nan", "inf"):
        w[rng.integers(0, n)] = {"negative": -1.0, "nan": np.nan, "inf": np.inf}[kind]
        return w, ValueError
    changed = {"all_zero": np.zeros(n), "short": w[:-1], "long": np.r_[w, 1.0], "2d": w[:, None],
               "huge": w * 1e12, "tiny": w * 1e-36, "text": np.array(["a"] * n, dtype=object), "scalar": 2.0}
    return changed[kind], TypeError if kind in ("text", "scalar") else ValueError


@budget(0.5)
@given(reference_kind=st.sampled_from(WEIGHT_KINDS), data_kind=st.sampled_from(WEIGHT_KINDS),
       normalize=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_weights_work_or_name_the_bad_argument(reference_kind, data_kind, normalize, seed):
    rng = np.random.default_rng(seed)
    R, D = rng.standard_normal((30, 2)), rng.standard_normal((10, 2)) + 0.5
    wr, r_error = _weights(reference_kind, 30, rng)
    wd, d_error = _weights(data_kind, 10, rng)
    if normalize and reference_kind in ("huge", "tiny"):
        r_error = None  # rescaled to sum to the data count: back in range
    # checked one by one, then their float32 range (the data's first)
    in_range = {"huge": False, "tiny": False}
    problem = None
    if r_error is not None and in_range.get(reference_kind, True):
        problem = Problem(r_error, "reference_weight", "input")
    elif d_error is not None and in_range.get(data_kind, True):
        problem = Problem(d_error, "data_weight", "input")
    elif d_error is not None:
        problem = Problem(ValueError, "data_weight", "range")
    elif r_error is not None:
        problem = Problem(ValueError, "reference_weight", "range")

    def call():
        return sparker.SparKer(**TINY).fit(R, D, reference_weight=wr, data_weight=wd,
                                           normalize_reference=normalize)

    if problem is not None:
        assert_raises_named(call, problem)
        return
    model = call()
    event("works")
    assert math.isfinite(model.statistic_) and np.isfinite(model.log_ratio(D)).all()


# ------------------------------------------------------------------ calibrated test
@budget(0.75)
@given(reference=samples(rows=(0, 14)), data=st.data(),
       null=st.sampled_from(["auto", "permutation", "resample"]))
def test_calibrated_test_works_or_names_the_bad_argument(reference, data, null):
    d = reference.features if reference.features >= 0 and data.draw(st.booleans()) else None
    sample = data.draw(samples(n_features=d, rows=(0, 6), ok_rows=1), label="data")
    problem = expected_problem({"reference": reference, "data": sample},
                               min_rows={"reference": 2, "data": 1},
                               null_refused=null == "resample" and reference.rows < 2 * sample.rows,
                               pooled=null == "permutation" or (null == "auto"
                                                                and reference.rows < 5 * sample.rows))

    def call():
        return sparker.test(reference.obj, sample.obj, n_null=2, null=null, seed=1, **TINY)

    if problem is not None:
        assert_raises_named(call, problem)
        return
    res = call()
    event(f"works ({res.null_mode})")
    assert math.isfinite(res.statistic)
    assert 1 / 3 <= res.pvalue <= 1
    assert math.isfinite(res.zscore) or (res.pvalue == 1 and res.zscore == -math.inf)  # Z(1) = -inf
    assert res.null_distribution.shape == (2,) and np.isfinite(res.null_distribution).all()
    assert res.null_mode in ("resample", "permutation")
    assert_json_ready(res.to_dict())


# ------------------------------------------------------------------ baselines
#: tiny settings of each baseline
BASELINE_TINY = {
    "nplm_kernel": {"n_centres": 8, "max_iter": 10},
    "mmd": {},
    "mmd_agg": {"n_bandwidths": 2},
    "c2st": {"max_iter": 3},
}
#: rows each baseline needs in the data (c2st: see test_c2st_small_samples_known_bug)
BASELINE_MIN_DATA = {"nplm_kernel": 1, "mmd": 2, "mmd_agg": 2, "c2st": 2}


@budget(1.0)
@given(method=st.sampled_from(sorted(BASELINES)), data=st.data())
def test_baselines_work_or_name_the_bad_argument(method, data):
    ok_rows = 12 if method == "c2st" else 2  # c2st: see test_c2st_small_samples_known_bug
    reference = data.draw(samples(rows=(0, 16), ok_rows=ok_rows), label="reference")
    d = reference.features if reference.features >= 0 and data.draw(st.booleans()) else None
    sample = data.draw(samples(n_features=d, rows=(0, 16), ok_rows=ok_rows), label="data")
    if method == "c2st":
        assume(min(reference.rows, sample.rows) >= 12 or reference.kind != "ok" or sample.kind != "ok")
    problem = expected_problem({"reference": reference, "data": sample},
                               min_rows={"reference": 2, "data": BASELINE_MIN_DATA[method]})

    def call():
        return BASELINES[method](reference.obj, sample.obj, n_null=2, seed=0, **BASELINE_TINY[method])

    if problem is not None and problem.reason != "coincide":
        assert_raises_named(call, problem)
        return
    try:
        res = call()
    except ValueError as error:  # no kernel width from coinciding points (reference or pooled)
        assert problem is not None or (
            method.startswith("mmd") and len(np.unique(np.r_[reference.values, sample.values], axis=0)) < 2
        ), str(error)
        assert str(error).startswith("reference:"), str(error)
        event("refused: coinciding points")
        return
    event(f"works ({method})")
    assert math.isfinite(res.statistic) and 0 < res.pvalue <= 1
    assert np.isfinite(res.null_distribution).all()
    assert_json_ready(res.to_dict())


def test_c2st_small_samples_work():
    """Tiny samples train without early stopping (its validation split could miss a class)."""
    rng = np.random.default_rng(0)
    res = BASELINES["c2st"](rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), n_null=2)
    assert math.isfinite(res.statistic) and 0 < res.pvalue <= 1


# ------------------------------------------------------------------ command line
FORMATS = (".npy", ".npz", ".csv", ".csv.gz", ".parquet")


def _write(path: Path, sample: Sample, header: bool) -> bool:
    """Write a 2-D sample in the format of ``path``'s suffix; False if it cannot be written."""
    A = sample.obj if isinstance(sample.obj, np.ndarray) else np.asarray(sample.obj)
    name = path.name
    if name.endswith(".npy"):
        np.save(path, A, allow_pickle=True)  # object arrays: the reader must refuse the pickle
    elif name.endswith(".npz"):
        np.savez(path, x=A)
    elif name.endswith(".parquet"):
        frame = pd.DataFrame(A, columns=[f"c{j}" for j in range(A.shape[1])])
        try:
            frame.to_parquet(path)
        except Exception:  # noqa: BLE001 (pyarrow refuses mixed object columns, float16)
            return False
    else:
        frame = pd.DataFrame(A, columns=[f"c{j}" for j in range(A.shape[1])])
        frame.to_csv(path, index=False, header=header)
    return True


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_cli_outcome(code, out, err):
    """0 with finite JSON on stdout, or 2 with one line naming the argument; never a traceback."""
    assert "Traceback" not in err, err
    assert code in (0, 2), err
    if code == 0:
        result = json.loads(out)
        if "statistic" in result:
            assert math.isfinite(result["statistic"])
        else:  # sparker calibrate
            assert result["n_null"] == 2
            assert all(math.isfinite(q) for qs in result["null_quantiles"].values() for q in qs)
        return result
    lines = [line for line in err.strip().splitlines() if not line.startswith("WARNING: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("sparker: error: "), err
    assert lines[0].split("sparker: error: ")[1].split(":")[0].split(" ")[0] in (
        "reference", "data", "null", "--method"), err
    return None


@budget(1.0)
@given(
    command=st.sampled_from(["fit", "test", "mmd", "calibrate"]),
    formats=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)),
    header=st.booleans(),
    reference=samples(rows=(0, 12), shapes=("2d",), containers=("numpy",)),
    data=st.data(),
)
def test_command_line_exits_0_or_2_with_one_line(command, formats, header, reference, data):
    d = reference.features if reference.features >= 0 and data.draw(st.booleans()) else None
    sample = data.draw(samples(n_features=d, rows=(0, 6), shapes=("2d",), containers=("numpy",)),
                       label="data")
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{role}{suffix}" for role, suffix in zip(("ref", "data"), formats)]
        assume(all(_write(p, s, header) for p, s in zip(paths, (reference, sample))))
        n_data = max(1, sample.rows)
        inputs = ["--reference", str(paths[0]), "--data", str(paths[1])]
        argv = {
            "fit": ["fit", *inputs, *TINY_FLAGS],
            "test": ["test", *inputs, *TINY_FLAGS, "--n-null", "2"],
            "mmd": ["test", *inputs, "--method", "mmd", "--n-null", "2"],
            "calibrate": ["calibrate", "--reference", str(paths[0]), "--n-data", str(n_data),
                          "--out", str(Path(folder) / "cal.npz"), "--n-null", "2", *TINY_FLAGS],
        }[command]
        code, out, err = run_cli(argv)
    result = assert_cli_outcome(code, out, err)
    event(f"{command}: exit {code}")
    # binary formats of plainly valid numbers must work
    plain = all(f in (".npy", ".npz") for f in formats) and all(
        s.kind == "ok" and s.obj.dtype.kind in "biuf" for s in (reference, sample))
    if command == "calibrate":
        sample = Sample(None, np.zeros((n_data, max(reference.features, 1))), "ok", "size only")
    problem = expected_problem({"reference": reference, "data": sample},
                               min_rows={"reference": 2, "data": 2 if command == "mmd" else 1},
                               null_refused=command == "calibrate" and reference.rows < 2 * n_data)
    if plain and problem is None:
        assert result is not None, err


@budget(0.5)
@given(argv=st.lists(st.sampled_from([
    "fit", "test", "calibrate", "--reference", "--data", "--n-kernels", "--epochs", "-3", "0",
    "nan", "inf", "1e400", "abc", "--n-null", "--seed", "--null", "bogus", "--sigma-end", "--a-max",
    "--force", "--out", "--key", "--method", "--n-data", "--backend", "processes", "--replica-chunk",
    "--n-expected", "--poisson", "--aggregation", "1,1", "2,", "--device", "warp",
]), min_size=1, max_size=8))
def test_command_line_never_shows_a_traceback_for_random_flags(argv):
    code, _, err = run_cli(argv)
    assert "Traceback" not in err, err
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("sparker: error: "), err
