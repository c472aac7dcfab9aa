"""A self-contained HTML report and a JSON result of a test or a fitted model.

:func:`write_report` writes two files into a folder:

- ``report.html``: the verdict, p-value and Z, the per-kernel table (with local
  significance and the active flag, see :mod:`sparker.interpret`), the most anomalous
  data points, the figures of :mod:`sparker.app.plots` embedded as base64 PNG images, the
  settings and the provenance.  It loads nothing from the network (no external
  scripts, styles, fonts or images), so it opens offline and can be mailed as one file.
- ``result.json``: the same content as data (figures listed by name, not embedded).

matplotlib is optional: without it the report is written without figures and says so.
:func:`build_report` returns the same content without writing anything.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..io import to_jsonable, atomic_write_text, write_json
from ..results import CHI2_MIN_KS_PVALUE, CHI2_MIN_TOYS, top_point_records

__all__ = ["REPORT_FILE", "RESULT_FILE", "Report", "build_report", "fit_verdict", "write_report"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULT_FILE = "result.json"

#: Above this many features the tables show the most displaced features instead of all.
_MAX_COLUMNS = 8
#: Resolution of the embedded figures.
_DPI = 90
#: The figure shown beside the summary, on the first screen.
_FIRST_FIGURE = "view2d"

_NO_MATPLOTLIB = "Figures were not drawn: matplotlib is not installed (pip install 'sparker[plot]')."


@dataclass(frozen=True)
class Report:
    """Content of a report (see :func:`build_report`).

    Attributes
    ----------
    html : str
        The self-contained HTML page.
    result : dict
        JSON-ready result: ``verdict``, ``statistic``, ``pvalue``, ``zscore``, ``kernels``,
        ``top_points``, ``plots``, ``settings``, ``provenance`` and the rest of the
        test's ``to_dict()``.
    figures : tuple of str
        Names of the figures embedded in ``html``.
    notes : tuple of str
        Why figures are missing, if any are.
    """

    html: str
    result: dict
    figures: tuple
    notes: tuple


# ------------------------------------------------------------------------- content


def fit_verdict(model, alpha: float = 0.05) -> dict:
    """Verdict of a single fit, not calibrated: the keys of :meth:`sparker.TestResult.verdict`.

    ``significant`` and ``asymptotic_zscore`` are None; ``summary`` gives ``t`` and whether
    the loss settled, ``text`` says that a p-value needs null toys.
    """
    t = float(model.statistic_)
    settled = bool(getattr(model, "converged_", True))
    text = (f"Not calibrated: t = {t:.4g} from a single fit. A p-value needs null toys "
            "(sparker test, or sparker.test in Python).")
    if not settled:
        text += (" Loss not settled: the loss was still falling at the end of training, so t depends on "
                 "the number of epochs; compare it only with null toys trained the same way.")
    return {
        "calibrated": False,
        "significant": None,
        "alpha": alpha,
        "summary": f"t = {t:.4g} from a single fit (not calibrated); loss {'' if settled else 'not '}settled",
        "asymptotic_zscore": None,
        "text": text,
    }


def _verdict(result, model, alpha: float) -> dict:
    """Plain-language verdict of a calibrated result (or of an uncalibrated fit)."""
    return fit_verdict(model, alpha) if result is None else result.verdict(alpha)


def _provenance(seed) -> dict:
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    try:
        import matplotlib

        versions["matplotlib"] = matplotlib.__version__
    except ImportError:
        versions["matplotlib"] = None
    return {
        "sparker_version": __version__,
        "seed": seed,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **versions,
    }


def _top_points(model, data, top_k: int) -> list[dict]:
    if model is None or top_k == 0:
        return []
    if data is None and getattr(model, "_fit_top_", None) is None:
        return []
    frame = model.top_points(top_k, X=data) if data is not None else model.top_points(
        min(top_k, len(model._fit_top_["index"])))
    return top_point_records(frame)


def _figures(result, model, reference, data, reference_weight, true_centres) -> tuple[list, list]:
    """(name, caption, PNG bytes) of each figure that applies, and notes on missing ones."""
    from . import plots

    jobs = []
    if result is not None and len(np.atleast_1d(getattr(result, "null_distribution", []))):
        jobs.append(("null_distribution",
                     ("Null distribution of the test statistic with the observed value and the "
                     "chi-square fit."), lambda: plots.plot_null_distribution(result)))
    if model is not None and reference is not None and data is not None:
        if model.n_features_in_ >= 2:
            view = "the two features" if model.n_features_in_ == 2 else \
                "the first two principal components of the reference"
            truth = "" if true_centres is None else "; diamonds mark the true clump positions"
            jobs.append(("view2d", (f"Data, reference and kernels in {view}; active kernels with "
                         f"their width and their path during annealing; flagged points highlighted{truth}."),
                         lambda: plots.plot_view2d(model, reference, data, true_centres=true_centres)))
        jobs.append(("marginals", ("Each active kernel's region (the points it owns): marginals of its "
                     "data against its reference points weighted by w and by w exp(f), for the features "
                     f"that matter most to the kernel; ratio axis clipped to [0, {plots.RATIO_MAX:g}], "
                     "arrows mark data ratios beyond."),
                     lambda: plots.plot_marginals(model, reference, data,
                                                  reference_weight=reference_weight)))
    if model is not None and getattr(model, "history_", None):
        jobs.append(("training", "Width schedule and loss against epoch.",
                     lambda: plots.plot_training(model)))
    out, notes = [], []
    for name, caption, draw in jobs:
        try:
            fig = draw()
        except ImportError:
            return [], [_NO_MATPLOTLIB]
        except (ValueError, TypeError, RuntimeError, np.linalg.LinAlgError) as error:
            log.warning("report: figure %s not drawn (%s)", name, error)
            notes.append(f"Figure {name} was not drawn: {error}")
            continue
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI)
        out.append((name, caption, buffer.getvalue()))
    return out, notes


# ---------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 70em; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.verdict { padding: .8em 1em; border-radius: 6px; font-size: 1.1em; }
.yes { background: #fde0dd; border-left: 6px solid #c51b8a; }
.no { background: #e5f5e0; border-left: 6px solid #31a354; }
.na { background: #eee; border-left: 6px solid #888; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.inactive td { color: #999; }
figure { margin: 1em 0; } figcaption { font-size: .9em; color: #555; }
img { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.top { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
.top > div { flex: 1 1 20em; } .top > figure { flex: 1 1 36em; margin-top: 1em; }
.note { color: #8a6d3b; background: #fcf8e3; padding: .5em .8em; border-radius: 4px; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, fmt: str = ".3g") -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float) and not np.isfinite(value):
        return _e(value)
    return _e(format(value, fmt))


def _centre_text(model, row: dict) -> str:
    """Centre coordinates, or the most displaced features when there are many."""
    items = list(row["centre"].items())
    if len(items) <= _MAX_COLUMNS:
        return ", ".join(f"{_e(n)} = {v:.4g}" for n, v in items)
    values = np.array([v for _, v in items])
    z = (values - model.standardizer_.mean) / model.standardizer_.scale
    order = np.argsort(-np.abs(z))[:5]
    parts = [f"{_e(items[j][0])} = {values[j]:.4g} ({z[j]:+.1f} sd)" for j in order]
    return "most displaced: " + ", ".join(parts)


def _kernel_table_html(model) -> str:
    head = ("<tr><th>kernel</th><th>layer</th><th class='l'>centre (original units)</th><th>amplitude</th>"
            "<th>width (sd)</th><th>n<sub>D</sub></th><th>n<sub>R</sub></th><th>log ratio</th>"
            "<th>local Z</th><th>active</th><th>duplicate of</th></tr>")
    body = []
    for g, row in enumerate(model.kernels_):
        active = bool(row.get("active"))
        dup = row.get("duplicate_of")
        body.append(
            f"<tr class='{'active' if active else 'inactive'}'><td>{g}</td><td>{row['layer']}</td>"
            f"<td class='l'>{_centre_text(model, row)}</td><td>{row['amplitude']:+.3f}</td>"
            f"<td>{row['width']:.3g}</td><td>{row['n_data']:.1f}</td><td>{row['n_reference']:.1f}</td>"
            f"<td>{_num(row.get('log_ratio'), '+.2f')}</td><td>{_num(row.get('local_z'), '+.2f')}</td>"
            f"<td>{'yes' if active else 'no'}</td><td>{'' if dup is None else dup}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _points_table_html(points: list[dict]) -> str:
    if not points:
        return "<p>No points to show.</p>"
    names = list(points[0]["point"])
    show = names if len(names) <= _MAX_COLUMNS else []
    head = ("<tr><th>data row</th><th>f(x)</th><th>excess fraction</th><th>owner</th><th>flagged</th>"
            + "".join(f"<th>{_e(n)}</th>" for n in show) + "</tr>")
    body = []
    for p in points:
        body.append(
            f"<tr><td>{p['row']}</td><td>{p['log_ratio']:+.3f}</td>"
            f"<td>{-np.expm1(-p['log_ratio']):.2f}</td><td>{p['owner']}</td>"
            f"<td>{'yes' if p['flagged'] else 'no'}</td>"
            + "".join(f"<td>{p['point'][n]:.4g}</td>" for n in show) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _summary_html(result, model) -> str:
    rows = []
    if result is not None:
        rows += [("method", result.method), ("statistic t", f"{result.statistic:.4g}"),
                 ("p-value", f"{result.pvalue:.4g} (resolution {1.0 / (result.n_null + 1):.3g})"),
                 ("Z", f"{result.zscore:.3f}"), ("null toys", _toys_text(result))]
        chi2 = getattr(result, "chi2", None)
        if chi2:
            rows.append(("chi-square fit of the null", _chi2_text(result, chi2)))
    elif model is not None:
        rows.append(("statistic t", f"{model.statistic_:.4g} (not calibrated)"))
    if model is not None:
        n_active = sum(bool(k.get("active")) for k in model.kernels_)
        rows.append(("kernels", f"{len(model.kernels_)}, of which {n_active} active"))
        if not model.converged_:
            rows.append(("convergence", "the loss had not settled at the end of training"))
    body = "".join(f"<tr><th class='l'>{_e(k)}</th><td class='l'>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _toys_text(result) -> str:
    """The toys' count and mode, and how the observed statistic compares with the largest toy."""
    text = f"{result.n_null} ({result.null_mode})"
    null = np.asarray(result.null_distribution, dtype=np.float64)
    if null.size and np.isfinite(null).all():
        beyond = "; t exceeds every toy" if result.statistic > null.max() else ""
        text += f"; largest null statistic {null.max():.4g}{beyond}"
    return text


