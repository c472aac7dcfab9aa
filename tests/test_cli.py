"""Command-line smoke tests, all through ``sparker.app.cli.main([...])``."""

import functools
import inspect
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import sparker
from sparker import SparKer, __version__, scenarios
from sparker.app import demo
from sparker.app.cli import COMMANDS, build_parser, main, training_flags
from sparker.config import TrainingConfig

FAST = ["--epochs", "50", "--n-kernels", "2"]
#: Calibrated tests: few epochs, few kernels and five toys keep each run well under a second.
QUICK = ["--epochs", "30", "--n-kernels", "2", "--n-null", "5"]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    reference = rng.uniform(size=(300, 2))
    data = np.concatenate([rng.uniform(size=(100, 2)), 0.5 + 0.02 * rng.standard_normal((15, 2))])
    return reference, data


@pytest.fixture
def npy_files(tmp_path, samples):
    reference, data = samples
    np.save(tmp_path / "ref.npy", reference)
    np.save(tmp_path / "data.npy", data)
    return tmp_path / "ref.npy", tmp_path / "data.npy"


def fit(reference, data, *extra):
    return main(["fit", "--reference", str(reference), "--data", str(data), *extra])


def assert_user_error(capsys, code, *words):
    """Exit status 2, one stderr line ``sparker: error: ...`` naming ``words``."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sparker: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], err
    return lines[0]


# ------------------------------------------------------------------------ demo


def test_demo_writes_results_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    # the full-size demo runs in `make demo`; a tenth of the points keeps this test quick
    small = functools.partial(scenarios.make, n_reference=2000, n_background=200, n_per_clump=10)
    monkeypatch.setattr(demo, "make", small)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--n-null", "3"]) == 0
    out = capsys.readouterr().out
    assert "t = " in out and "p = " in out and "clumps have a kernel within 0.1" in out
    assert "sparker-demo" in out
    result = json.loads((tmp_path / "sparker-demo" / "result.json").read_text())
    assert result["statistic"] > 0
    assert len(result["kernels"]) == 4
    assert len(result["truth"]["nearest_kernels"]) == 3
    assert (tmp_path / "sparker-demo" / "model.npz").stat().st_size > 0

    before = (tmp_path / "sparker-demo" / "result.json").read_bytes()
    assert_user_error(capsys, main(["demo", "--n-null", "3"]), "already exists", "--force")
    assert (tmp_path / "sparker-demo" / "result.json").read_bytes() == before


# ------------------------------------------------------------------------- fit


def test_fit_npy_to_stdout(npy_files, capsys):
    ref, data = npy_files
    assert fit(ref, data, *FAST) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["statistic"] >= 0
    assert result["settings"]["epochs"] == 50 and result["settings"]["n_kernels"] == 2
    assert result["inputs"]["reference"]["shape"] == [300, 2]
    assert result["inputs"]["data"] == {"file": str(data), "shape": [115, 2]}
    assert result["sparker_version"] == __version__


def test_fit_csv_with_header_keeps_feature_names(tmp_path, samples, capsys):
    reference, data = samples
    pd.DataFrame(reference, columns=["mass", "pt"]).to_csv(tmp_path / "ref.csv", index=False)
    pd.DataFrame(data, columns=["mass", "pt"]).to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "result.json"
    code = fit(tmp_path / "ref.csv", tmp_path / "data.csv", "--out", str(out), *FAST)
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}"  # the verdict, not the JSON
    result = json.loads(out.read_text())
    assert result["feature_names"] == ["mass", "pt"]
    assert set(result["kernels"][0]["centre"]) == {"mass", "pt"}


def test_fit_npz_with_key_weights_and_model(tmp_path, samples, capsys):
    reference, data = samples
    np.savez(tmp_path / "ref.npz", x=reference, other=np.zeros(3))
    np.savez(tmp_path / "data.npz", x=data)
    np.save(tmp_path / "w.npy", np.full(len(reference), 2.0))
    model = tmp_path / "model.npz"
    code = fit(tmp_path / "ref.npz", tmp_path / "data.npz", "--key", "x",
               "--reference-weight", str(tmp_path / "w.npy"), "--model", str(model),
               "--no-reseed", "--competition", "softmax", "--seed", "3", *FAST)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["reseed"] is False
    assert result["settings"]["competition"] == "softmax"
    assert result["seed"] == 3
    assert result["inputs"]["reference_weight"]["shape"] == [300]
    assert SparKer.load(model).statistic_ == pytest.approx(result["statistic"])


def test_fit_out_refuses_to_overwrite_without_force(npy_files, tmp_path, capsys):
    ref, data = npy_files
    out = tmp_path / "result.json"
    out.write_text("keep me")
    args = ["fit", "--reference", str(ref), "--data", str(data), "--out", str(out), *FAST]
    assert_user_error(capsys, main(args), "--out", "already exists")
    assert out.read_text() == "keep me"
    assert main([*args, "--force"]) == 0
    assert "statistic" in json.loads(out.read_text())


# ------------------------------------------------------------- test, calibrate


@pytest.fixture(scope="module")
def test_files(tmp_path_factory):
    """Reference (800, 2) and data (70, 2) with a small clump: 'auto' resamples."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("test_inputs")
    data = np.concatenate([rng.uniform(size=(60, 2)), 0.5 + 0.02 * rng.standard_normal((10, 2))])
    np.save(folder / "ref.npy", rng.uniform(size=(800, 2)))
    np.save(folder / "other_ref.npy", rng.uniform(size=(800, 2)))
    np.save(folder / "data.npy", data)
    return folder / "ref.npy", folder / "data.npy", folder / "other_ref.npy"


