r"""Classifier two-sample test (C2ST) with histogram gradient boosting.

A fit (the observed samples or one null toy) labels its data rows 1 (weight
:math:`d_x = 1`) and its reference rows 0 (weight :math:`r_x`, summing to
:math:`N_D`), splits each class at random into a training and a held-out
part (``test_fraction`` of each class held out), rescales the reference
weights of each part so that both classes weigh the same there, trains
scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` on
the training part (``sample_weight`` = those weights) and scores the
held-out part.

Statistic (``statistic="llr"``, default): the held-out weighted
log-likelihood ratio of the classifier against the chance classifier,

.. math::

    t = 2 \sum_{x \in \text{held out}} \Big[ d_x \log\big(2\,\sigma(g(x))\big)
        + r_x \log\big(2\,\sigma(-g(x))\big) \Big],

with :math:`g` the classifier's logit (``decision_function``) and
:math:`\sigma` the logistic function: twice the gain in held-out
log-likelihood (deviance reduction) over predicting 1/2 everywhere.  It is
positive when the classifier generalises and usually negative under
:math:`H_0` (over-fitting costs on held-out points).  Unlike accuracy, it
rewards confident correct predictions on the few points of a rare anomaly.
``statistic="accuracy"``: the held-out weighted balanced accuracy,
:math:`\tfrac12(\mathrm{TPR} + \mathrm{TNR})`, with ties at :math:`g = 0`
counting one half.

**Binning.**  The classifier bins every feature into at most 255 values
anyway; here the bins are fixed once, at 255 quantiles of the reference
(of the pooled sample with ``permutation`` toys, so that they ignore which rows
are data; shared by the observed fit and every toy), and the classifier
receives the bin codes.  This is what the classifier would do itself up to
the choice of quantiles, and it keeps scikit-learn off its slow
weighted-quantile binning path (5-10x slower per fit with ``sample_weight``).

Either statistic is calibrated on null toys made as for :func:`sparker.test`
(``resample`` or ``permutation``), and every toy retrains the classifier
with the same settings: cost ``(n_null + 1)`` classifier fits.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_choice, check_fraction, check_int, check_real
from ..core.backends import backend_options, check_backend, get_backend, run_all
from ..results import TestResult
from . import _common as C

__all__ = ["C2ST_STATISTICS", "c2st", "c2st_statistic"]


def _llr(g: np.ndarray, r: np.ndarray, d: np.ndarray) -> float:
    """``2 sum [d log(2 sigma(g)) + r log(2 sigma(-g))]``, in float64."""
    log2 = np.log(2.0)
    return float(2.0 * np.sum(d * (log2 - np.logaddexp(0.0, -g)) + r * (log2 - np.logaddexp(0.0, g))))


def _balanced_accuracy(g: np.ndarray, r: np.ndarray, d: np.ndarray) -> float:
    """``(TPR + TNR) / 2`` with weights; ``g == 0`` counts one half."""
    hit_d = np.where(g > 0, 1.0, np.where(g == 0, 0.5, 0.0))
    return 0.5 * (np.sum(d * hit_d) / np.sum(d) + np.sum(r * (1.0 - hit_d)) / np.sum(r))


#: held-out statistics by name (larger = more different)
C2ST_STATISTICS = {"llr": _llr, "accuracy": _balanced_accuracy}


def _split(idx: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) rows of one class; at least one row on each side."""
    n_test = min(max(round(fraction * idx.size), 1), idx.size - 1)
    perm = rng.permutation(idx)
    return perm[n_test:], perm[:n_test]


def _balanced(r: np.ndarray, d: np.ndarray, rows_r: np.ndarray, rows_d: np.ndarray):
    """Rows, labels and weights of one part, reference weights rescaled to the data total."""
    wr = r[rows_r] * (d[rows_d].sum() / r[rows_r].sum())
    rows = np.concatenate([rows_r, rows_d])
    y = np.r_[np.zeros(rows_r.size), np.ones(rows_d.size)]
    return rows, y, np.concatenate([wr, d[rows_d]])


def _bin_edges(R: np.ndarray, rng: np.random.Generator, n_bins: int = 255, max_rows: int = 200_000):
    """Per-feature quantile edges of the rows ``R`` (the reference, or the pooled sample with
    ``permutation`` toys): (n_bins - 1, n_features)."""
    if R.shape[0] > max_rows:
        R = R[rng.choice(R.shape[0], size=max_rows, replace=False)]
    return np.quantile(R, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], axis=0)


