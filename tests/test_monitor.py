"""The monitor (sparker.monitor) and ``sparker monitor``: grid, subsample, tests of windows, files, CLI."""

import json
import math
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

import sparker
from sparker import Monitor, SparKerWarning
from sparker.app.cli import main
from sparker.monitor import HEADER_FILE, MonitorRun, grid_seed, size_grid, subsample_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Tiny settings: each grid size calibrates in a fraction of a second.
QUICK = dict(n_null=9, n_kernels=2, epochs=30)


@pytest.fixture(scope="module")
def reference():
    return np.random.default_rng(0).uniform(size=(400, 2))


@pytest.fixture(scope="module")
def monitor(reference, one_torch_thread):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparker.ConvergenceWarning)
        return Monitor(reference, 30, 60, **QUICK)


def uniform(n, seed):
    return np.random.default_rng([1, seed]).uniform(size=(n, 2))


# ------------------------------------------------------------------------ the grid


@pytest.mark.parametrize("low, high, ratio", [(30, 60, 1.15), (1, 50, 1.15), (50, 200, 1.5), (7, 7, 1.15),
                                              (100, 101, 1.01), (10, 1000, 3.0)])
def test_grid_keeps_more_than_one_over_ratio_of_every_size(low, high, ratio):
    sizes = size_grid(low, high, ratio)
    assert sizes[0] == low and sizes[-1] == high
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    for n in range(low, high + 1):
        used = max(s for s in sizes if s <= n)
        assert used == n or used > n / ratio, (n, used)


def test_grid_is_geometric():
    assert size_grid(30, 60, 1.15) == (30, 34, 39, 44, 50, 57, 60)
    sizes = size_grid(50, 20000, 1.15)
    # about 1 + log(max / min) / log(ratio) sizes; rounding down makes steps a little shorter
    steps = math.log(20000 / 50) / math.log(1.15)
    assert 1 + steps <= len(sizes) <= 1.1 * (2 + steps)


def test_monitor_calibrates_every_grid_size(monitor):
    assert monitor.sizes_ == size_grid(30, 60, 1.15)
    for n, cal in monitor.calibrations_.items():
        assert cal.n_data == n and not cal.poisson and cal.n_null == QUICK["n_null"]
        assert cal.seed == grid_seed(0, n)
    assert len({cal.seed for cal in monitor.calibrations_.values()}) == len(monitor.sizes_)
    assert [monitor.grid_size(n) for n in (30, 33, 34, 59, 60)] == [30, 30, 34, 57, 60]


@pytest.mark.parametrize("kwargs, words", [
    (dict(min_size="30"), "min_size: expected an integer"),
    (dict(min_size=0), "min_size"),
    (dict(max_size=20), "max_size: expected at least min_size"),
    (dict(grid_ratio=1.0), "grid_ratio: expected a number > 1"),
    (dict(grid_ratio=float("nan")), "grid_ratio"),
    (dict(n_null=0), "n_null"),
    (dict(seed=-1), "seed"),
    (dict(max_size=201), "max_size: windows of 201 points need a reference of at least 402"),
    (dict(poisson=True), "poisson: not an option of a Monitor"),
    (dict(n_expected=40.0), "n_expected"),
    (dict(checkpoint="toys.npz"), "checkpoint"),
    (dict(n_kernel=3), "settings: unknown settings"),
])
def test_bad_arguments_are_refused_before_any_toy(reference, kwargs, words):
    args = {"min_size": 30, "max_size": 60, **QUICK, **kwargs}
    with pytest.raises(ValueError, match=words):
        Monitor(reference, args.pop("min_size"), args.pop("max_size"), **args)


# ------------------------------------------------------------------------ testing windows


def test_subsample_is_seeded_and_ignores_row_order():
    window = uniform(57, 0)
    rows = subsample_rows(window, 50, 0, 3)
    assert rows.shape == (50,) and len(set(rows.tolist())) == 50 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, subsample_rows(window, 50, 0, 3))
    assert not np.array_equal(rows, subsample_rows(window, 50, 0, 4))
    assert not np.array_equal(rows, subsample_rows(window, 50, 1, 3))
    shuffled = np.random.default_rng(5).permutation(57)
    picked, again = window[rows], window[shuffled][subsample_rows(window[shuffled], 50, 0, 3)]
    assert sorted(map(tuple, picked)) == sorted(map(tuple, again))  # the same points, in any row order
    assert np.array_equal(subsample_rows(window, 57, 0, 3), np.arange(57))


