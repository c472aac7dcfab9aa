r"""Power study: detection power of SparKer and the baselines on the scenarios.

For one scenario, every method and every signal fraction ``f`` (the share of
anomalous points in the data; ``f = 0`` is the null version), the study makes
``n_toys`` independent scenario draws (reference *and* data redrawn, seeds from
``SeedSequence(seed, spawn_key=(fraction index, draw))``) and computes the
method's statistic on each.  Two ways to turn statistics into power:

``mode="statistic"`` (default, one fit per draw)
    The null distribution of each method's statistic is its values on the
    ``f = 0`` draws; the power at level ``alpha`` is the share of signal draws
    whose statistic lies above the empirical ``1 - alpha`` threshold of the
    null draws (:func:`sparker.stats.power`), and the significance of a draw
    is ``Z = Phi^-1(1 - p)`` with ``p`` its empirical p-value against the null
    draws (median and 16/84 % quantiles reported).  This is the convention of
    the NPLM literature; it measures what the statistic can see, with a null
    that is exact by construction (fresh draws of the null scenario).
``mode="calibrated"`` (``n_null + 1`` fits per draw)
    Every draw runs the method's full calibrated test (``n_null`` resample or
    permutation toys from the draw's own reference, as a user would) and the
    power is the share of draws with ``p <= alpha``.  At ``f = 0`` this is the
    type-I error of the procedure: its rejection count is checked against the
    central 99 % of Binomial(n, alpha) (:func:`type1_acceptance`).

Every method runs with its one default configuration on every scenario (no
per-scenario tuning).  Draws are independent tasks, run through the
calibration back ends (:mod:`sparker.core.backends`), so ``backend="processes"`` or a
Dask cluster spreads them over cores or machines; the numbers do not depend
on the back end.

Scenario sizes: ``sizes="ci"`` uses the small presets of :data:`CI_SIZES`
(minutes on two cores), ``sizes="default"`` the generators' own defaults;
``params`` overrides either.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.stats as st

from .._progress import progress_bar
from .._validation import check_choice, check_fraction, check_int
from ..core import backends
from ..io import atomic_write_text, write_json
from ..methods import METHODS
from ..stats import DEFAULT_AGGREGATION, aggregate, binomial_interval, empirical_pvalue

log = logging.getLogger(__name__)

__all__ = [
    "CI_SIZES",
    "SIGNAL_PARAMETERS",
    "STATISTICS",
    "TESTS",
    "PowerStudy",
    "draw_pvalues",
    "draw_seeds",
    "power_from_draws",
    "plot_power",
    "power_study",
]


# ------------------------------------------------------------------ scenarios
def _per_clump(f: float, p: dict) -> dict:
    n_clumps = len(p.get("centres", ((0, 0),) * 3))
    return {"n_per_clump": int(round(f * p.get("n_background", 2_000) / n_clumps))}


#: scenario -> (signal fraction, scenario parameters) -> the parameters that set it
SIGNAL_PARAMETERS: dict[str, Callable[[float, dict], dict]] = {
    "square2d": _per_clump,
    "expo1d": lambda f, p: {"n_signal": int(round(f * p.get("n_background", 2_000)))},
    "gauss_highd": lambda f, p: {"eps": f},
    "digits_novelty": lambda f, p: {"eps": f},
    "shuttle_intrusion": lambda f, p: {"eps": f},
    "genval": lambda f, p: {"fraction": f},
    "text_novelty": lambda f, p: {"eps": f},
    "perturbed_uniform": lambda f, p: {"scale": f},
    "expo1d_h1": lambda f, p: {"n_signal": int(round(f * p.get("n_background", 2_000)))},
    "expo1d_h2": lambda f, p: {"n_signal": int(round(f * p.get("n_background", 2_000)))},
    "expo1d_h3": lambda f, p: {"n_signal": int(round(f * p.get("n_background", 2_000)))},
    "expo1d_h4": lambda f, p: {"deficit": f},
    "fashion_mnist": lambda f, p: {"fraction": f},
}

#: small sizes for the power study on a 2-core machine (the generators' defaults are larger)
CI_SIZES: dict[str, dict] = {
    "square2d": {"n_reference": 10_000, "n_background": 1_000},
    "expo1d": {"n_reference": 20_000, "n_background": 2_000},
    "gauss_highd": {"n_reference": 10_000, "n_data": 1_000, "d": 64},
    "digits_novelty": {"n_data": 300},
    "shuttle_intrusion": {"n_reference": 10_000, "n_data": 1_000},
    "genval": {"n_data": 1_000},
    "text_novelty": {"n_reference": 1_000, "n_data": 300},
    "perturbed_uniform": {"n_reference": 500, "n_data": 500},  # the published sizes
    "expo1d_h1": {"n_reference": 20_000, "n_background": 2_000},
    "expo1d_h2": {"n_reference": 20_000, "n_background": 2_000},
    "expo1d_h3": {"n_reference": 20_000, "n_background": 2_000},
    "expo1d_h4": {"n_reference": 20_000, "n_background": 2_000},
    "fashion_mnist": {"n_reference": 2_000, "n_data": 500, "pca": 32},
}


# ------------------------------------------------------------------ methods
#: method -> ``(reference, data, *, seed, **options) -> t``, the observed statistic only
#: (:attr:`sparker.methods.Method.statistic`)
STATISTICS: dict[str, Callable] = {name: method.statistic for name, method in METHODS.items()}

#: method -> ``(reference, data, *, n_null, seed, **options) -> TestResult``, the calibrated test
TESTS: dict[str, Callable] = {name: method.test for name, method in METHODS.items()}

MODES = ("statistic", "calibrated")


def type1_acceptance(n: int, alpha: float, level: float = 0.99) -> tuple[int, int]:
    """Central ``level`` range of rejection counts among ``n`` null tests at level ``alpha``.

    A calibrated test's count is Binomial(n, alpha); a count outside
    ``[ppf((1 - level) / 2), ppf((1 + level) / 2)]`` flags a miscalibrated test.
    """
    from scipy.stats import binom

    return int(binom.ppf((1 - level) / 2, n, alpha)), int(binom.ppf((1 + level) / 2, n, alpha))


# ------------------------------------------------------------------ one draw
#: this process's last draw: generators such as genval's mixture fit take seconds, and the
#: tasks of one draw (one per method) run one after another (methods must not modify inputs)
_LAST_DRAW: dict = {}


def _draw(shared: dict, method: str, fraction: float, scenario_seed: int, method_seed: int):
    """One task: make the draw, run the method; (t, p, wall and CPU seconds of the method alone).

    The CPU seconds are this process's (every thread's); they are the method's own when
    one draw runs per process at a time (in-process or ``processes`` back ends).
    """
    import torch

    from ..scenarios import make

    if shared["threads"]:
        torch.set_num_threads(shared["threads"])
    params = {**shared["params"], **SIGNAL_PARAMETERS[shared["scenario"]](fraction, shared["params"])}
    key = (shared["scenario"], scenario_seed, json.dumps(params, sort_keys=True, default=str))
    if key not in _LAST_DRAW:  # the methods of one draw are consecutive tasks: make it once
        _LAST_DRAW.clear()
        _LAST_DRAW[key] = make(shared["scenario"], seed=scenario_seed, **params)
    reference, data, _ = _LAST_DRAW[key]
    start, cpu = time.perf_counter(), time.process_time()
    options = shared.get("options", {}).get(method, {})
    if shared["mode"] == "statistic":  # SparKer's scales: one statistic each
        t, p = STATISTICS[method](reference, data, seed=method_seed, **options), math.nan
    else:
        result = TESTS[method](reference, data, n_null=shared["n_null"], seed=method_seed, **options)
        t, p = result.statistic, result.pvalue
    t = np.asarray(t, dtype=np.float64) if np.ndim(t) else float(t)
    return t, float(p), time.perf_counter() - start, time.process_time() - cpu


def draw_seeds(seed: int, i_fraction: int, n: int) -> list[tuple[int, int]]:
    """Scenario and method seeds of the first ``n`` draws at the fraction in position
    ``i_fraction`` of a study seeded ``seed``: the draws of a stored study can be made again."""
    out = []
    for j in range(n):
        ss = np.random.SeedSequence(seed, spawn_key=(i_fraction, j))
        a, b = ss.generate_state(2)
        out.append((int(a), int(b) & 0x7FFFFFFF))
    return out


# ------------------------------------------------------------------ result
@dataclasses.dataclass(frozen=True)
class PowerStudy:
    """What :func:`power_study` returns.

    Attributes
    ----------
    scenario, mode : str
    params : dict
        Scenario parameters (without the signal parameter).
    alpha : float
    fractions : list of float
    methods : list of str
    statistics : dict
        ``statistics[method][i]`` is the (n_toys,) array of statistics at ``fractions[i]``
        ((n_toys, K) for SparKer running K scales in ``statistic`` mode).
    pvalues : dict
        Same shape; calibrated p-values (NaN in ``statistic`` mode).
    seconds : dict
        Same shape; wall time of the method on each draw (scenario generation excluded).
    cpu_seconds : dict
        Same shape; CPU time of the draw's process over the method (all its threads).
    rows : list of dict
        One row per (method, fraction): ``power``, ``ci_low``, ``ci_high``
        (Clopper-Pearson, 68 %), ``median_z``, ``z16``, ``z84`` and
        ``seconds_per_draw`` and ``cpu_seconds_per_draw``; in ``calibrated`` mode
        at ``fraction == 0`` also ``type1_ok`` (the rejection count lies in ``type1_range``, the central
        99 % of Binomial(n_toys, alpha)).
    settings : dict
        Seed, number of toys, ``n_null``, back end.
    """

    scenario: str
    mode: str
    params: dict
    alpha: float
    fractions: list
    methods: list
    statistics: dict
    pvalues: dict
    seconds: dict
    rows: list
    settings: dict
    cpu_seconds: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario, "mode": self.mode, "params": self.params, "alpha": self.alpha,
            "fractions": list(self.fractions), "methods": list(self.methods), "rows": self.rows,
            "settings": self.settings,
            "statistics": {m: [v.tolist() for v in s] for m, s in self.statistics.items()},
            "pvalues": {m: [[None if math.isnan(x) else x for x in v.tolist()] for v in s]
                        for m, s in self.pvalues.items()},
            "seconds": {m: [v.tolist() for v in s] for m, s in self.seconds.items()},
            "cpu_seconds": {m: [v.tolist() for v in s] for m, s in self.cpu_seconds.items()},
        }

    def to_csv(self) -> str:
        fields = ["scenario", "method", "fraction", "n_toys", "power", "ci_low", "ci_high",
                  "median_z", "z16", "z84", "seconds_per_draw", "cpu_seconds_per_draw", "type1_ok"]
        buf = _io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({"scenario": self.scenario, **row})
        return buf.getvalue()

    def table(self) -> str:
        """A Markdown table of the rows."""
        lines = ["| method | fraction | power (68% CI) | median Z [16%, 84%] | s/draw |",
                 "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            if r["power"] is None:
                pw = "(null draws: thresholds)"
            else:
                mark = "" if r.get("type1_ok", True) else " (outside the central 99% of Binomial(n, alpha))"
                pw = f"{r['power']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]{mark}"
            z = "-" if r["median_z"] is None else \
                f"{_fmt_z(r['median_z'])} [{_fmt_z(r['z16'])}, {_fmt_z(r['z84'])}]"
            lines.append(f"| {r['method']} | {r['fraction']:g} | {pw} | {z} | {r['seconds_per_draw']:.2f} |")
        return "\n".join(lines)


def _fmt_z(z) -> str:
    if z is None:
        return "-"
    return f"{z:.2f}" if math.isfinite(z) else ("inf" if z > 0 else "-inf")


def draw_pvalues(null: np.ndarray, alt: np.ndarray, method: str = DEFAULT_AGGREGATION) -> np.ndarray:
    """Empirical p-value of every signal draw against the null draws, shape (n_alt,).

    One statistic per draw (shape (n,)): ``(1 + #{null >= t}) / (n_null + 1)``.  Several
    (shape (n, K), SparKer's scales): each signal draw's K statistics are combined with
    the null draws' exactly as the calibrated test combines them with its toys
    (:func:`~sparker.stats.aggregate`, ``method``: the calibrated test's default).
    """
    if alt.ndim == 1:
        return np.asarray(empirical_pvalue(alt, null), dtype=np.float64)
    return np.array([aggregate(t, null, method=method).pvalue for t in alt], dtype=np.float64)


def power_from_draws(null: np.ndarray, alt: np.ndarray, alpha: float = 0.05,
                     method: str = DEFAULT_AGGREGATION) -> dict:
    """Power of the signal draws at ``alpha`` against thresholds from the null draws.

    Returns ``power`` with its 68 % Clopper-Pearson interval (``ci_low``, ``ci_high``) and
    the median, 16 % and 84 % quantiles of ``Z = Phi^-1(1 - p)`` (``median_z``, ``z16``,
    ``z84``), ``p`` from :func:`draw_pvalues` capped at ``n/(n+1)`` so that Z stays finite
    and symmetric: ``|Z| <= Phi^-1(1 - 1/(n+1))``, the resolution of ``n`` null draws.
    """
    p = draw_pvalues(null, alt, method)
    k = int(np.sum(p <= alpha))
    lo, hi = binomial_interval(k, p.shape[0], level=0.6827)
    n = null.shape[0]
    z = st.norm.isf(np.minimum(p, n / (n + 1.0)))
    q50, q16, q84 = np.quantile(z, [0.5, 0.16, 0.84], method="inverted_cdf")
    return {"power": k / p.shape[0], "ci_low": float(lo), "ci_high": float(hi),
            "median_z": float(q50), "z16": float(q16), "z84": float(q84)}


def _rows(methods, fractions, stats, pvals, secs, cpus, mode, alpha) -> list[dict]:
    rows = []
    null_index = fractions.index(0.0) if 0.0 in fractions else None
    for m in methods:
        for i, f in enumerate(fractions):
            t, p = stats[m][i], pvals[m][i]
            row = {"method": m, "fraction": f, "n_toys": int(t.shape[0]),
                   "seconds_per_draw": float(np.mean(secs[m][i])),
                   "cpu_seconds_per_draw": float(np.mean(cpus[m][i]))}
            if mode == "calibrated":
                k = int(np.sum(p <= alpha))
                lo, hi = binomial_interval(k, t.shape[0], level=0.6827)
                row.update(power=k / t.shape[0], ci_low=float(lo), ci_high=float(hi))
                if f == 0.0:  # the count must lie in the central 99% of Binomial(n, alpha)
                    lo99, hi99 = type1_acceptance(t.shape[0], alpha)
                    row.update(type1_ok=bool(lo99 <= k <= hi99), type1_range=[lo99, hi99])
            if null_index is not None and i != null_index:
                found = power_from_draws(stats[m][null_index], t, alpha)
                if mode != "calibrated":
                    row.update(power=found["power"], ci_low=found["ci_low"], ci_high=found["ci_high"])
                row.update(median_z=found["median_z"], z16=found["z16"], z84=found["z84"])
            else:
                row.update(median_z=None, z16=None, z84=None)
                if mode != "calibrated":  # the null draws themselves define the thresholds: no power
                    row.update(power=None, ci_low=None, ci_high=None)
            rows.append(row)
    return rows


# ------------------------------------------------------------------ the study
def _check_methods(methods) -> list[str]:
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m]
    methods = list(methods)
    if not methods:
        raise ValueError("methods: give at least one method")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: unknown method {m!r}; choose from {sorted(METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods: a method is listed twice in {methods}")
    return methods


def _check_study(scenario, methods, fractions, n_toys, n_null_draws, mode, alpha, n_null):
    from ..scenarios import SCENARIOS

    check_choice(scenario, SCENARIOS, name="scenario")
    methods = _check_methods(methods)
    try:
        fractions = sorted({float(f) for f in fractions})
    except (TypeError, ValueError):
        raise ValueError(f"fractions: expected numbers in [0, 1], got {fractions!r}") from None
    if not fractions or any(not (0.0 <= f <= 1.0) for f in fractions):
        raise ValueError(f"fractions: expected numbers in [0, 1], got {fractions!r}")
    check_choice(mode, MODES, name="mode")
    if mode == "statistic" and 0.0 not in fractions:
        fractions = [0.0, *fractions]  # the null draws set the thresholds
    check_int(n_toys, name="n_toys", minimum=1)
    check_int(n_null, name="n_null", minimum=1)
    if n_null_draws is not None:
        check_int(n_null_draws, name="n_null_draws", minimum=2)
    check_fraction(alpha, name="alpha", open_interval=True)
    if mode == "calibrated" and (n_null + 1) * alpha < 1:
        raise ValueError(f"n_null: {n_null} toys cannot reach p <= alpha={alpha}; need at least "
                         f"{math.ceil(1 / alpha) - 1}")
    return methods, fractions


def _check_options(options, methods: list[str]) -> dict:
    options = {} if options is None else options
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"options: expected {{method: {{setting: value}}}}, got {options!r}")
    stray = sorted(set(options) - set(methods))
    if stray:
        raise ValueError(f"options: {stray[0]!r} is not among the methods {methods}")
    return options


def _scenario_params(scenario: str, sizes: str, params: dict | None) -> dict:
    """The scenario parameters of every draw: the size preset, then ``params``."""
    check_choice(sizes, ("ci", "default"), name="sizes")
    base = dict(CI_SIZES.get(scenario, {})) if sizes == "ci" else {}
    if params:
        if not isinstance(params, dict):
            raise TypeError(f"params: expected a dict, got {type(params).__name__}")
        base.update(params)
    signal_keys = set(SIGNAL_PARAMETERS[scenario](0.0, base))
    clash = sorted(signal_keys & set(base))
    if clash:
        raise ValueError(f"params: {clash[0]!r} is set by the signal fraction; use fractions instead")
    return base


def _tasks(methods, fractions, seed: int, n_toys: int, n_null_draws: int | None) -> list[tuple]:
    """One task ``(method, fraction, scenario seed, method seed)`` per method and draw."""
    tasks = []
    for i, f in enumerate(fractions):
        n = (n_null_draws or n_toys) if f == 0.0 else n_toys
        for s_scen, s_method in draw_seeds(seed, i, n):
            for m in methods:
                tasks.append((m, f, s_scen, s_method))
    return tasks


def _run_draws(backend_impl, shared: dict, tasks: list[tuple], progress: bool) -> list:
    """(t, p, seconds, CPU seconds) of every task, in task order (t: a float, or (K,))."""
    out: list = [None] * len(tasks)
    bar = progress_bar(len(tasks), enabled=progress, desc=f"power {shared['scenario']}", unit="draw")

    def on_result(k, value):
        out[k] = value
        if bar is not None:
            bar.update(1)

    try:
        backends.run_all(backend_impl, _draw, shared, tasks, on_result)
    finally:
        if bar is not None:
            bar.close()
    return out


def _by_method(out: list, tasks: list[tuple], methods, fractions) -> list[dict]:
    """Statistics, p-values, seconds and CPU seconds as ``{method: [array per fraction]}``
    (statistics of shape (n,), or (n, K) for a method with K statistics per draw)."""
    index: dict[tuple, list[int]] = {(m, f): [] for m in methods for f in fractions}
    for k, (m, f, *_rest) in enumerate(tasks):
        index[(m, f)].append(k)
    columns = [{m: [np.array([out[k][c] for k in index[(m, f)]], dtype=np.float64) for f in fractions]
                for m in methods} for c in range(4)]
    for m in methods:
        for i, f in enumerate(fractions):
            if not np.all(np.isfinite(columns[0][m][i])):
                raise FloatingPointError(f"{m}: non-finite statistics at fraction {f}")
    return columns


def power_study(
    scenario: str,
    methods: Sequence[str] = ("sparker", "nplm_kernel", "mmd_agg", "c2st"),
    fractions: Sequence[float] = (0.0, 0.005, 0.01, 0.02),
    *,
    n_toys: int = 30,
    n_null_draws: int | None = None,
    mode: str = "statistic",
    n_null: int = 19,
    alpha: float = 0.05,
    sizes: str = "ci",
    params: dict | None = None,
    seed: int = 0,
    backend: str = "batched",
    threads: int | None = None,
    progress: bool = False,
    options: dict | None = None,
    **backend_options,
) -> PowerStudy:
    """Power of each method against the signal fraction on one scenario.

    Parameters
    ----------
    scenario : str
        A name of :data:`sparker.scenarios.SCENARIOS`.
    methods : sequence of str or str
        Names of :data:`sparker.methods.METHODS` (comma-separated string accepted).
    fractions : sequence of float
        Signal fractions in [0, 1]; 0 (the null version) is added in ``statistic`` mode.
    n_toys : int
        Draws per method and signal fraction.
    n_null_draws : int, optional
        Draws at fraction 0 (default ``n_toys``); more null draws resolve smaller levels.
    mode : {"statistic", "calibrated"}
        See the module notes.
    n_null : int
        Toys of each calibrated test (``calibrated`` mode).
    alpha : float
        Test level.
    sizes : {"ci", "default"}
        Scenario size preset (:data:`CI_SIZES`) or the generator's defaults.
    params : dict, optional
        Further scenario parameters (override the preset; not the signal parameter).
    seed : int
        Seed of the whole study.
    backend : str
        ``batched`` (in this process), ``processes`` or ``dask``; see :mod:`sparker.core.backends`.
    threads : int, optional
        torch threads inside each task (default: leave as is; ``processes`` workers use 1).
    progress : bool
        tqdm progress bar.
    options : dict, optional
        Per-method settings, ``{method: {name: value}}``, e.g.
        ``{"sparker": {"n_kernels": 4}}`` (for ablations; the study's point is
        to run every method with its defaults).
    **backend_options
        ``n_workers`` / ``threads_per_worker`` (processes) or ``scheduler`` (dask).

    Returns
    -------
    PowerStudy
    """
    methods, fractions = _check_study(scenario, methods, fractions, n_toys, n_null_draws, mode, alpha, n_null)
    options = _check_options(options, methods)
    base = _scenario_params(scenario, sizes, params)
    backend_impl = backends.get_backend(backend, **backend_options)
    shared = {"scenario": scenario, "params": base, "mode": mode, "n_null": int(n_null), "options": options,
              "threads": threads}
    tasks = _tasks(methods, fractions, seed, n_toys, n_null_draws)
    start = time.perf_counter()
    stats, pvals, secs, cpus = _by_method(_run_draws(backend_impl, shared, tasks, progress), tasks, methods,
                                          fractions)
    rows = _rows(methods, fractions, stats, pvals, secs, cpus, mode, float(alpha))
    settings = {"seed": int(seed), "n_toys": int(n_toys), "n_null_draws": int(n_null_draws or n_toys),
                "n_null": int(n_null) if mode == "calibrated" else None, "backend": backend,
                "sizes": sizes, "options": options, "wall_seconds": time.perf_counter() - start}
    return PowerStudy(scenario, mode, base, float(alpha), fractions, methods, stats, pvals, secs, rows,
                      settings, cpus)


# ------------------------------------------------------------------ outputs
def plot_power(study: PowerStudy, path) -> None:
    """Power and median Z against the signal fraction, one line per method (PNG at ``path``)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_p, ax_z = fig.subplots(1, 2)
    for m in study.methods:
        rows = [r for r in study.rows if r["method"] == m and r["power"] is not None]
        f = np.array([r["fraction"] for r in rows])
        pw = np.array([r["power"] for r in rows])
        err = np.array([[r["power"] - r["ci_low"] for r in rows], [r["ci_high"] - r["power"] for r in rows]])
        ax_p.errorbar(f, pw, yerr=err, marker="o", capsize=3, label=m)
        zr = [r for r in rows if r["median_z"] is not None]
        if zr:
            fz = np.array([r["fraction"] for r in zr])
            z = np.array([r["median_z"] for r in zr], dtype=float)
            lo = np.array([r["z16"] for r in zr], dtype=float)
            hi = np.array([r["z84"] for r in zr], dtype=float)
            cap = np.nanmax(np.where(np.isfinite(hi), hi, np.nan)) if np.isfinite(hi).any() else 5.0
            ax_z.plot(fz, np.clip(z, -1, cap), marker="o", label=m)
            ax_z.fill_between(fz, np.clip(lo, -1, cap), np.clip(hi, -1, cap), alpha=0.15)
    ax_p.axhline(study.alpha, color="grey", lw=0.8, ls=":")
    ax_p.set(xlabel="signal fraction", ylabel=f"power at alpha = {study.alpha:g}", ylim=(-0.02, 1.02),
             title=f"{study.scenario} ({study.mode})")
    ax_z.set(xlabel="signal fraction", ylabel="median Z (16-84 % band)", title="significance")
    ax_p.legend()
    fig.savefig(path, dpi=110)


def write_study(study: PowerStudy, folder, *, overwrite: bool = False) -> dict:
    """Write ``power.json``, ``power.csv`` and (with matplotlib) ``power.png`` into ``folder``."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "power.json", "csv": folder / "power.csv", "png": folder / "power.png"}
    if not overwrite:
        for p in paths.values():
            if p.exists():
                raise FileExistsError(f"out: {p} exists; pass --force (overwrite=True) to replace it")
    write_json(paths["json"], study.to_dict(), overwrite=True)
    atomic_write_text(paths["csv"], study.to_csv(), overwrite=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.info("plot: install matplotlib for power.png")
        del paths["png"]
    else:
        plot_power(study, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def format_summary(study: PowerStudy) -> str:
    head = (f"{study.scenario}: mode={study.mode}, alpha={study.alpha:g}, n_toys={study.settings['n_toys']}, "
            f"params={json.dumps(study.params)}")
    return head + "\n" + study.table()