def _bin(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin codes of every entry: (n, n_features) float64 with at most 255 values per column."""
    return np.stack([np.searchsorted(edges[:, j], X[:, j], side="right") for j in range(X.shape[1])],
                    1).astype(np.float64)


#: training rows below which early stopping (its 10 % validation split) is switched off
_MIN_EARLY_STOPPING_ROWS = 200


def _fit_one(X, r, d, seed_seq, stat, fraction, options):
    """Statistic of one fit (rows of X with r > 0 are reference, d > 0 data) and the classifier."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed_seq)
    ref_rows, data_rows = np.flatnonzero(r > 0), np.flatnonzero(d > 0)
    tr_r, te_r = _split(ref_rows, fraction, rng)
    tr_d, te_d = _split(data_rows, fraction, rng)
    rows, y, w = _balanced(r, d, tr_r, tr_d)
    if options.get("early_stopping") and len(rows) < _MIN_EARLY_STOPPING_ROWS:
        # the 10 % validation split of a tiny training part may miss a class: train without it
        options = {**options, "early_stopping": False}
    clf = HistGradientBoostingClassifier(random_state=int(rng.integers(2**31 - 1)), **options)
    clf.fit(X[rows], y, sample_weight=w)
    rows, y, w = _balanced(r, d, te_r, te_d)
    g = clf.decision_function(X[rows]).astype(np.float64)
    return C2ST_STATISTICS[stat](g, w * (y == 0), w * (y == 1)), clf


def _toy_chunk(shared, ids) -> np.ndarray:
    """Statistics of toys ``ids`` (one task of a back end)."""
    pool, problem, statistic, fraction, options = shared
    out = np.empty(len(ids))
    for i, b in enumerate(ids):
        r, d = problem.toy(b)
        out[i], _ = _fit_one(pool, r, d, C.seq(problem.seed, C.TOY_KEY, b, 1), statistic, fraction, options)
    return out


def _null_statistics(runner, shared, n_null: int, toy_chunk: int) -> np.ndarray:
    """Statistics (n_null,) of every toy, run by ``runner`` in chunks of ``toy_chunk``."""
    tasks = [tuple(range(lo, min(n_null, lo + toy_chunk))) for lo in range(0, n_null, toy_chunk)]
    null_t = np.empty(n_null)

    def on_result(i, values):
        null_t[list(tasks[i])] = values

    run_all(runner, _toy_chunk, shared, [(ids,) for ids in tasks], on_result)
    return null_t


def _settings(statistic: str, fraction: float, options: dict, mode: str) -> list[dict]:
    """The ``settings`` of the result: the statistic, the split and the plain classifier options."""
    return [{"classifier": "HistGradientBoostingClassifier", "statistic": statistic,
             "test_fraction": fraction,
             "bins": "255 reference quantiles" if mode == "resample" else "255 pooled quantiles",
             **{k: v for k, v in options.items() if isinstance(v, (numbers.Number, str, bool, type(None)))}}]


def _setup(reference, data, n_null, seed, null, reference_weight, statistic, test_fraction, max_iter,
           learning_rate, max_leaf_nodes, early_stopping, classifier_options):
    """Validated problem, classifier options and held-out fraction of :func:`c2st`."""
    problem = C.prepare(reference, data, n_null=n_null, seed=seed, null=null,
                        reference_weight=reference_weight, min_data=2, method="c2st")
    check_choice(statistic, C2ST_STATISTICS, name="statistic")
    fraction = check_fraction(test_fraction, name="test_fraction", open_interval=True)
    options = {"max_iter": check_int(max_iter, name="max_iter", minimum=1),
               "learning_rate": check_real(learning_rate, name="learning_rate", positive=True),
               "max_leaf_nodes": check_int(max_leaf_nodes, name="max_leaf_nodes", minimum=1),
               "early_stopping": bool(early_stopping)}
    if classifier_options is not None:
        if not isinstance(classifier_options, dict) or "random_state" in classifier_options:
            raise ValueError("classifier_options: a dict of HistGradientBoostingClassifier options "
                             "(random_state comes from seed)")
        options.update(classifier_options)
    if problem.n_data < 2 or problem.n_reference < 2:
        raise ValueError("data: the held-out split needs at least 2 points in each sample")
    return problem, options, fraction


def c2st_statistic(reference, data, *, seed: int = 0, statistic: str = "llr", test_fraction: float = 0.5,
                   max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                   early_stopping: bool = True, classifier_options: dict | None = None) -> float:
    """The observed statistic of :func:`c2st` alone (no toys), for power studies.

    Same arguments and the same value as ``c2st(...).statistic`` with the same seed.
    """
    problem, options, fraction = _setup(reference, data, 1, seed, "auto", None, statistic, test_fraction,
                                        max_iter, learning_rate, max_leaf_nodes, early_stopping,
                                        classifier_options)
    edges = _bin_edges(problem.width_rows(), np.random.default_rng(C.seq(problem.seed, C.WIDTH_KEY)))
    X_obs, r_obs, d_obs = problem.observed()
    t, _ = _fit_one(_bin(X_obs, edges), r_obs, d_obs, C.seq(problem.seed, C.OBS_KEY), statistic, fraction,
                    options)
    return float(t)


def c2st(
    reference,
    data,
    *,
    n_null: int = 100,
    seed: int = 0,
    null: str = "auto",
    reference_weight=None,
    statistic: str = "llr",
    test_fraction: float = 0.5,
    max_iter: int = 100,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    early_stopping: bool = True,
    classifier_options: dict | None = None,
    backend: str = "batched",
    scheduler=None,
    n_workers: int | None = None,
    toy_chunk: int = 8,
) -> TestResult:
    r"""Classifier two-sample test (gradient boosting), calibrated on null toys.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
        At least 2 points each.
    n_null : int
        Number of null toys; each retrains the classifier.
    seed : int
    null : {"auto", "resample", "permutation"}
        How toys are made (:mod:`sparker.core.nulls`), as in :func:`sparker.test`.
    reference_weight : array-like of shape (n_reference,), optional
        Per-point reference weights (resampling only).
    statistic : {"llr", "accuracy"}
        Held-out weighted log-likelihood ratio (default) or balanced accuracy.
    test_fraction : float
        Share of each class held out.
    max_iter, learning_rate, max_leaf_nodes : int, float, int
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier` settings
        (boosting rounds kept modest: every toy retrains).
    early_stopping : bool
        Stop boosting when the loss on 10 % of the training part stops
        improving (scikit-learn's rule; curbs over-fitting, which costs the
        held-out statistic, and saves time).  Off for fits with fewer than
        200 training rows, whose validation split could miss a class.
    classifier_options : dict, optional
        Further keyword arguments of the classifier.
    backend : {"batched", "processes", "dask"}
        Where the toys run, in chunks of ``toy_chunk`` (:mod:`sparker.core.backends`):
        in this process one after another (default), in ``n_workers`` local
        processes, or on a Dask cluster (``scheduler``).  Every toy has its own
        seed, so the result does not depend on the back end or the chunks.
    scheduler : distributed.Client, cluster or str, optional
    n_workers : int, optional
    toy_chunk : int
        Toys per task.

    Returns
    -------
    TestResult
        ``model`` is the classifier of the observed fit; ``chi2`` is None.
    """
    problem, options, fraction = _setup(reference, data, n_null, seed, null, reference_weight, statistic,
                                        test_fraction, max_iter, learning_rate, max_leaf_nodes,
                                        early_stopping, classifier_options)
    toy_chunk = check_int(toy_chunk, name="toy_chunk", minimum=1)
    options_backend = backend_options(scheduler, n_workers)
    check_backend(backend, **options_backend)
    edges = _bin_edges(problem.width_rows(), np.random.default_rng(C.seq(problem.seed, C.WIDTH_KEY)))
    X_obs, r_obs, d_obs = problem.observed()
    X_obs = _bin(X_obs, edges)
    t_obs, model = _fit_one(X_obs, r_obs, d_obs, C.seq(problem.seed, C.OBS_KEY), statistic, fraction, options)
    runner = get_backend(backend, **options_backend)
    shared = (_bin(problem.pool(), edges), problem, statistic, fraction, options)
    null_t = _null_statistics(runner, shared, n_null, toy_chunk)
    return C.make_result("c2st", t_obs, null_t, problem,
                         settings=_settings(statistic, fraction, options, problem.mode), model=model)
