"""User-experience points of issue #18: the closing verdict, progress per block of toys,
honest headlines, the Pipeline trap, DataFrame scores and per-kernel marginal panels."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import sparker
from sparker import ConvergenceWarning, SparKer
from sparker.app.cli import main
from sparker.app.report import build_report
from sparker.calibration.toys import REPLICA_BLOCK
from sparker.results import CHI2_MIN_KS_PVALUE, CHI2_MIN_TOYS, TestResult
from sparker.stats import toys_needed

#: Calibrated tests on the command line: few epochs, few kernels, few toys.
QUICK = ["--epochs", "30", "--n-kernels", "2", "--n-null", "5"]

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Reference (600, 2) and data (70, 2) with a small clump."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("ux_inputs")
    data = np.concatenate([rng.uniform(size=(60, 2)), 0.5 + 0.02 * rng.standard_normal((10, 2))])
    np.save(folder / "ref.npy", rng.uniform(size=(600, 2)))
    np.save(folder / "data.npy", data)
    return folder / "ref.npy", folder / "data.npy"


def cli(command, files, *extra):
    ref, data = files
    return main([command, "--reference", str(ref), "--data", str(data), *extra])


# ------------------------------------------------------------- (3) the closing verdict


def test_test_out_always_prints_the_verdict_and_the_report_path(files, tmp_path, capsys):
    out = tmp_path / "run1"
    assert cli("test", files, *QUICK, "--out", str(out)) == 0  # no -v
    lines = capsys.readouterr().out.splitlines()
    content = json.loads((out / "result.json").read_text())
    verdict = content["verdict"]
    assert lines == [verdict["summary"], verdict["text"], f"report: {out / 'report.html'}",
                     f"wrote {out / 'result.json'}, {out / 'model.npz'}"]
    summary = lines[0]
    assert summary.startswith(f"t = {content['statistic']:.4g}, p = {content['pvalue']:.3g} ")
    assert "resolution 1/(5+1) = 0.167" in summary and f"Z = {content['zscore']:.2f}" in summary
    assert summary.endswith("loss settled" if content["converged"] else "loss not settled")
    assert (out / "report.html").exists()


def test_test_without_out_keeps_stdout_json_and_says_the_verdict_on_stderr(files, capsys):
    assert cli("test", files, *QUICK) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is only the JSON
    assert captured.err.splitlines()[-2:] == [result["verdict"]["summary"], result["verdict"]["text"]]


def test_fit_prints_the_statistic_and_where_it_wrote(files, tmp_path, capsys):
    out, model = tmp_path / "fit.json", tmp_path / "model.npz"
    code = cli("fit", files, "--epochs", "30", "--n-kernels", "2", "--out", str(out), "--model", str(model))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    t = json.loads(out.read_text())["statistic"]
    assert lines[0].startswith(f"t = {t:.4g} from a single fit (not calibrated); loss ")
    assert lines[1] == f"wrote {out}, {model}"


class RecordingBar:
    """Stands in for tqdm: records the updates of the progress bar."""

    bars: list = []

    def __init__(self, total, **options):
        self.total, self.updates = total, []
        RecordingBar.bars.append(self)

    def update(self, n):
        self.updates.append(n)

    def close(self):
        pass


@pytest.mark.parametrize("chunk, updates", [(None, [16, 16, 8]), ("32", [32, 8])])
def test_progress_bar_moves_per_block_of_toys(files, capsys, monkeypatch, chunk, updates):
    pytest.importorskip("tqdm")
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    RecordingBar.bars = []
    extra = [] if chunk is None else ["--replica-chunk", chunk]
    code = cli("test", files, "--epochs", "10", "--n-kernels", "2", "--n-null", "40", "--progress", *extra)
    assert code == 0
    json.loads(capsys.readouterr().out)
    (bar,) = RecordingBar.bars
    assert bar.total == 40 and bar.updates == updates
    assert REPLICA_BLOCK == 16


def test_per_block_chunks_change_no_number(files, capsys):
    results = []
    for extra in (["--progress"], ["--no-progress"]):
        assert cli("test", files, "--epochs", "10", "--n-kernels", "2", "--n-null", "20", *extra) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["null_distribution"] == results[1]["null_distribution"]
    assert results[0]["statistic"] == results[1]["statistic"]


# ------------------------------------------------------------- (6) honest headlines


def test_toys_needed():
    assert toys_needed(st.norm.isf(0.05)) == 19
    assert toys_needed(3) == 740
    assert 3.4e6 < toys_needed(5) < 3.6e6
    assert toys_needed(-2) == 1
    for z in (0.5, 1.0, 2.0, 2.5, 3.0, 4.0):  # the smallest count whose resolution reaches z
        n = toys_needed(z)
        assert 1 / (n + 1) <= st.norm.sf(z) < 1 / n
    with pytest.raises(ValueError, match="^z:"):
        toys_needed(float("nan"))
    with pytest.raises(ValueError, match="^z:.*too large"):
        toys_needed(40.0)


def result_at_resolution(n_null, ks_pvalue, converged=True):
    """A TestResult whose observation lies beyond all its toys, with a chi-square Z of 4.2."""
    null = np.linspace(1.0, 9.0, n_null)
    p = 1.0 / (n_null + 1)
    chi2 = {"dof": 3.0, "ks_pvalue": ks_pvalue, "poor_fit": ks_pvalue < 0.01, "pvalue": 1.3e-5, "zscore": 4.2}
    return TestResult(statistic=30.0, pvalue=p, zscore=float(st.norm.isf(p)), null_distribution=null,
                      null_mode="resample", n_null=n_null, chi2=chi2, converged=converged)


def test_few_toys_give_the_resolution_and_the_toys_a_z_needs_not_the_extrapolation():
    result = result_at_resolution(19, ks_pvalue=0.6)
    verdict = result.verdict()
    assert result.asymptotic_zscore is None and verdict["asymptotic_zscore"] is None
    expected = "p = 0.05 is the smallest p-value 19 toys can give; a Z of 3 needs about 740 toys."
    assert expected in verdict["text"]
    assert "Z = 4.2" not in verdict["text"] and f"at least {CHI2_MIN_TOYS} toys" in verdict["text"]
    assert "loss" not in verdict["text"]
    with pytest.raises(ValueError, match="^alpha:"):
        result.verdict(alpha=0.0)
    report = build_report(result, figures=False)
    assert report.result["verdict"] == verdict
    assert "4.2" not in report.html.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert "not quoted" in report.html


def test_enough_toys_and_a_good_fit_quote_the_extrapolation():
    good = result_at_resolution(CHI2_MIN_TOYS + 99, ks_pvalue=0.6)
    assert good.asymptotic_zscore == 4.2
    text = good.verdict()["text"]
    assert "extrapolates to Z = 4.20" in text
    assert "199 toys can give; a Z of 3 needs about 740 toys" in text
    assert "Z = 4.20" in build_report(good, figures=False).html
    poor = result_at_resolution(CHI2_MIN_TOYS + 99, ks_pvalue=CHI2_MIN_KS_PVALUE / 2)
    assert poor.asymptotic_zscore is None and "extrapolates" not in poor.verdict()["text"]
    many = result_at_resolution(999, ks_pvalue=0.6)
    assert "a Z of 5 needs about 3.5 million toys" in many.verdict()["text"]


def test_a_loss_that_did_not_settle_is_in_the_verdict():
    verdict = result_at_resolution(19, ks_pvalue=0.6, converged=False).verdict()
    assert "Loss not settled" in verdict["text"] and verdict["summary"].endswith("loss not settled")


# ------------------------------------------------------------- (2) the Pipeline trap, (9) Series


def samples(d=2, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(300, d))
    D = np.concatenate([rng.normal(size=(90, d)), 1.5 + 0.1 * rng.normal(size=(15, d))])
    return R, D


def test_a_pipeline_that_transforms_the_reference_only_is_refused():
    R, D = samples()
    pipe = make_pipeline(StandardScaler(), SparKer(n_kernels=2, epochs=10))
    with pytest.raises(ValueError, match="^data: SparKer is the last step of a Pipeline") as info:
        pipe.fit(R, D)
    assert "standardises both samples with the reference itself" in str(info.value)
    assert "use it alone" in str(info.value)


def test_sparker_alone_in_a_pipeline_fits_and_scores():
    R, D = samples()
    alone = SparKer(n_kernels=2, epochs=10).fit(R, D)
    for pipe in (make_pipeline(SparKer(n_kernels=2, epochs=10)),
                 Pipeline([("nothing", "passthrough"), ("sparker", SparKer(n_kernels=2, epochs=10))])):
        np.testing.assert_array_equal(pipe.fit(R, D).score_samples(D), alone.score_samples(D))


def test_score_samples_of_a_dataframe_is_a_series_with_its_index():
    R, D = samples()
    model = SparKer(n_kernels=2, epochs=10).fit(pd.DataFrame(R, columns=["a", "b"]), D)
    frame = pd.DataFrame(D, columns=["a", "b"], index=[f"event{i}" for i in range(len(D))])
    scores = model.score_samples(frame)
    assert isinstance(scores, pd.Series) and scores.name == "score"
    assert scores.index.equals(frame.index)
    array = model.score_samples(D)
    assert type(array) is np.ndarray
    np.testing.assert_array_equal(scores.to_numpy(), array)


# ------------------------------------------------------------- (5) marginal panels per kernel


@pytest.fixture(scope="module")
def clump3d():
    rng = np.random.default_rng(5)
    R = rng.standard_normal((1200, 3))
    D = rng.standard_normal((400, 3))
    D[:50] = [0.0, 0.0, 2.0] + 0.1 * rng.standard_normal((50, 3))  # a clump displaced along feature 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return R, D, SparKer(n_kernels=3, epochs=200, seed=0).fit(R, D)


def test_marginal_panels_count_the_points_each_kernel_owns(clump3d):
    from sparker.app import plots

    R, D, model = clump3d
    active = [g for g, k in enumerate(model.kernels_) if k["active"]]
    assert active, "the planted clump should give an active kernel"
    panels = plots.marginal_panels(model, R, D, n_features=2)
    assert [row[0].kernel for row in panels] == active
    region_d, region_r = model.explain(D).region, model.explain(R).region
    w = len(D) / len(R)  # N_0 / N_R
    for row in panels:
        for panel in row:
            g = panel.kernel
            owned = int(np.sum(region_d == g))
            assert panel.n_data == owned and panel.data.sum() == owned < len(D)
            assert panel.n_reference == int(np.sum(region_r == g))
            assert panel.reference.sum() == pytest.approx(w * panel.n_reference)
            n_bins = len(panel.data)
            assert len(panel.edges) == n_bins + 1 and plots.MIN_BINS <= n_bins <= 40
            assert n_bins == min(40, max(plots.MIN_BINS, int(2 * np.sqrt(min(owned, panel.n_reference)))))
    clump_kernel = min(active, key=lambda g: np.linalg.norm(model.centres_[g] - [0.0, 0.0, 2.0]))
    clump_row = panels[active.index(clump_kernel)]
    assert clump_row[0].feature == 2 and clump_row[0].name == "x2"
    assert clump_row[0].data.sum() > clump_row[0].reference.sum()  # the excess of its region


def test_report_marginal_figure_draws_the_panels(clump3d):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from sparker.app import plots

    R, D, model = clump3d
    panels = plots.marginal_panels(model, R, D, n_features=1)
    fig = plots.plot_marginals(model, R, D, n_features=1)
    assert len(fig.axes) == 2 * len(panels)
    for k, row in enumerate(panels):
        top, bottom = fig.axes[2 * k], fig.axes[2 * k + 1]
        assert f"{row[0].n_data} data" in top.get_title()
        assert bottom.get_ylim() == (0.0, plots.RATIO_MAX)
    report = build_report(model=model, reference=R, data=D)
    assert "marginals" in report.figures


# ------------------------------------------------------------- (3) progress per block through the API


@pytest.fixture()
def recording_bar(monkeypatch):
    """tqdm replaced by :class:`RecordingBar`; the list of bars made."""
    pytest.importorskip("tqdm")
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    RecordingBar.bars = []
    return RecordingBar.bars


def test_api_progress_moves_per_block_of_toys_and_changes_no_number(files, recording_bar):
    import sparker

    R, D = np.load(files[0]), np.load(files[1])
    tiny = dict(n_null=40, seed=3, n_kernels=2, epochs=10)
    quiet = sparker.test(R, D, progress=False, **tiny)
    assert recording_bar == []
    shown = sparker.test(R, D, progress=True, **tiny)
    (bar,) = recording_bar
    assert bar.total == 40 and bar.updates == [16, 16, 8]  # one update per block, not per chunk of 64
    np.testing.assert_array_equal(shown.null_distribution, quiet.null_distribution)
    assert shown.statistic == quiet.statistic and shown.pvalue == quiet.pvalue

    cal = sparker.calibrate(R, len(D), progress=True, **tiny)
    assert recording_bar[1].updates == [16, 16, 8]
    np.testing.assert_array_equal(cal.null[:, 0], quiet.null_distribution)
    sparker.calibrate(R, len(D), progress=True, replica_chunk=32, **tiny)  # an explicit chunk is kept
    assert recording_bar[2].updates == [32, 8]


# ------------------------------------------------------------- (4) the demo opens with an answer


def test_demo_report_opens_with_a_p_value_and_draws_the_true_clumps(tmp_path, monkeypatch, capsys):
    import functools

    from sparker import scenarios
    from sparker.app import demo

    small = functools.partial(scenarios.make, n_reference=2000, n_background=200, n_per_clump=10)
    monkeypatch.setattr(demo, "make", small)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-null", "3", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    content = json.loads((out / "result.json").read_text())
    verdict = content["verdict"]
    assert verdict["calibrated"] is True and content["n_null"] == 3
    assert lines[1].startswith("fitted 4 kernels and 3 null toys in ")
    assert lines[1].endswith(verdict["summary"])
    assert "p = 0.25" in verdict["summary"] and "Z = 0.67" in verdict["summary"]
    assert lines[2] == verdict["text"]
    assert "3 of 3 clumps have a kernel within 0.1" in lines
    page = (out / "report.html").read_text()
    first = page.split("<h1>", 1)[1]
    assert first.index("class='verdict") < first.index("p-value") < first.index("id='view2d'") \
        < first.index("Where: the kernels")  # the answer and the picture come first
    assert "diamonds mark the true clump positions" in page
    assert content["truth"]["centres"] == [list(c) for c in scenarios.SQUARE2D_CENTRES]


def test_view2d_draws_true_clumps_with_the_legend_beside_the_axes(clump3d):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sparker.app import plots

    R, D, model = clump3d
    fig = plots.plot_view2d(model, R, D, true_centres=[[0.0, 0.0, 2.0]])
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["reference", "data"] and labels[-1] == "true clump"
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # off the data
    plain = plots.plot_view2d(model, R, D)
    assert "true clump" not in [t.get_text() for t in plain.axes[0].get_legend().get_texts()]


def test_report_checks_the_true_centres(clump3d):
    R, D, model = clump3d
    report = build_report(model=model, reference=R, data=D, figures=False, true_centres=[[0.0, 0.0, 2.0]])
    assert report.result["verdict"]["calibrated"] is False
    with pytest.raises(ValueError, match="^true_centres: has 2 features but the model has 3"):
        build_report(model=model, reference=R, data=D, figures=False, true_centres=[[0.0, 2.0]])
    with pytest.raises(ValueError, match="^true_centres: drawn on the 2-D view"):
        build_report(model=model, figures=False, true_centres=[[0.0, 0.0, 2.0]])


def test_report_summary_compares_t_with_the_largest_toy():
    html = build_report(result_at_resolution(19, ks_pvalue=0.6), figures=False).html
    summary = html.split("<h2>Summary</h2>")[1].split("</table>")[0]
    assert "19 (resample); largest null statistic 9; t exceeds every toy" in summary


def test_fit_progress_bar_counts_every_epoch_of_every_layer(tmp_path, capsys):
    """``sparker fit --progress`` reports the epochs of all layers; the statistic is unchanged."""
    from sparker.model.ensemble import epoch_progress

    rng = np.random.default_rng(0)
    R, D = rng.normal(size=(300, 2)), rng.normal(size=(60, 2))
    seen = []
    kw = dict(seed=0, layers=[{"n_kernels": 2, "epochs": 7}, {"n_kernels": 2, "epochs": 5}])
    with epoch_progress(lambda done, total: seen.append((done, total))):
        t_with = sparker.SparKer(**kw).fit(R, D).statistic_
    assert seen == [(k, 12) for k in range(1, 13)]
    assert sparker.SparKer(**kw).fit(R, D).statistic_ == t_with
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)
    assert main(["fit", "--reference", str(tmp_path / "r.npy"), "--data", str(tmp_path / "d.npy"),
                 "--epochs", "20", "--n-kernels", "2", "--progress", "--out", str(tmp_path / "f.json")]) == 0
    assert "epochs" in capsys.readouterr().err