def _chi2_text(result, chi2: dict) -> str:
    """The chi-square fit's row: the asymptotic p and Z only when the fit can be trusted."""
    text = f"dof = {chi2['dof']:.3g}, KS p = {_num(chi2.get('ks_pvalue'))}"
    if result.asymptotic_zscore is not None:
        return (f"{text}; asymptotic p = {_num(chi2.get('pvalue'))}, "
                f"Z = {_num(result.asymptotic_zscore, '.2f')}")
    return (f"{text}; asymptotic p and Z not quoted: they need at least {CHI2_MIN_TOYS} toys and a fit "
            f"with KS p >= {CHI2_MIN_KS_PVALUE:g}")


def _figure_html(name: str, caption: str, png: bytes) -> str:
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f"<figure id='{_e(name)}'><img alt='{_e(name)}' src='{data_uri}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _html(title, verdict, result, model, points, n_flagged, figures, notes, content) -> str:
    cls = {True: "yes", False: "no", None: "na"}[verdict["significant"]]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='verdict {cls}'>{_e(verdict['text'])}</p>",
    ]
    # the answer on the first screen: the summary beside the picture of where (the 2-D view)
    top = [f for f in figures if f[0] == _FIRST_FIGURE]
    figures = [f for f in figures if f[0] != _FIRST_FIGURE]
    parts += ["<div class='top'><div><h2>Summary</h2>", _summary_html(result, model), "</div>",
              *(_figure_html(*f) for f in top), "</div>"]
    if model is not None:
        parts += [
            "<h2>Where: the kernels</h2>",
            ("<p>One row per kernel, inactive ones included. n<sub>D</sub> and n<sub>R</sub> are the soft "
            "data count and the count the weighted reference predicts under the kernel; local Z is the "
            "signed Poisson significance of n<sub>D</sub> against n<sub>R</sub> (positive: excess). "
            "A kernel is active when |amplitude| &ge; 5% of a<sub>max</sub> and |local Z| &ge; 3, and it "
            "is not a duplicate (same sign, centre within one width of a more significant kernel).</p>"),
            _kernel_table_html(model),
            ("<p class='note'>Local Z is not corrected for the look-elsewhere effect: the kernels were "
            "moved onto the largest fluctuations of these data, so local Z overstates how unusual each "
            "region is. Only the global p-value from null toys is calibrated.</p>"),
            "<h2>Which points: the most anomalous data points</h2>",
            ("<p>Score f(x) = log(n<sub>D</sub>(x) / (w n<sub>R</sub>(x))), higher = more anomalous; "
             "excess fraction 1 &minus; exp(&minus;f) estimates the probability that a data point there "
             "is anomalous. A point is flagged when its excess fraction exceeds 0.5 (f &gt; log 2) and "
             "its owning kernel is active"
             + (f"; {n_flagged} data points are flagged." if n_flagged is not None else ".") + "</p>"),
            _points_table_html(points),
        ]
    parts.append("<h2>Figures</h2>" if not top else "<h2>More figures</h2>")
    parts += [f"<p class='note'>{_e(n)}</p>" for n in notes]
    parts += [_figure_html(*f) for f in figures]
    if not figures and not notes:
        parts.append("<p>The 2-D view is at the top of the page.</p>" if top else
                     "<p>No figures apply to this result.</p>")
    parts += [
        "<h2>Settings</h2>", f"<pre>{_e(json.dumps(content['settings'], indent=2))}</pre>",
        "<h2>Provenance</h2>", f"<pre>{_e(json.dumps(content['provenance'], indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------------- public


def build_report(result=None, *, model=None, reference=None, data=None, reference_weight=None,
                 title: str = "SparKer report", alpha: float = 0.05, top_k: int = 10,
                 figures: bool = True, extra: dict | None = None, true_centres=None) -> Report:
    """Assemble the report of a calibrated test and/or a fitted model.

    Parameters
    ----------
    result : TestResult, optional
        A calibrated test (:func:`sparker.test` or a baseline); its ``model`` is used
        when ``model`` is not given.
    model : SparKer, optional
        A fitted model; without a ``result`` the verdict says it is not calibrated.
    reference, data : array-like of shape (n, n_features), optional
        The samples, for the top points and the 2-D and marginal figures.
    reference_weight : array-like of shape (n_reference,), optional
        Reference weights used in the fit (for the marginal figure).
    title : str, default="SparKer report"
    alpha : float, default=0.05
        Level of the verdict: significant when ``p <= alpha``.
    top_k : int, default=10
        Number of most anomalous data points listed.
    figures : bool, default=True
        Draw the figures (needs matplotlib; without it the report says so).
    extra : dict, optional
        More JSON-ready entries for ``result.json`` (inputs, timings, ...).
    true_centres : array-like of shape (n_true, n_features), optional
        Known positions of planted anomalies (a scenario's ``truth["centres"]``, original
        units), drawn as "true clump" markers on the 2-D view; needs a model, the reference
        and the data.

    Returns
    -------
    Report
    """
    if result is None and model is None:
        raise ValueError("result, model: give a test result, a fitted model or both")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"top_k: expected a non-negative integer, got {top_k!r}")
    if model is None:
        model = getattr(result, "model", None)
    if model is not None and not hasattr(model, "kernels_"):
        raise TypeError(f"model: expected a fitted SparKer model, got {type(model).__name__}")

    content = dict(result.to_dict()) if result is not None else dict(model.to_dict())
    verdict = _verdict(result, model, float(alpha))
    points = _top_points(model, data, int(top_k))
    n_flagged = content.get("n_flagged") if model is getattr(result, "model", None) else None
    if model is not None and data is not None:
        n_flagged = int(model.flag(data).sum())
    if true_centres is not None:
        true_centres = _checked_truth(model, true_centres, reference, data)
    drawn, notes = _figures(result, model, reference, data, reference_weight, true_centres) \
        if figures else ([], [])
    seed = content.get("seed", getattr(model, "seed", None))
    content.update({
        "verdict": verdict,
        "top_points": points,
        "n_flagged": n_flagged,
        "plots": [{"name": name, "caption": caption} for name, caption, _ in drawn],
        "plots_notes": notes,
        "settings": content.get("settings", model.config_.to_dict() if model is not None else None),
        "provenance": _provenance(seed),
    })
    if model is not None:
        content["kernels"] = model.kernels_
    if extra:
        content.update(extra)
    content = to_jsonable(content, "result")
    page = _html(title, verdict, result, model, points, n_flagged, drawn, notes, content)
    return Report(html=page, result=content, figures=tuple(n for n, _, _ in drawn), notes=tuple(notes))