def test_window_test_is_deterministic_and_order_free(monitor):
    window = uniform(56, 1)
    first = monitor.test(window, index=2, label="w")
    again = monitor.test(window, index=2)
    assert first.grid_size == 50 and first.n_points == 56 and first.label == "w" and again.label == 2
    assert np.array_equal(first.rows, again.rows)
    assert (first.pvalue, first.statistic) == (again.pvalue, again.statistic)
    shuffled = monitor.test(window[::-1], index=2)
    assert shuffled.pvalue == first.pvalue and math.isclose(shuffled.statistic, first.statistic, rel_tol=1e-9)
    assert 0 < first.pvalue <= 1 and first.excess >= 0 and first.excess_fraction == first.excess / 56
    assert json.loads(json.dumps(first.to_dict()))["grid_size"] == 50


@pytest.mark.parametrize("n", [29, 61])
def test_window_outside_the_range_is_refused(monitor, n):
    with pytest.raises(ValueError, match=rf"window: has {n} points, outside the monitor's range \[30, 60\]"):
        monitor.test(uniform(n, 2))


def test_window_with_other_features_is_refused(monitor):
    with pytest.raises(ValueError, match="window"):
        monitor.test(np.zeros((40, 3)))
    with pytest.raises(ValueError, match="index"):
        monitor.test(uniform(40, 3), index=-1)


def test_run_gives_one_row_per_window(monitor):
    windows = [uniform(n, 10 + n) for n in (30, 44, 60)]
    run = monitor.run(windows, labels=["a", "b", "c"])
    assert isinstance(run, MonitorRun) and len(run) == 3 and [r.index for r in run] == [0, 1, 2]
    frame = run.to_frame()
    assert list(frame["label"]) == ["a", "b", "c"] and list(frame["grid_size"]) == [30, 44, 60]
    assert {"pvalue", "zscore", "excess", "excess_fraction"} <= set(frame.columns)
    assert run[1].pvalue == monitor.test(windows[1], index=1).pvalue  # run = test at the stream index
    with pytest.raises(ValueError, match="labels: fewer labels than windows"):
        monitor.run(windows, labels=["a"])


# ------------------------------------------------------------------------ files


def test_save_load_round_trip_and_refusals(monitor, reference, tmp_path):
    folder = tmp_path / "monitor"
    monitor.save(folder)
    assert (folder / HEADER_FILE).exists()
    assert len(list(folder.glob("calibration-n*.npz"))) == len(monitor.sizes_)
    loaded = Monitor.load(folder, reference=reference)
    assert loaded.sizes_ == monitor.sizes_ and loaded.to_dict() == monitor.to_dict()
    window = uniform(47, 4)
    a, b = monitor.test(window, index=1), loaded.test(window, index=1)
    assert (a.pvalue, a.statistic, a.grid_size) == (b.pvalue, b.statistic, b.grid_size)

    before = (folder / HEADER_FILE).read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        monitor.save(folder)
    assert (folder / HEADER_FILE).read_bytes() == before
    monitor.save(folder, overwrite=True)

    with pytest.raises(ValueError, match="reference: this monitor was loaded without its reference"):
        Monitor.load(folder).test(window)
    with pytest.raises(ValueError, match="reference: differs"):
        Monitor.load(folder, reference=reference[::-1] + 1e-3)


def _edit_header(folder, **changes):
    header = json.loads((folder / HEADER_FILE).read_text())
    header.update(changes)
    (folder / HEADER_FILE).write_text(json.dumps(header))


def test_load_refuses_other_formats_and_warns_once_for_other_versions(monitor, reference, tmp_path):
    folder = tmp_path / "m"
    monitor.save(folder)
    _edit_header(folder, sparker_version="0.0.1")
    with pytest.warns(SparKerWarning, match="made by SparKer 0.0.1") as caught:
        Monitor.load(folder, reference=reference)
    assert len([w for w in caught if issubclass(w.category, SparKerWarning)]) == 1
    _edit_header(folder, sparker_version=sparker.__version__, seed=1)
    with pytest.raises(ValueError, match="inconsistent monitor"):
        Monitor.load(folder)
    _edit_header(folder, seed=0, format_version=2)
    with pytest.raises(ValueError, match="format version 2"):
        Monitor.load(folder)
    with pytest.raises(FileNotFoundError, match="no saved monitor"):
        Monitor.load(tmp_path / "nothing")


# ------------------------------------------------------------------------ statistics