def run_test(reference, data, *extra):
    return main(["test", "--reference", str(reference), "--data", str(data), *extra])


@pytest.mark.parametrize("null", ["auto", "permutation"])
def test_test_prints_json_with_pvalue_and_zscore(test_files, capsys, null):
    ref, data, _ = test_files
    assert run_test(ref, data, *QUICK, "--null", null) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["pvalue"] <= 1
    assert result["pvalue"] >= 1 / 6  # never below the resolution 1/(B+1)
    assert np.isfinite(result["zscore"])
    assert result["null_mode"] == {"auto": "resample", "permutation": "permutation"}[null]
    assert result["n_null"] == 5 and len(result["null_distribution"]) == 5
    assert [(s["n_kernels"], s["epochs"]) for s in result["settings"]] == [(2, 30)]
    assert result["per_config"] is None and result["chi2"]["dof"] > 0
    assert result["inputs"]["reference"] == {"file": str(ref), "shape": [800, 2]}
    assert result["inputs"]["data"]["shape"] == [70, 2]
    assert result["sparker_version"] == __version__


def test_test_out_refuses_to_overwrite_without_force(test_files, tmp_path, capsys):
    ref, data, _ = test_files
    (tmp_path / "result.json").write_text("keep me")
    args = [*QUICK, "--out", str(tmp_path)]
    assert_user_error(capsys, run_test(ref, data, *args), "--out", "already exists", "--force")
    assert (tmp_path / "result.json").read_text() == "keep me"
    assert not (tmp_path / "model.npz").exists()

    assert run_test(ref, data, *args, "--force") == 0
    assert capsys.readouterr().out.splitlines()[-2] == f"report: {tmp_path / 'report.html'}"  # not the JSON
    result = json.loads((tmp_path / "result.json").read_text())
    assert 0 < result["pvalue"] <= 1
    assert SparKer.load(tmp_path / "model.npz").statistic_ == pytest.approx(result["statistic"])


