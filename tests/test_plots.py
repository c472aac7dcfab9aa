"""Tests for sparker.app.plots (matplotlib, Agg backend): every figure draws and renders to PNG."""

import io
import subprocess
import sys
import types

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure

import sparker
from sparker import SparKer
from sparker.app import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


def samples(d, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.uniform(size=(600, d))
    D = np.concatenate([rng.uniform(size=(150, d)), 0.5 + 0.02 * rng.standard_normal((30, d))])
    return R, D


@pytest.fixture(scope="module")
def fitted2d():
    R, D = samples(2)
    return R, D, SparKer(n_kernels=3, epochs=150, seed=0).fit(R, D)


def render(fig) -> bytes:
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    png = buffer.getvalue()
    assert png.startswith(PNG_MAGIC)
    return png


def test_core_import_does_not_import_matplotlib():
    code = ("import sys, sparker, sparker.app.plots, sparker.app.report, sparker.interpret, sparker.app.cli; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_null_distribution_plot():
    rng = np.random.default_rng(0)
    result = types.SimpleNamespace(null_distribution=rng.chisquare(4, size=50), statistic=12.0, pvalue=0.04,
                                   zscore=1.75, chi2={"dof": 4.1, "poor_fit": False}, method="sparker",
                                   null_mode="resample")
    fig = plots.plot_null_distribution(result)
    ax = fig.axes[0]
    assert any(abs(line.get_xdata()[0] - 12.0) < 1e-12 for line in ax.lines)  # t_obs marked
    assert len(ax.lines) == 2  # chi2 density and t_obs
    render(fig)
    no_fit = types.SimpleNamespace(**{**vars(result), "chi2": None})
    assert len(plots.plot_null_distribution(no_fit).axes[0].lines) == 1
    with pytest.raises(ValueError, match="^result:"):
        plots.plot_null_distribution(types.SimpleNamespace(null_distribution=[], statistic=1.0))


def test_null_distribution_of_a_real_test_draws_into_given_axes():
    R, D = samples(2)
    res = sparker.test(R, D, n_null=4, seed=0, n_kernels=2, epochs=30)
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.plot_null_distribution(res, ax=ax) is fig
    render(fig)


def test_view2d_uses_the_features_and_draws_active_kernels(fitted2d):
    R, D, m = fitted2d
    fig = plots.plot_view2d(m, R, D)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x0" and ax.get_ylabel() == "x1"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_active = sum(k["active"] for k in m.kernels_)
    assert n_active >= 1
    assert sum(label.startswith("kernel ") for label in labels) == n_active
    assert len(ax.lines) == 2 * n_active  # one trajectory per active kernel (solid + dotted jumps)
    render(fig)


def test_view2d_in_higher_dimension_uses_a_reference_pca():
    R, D = samples(4)
    m = SparKer(n_kernels=2, epochs=60, seed=0).fit(R, D)
    fig = plots.plot_view2d(m, R, D, max_points=200)
    assert fig.axes[0].get_xlabel().startswith("PC1")
    render(fig)


def test_view2d_needs_two_features():
    R, D = samples(1)
    m = SparKer(n_kernels=2, epochs=30, seed=0).fit(R, D)
    with pytest.raises(ValueError, match="^model:"):
        plots.plot_view2d(m, R, D)
    with pytest.raises(TypeError, match="^model:"):
        plots.plot_view2d(object(), R, D)


def test_marginals_panels_and_ratio_rows(fitted2d):
    R, D, m = fitted2d
    chosen = [g for g, k in enumerate(m.kernels_) if k["active"]] or [0]
    fig = plots.plot_marginals(m, R, D, n_features=2)
    assert len(fig.axes) == 2 * 2 * len(chosen)  # (histogram + ratio) x features x kernels
    render(fig)
    one = plots.plot_marginals(m, R, D, kernels=0, n_features=1, bins=10)
    assert len(one.axes) == 2
    with pytest.raises(ValueError, match="^kernels:"):
        plots.plot_marginals(m, R, D, kernels=[7])
    with pytest.raises(ValueError, match="^reference_weight:"):
        plots.plot_marginals(m, R, D, reference_weight=np.ones(3))
    with pytest.raises(ValueError, match="^data:"):
        plots.plot_marginals(m, R, D[:, :1])


def test_marginals_pick_the_feature_the_kernel_changes():
    rng = np.random.default_rng(5)
    R = rng.standard_normal((2000, 3))
    D = rng.standard_normal((600, 3))
    D[:60] = [0.0, 0.0, 2.5] + 0.1 * rng.standard_normal((60, 3))  # displaced along feature 2 only
    m = SparKer(n_kernels=2, epochs=200, seed=0).fit(R, D)
    strongest = int(np.argmax([abs(k["local_z"]) for k in m.kernels_]))
    fig = plots.plot_marginals(m, R, D, kernels=strongest, n_features=1)
    assert fig.axes[1].get_xlabel() == "x2"


def test_training_plot_single_and_stack(fitted2d):
    _, _, m = fitted2d
    fig = plots.plot_training(m)
    sigma_ax, loss_ax = fig.axes
    assert len(loss_ax.lines[0].get_xdata()) == m.epochs
    np.testing.assert_allclose(sigma_ax.lines[0].get_ydata(), m.history_["sigma"])
    render(fig)
    R, D = samples(2)
    stack = SparKer(layers=[{"n_kernels": 2, "epochs": 20}, {"n_kernels": 2, "epochs": 30}], seed=0).fit(R, D)
    fig = plots.plot_training(stack)
    layers = [line for line in fig.axes[1].lines if line.get_label().startswith("layer")]
    assert len(layers) == 2
    assert layers[1].get_xdata()[0] == 20  # the second layer starts after the first
    render(fig)
