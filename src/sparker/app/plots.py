r"""Figures of a test result and a fitted SparKer model (matplotlib, optional).

matplotlib is imported only when a function here is called (``pip install
'sparker[plot]'``); importing :mod:`sparker` never imports it.  Every function draws on
a new :class:`matplotlib.figure.Figure` created without :mod:`matplotlib.pyplot` (no
global figure registry, no backend chosen for you) and returns it; pass ``ax`` where
accepted to draw into an axes of your own.  In a notebook the returned figure displays
itself; elsewhere call ``fig.savefig(path)``.

- :func:`plot_null_distribution`: the null statistics with the observed ``t`` and the
  fitted :math:`\chi^2` density.
- :func:`plot_view2d`: data, reference, kernel centres and their trajectories during
  annealing, in the two features (``d = 2``) or the first two principal components of
  the standardised reference (``d > 2``, scikit-learn PCA).
- :func:`plot_marginals`: for each active kernel, per-feature marginals over its region
  only (the data and reference points it owns), the data against the region's
  reference weighted by ``w`` and by ``w exp(f)``, with ratio panels clipped to
  ``[0, RATIO_MAX]``, for the features that matter most to the kernel
  (:func:`sparker.interpret.marginal_relevance`); :func:`marginal_panels` gives the
  histograms it draws.
- :func:`plot_training`: width schedule and loss against epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_array, check_feature_names, check_n_features
from ..core.weights import reference_weights
from ..interpret import marginal_relevance

__all__ = ["MIN_BINS", "MarginalPanel", "RATIO_MAX", "checked_true_centres", "marginal_panels",
           "plot_marginals", "plot_null_distribution", "plot_training", "plot_view2d"]

#: Colours of the kernels, cycled by kernel index.
_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _new_figure(figsize):
    """A pyplot-free Figure (raises ImportError with the install hint without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("sparker.app.plots needs matplotlib: pip install 'sparker[plot]'") from exc
    return Figure(figsize=figsize, layout="constrained")


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot()


def _colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def _check_model(model):
    if not hasattr(model, "layers_") or not hasattr(model, "kernels_"):
        raise TypeError(f"model: expected a fitted SparKer model, got {type(model).__name__}")
    return model


def _sample(A: np.ndarray, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of at most ``n_max`` rows of ``A``, drawn without replacement."""
    if len(A) <= n_max:
        return np.arange(len(A))
    return np.sort(rng.choice(len(A), size=n_max, replace=False))


def _samples(model, reference, data):
    """Reference and data as float64 arrays, checked against the model's features."""
    R, names_r, _ = check_array(reference, name="reference")
    D, names_d, _ = check_array(data, name="data")
    for A, names, label in ((R, names_r, "reference"), (D, names_d, "data")):
        check_n_features(model.n_features_in_, A.shape[1], name=label)
        check_feature_names(model.feature_names_in_, names, name=label)
    return R, D


def _feature_names(model) -> list[str]:
    return list(model.feature_names_in_ or [f"x{j}" for j in range(model.n_features_in_)])


# ---------------------------------------------------------------- null distribution


def plot_null_distribution(result, *, ax=None, bins: int = 30):
    r"""Histogram of the null statistics, the observed ``t`` and the :math:`\chi^2` fit.

    Parameters
    ----------
    result : TestResult
        A calibrated test (:func:`sparker.test` or a baseline).
    ax : matplotlib Axes, optional
    bins : int, default=30

    Returns
    -------
    matplotlib.figure.Figure
    """
    null = np.asarray(getattr(result, "null_distribution", None), dtype=np.float64)
    if null.ndim != 1 or len(null) == 0:
        raise ValueError("result: expected a test result with a non-empty null_distribution")
    t_obs = float(result.statistic)
    fig, ax = _axes(ax, (6.0, 3.6))
    hi = max(float(null.max()), t_obs)
    lo = min(0.0, float(null.min()))
    span = hi - lo if hi > lo else 1.0
    ax.hist(null, bins=np.linspace(lo, lo + span * 1.02, bins + 1), density=True, color="#9ecae1",
            edgecolor="#3182bd", label=f"null toys (B = {len(null)})")
    chi2 = getattr(result, "chi2", None)
    if chi2 and chi2.get("dof"):
        from scipy import stats

        x = np.linspace(max(lo, 1e-6), lo + span * 1.02, 400)
        poor = " (poor fit)" if chi2.get("poor_fit") else ""
        ax.plot(x, stats.chi2.pdf(x, chi2["dof"]), color="#08519c",
                label=f"$\\chi^2$ fit, dof = {chi2['dof']:.2f}{poor}")
    ax.axvline(t_obs, color="#d62728", lw=2,
               label=f"observed t = {t_obs:.3g}\np = {result.pvalue:.3g}, Z = {result.zscore:.2f}")
    ax.set_xlabel("test statistic t")
    ax.set_ylabel("density")
    ax.set_title(f"null distribution ({getattr(result, 'method', 'sparker')}, "
                 f"{getattr(result, 'null_mode', '')})")
    ax.legend(fontsize="small")
    return fig


# ------------------------------------------------------------------------ 2-D view


def _projection(model, R: np.ndarray, seed: int):
    """Map original-unit points to the 2-D view: the features or a reference PCA."""
    names = _feature_names(model)
    if model.n_features_in_ == 2:
        return (lambda A: np.asarray(A, dtype=np.float64)), names, False
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    std = model.standardizer_
    pca = PCA(n_components=2, random_state=seed).fit(std.transform(R[_sample(R, 5000, rng)]))
    ratio = pca.explained_variance_ratio_
    labels = [f"PC{k + 1} of the reference ({100 * ratio[k]:.0f}% of variance)" for k in range(2)]
    return (lambda A: pca.transform(std.transform(np.asarray(A, dtype=np.float64)))), labels, True


def _trajectory_segments(path: np.ndarray, sigmas_view: np.ndarray) -> np.ndarray:
    """Insert NaN rows where a kernel jumped (re-seeding), so the line breaks there."""
    if len(path) < 2:
        return path
    step = np.linalg.norm(np.diff(path, axis=0), axis=1)  # (R - 1,)
    jump = step > 2.0 * np.maximum(sigmas_view[1:], 1e-12)
    out = []
    for k in range(len(path)):
        if k and jump[k - 1]:
            out.append(np.full(path.shape[1], np.nan))
        out.append(path[k])
    return np.asarray(out)


def plot_view2d(model, reference, data, *, ax=None, max_points: int = 4000, trajectories: bool = True,
                seed: int = 0, true_centres=None):
    """Data, reference, kernel centres and their trajectories in two dimensions.

    With two features they are the axes; with more, the first two principal components
    of the standardised reference (PCA fitted on at most 5,000 reference points).
    Active kernels are drawn as coloured stars with their width (one sigma) and their
    path during annealing (solid; dotted where re-seeding made them jump); inactive
    kernels as grey crosses.  Flagged data points (:meth:`sparker.SparKer.flag`) are highlighted;
    known anomaly positions, when given, are hollow black diamonds ("true clump").  The
    legend sits beside the axes, off the data.

    Parameters
    ----------
    model : SparKer
        Fitted model.
    reference, data : array-like of shape (n, n_features)
    ax : matplotlib Axes, optional
    max_points : int, default=4000
        At most this many points of each sample are drawn.
    trajectories : bool, default=True
    seed : int, default=0
        Seed of the subsamples and the PCA.
    true_centres : array-like of shape (n_true, n_features), optional
        Known centres of planted anomalies (a scenario's ``truth["centres"]``), in
        original units.

    Returns
    -------
    matplotlib.figure.Figure
    """
    model = _check_model(model)
    if model.n_features_in_ < 2:
        raise ValueError("model: the 2-D view needs at least 2 features; see plot_marginals")
    R, D = _samples(model, reference, data)
    truth = None if true_centres is None else checked_true_centres(model, true_centres)
    rng = np.random.default_rng(seed)
    project, labels, is_pca = _projection(model, R, seed)
    fig, ax = _axes(ax, (7.6, 5.2))
    _draw_samples(ax, model, R, D, project, max_points, rng)
    if trajectories:
        _draw_paths(ax, model, project, is_pca)
    _draw_kernels(ax, model, project, is_pca)
    if truth is not None:
        t = project(truth)  # (n_true, 2)
        ax.scatter(t[:, 0], t[:, 1], marker="D", s=260, facecolors="none", edgecolors="black", lw=1.2,
                   zorder=6, label="true clump")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("kernels and their paths during annealing")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              markerscale=0.8, frameon=False)  # beside the axes, off the data
    return fig


def checked_true_centres(model, true_centres) -> np.ndarray:
    """Known anomaly centres as a float64 array of shape (n_true, n_features), checked against the model."""
    C, _, _ = check_array(true_centres, name="true_centres", min_samples=1)
    if C.shape[1] != model.n_features_in_:
        raise ValueError(f"true_centres: has {C.shape[1]} features but the model has {model.n_features_in_}")
    return C


def _draw_samples(ax, model, R, D, project, max_points: int, rng) -> None:
    """Subsamples of the reference and the data (flagged points highlighted); frame them."""
    r_idx, d_idx = _sample(R, max_points, rng), _sample(D, max_points, rng)
    Rv, Dv = project(R[r_idx]), project(D[d_idx])
    flagged = model.flag(D[d_idx])
    ax.scatter(Rv[:, 0], Rv[:, 1], s=2, c="#bdbdbd", alpha=0.5, lw=0, rasterized=True)
    ax.scatter(Dv[~flagged, 0], Dv[~flagged, 1], s=4, c="#4a4a4a", alpha=0.7, lw=0, rasterized=True)
    for colour, label in (("#bdbdbd", "reference"), ("#4a4a4a", "data")):  # legend markers one can see
        ax.scatter([], [], s=16, c=colour, lw=0, label=label)
    if flagged.any():
        ax.scatter(Dv[flagged, 0], Dv[flagged, 1], s=14, c="#ff7f0e", edgecolors="#a63603", lw=0.4,
                   label="flagged data", zorder=3)
    # frame the samples and the final centres; the paths may leave the frame
    shown = np.concatenate([Rv, Dv, project(model.centres_)])
    lo, hi = shown.min(0), shown.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_autoscale_on(False)


def _draw_paths(ax, model, project, is_pca: bool) -> None:
    """The paths of the active kernels during annealing (dotted across re-seeding jumps)."""
    kernels = model.kernels_
    scale = model.standardizer_.scale
    offset = 0
    for h in model.history_.get("layers", [model.history_]):
        path_c = h.get("centres")
        n_layer = 0 if path_c is None or len(path_c) == 0 else path_c.shape[1]
        if n_layer:
            sig = np.asarray(h["sigma"], dtype=np.float64)
            sig_view = sig * (1.0 if is_pca else float(np.min(scale)))
            for i in range(n_layer):
                g = offset + i
                if g < len(kernels) and kernels[g].get("active"):
                    raw = project(path_c[:, i])  # (R, 2)
                    path = _trajectory_segments(raw, sig_view)
                    ax.plot(path[:, 0], path[:, 1], color=_colour(g), lw=1, alpha=0.8)
                    ax.plot(raw[:, 0], raw[:, 1], color=_colour(g), lw=0.6, ls=":", alpha=0.6)  # jumps
        offset += n_layer


def _draw_kernels(ax, model, project, is_pca: bool) -> None:
    """Active kernels as stars with a one-sigma ellipse, inactive ones as grey crosses."""
    from matplotlib.patches import Ellipse

    kernels = model.kernels_
    centres = project(model.centres_)  # (M, 2)
    scale = model.standardizer_.scale
    for g, row in enumerate(kernels):
        c = centres[g]
        if row.get("active"):
            z = row.get("local_z")
            ztext = "" if z is None else f", Z = {z:.1f}"
            ax.scatter([c[0]], [c[1]], marker="*", s=220, c=_colour(g), edgecolors="black", zorder=5,
                       label=f"kernel {g} (a = {row['amplitude']:+.2f}{ztext})")
            if is_pca:
                wx = wy = row["width"]
            else:
                wx, wy = row["width"] * scale[0], row["width"] * scale[1]
            ax.add_patch(Ellipse((c[0], c[1]), 2 * wx, 2 * wy, fill=False, ec=_colour(g), lw=1.5, zorder=4))
        else:
            ax.scatter([c[0]], [c[1]], marker="x", s=50, c="#636363", zorder=5)
    if any(not row.get("active") for row in kernels):
        ax.scatter([], [], marker="x", c="#636363", label="inactive kernels")


# ----------------------------------------------------------------------- marginals


def _chosen_kernels(model, kernels) -> list[int]:
    rows = model.kernels_
    if kernels is not None:
        out = [int(k) for k in np.atleast_1d(kernels)]
        bad = [k for k in out if not 0 <= k < len(rows)]
        if bad:
            raise ValueError(f"kernels: no kernel numbered {bad}; the model has {len(rows)}")
        return out
    active = [g for g, row in enumerate(rows) if row.get("active")]
    if active:
        return active
    z = [abs(row.get("local_z") or 0.0) for row in rows]
    return [int(np.argmax(z))]


#: Top of the ratio axis of :func:`plot_marginals`; data ratios beyond it are drawn as arrows.
RATIO_MAX = 3.0
#: Fewest bins of a marginal panel (a small region gets fewer than ``bins``, never fewer than this).
MIN_BINS = 5


@dataclass(frozen=True, repr=False)
class MarginalPanel:
    """The histograms of one panel of :func:`plot_marginals`: one feature in one kernel's region.

    The region of kernel ``g`` holds the points it owns (largest responsibility) or that
    a kernel duplicating it owns: ``region == g`` of :meth:`sparker.SparKer.explain`.
    Values outside ``edges`` are counted in the first or last bin, so the counts add up
    to the points of the region.

    Attributes
    ----------
    kernel, feature : int
        Row of ``kernels_`` and column of the samples.
    name : str
        The feature's name.
    edges : ndarray of shape (n_bins + 1,)
        About ``2 sqrt(n)`` bins for the sparser of the region's two samples (``n``
        points), within ``[MIN_BINS, bins]``.
    data : ndarray of shape (bins,)
        Counts of the data points in the region.
    reference : ndarray of shape (bins,)
        The reference points in the region, weighted by ``w`` (the count they predict).
    model : ndarray of shape (bins,)
        The same points weighted by ``w exp(f(x))``: the fitted model of the data.
    n_data, n_reference : int
        Data and (subsampled) reference points in the region.
    """

    kernel: int
    feature: int
    name: str
    edges: np.ndarray
    data: np.ndarray
    reference: np.ndarray
    model: np.ndarray
    n_data: int
    n_reference: int


def marginal_panels(model, reference, data, *, kernels=None, n_features: int = 2, bins: int = 40,
                    reference_weight=None, max_kernels: int = 4, max_reference: int = 50_000,
                    seed: int = 0) -> list[list[MarginalPanel]]:
    """The histograms :func:`plot_marginals` draws: per chosen kernel, one panel per feature.

    Parameters are those of :func:`plot_marginals`.  For each chosen kernel, the
    ``n_features`` features whose marginal it changes most
    (:func:`sparker.interpret.marginal_relevance`) are histogrammed over the kernel's
    region only (:class:`MarginalPanel`).

    Returns
    -------
    list of list of MarginalPanel
        One list per chosen kernel, in order, with one panel per feature.
    """
    model = _check_model(model)
    R, D = _samples(model, reference, data)
    if reference_weight is not None:
        reference_weight = np.asarray(reference_weight, dtype=np.float64)
        if reference_weight.shape != (len(R),):
            raise ValueError(f"reference_weight: expected shape ({len(R)},), got {reference_weight.shape}")
    w = reference_weights(len(R), len(D), reference_weight, model.n_expected, True)  # (N_R,)
    rng = np.random.default_rng(seed)
    idx = _sample(R, max_reference, rng)
    R, w = R[idx], w[idx] * (w.sum() / w[idx].sum())
    chosen = _chosen_kernels(model, kernels)[:max_kernels]
    ex_r, region_d = model.explain(R), model.explain(D).region
    w_model = w * np.exp(ex_r.log_ratio)  # (n_R,) w exp(f)
    added = w[:, None] * np.expm1(ex_r.contributions[:, chosen])  # (n_R, K)
    relevance = np.atleast_2d(marginal_relevance(R, w, added))  # (K, d)
    names = _feature_names(model)
    n_features = max(1, min(int(n_features), R.shape[1]))
    out = []
    for row_k, g in enumerate(chosen):
        in_r, in_d = ex_r.region == g, region_d == g  # (n_R,), (n_D,)
        features = np.argsort(-relevance[row_k], kind="stable")[:n_features]
        out.append([_panel(model, g, int(j), names[j], R[in_r, j], w[in_r], w_model[in_r], D[in_d, j], bins)
                    for j in features])
    return out


def _panel(model, g: int, j: int, name: str, r, w, w_model, d, bins: int) -> MarginalPanel:
    """Histograms of feature ``j`` over kernel ``g``'s region (``r``, ``d``: its points' values)."""
    c = model.centres_[g, j]
    both = np.concatenate([r, d])
    lo, hi = np.quantile(both, [0.005, 0.995]) if len(both) else (c, c)
    lo, hi = min(lo, c), max(hi, c)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    # a few points per bin: about 2 sqrt(n) bins for the sparser sample, within [MIN_BINS, bins]
    n_bins = int(np.clip(2.0 * np.sqrt(min(len(r), len(d))), min(MIN_BINS, bins), bins))
    edges = np.linspace(lo, hi, n_bins + 1)
    r, d = np.clip(r, lo, hi), np.clip(d, lo, hi)  # the tails go into the end bins
    return MarginalPanel(
        kernel=g, feature=j, name=name, edges=edges,
        data=np.histogram(d, bins=edges)[0].astype(np.float64),
        reference=np.histogram(r, bins=edges, weights=w)[0],
        model=np.histogram(r, bins=edges, weights=w_model)[0],
        n_data=len(d), n_reference=len(r),
    )


def plot_marginals(model, reference, data, *, kernels=None, n_features: int = 2, bins: int = 40,
                   reference_weight=None, max_kernels: int = 4, max_reference: int = 50_000, seed: int = 0):
    r"""Each kernel's region: marginals of its data against its reweighted reference, with ratios.

    For each chosen kernel, the ``n_features`` features whose marginal it changes most
    (:func:`sparker.interpret.marginal_relevance`) get a column, drawn over the kernel's
    region only (the points it owns, :func:`marginal_panels`): on top the data histogram
    (points, Poisson errors), the region's reference weighted by ``w`` (grey) and by
    ``w exp(f(x))`` (the model's fit of the data, coloured); below, data / reference and
    model / reference on a ratio axis clipped to ``[0, RATIO_MAX]``, with arrows at the
    top for data ratios beyond it.

    Parameters
    ----------
    model : SparKer
    reference, data : array-like of shape (n, n_features)
    kernels : int or sequence of int, optional
        Kernel numbers (rows of ``kernels_``); default: the active kernels, or the one
        with the largest ``|local_z|`` when none is active.
    n_features : int, default=2
    bins : int, default=40
        At most this many bins; a region with few points gets fewer (:class:`MarginalPanel`).
    reference_weight : array-like of shape (n_reference,), optional
        The weights the model was fitted with (default: ``N_0 / N_R`` each).
    max_kernels : int, default=4
    max_reference : int, default=50000
        The reference is subsampled to this size (weights rescaled).
    seed : int, default=0

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels = marginal_panels(model, reference, data, kernels=kernels, n_features=n_features, bins=bins,
                             reference_weight=reference_weight, max_kernels=max_kernels,
                             max_reference=max_reference, seed=seed)
    n_cols = len(panels[0])
    fig = _new_figure((3.6 * n_cols, 3.2 * len(panels)))
    grid = fig.add_gridspec(2 * len(panels), n_cols, height_ratios=(3, 1) * len(panels))
    for row_k, row in enumerate(panels):
        for col, panel in enumerate(row):
            top = fig.add_subplot(grid[2 * row_k, col])
            bottom = fig.add_subplot(grid[2 * row_k + 1, col], sharex=top)
            _marginal_panel(top, bottom, model, panel, first_column=col == 0, legend=col == 0 and row_k == 0)
    return fig


def _marginal_panel(top, bottom, model, panel: MarginalPanel, *, first_column: bool, legend: bool) -> None:
    """One feature of one kernel's region: histograms on ``top``, ratios to the reference on ``bottom``."""
    g, edges = panel.kernel, panel.edges
    mids = 0.5 * (edges[1:] + edges[:-1])
    n_d, n_r, n_m = panel.data, panel.reference, panel.model
    top.stairs(n_r, edges, color="#969696", ls="--", label="reference (w)")
    top.stairs(n_m, edges, color=_colour(g), lw=1.5, label="reference (w exp f)")
    top.errorbar(mids, n_d, yerr=np.sqrt(n_d), fmt="o", ms=2.5, color="black", lw=0.8, label="data")
    top.axvline(model.centres_[g, panel.feature], color=_colour(g), lw=0.8, alpha=0.6)
    z = model.kernels_[g].get("local_z")
    top.set_title(f"kernel {g}" + ("" if z is None else f" (Z = {z:.1f})") + f": {panel.name}\n"
                  f"its region: {panel.n_data} data, {panel.n_reference} reference points", fontsize="small")
    top.tick_params(labelbottom=False)
    if first_column:
        top.set_ylabel("counts in the region")
    if legend:  # in headroom above the histograms, off the data
        highest = max(float(np.max(n_d + np.sqrt(n_d), initial=0.0)), float(np.max(n_m, initial=0.0)),
                      float(np.max(n_r, initial=0.0)))
        top.set_ylim(0.0, 1.45 * highest if highest > 0 else 1.0)
        top.legend(fontsize="x-small", loc="upper center", ncol=3, frameon=False, handlelength=1.5,
                   columnspacing=0.8)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(n_r > 0, n_d / n_r, np.nan)
        err = np.where(n_r > 0, np.sqrt(n_d) / n_r, np.nan)
        model_ratio = np.where(n_r > 0, n_m / n_r, np.nan)
    inside = ~(ratio > RATIO_MAX)
    bottom.errorbar(mids[inside], ratio[inside], yerr=err[inside], fmt="o", ms=2.5, color="black", lw=0.8)
    if not inside.all():  # beyond the axis: an arrow at its top
        bottom.plot(mids[~inside], np.full((~inside).sum(), 0.93 * RATIO_MAX), "^", ms=4, color="black")
    bottom.stairs(model_ratio, edges, color=_colour(g), lw=1.5)
    bottom.axhline(1.0, color="#969696", lw=0.8)
    bottom.set_ylim(0.0, RATIO_MAX)
    bottom.set_xlabel(panel.name)
    if first_column:
        bottom.set_ylabel("ratio to ref.")


# ------------------------------------------------------------------------ training


def plot_training(model):
    """Width schedule and loss against epoch (layers of a stack one after another).

    Parameters
    ----------
    model : SparKer
        Fitted model (its ``history_``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    model = _check_model(model)
    fig = _new_figure((8.0, 3.2))
    ax_sigma, ax_loss = fig.subplots(1, 2)
    histories = model.history_.get("layers", [model.history_])
    start = 0
    for k, h in enumerate(histories):
        loss = np.asarray(h.get("loss_per_epoch", []), dtype=np.float64)
        epoch = np.asarray(h.get("epoch", []), dtype=np.float64)
        sigma = np.asarray(h.get("sigma", []), dtype=np.float64)
        label = f"layer {k}" if len(histories) > 1 else None
        if len(epoch):
            ax_sigma.plot(start + epoch, sigma, color=_colour(k), label=label)
        if len(loss):
            ax_loss.plot(start + np.arange(len(loss)), loss, color=_colour(k), label=label)
        if k:
            for ax in (ax_sigma, ax_loss):
                ax.axvline(start, color="#969696", lw=0.8, ls=":")
        start += max(len(loss), int(epoch[-1]) if len(epoch) else 0)
    ax_sigma.set_xlabel("epoch")
    ax_sigma.set_ylabel("kernel width sigma (standardised)")
    ax_sigma.set_yscale("log")
    ax_sigma.set_title("width schedule")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss L (t = -2 L at the end)")
    ax_loss.set_title(f"loss (final t = {model.statistic_:.3g})")
    if len(histories) > 1:
        ax_sigma.legend(fontsize="small")
    return fig