def test_test_comma_lists_run_several_configurations(test_files, capsys):
    ref, data, _ = test_files
    code = run_test(ref, data, *QUICK, "--n-kernels", "2,3", "--sigma-end-quantile", "0.003,0.01",
                    "--aggregation", "fisher")
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    grid = [(s["n_kernels"], s["sigma_end_quantile"]) for s in result["settings"]]
    assert sorted(grid) == [(2, 0.003), (2, 0.01), (3, 0.003), (3, 0.01)]
    assert result["per_config"]["aggregation"] == "fisher"
    assert len(result["per_config"]["statistics"]) == len(result["per_config"]["pvalues"]) == 4
    assert 0 < result["pvalue"] <= 1 and len(result["null_distribution"]) == 5


def test_list_flags_parse_each_element_with_the_field_type():
    base = ["test", "--reference", "r.npy", "--data", "d.npy"]
    args = build_parser().parse_args(
        [*base, "--n-kernels", "4,8", "--sigma-end-quantile", "0.003, 0.01", "--epochs", "30",
         "--schedule", "linear,geometric", "--no-reseed"])
    assert args.n_kernels == [4, 8] and all(type(n) is int for n in args.n_kernels)
    assert args.sigma_end_quantile == [0.003, 0.01]
    assert args.epochs == 30  # a single value stays a scalar
    assert args.schedule == ["linear", "geometric"] and args.reseed is False
    args = build_parser().parse_args(["calibrate", "--reference", "r.npy", "--n-data", "50",
                                      "--out", "c.npz", "--n-kernels", "2,3"])
    assert args.n_kernels == [2, 3]


def test_calibrate_once_then_test_with_the_calibration(test_files, tmp_path, capsys):
    ref, data, other_ref = test_files
    cal = tmp_path / "cal.npz"
    checkpoint = tmp_path / "toys.npz"
    calibrate = ["calibrate", "--reference", str(ref), "--n-data", "70", "--out", str(cal), *QUICK,
                 "--checkpoint", str(checkpoint)]
    assert main(calibrate) == 0
    assert checkpoint.stat().st_size > 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"] == str(cal) and summary["n_null"] == 5 and summary["n_settings"] == 1
    assert summary["null_mode"] == "resample" and summary["n_data"] == 70
    assert len(summary["null_quantiles"]["0.5"]) == 1
    saved = sparker.Calibration.load(cal)
    assert saved.n_null == 5 and saved.configs[0].epochs == 30
    assert_user_error(capsys, main(calibrate), "--out", "already exists")

    # same reference: no toys are run again, and the result is the direct test's
    assert run_test(ref, data, "--calibration", str(cal)) == 0
    reused = json.loads(capsys.readouterr().out)
    assert reused["null_distribution"] == pytest.approx(saved.null[:, 0].tolist())
    assert reused["inputs"]["calibration"] == {"file": str(cal)}
    assert run_test(ref, data, *QUICK) == 0
    direct = json.loads(capsys.readouterr().out)
    assert reused["pvalue"] == direct["pvalue"]
    assert reused["statistic"] == pytest.approx(direct["statistic"])
    # flags the calibration fixes may be repeated when they agree
    assert run_test(ref, data, "--calibration", str(cal), *QUICK, "--seed", "0") == 0
    capsys.readouterr()

    code = run_test(other_ref, data, "--calibration", str(cal))
    assert_user_error(capsys, code, "reference", "differs")
    code = run_test(ref, data, "--calibration", str(cal), "--n-kernels", "3")
    assert_user_error(capsys, code, "--n-kernels", "3", "2")
    code = run_test(ref, data, "--calibration", str(cal), "--backend", "processes")
    assert_user_error(capsys, code, "--backend", "--calibration")
    code = run_test(ref, data, "--calibration", str(cal), "--scales", "multi")
    assert_user_error(capsys, code, "--scales", "3 configuration(s)", "has 1")
    assert run_test(ref, data, "--calibration", str(cal), "--scales", "single") == 0
    capsys.readouterr()
    code = run_test(ref, data, "--calibration", str(tmp_path / "nope.npz"))
    assert_user_error(capsys, code, "--calibration", "not found")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--null", "bootstrap"], ["--null", "bootstrap"]),
        (["--n-kernels", "2,x"], ["--n-kernels", "x"]),
        (["--n-kernels", "2,2"], ["--n-kernels", "repeated"]),
        (["--sigma-end-quantile", "0.01,"], ["--sigma-end-quantile", "empty"]),
        (["--competition", "softmax,foo"], ["--competition", "foo"]),
        (["--n-null", "0"], ["--n-null", "positive"]),
        (["--aggregation", "max"], ["--aggregation", "max"]),
        (["--scheduler", "tcp://localhost:8786"], ["--scheduler", "dask"]),
    ],
)
def test_test_bad_flag_values(test_files, capsys, extra, words):
    ref, data, _ = test_files
    assert_user_error(capsys, run_test(ref, data, *extra), *words)