def _checked_truth(model, true_centres, reference, data):
    """``true_centres`` checked against the model; refused where no 2-D view can show them."""
    if model is None or reference is None or data is None:
        raise ValueError("true_centres: drawn on the 2-D view, which needs a model, the reference and "
                         "the data")
    from .plots import checked_true_centres

    return checked_true_centres(model, true_centres)


def write_report(out_dir, result=None, *, overwrite: bool = False, **options) -> tuple[Path, Path]:
    """Write ``report.html`` and ``result.json`` into a folder (created if needed).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Destination folder.
    result : TestResult, optional
    overwrite : bool, default=False
        Replace existing files; otherwise an existing file is refused before anything
        is written.
    **options
        Passed to :func:`build_report` (``model``, ``reference``, ``data``, ``title``,
        ``alpha``, ``top_k``, ``figures``, ``extra``, ``reference_weight``, ``true_centres``).

    Returns
    -------
    (Path, Path)
        The report and the result files.
    """
    folder = Path(os.fspath(out_dir))
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"out_dir: {folder} exists and is not a folder")
    paths = folder / REPORT_FILE, folder / RESULT_FILE
    if not overwrite:
        for path in paths:
            if path.exists():
                raise FileExistsError(f"out_dir: {path} already exists; pass overwrite=True to replace it")
    report = build_report(result, **options)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(paths[1], report.result, overwrite=overwrite)
    atomic_write_text(paths[0], report.html, overwrite=overwrite)
    return paths
