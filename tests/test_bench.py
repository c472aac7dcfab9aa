"""Power study (sparker.app.bench) and the 'sparker bench power' command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparker import scenarios
from sparker.baselines import c2st
from sparker.baselines.c2st import c2st_statistic
from sparker.app.bench import (CI_SIZES, SIGNAL_PARAMETERS, STATISTICS, TESTS, draw_seeds, power_study,
                               write_study)
from sparker.app.cli import main
from sparker.config import SCALES

TINY = {"n_reference": 1_500, "n_background": 300}
#: one broad clump in the middle: with fraction 0.5 (150 clump points on 300 uniform ones) a
#: signal that MMD sees in every draw at these sizes
BROAD = {**TINY, "clump_std": 0.1, "centres": [[0.5, 0.5]]}


def test_every_scenario_has_a_signal_parameter_and_a_size_preset():
    assert set(SIGNAL_PARAMETERS) == set(scenarios.SCENARIOS)
    assert set(CI_SIZES) == set(scenarios.SCENARIOS)
    assert set(TESTS) == set(STATISTICS)


@pytest.mark.parametrize("name", ["square2d", "expo1d", "gauss_highd", "digits_novelty", "genval"])
def test_signal_fraction_zero_is_a_null_and_positive_adds_anomalies(name):
    params = {**CI_SIZES[name]}
    if name == "gauss_highd":
        params.update(n_reference=500, n_data=400, d=8)
    if name in ("square2d", "expo1d"):
        params.update(n_reference=500, n_background=400)
    for f, expect in ((0.0, 0), (0.05, 20)):
        _, D, truth = scenarios.make(name, seed=1, **params, **SIGNAL_PARAMETERS[name](f, params))
        n = int(truth["is_anomaly"].sum())
        if expect == 0:
            assert n == 0
        else:  # about f * n_data anomalous rows (square2d rounds per clump)
            assert abs(n - f * (D.shape[0] - n if name in ("square2d", "expo1d") else D.shape[0])) <= 3


def test_c2st_statistic_is_the_observed_statistic_of_c2st():
    rng = np.random.default_rng(0)
    R, D = rng.normal(size=(400, 3)), rng.normal(0.3, 1, size=(120, 3))
    assert c2st_statistic(R, D, seed=4) == c2st(R, D, n_null=1, seed=4).statistic


def test_statistic_mode_rows_thresholds_from_null_draws():
    study = power_study("square2d", methods=["mmd", "c2st"], fractions=[0.5], n_toys=4, n_null_draws=6,
                        params=BROAD, seed=3)
    assert study.fractions == [0.0, 0.5]  # the null version is added
    assert [r["method"] for r in study.rows] == ["mmd", "mmd", "c2st", "c2st"]
    null_row, sig_row = study.rows[:2]
    assert null_row["power"] is None and null_row["n_toys"] == 6
    assert sig_row["n_toys"] == 4
    # with 6 null draws the smallest p-value is 1/7 > 0.05: nothing can be rejected
    assert sig_row["power"] == 0.0
    t0, t1 = study.statistics["mmd"]
    assert all(np.isfinite(t0)) and all(np.isfinite(t1))
    # the strong signal is plain to MMD: every signal draw beats every null draw
    assert np.min(t1) > np.max(t0)
    assert sig_row["median_z"] == pytest.approx(1.068, abs=1e-3)  # Phi^-1(1 - 1/7): the resolution
    assert all(np.isnan(p).all() for p in study.pvalues["mmd"])
    # every draw's CPU time is recorded beside its wall time (the cost side of power per CPU-second)
    for m in ("mmd", "c2st"):
        assert [c.shape for c in study.cpu_seconds[m]] == [s.shape for s in study.seconds[m]]
        assert all((c > 0).all() for c in study.cpu_seconds[m])
    assert null_row["cpu_seconds_per_draw"] == pytest.approx(float(np.mean(study.cpu_seconds["mmd"][0])))
    assert json.loads(json.dumps(study.to_dict()))["cpu_seconds"]["c2st"][1] == study.cpu_seconds["c2st"][1].tolist()


def test_a_study_draw_is_made_again_from_its_seeds():
    """benchmarks that score new statistics on a stored study's draws rebuild each draw from
    draw_seeds: the same scenario draw and method seed give the stored statistic."""
    study = power_study("square2d", methods=["mmd"], fractions=[0.5], n_toys=3, n_null_draws=2,
                        params=BROAD, seed=5)
    for i, fraction in enumerate(study.fractions):
        seeds = draw_seeds(5, i, len(study.statistics["mmd"][i]))
        assert len(set(seeds)) == len(seeds)
        for j, (scenario_seed, method_seed) in enumerate(seeds):
            params = {**BROAD, **SIGNAL_PARAMETERS["square2d"](fraction, BROAD)}
            R, D, _ = scenarios.make("square2d", seed=scenario_seed, **params)
            assert STATISTICS["mmd"](R, D, seed=method_seed) == study.statistics["mmd"][i][j]
    # a study with more draws starts with the same ones
    assert draw_seeds(5, 1, 5)[:3] == draw_seeds(5, 1, 3)


def test_strong_signal_is_detected_with_enough_null_draws():
    study = power_study("square2d", methods=["mmd"], fractions=[0.0, 0.5], n_toys=5, n_null_draws=25,
                        params=BROAD, seed=0)
    row = study.rows[1]
    assert row["power"] == 1.0 and row["ci_low"] > 0.6


def test_calibrated_mode_reports_pvalues_and_type1_check():
    study = power_study("square2d", methods=["mmd"], fractions=[0.0, 0.5], n_toys=6, mode="calibrated",
                        n_null=19, params=BROAD, seed=1)
    null_row, sig_row = study.rows
    assert "type1_ok" in null_row and "type1_ok" not in sig_row
    p0, p1 = study.pvalues["mmd"]
    assert np.all((p0 > 0) & (p0 <= 1)) and np.all((p1 > 0) & (p1 <= 1))
    assert sig_row["power"] == np.mean(p1 <= 0.05)
    assert sig_row["power"] >= 0.8  # the strong signal: nearly every test rejects


def test_results_do_not_depend_on_the_back_end():
    kw = dict(methods=["c2st"], fractions=[0.1], n_toys=3, n_null_draws=3, params=TINY, seed=2)
    a = power_study("square2d", **kw)
    b = power_study("square2d", backend="processes", n_workers=2, threads=1, **kw)
    for x, y in zip(a.statistics["c2st"], b.statistics["c2st"]):
        np.testing.assert_array_equal(x, y)


def test_sparker_statistic_mode_runs_and_is_reproducible():
    kw = dict(methods=["sparker"], fractions=[0.1], n_toys=2, n_null_draws=2,
              params={"n_reference": 1_000, "n_background": 200}, seed=5)
    a, b = power_study("square2d", **kw), power_study("square2d", **kw)
    for x, y in zip(a.statistics["sparker"], b.statistics["sparker"]):
        np.testing.assert_array_equal(x, y)
        assert np.all(np.isfinite(x))


def test_sparker_scales_are_aggregated_like_the_calibrated_test():
    from sparker.stats import aggregate, binomial_interval

    study = power_study("square2d", methods=["sparker"], fractions=[0.1], n_toys=3, n_null_draws=4,
                        params={"n_reference": 600, "n_background": 100}, seed=2,
                        options={"sparker": {"scales": "multi", "lr_centres": 0.1}})
    null, alt = study.statistics["sparker"]
    assert null.shape == (4, 3) and alt.shape == (3, 3)
    p = np.array([aggregate(t, null).pvalue for t in alt])
    k = int(np.sum(p <= 0.05))
    row = study.rows[1]
    assert row["power"] == k / 3 and (row["ci_low"], row["ci_high"]) == binomial_interval(k, 3, level=0.6827)
    json.dumps(study.to_dict())
    single = power_study("square2d", methods=["sparker"], fractions=[0.1], n_toys=3, n_null_draws=4,
                         params={"n_reference": 600, "n_background": 100}, seed=2,
                         options={"sparker": {"scales": "single", "lr_centres": 0.1, **SCALES["multi"][0]}})
    np.testing.assert_array_equal(single.statistics["sparker"][1], alt[:, 0])  # the narrow scale


@pytest.mark.parametrize("kwargs, match", [
    ({"scenario": "nope"}, "scenario"),
    ({"methods": ["sparker", "nope"]}, "methods"),
    ({"methods": []}, "methods"),
    ({"methods": ["mmd", "mmd"]}, "methods"),
    ({"fractions": [1.5]}, "fractions"),
    ({"fractions": ["x"]}, "fractions"),
    ({"n_toys": 0}, "n_toys"),
    ({"n_null_draws": 1}, "n_null_draws"),
    ({"mode": "fast"}, "mode"),
    ({"alpha": 0.0}, "alpha"),
    ({"mode": "calibrated", "n_null": 5}, "n_null"),
    ({"sizes": "huge"}, "sizes"),
    ({"params": {"n_per_clump": 3}}, "params"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    args = {"scenario": "square2d", "methods": ["mmd"], "fractions": [0.1], "n_toys": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        power_study(**args)


def test_write_study_refuses_to_overwrite(tmp_path):
    study = power_study("square2d", methods=["c2st"], fractions=[0.1], n_toys=2, params=TINY)
    paths = write_study(study, tmp_path)
    saved = json.loads((tmp_path / "power.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(study.rows))
    assert (tmp_path / "power.csv").read_text().splitlines()[0].startswith("scenario,method,fraction")
    assert (tmp_path / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (tmp_path / "power.json").read_bytes()
    with pytest.raises(FileExistsError, match="out"):
        write_study(study, tmp_path)
    assert (tmp_path / "power.json").read_bytes() == before
    assert set(paths) == {"json", "csv", "png"}


def test_cli_bench_power(tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["bench", "power", "--scenario", "square2d", "--methods", "mmd,c2st", "--fractions", "0.1",
            "--n-toys", "2", "--param", "n_reference=1500", "--param", "n_background=300", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| mmd | 0.1 |" in printed and "power.csv" in printed
    assert main(argv) == 2  # existing results are kept
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


def test_cli_bench_power_bad_input_is_one_line(capsys):
    assert main(["bench", "power", "--scenario", "square2d", "--methods", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "methods" in err
    assert main(["bench", "power", "--scenario", "square2d", "--param", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_method_options_reach_the_method(capsys):
    kw = {"methods": ["sparker"], "fractions": [0.1], "n_toys": 2, "n_null_draws": 2,
          "params": {"n_reference": 800, "n_background": 200}, "seed": 1}
    a = power_study("square2d", options={"sparker": {"n_kernels": 2, "epochs": 40}}, **kw)
    b = power_study("square2d", options={"sparker": {"n_kernels": 3, "epochs": 40}}, **kw)
    assert a.settings["options"] == {"sparker": {"n_kernels": 2, "epochs": 40}}
    assert not np.array_equal(a.statistics["sparker"][1], b.statistics["sparker"][1])
    with pytest.raises(ValueError, match="^options"):
        power_study("square2d", options={"mmd": {}}, **kw)
    argv = ["bench", "power", "--scenario", "square2d", "--methods", "sparker", "--fractions", "0.1",
            "--n-toys", "2", "--n-null-draws", "2", "--param", "n_reference=800", "--param", "n_background=200",
            "--seed", "1", "--option", "sparker.n_kernels=2", "--option", "sparker.epochs=40"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["statistics"]["sparker"][1] == a.statistics["sparker"][1].tolist()
    assert main(argv[:-1] + ["sparker-epochs"]) == 2
    assert "METHOD.KEY=VALUE" in capsys.readouterr().err


def test_type1_acceptance_is_the_central_binomial_range():
    from scipy.stats import binom

    from sparker.app.bench import type1_acceptance

    lo, hi = type1_acceptance(40, 0.05)
    assert (lo, hi) == (0, 6)  # no rejection in 40 null tests is common (p = 0.95**40 = 0.13)
    lo, hi = type1_acceptance(1000, 0.05)
    assert binom.cdf(lo - 1, 1000, 0.05) <= 0.005 and binom.sf(hi, 1000, 0.05) <= 0.005
    assert lo < 50 < hi


def test_power_from_draws_by_hand():
    from sparker.app.bench import power_from_draws
    from sparker.stats import binomial_interval

    null = np.arange(1.0, 20.0)  # 19 null draws: the smallest p-value is 1/20 = alpha
    alt = np.array([25.0, 30.0, 19.5, 10.5, 0.0])  # p = 1/20, 1/20, 1/20, 10/20, 20/20
    found = power_from_draws(null, alt, alpha=0.05)
    assert found["power"] == 3 / 5
    assert (found["ci_low"], found["ci_high"]) == binomial_interval(3, 5, level=0.6827)
    # Z = Phi^-1(1 - p), p capped at 19/20: the lower median of the five is Phi^-1(1 - 1/20)
    assert found["median_z"] == pytest.approx(1.6449, abs=1e-4)
    assert found["z16"] == pytest.approx(-1.6449, abs=1e-4) and found["z84"] == pytest.approx(1.6449, abs=1e-4)
    # several statistics per draw are combined as the calibrated test combines them (min-p):
    # a draw far beyond the null in one column only still reaches the smallest p-value
    two = power_from_draws(np.column_stack([null, null[::-1]]), np.array([[25.0, 0.0], [0.0, 0.0]]), alpha=0.05)
    assert two["power"] == 1 / 2