def test_test_refuses_weighted_data(test_files, tmp_path, capsys):
    # null toys' data are unweighted rows: a weighted sample would meet the wrong null
    ref, data, _ = test_files
    np.save(tmp_path / "w2.npy", np.full(70, 2.0))
    np.save(tmp_path / "w1.npy", np.ones(70))
    code = run_test(ref, data, *QUICK, "--data-weight", str(tmp_path / "w2.npy"))
    assert_user_error(capsys, code, "data_weight", "unweighted", "sparker fit")
    assert run_test(ref, data, *QUICK, "--data-weight", str(tmp_path / "w1.npy")) == 0  # all ones
    ones = json.loads(capsys.readouterr().out)
    assert run_test(ref, data, *QUICK) == 0
    plain = json.loads(capsys.readouterr().out)
    assert (ones["statistic"], ones["pvalue"]) == (plain["statistic"], plain["pvalue"])
    assert fit(ref, data, *FAST, "--data-weight", str(tmp_path / "w2.npy")) == 0  # uncalibrated: fine
    assert json.loads(capsys.readouterr().out)["statistic"] > 0


# ------------------------------------------------------------------ bad input


def test_missing_file(npy_files, tmp_path, capsys):
    ref, _ = npy_files
    code = fit(ref, tmp_path / "nope.npy", *FAST)
    assert_user_error(capsys, code, "data", "not found")


def test_nan_in_csv(tmp_path, samples, capsys):
    reference, data = samples
    np.savetxt(tmp_path / "ref.csv", reference, delimiter=",")
    bad = data.copy()
    bad[7, 1] = np.nan
    pd.DataFrame(bad).to_csv(tmp_path / "data.csv", index=False, header=False, na_rep="nan")
    code = fit(tmp_path / "ref.csv", tmp_path / "data.csv", *FAST)
    assert_user_error(capsys, code, "data", "NaN", "7")


def test_mismatched_feature_counts(tmp_path, samples, capsys):
    reference, data = samples
    np.save(tmp_path / "ref.npy", reference)
    np.save(tmp_path / "data.npy", np.hstack([data, data[:, :1]]))
    code = fit(tmp_path / "ref.npy", tmp_path / "data.npy", *FAST)
    assert_user_error(capsys, code, "data", "3 features", "2")


def test_unknown_suffix(npy_files, tmp_path, capsys):
    ref, _ = npy_files
    (tmp_path / "data.txt").write_text("1,2\n")
    code = fit(ref, tmp_path / "data.txt", *FAST)
    assert_user_error(capsys, code, "data", "unsupported file type")


def test_wrong_weight_length(npy_files, tmp_path, capsys):
    ref, data = npy_files
    np.save(tmp_path / "w.npy", np.ones(5))
    code = fit(ref, data, "--data-weight", str(tmp_path / "w.npy"), *FAST)
    assert_user_error(capsys, code, "data_weight", "5 weights")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--competition", "foo"], ["--competition", "foo"]),
        (["--epochs", "many"], ["--epochs", "many"]),
        (["--unknown-flag"], ["--unknown-flag"]),
    ],
)
def test_bad_flag_values(npy_files, capsys, extra, words):
    ref, data = npy_files
    code = fit(ref, data, *extra)
    assert_user_error(capsys, code, *words)