def test_planted_clump_is_found_and_counted_null_windows_are_quiet(one_torch_thread):
    """12 clump points among 45 uniform ones: small p, excess near 12, located; null windows: quiet.

    Runs in a few seconds: three grid sizes of 19 toys (p resolution 0.05) at 100 epochs.
    """
    rng = np.random.default_rng(7)
    reference = rng.uniform(size=(400, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparker.ConvergenceWarning)
        monitor = Monitor(reference, 50, 60, n_null=19, n_kernels=2, epochs=100)
        clump = np.concatenate([rng.uniform(size=(45, 2)), 0.3 + 0.03 * rng.standard_normal((12, 2))])
        nulls = [rng.uniform(size=(n, 2)) for n in (50, 53, 56, 58, 60)]
        run = monitor.run([clump, *nulls])
    found = run[0]
    assert found.pvalue <= 0.05 and found.grid_size == 57
    assert 0.5 * 12 <= found.excess <= 1.5 * 12, found.excess
    assert np.hypot(*(np.array(list(found.kernels[0]["centre"].values())) - 0.3)) < 0.1
    quiet = run[1:]
    assert sum(r.pvalue <= 0.05 for r in quiet) <= 1
    assert all(r.excess < 6 for r in quiet), [r.excess for r in quiet]


# ------------------------------------------------------------------------ command line


@pytest.fixture
def stream_files(tmp_path, reference):
    rng = np.random.default_rng(3)
    pd.DataFrame(reference, columns=["a", "b"]).to_csv(tmp_path / "ref.csv", index=False)
    parts = []
    for label, n in zip((7, 3, 9), (30, 45, 60)):
        X = rng.uniform(size=(n, 2))
        parts.append(pd.DataFrame({"b": X[:, 1], "window": label, "a": X[:, 0]}))  # columns in another order
    pd.concat(parts).to_csv(tmp_path / "windows.csv", index=False)
    return tmp_path / "ref.csv", tmp_path / "windows.csv"


def monitor_cli(ref, windows, out, *extra):
    return main(["monitor", "--reference", str(ref), "--windows", str(windows), "--window-column", "window",
                 "--out", str(out), "--n-null", "9", "--n-kernels", "2", "--epochs", "30", *extra])


def test_cli_monitor_end_to_end(stream_files, tmp_path, capsys):
    ref, windows = stream_files
    out = tmp_path / "out"
    assert monitor_cli(ref, windows, out) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and "window 7" in lines[0] and "window 3" in lines[1] and "window 9" in lines[2]
    assert all("p = " in line and "Z = " in line and "excess = " in line for line in lines[:3])
    result = json.loads((out / "monitor.json").read_text())
    assert [w["label"] for w in result["windows"]] == [7, 3, 9]
    assert [w["n_points"] for w in result["windows"]] == [30, 45, 60]
    assert result["monitor"]["sizes"] == list(size_grid(30, 60, 1.15))
    assert result["monitor"]["feature_names"] == ["a", "b"]
    frame = pd.read_csv(out / "monitor.csv")
    assert list(frame["label"]) == [7, 3, 9] and "alarm" in frame.columns
    page = (out / "timeline.html").read_text()
    for w in result["windows"]:
        assert f"p = {w['pvalue']:.3g}" in page
    svg = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)  # well-formed
    assert "alpha = 0.05" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")

    before = (out / "monitor.json").read_bytes()
    assert monitor_cli(ref, windows, out) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "monitor.json").read_bytes() == before


@pytest.mark.parametrize("extra, words", [
    (["--min-size", "40"], "--min-size: window 7 has 30 points"),
    (["--max-size", "50"], "--max-size: window 9 has 60 points"),
    (["--max-size", "300"], "--max-size: windows of 300 points need a reference"),
    (["--grid-ratio", "0.9"], "--grid-ratio: expected a number > 1"),
    (["--alpha", "2"], "--alpha"),
])
def test_cli_monitor_refuses_bad_flags(stream_files, tmp_path, capsys, extra, words):
    ref, windows = stream_files
    assert monitor_cli(ref, windows, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparker: error: ") and words in err and len(err.strip().splitlines()) == 1


def test_cli_monitor_unknown_window_column(stream_files, tmp_path, capsys):
    ref, windows = stream_files
    code = main(["monitor", "--reference", str(ref), "--windows", str(windows), "--window-column", "batch",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--window-column: 'batch' is not a column" in capsys.readouterr().err