def test_invalid_setting_value_is_a_user_error(npy_files, capsys):
    ref, data = npy_files
    code = fit(ref, data, "--epochs", "0")
    assert_user_error(capsys, code, "epochs")


def test_missing_required_argument(capsys):
    assert_user_error(capsys, main(["fit", "--data", "x.npy"]), "--reference")
    assert_user_error(capsys, main([]), "COMMAND")


def test_debug_shows_the_traceback(npy_files, tmp_path, capsys):
    ref, _ = npy_files
    code = main(["--debug", "fit", "--reference", str(ref), "--data", str(tmp_path / "nope.npy")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("sparker: error: data")


# ------------------------------------------------------ CSV inputs: names, delimiters, columns (issue #18)

NAMES = ["energy", "angle"]


def write_csv(path, table, columns, **options):
    pd.DataFrame(table, columns=columns).to_csv(path, index=False, **options)
    return path


@pytest.fixture
def csv_files(tmp_path, samples):
    reference, data = samples
    return write_csv(tmp_path / "ref.csv", reference, NAMES), write_csv(tmp_path / "data.csv", data, NAMES)


def test_test_out_keeps_the_csv_column_names(csv_files, tmp_path, capsys):
    ref, data = csv_files
    out = tmp_path / "out"
    assert run_test(ref, data, *QUICK, "--out", str(out)) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["feature_names"] == NAMES
    assert all(list(k["centre"]) == NAMES for k in result["kernels"])
    assert result["top_points"] and all(list(p["point"]) == NAMES for p in result["top_points"])
    assert isinstance(result["n_flagged"], int) and result["verdict"]["calibrated"] is True
    assert SparKer.load(out / "model.npz").feature_names_in_ == NAMES
    assert "energy" in (out / "report.html").read_text()


def test_semicolon_csv_is_detected_and_delimiter_overrides(tmp_path, samples, capsys):
    reference, data = samples
    ref = write_csv(tmp_path / "ref.csv", reference, NAMES, sep=";")
    dat = write_csv(tmp_path / "data.csv", data, NAMES, sep=";")
    assert fit(ref, dat, *FAST) == 0
    assert json.loads(capsys.readouterr().out)["feature_names"] == NAMES
    assert fit(ref, dat, *FAST, "--delimiter", "semicolon") == 0
    capsys.readouterr()
    assert_user_error(capsys, fit(ref, dat, *FAST, "--delimiter", "comma"), "energy;angle", "not numeric")
    assert_user_error(capsys, fit(ref, dat, "--delimiter", "::"), "--delimiter", "one character")


def test_delimiter_needs_a_csv_input(npy_files, capsys):
    ref, data = npy_files
    assert_user_error(capsys, fit(ref, data, "--delimiter", ";"), "--delimiter: only used for .csv inputs")
    assert_user_error(capsys, fit(ref, data, "--columns", "a,b"), "--columns", "has no column names")


def test_columns_picks_named_columns_of_both_tables(tmp_path, samples, capsys):
    reference, data = samples
    ref = tmp_path / "ref.csv"
    pd.DataFrame({"energy": reference[:, 0], "label": "x", "angle": reference[:, 1]}).to_csv(ref, index=False)
    dat = tmp_path / "data.csv"
    pd.DataFrame({"angle": data[:, 1], "run": 7, "energy": data[:, 0]}).to_csv(dat, index=False)
    assert fit(ref, dat, *FAST, "--columns", "energy,angle") == 0
    assert json.loads(capsys.readouterr().out)["feature_names"] == NAMES
    code = fit(ref, dat, *FAST, "--columns", "energy,phi")
    assert_user_error(capsys, code, "--columns: reference file", "no column 'phi'")


def test_data_columns_are_matched_to_the_reference_by_name(csv_files, tmp_path, samples, capsys):
    ref, data = csv_files
    assert fit(ref, data, *FAST) == 0
    expected = json.loads(capsys.readouterr().out)
    swapped = write_csv(tmp_path / "swapped.csv", samples[1][:, ::-1], NAMES[::-1])
    assert fit(ref, swapped, *FAST, "-v") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "--data: columns matched to the reference's by name" in captured.err
    assert result["feature_names"] == NAMES and result["statistic"] == expected["statistic"]
    other = write_csv(tmp_path / "other.csv", samples[1], ["energy", "phi"])
    assert_user_error(capsys, fit(ref, other, *FAST), "data: columns", "missing ['angle']",
                      "unexpected ['phi']", "--columns")


# ------------------------------------------------------------------- typos (issue #18)


@pytest.mark.parametrize("argv, message", [
    (["test", "--refrence", "r.npy", "--data", "d.npy"],
     "unknown flag --refrence; did you mean --reference?"),
    (["fit", "--reference", "r.npy", "--data", "d.npy", "--n-kernel", "3"],
     "unknown flag --n-kernel; did you mean --n-kernels?"),
    (["fit", "--reference", "r.npy", "--data", "d.npy", "--n-kernel=3"], "did you mean --n-kernels?"),
    (["--verbos", "demo"], "unknown flag --verbos; did you mean --verbose? (see 'sparker --help')"),
    (["fit", "--reference", "r.npy", "--data", "d.npy", "--zzz"],
     "unknown flag --zzz (see 'sparker fit --help')"),
])
def test_unknown_flags_are_reported_first_with_a_suggestion(capsys, argv, message):
    assert message in assert_user_error(capsys, main(argv))


def test_flags_are_never_abbreviated(tmp_path, capsys):
    parser = build_parser()
    assert not parser.allow_abbrev and not any(p.allow_abbrev for p in parser.commands.values())
    with pytest.raises(Exception, match="unrecognized arguments: --n-kernel"):
        parser.parse_args(["fit", "--reference", "r.npy", "--data", "d.npy", "--n-kernel", "3"])
    # a negative number is a value, not a flag: the error is the missing file
    code = main(["fit", "--reference", str(tmp_path / "nope.npy"), "--data", "d.npy", "--seed", "-3"])
    assert_user_error(capsys, code, "reference: file not found")


def test_warnings_are_one_line_on_stderr(monkeypatch, capsys):
    def run(args):
        warnings.warn("the loss had not settled", sparker.ConvergenceWarning)
        warnings.warn("something else", RuntimeWarning)
        return 0

    help_text, add_arguments, _ = COMMANDS["demo"]
    monkeypatch.setitem(COMMANDS, "demo", (help_text, add_arguments, run))
    assert main(["demo"]) == 0
    err = capsys.readouterr().err
    assert err == "WARNING: the loss had not settled\nWARNING: RuntimeWarning: something else\n"


# ------------------------------------------------------------------- parser


def test_one_flag_per_training_setting():
    settings = {f for f in TrainingConfig.__dataclass_fields__ if f != "layers"}
    assert set(training_flags()) == settings
    assert settings <= set(inspect.signature(SparKer).parameters)  # each flag reaches the estimator
    args = build_parser().parse_args(["fit", "--reference", "r.npy", "--data", "d.npy"])
    assert not settings & set(vars(args))  # absent flags keep the estimator defaults
    args = build_parser().parse_args(
        ["fit", "--reference", "r.npy", "--data", "d.npy", "--n-kernels", "3", "--no-reseed",
         "--sigma-end", "0.1", "--schedule", "linear"])
    assert (args.n_kernels, args.reseed, args.sigma_end, args.schedule) == (3, False, 0.1, "linear")


def test_global_flags_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["-v", "demo"]).verbose
    assert parser.parse_args(["demo", "--verbose"]).verbose
    assert parser.parse_args(["--debug", "demo"]).debug
    assert not parser.parse_args(["demo"]).debug
    assert set(COMMANDS) >= {"demo", "fit", "test", "calibrate"}


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sparker {__version__}"
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--n-kernels" in out and "--no-reseed" in out and "--competition" in out
    assert main(["test", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--calibration" in out and "--n-null" in out and "comma-separated" in out
    assert main(["calibrate", "--help"]) == 0
    assert "--n-data" in capsys.readouterr().out


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "sparker", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sparker {__version__}"


@pytest.mark.parametrize("method", ["mmd", "nplm_kernel", "c2st"])
def test_test_method_runs_a_baseline_by_name(test_files, capsys, method):
    ref, data, _ = test_files
    assert run_test(ref, data, "--method", method, "--n-null", "5", "--seed", "1") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == method
    assert 1 / 6 <= result["pvalue"] <= 1 and result["n_null"] == 5


def test_test_method_refuses_sparker_only_flags(test_files, capsys):
    ref, data, _ = test_files
    assert run_test(ref, data, "--method", "mmd", "--n-kernels", "4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sparker: error: --method:")


# ------------------------------------------------------------------- --layers

LAYERS = '[{"n_kernels": 2}, {"n_kernels": 3, "sigma_end_quantile": 0.01}]'


def test_layers_flag_takes_a_json_list_of_blocks(npy_files, capsys):
    ref, data = npy_files
    assert fit(ref, data, "--epochs", "50", "--layers", LAYERS) == 0
    result = json.loads(capsys.readouterr().out)
    assert [block["n_kernels"] for block in result["settings"]["layers"]] == [2, 3]
    assert result["settings"]["layers"][1]["sigma_end_quantile"] == 0.01
    assert len(result["kernels"]) == 5


@pytest.mark.parametrize("text, words", [
    ('[{"n_kernels": 2}', ["--layers", "JSON"]),
    ('{"n_kernels": 2}', ["--layers", "list of objects"]),
    ('[{"n_kernel": 2}]', ["--layers", "block 0", "n_kernel"]),
    ('[{"n_kernels": 2}, {"epochs": 0}]', ["--layers", "block 1", "epochs"]),
    ('[{"schedule": "bogus"}]', ["--layers", "block 0", "bogus"]),
])
def test_bad_layers_are_refused_naming_the_flag(npy_files, capsys, text, words):
    ref, data = npy_files
    assert_user_error(capsys, fit(ref, data, "--layers", text), *words)


def test_layers_must_agree_with_the_calibration(test_files, tmp_path, capsys):
    ref, data, _ = test_files
    cal = tmp_path / "cal.npz"
    assert main(["calibrate", "--reference", str(ref), "--n-data", "70", "--out", str(cal), "--n-null", "3",
                 "--epochs", "20", "--layers", LAYERS]) == 0
    capsys.readouterr()
    assert run_test(ref, data, "--calibration", str(cal), "--layers", LAYERS) == 0
    result = json.loads(capsys.readouterr().out)
    assert [block["n_kernels"] for block in result["settings"][0]["layers"]] == [2, 3]
    code = run_test(ref, data, "--calibration", str(cal), "--layers", '[{"n_kernels": 2}]')
    assert_user_error(capsys, code, "--layers", "differs", "calibrate again")


def test_every_training_flag_has_the_help_of_its_field(capsys):
    assert main(["fit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for f in TrainingConfig.__dataclass_fields__.values():
        assert " ".join(f.metadata["help"].split()) in out, f.name
    start = TrainingConfig.__dataclass_fields__["sigma_start_quantile"].metadata["help"]
    end = TrainingConfig.__dataclass_fields__["sigma_end_quantile"].metadata["help"]
    assert start != end and "start" in start and "end" in end
    assert "--layers JSON" in out
