r"""The NPLM Expo1D alternatives: ``expo1d_h1``, ``expo1d_h2``, ``expo1d_h3``, ``expo1d_h4``.

Needs only NumPy; see :mod:`sparker.scenarios` for the conventions every generator follows.

The one-dimensional benchmark of the New Physics Learning Machine papers (D'Agnolo and
Wulzer, "Learning New Physics from a Machine", arXiv:1806.02350; D'Agnolo et al.,
"Learning Multivariate New Physics", arXiv:1912.12155; Letizia et al., "Learning new
physics efficiently with nonparametric methods", arXiv:2204.02317): the reference is
``N_R = 200,000`` events of Exp(1); the data are a background of Exp(1) events with
expected count ``N_0 = 2,000`` plus one of four departures, every count drawn from a
Poisson law:

====  ===========================================================  ========  =========
name  departure                                                    events    Z ideal
====  ===========================================================  ========  =========
H1    Gaussian peak at 6.4, width 0.16 (in the tail)               N_S = 10  4.8
H2    broad excess with density x^2 e^-x / 2, i.e. Gamma(3, 1)     N_S = 90  4.5
H3    Gaussian peak at 1.6, width 0.16 (in the bulk)               N_S = 90  5.6
H4    deficit: background events above x = 5.07 removed            --        4.5
====  ===========================================================  ========  =========

"Z ideal" is the median significance of the Neyman-Pearson test that knows the
alternative exactly (the likelihood ratio of the true data density to the
reference one, counts included): the ceiling no model-independent test can pass.
H1-H3's values are those quoted for the NPLM benchmark; H4's follows from the construction: with the
truncation, ``N_0 e^{-5.07} = 12.6`` background events are missing and the ideal test
rejects exactly when no event lies above 5.07, an event of null probability
``exp(-12.6)``, Z = 4.49.  Importance sampling of the ideal statistic under each
alternative reproduces all four (4.77, 4.54, 5.59, 4.49 from 20,000 draws each).

Stream layout: the counts, the reference, the background and the departure each come
from their own child stream of ``seed``, drawn exactly as :func:`~sparker.scenarios.expo1d`
draws them with ``poisson=True``.  So for a given seed the four null versions give the
same arrays, the reference never depends on the departure, and ``expo1d_h1`` equals
``expo1d(n_reference=200_000, n_signal=10, signal="tail", poisson=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._validation import check_bool, check_fraction, check_int, check_real
from ._common import as_f64, make_truth, random_streams
from .registry import register

__all__ = ["EXPO1D_ALTERNATIVES", "expo1d_h1", "expo1d_h2", "expo1d_h3", "expo1d_h4"]

#: hypothesis -> published settings and the ideal known-shape significance Z at those settings
EXPO1D_ALTERNATIVES: dict[str, dict] = {
    "H1": {"scenario": "expo1d_h1", "signal": "gaussian", "location": 6.4, "width": 0.16, "n_signal": 10,
           "z_ideal": 4.8},
    "H2": {"scenario": "expo1d_h2", "signal": "gamma", "shape": 3.0, "n_signal": 90, "z_ideal": 4.5},
    "H3": {"scenario": "expo1d_h3", "signal": "gaussian", "location": 1.6, "width": 0.16, "n_signal": 90,
           "z_ideal": 5.6},
    "H4": {"scenario": "expo1d_h4", "signal": "deficit", "cut": 5.07, "deficit": 1.0, "z_ideal": 4.5},
}
_N_REFERENCE = 200_000
_N_BACKGROUND = 2_000


def _checked(n_reference, n_background, poisson) -> dict:
    """The settings shared by the four alternatives, validated."""
    return {
        "n_reference": check_int(n_reference, name="n_reference", minimum=1),
        "n_background": check_int(n_background, name="n_background", minimum=1),
        "poisson": check_bool(poisson, name="poisson"),
    }


def _draw_background(seed: int, p: dict, n_signal: int):
    """(reference (n_R, 1), background (n_B,), departure stream, signal count) in expo1d's layout."""
    rng_count, rng_ref, rng_bkg, rng_sig = random_streams(seed, 4)
    n_b = int(rng_count.poisson(p["n_background"])) if p["poisson"] else p["n_background"]
    n_s = int(rng_count.poisson(n_signal)) if p["poisson"] else n_signal
    reference = rng_ref.exponential(1.0, p["n_reference"])[:, None]
    return reference, rng_bkg.exponential(1.0, n_b), rng_sig, n_s


def _z_ideal(hypothesis: str, published: bool) -> float:
    return float(EXPO1D_ALTERNATIVES[hypothesis]["z_ideal"]) if published else math.nan


def _excess(seed, hypothesis: str, draw: Callable, n_reference, n_background, n_signal, poisson):
    """H1-H3: Exp(1) background plus ``n_signal`` (expected) events of ``draw(rng, n)``; signal last."""
    p = _checked(n_reference, n_background, poisson)
    p["n_signal"] = check_int(n_signal, name="n_signal", minimum=0)
    spec = EXPO1D_ALTERNATIVES[hypothesis]
    reference, background, rng_sig, n_s = _draw_background(seed, p, p["n_signal"])
    data = np.concatenate([background, draw(rng_sig, n_s)])[:, None]  # (n_b + n_s, 1)
    is_anomaly = np.arange(len(data)) >= len(background)
    localised = spec["signal"] == "gaussian" and p["n_signal"] > 0
    centres = [[spec["location"]]] if localised else np.empty((0, 1))
    published = p["poisson"] and p["n_background"] == _N_BACKGROUND and p["n_signal"] == spec["n_signal"]
    truth = make_truth(is_anomaly, centres, p, ["x"], effect="excess", n_expected=float(p["n_background"]),
                       n_expected_alternative=float(p["n_background"] + p["n_signal"]),
                       z_ideal=_z_ideal(hypothesis, published))
    return as_f64(reference), as_f64(data), truth


@register("expo1d_h1")
def expo1d_h1(seed: int = 0, *, n_reference: int = _N_REFERENCE, n_background: int = _N_BACKGROUND,
              n_signal: int = 10, poisson: bool = True):
    """NPLM Expo1D alternative H1: a narrow Gaussian peak in the tail (6.4, width 0.16, 10 events).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=200_000
        Reference events drawn from Exp(1).
    n_background : int, default=2_000
        Expected number ``N_0`` of background (Exp(1)) data events.
    n_signal : int, default=10
        Expected number ``N_S`` of signal events, N(6.4, 0.16^2); 0 gives a null sample.
    poisson : bool, default=True
        Draw both data counts from Poisson laws, as in the papers; False uses the
        expected counts as they are.

    Returns
    -------
    reference : ndarray of shape (n_reference, 1)
    data : ndarray of shape (n_B + n_S, 1)
        Background rows first, then the signal rows; with ``poisson=True`` the
        counts n_B and n_S are random.
    truth : dict
        See :mod:`sparker.scenarios`; ``is_anomaly`` marks the signal rows and
        ``centres`` is ``[[6.4]]``.  Extra keys: ``effect`` ("excess"),
        ``n_expected`` (``N_0 = n_background``, the data count expected under the
        reference, for calibrated tests with Poisson counts),
        ``n_expected_alternative`` (``N_0 + n_signal``) and ``z_ideal`` (4.8 at the
        published settings -- ``n_background=2000``, ``n_signal=10``,
        ``poisson=True`` -- and NaN at any other; see :mod:`sparker.scenarios.nplm`).
    """
    return _excess(seed, "H1", lambda rng, n: rng.normal(6.4, 0.16, n), n_reference, n_background, n_signal,
                   poisson)


@register("expo1d_h2")
def expo1d_h2(seed: int = 0, *, n_reference: int = _N_REFERENCE, n_background: int = _N_BACKGROUND,
              n_signal: int = 90, poisson: bool = True):
    """NPLM Expo1D alternative H2: a broad excess with density x^2 e^-x / 2 (Gamma(3, 1), 90 events).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=200_000
        Reference events drawn from Exp(1).
    n_background : int, default=2_000
        Expected number ``N_0`` of background (Exp(1)) data events.
    n_signal : int, default=90
        Expected number ``N_S`` of signal events, Gamma(3, 1); 0 gives a null sample.
    poisson : bool, default=True
        Draw both data counts from Poisson laws, as in the papers; False uses the
        expected counts as they are.

    Returns
    -------
    reference : ndarray of shape (n_reference, 1)
    data : ndarray of shape (n_B + n_S, 1)
        Background rows first, then the signal rows.
    truth : dict
        As for :func:`expo1d_h1`, except that ``centres`` is empty and ``z_ideal`` is
        4.5 at the published settings (``n_signal=90``).

    Notes
    -----
    The signal spreads over the whole spectrum (mode 2, mean 3) and outgrows the
    background in the tail, where its ratio to it rises as ``x^2``: it has no
    single location, so ``centres`` is empty.
    """
    return _excess(seed, "H2", lambda rng, n: rng.gamma(3.0, 1.0, n), n_reference, n_background, n_signal,
                   poisson)


@register("expo1d_h3")
def expo1d_h3(seed: int = 0, *, n_reference: int = _N_REFERENCE, n_background: int = _N_BACKGROUND,
              n_signal: int = 90, poisson: bool = True):
    """NPLM Expo1D alternative H3: a narrow Gaussian peak in the bulk (1.6, width 0.16, 90 events).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=200_000
        Reference events drawn from Exp(1).
    n_background : int, default=2_000
        Expected number ``N_0`` of background (Exp(1)) data events.
    n_signal : int, default=90
        Expected number ``N_S`` of signal events, N(1.6, 0.16^2); 0 gives a null sample.
    poisson : bool, default=True
        Draw both data counts from Poisson laws, as in the papers; False uses the
        expected counts as they are.

    Returns
    -------
    reference : ndarray of shape (n_reference, 1)
    data : ndarray of shape (n_B + n_S, 1)
        Background rows first, then the signal rows.
    truth : dict
        As for :func:`expo1d_h1`, with ``centres`` ``[[1.6]]`` and ``z_ideal`` 5.6
        at the published settings (``n_signal=90``).
    """
    return _excess(seed, "H3", lambda rng, n: rng.normal(1.6, 0.16, n), n_reference, n_background, n_signal,
                   poisson)


@register("expo1d_h4")
def expo1d_h4(seed: int = 0, *, n_reference: int = _N_REFERENCE, n_background: int = _N_BACKGROUND,
              deficit: float = 1.0, cut: float = 5.07, poisson: bool = True):
    """NPLM Expo1D alternative H4: a deficit, the background truncated above x = 5.07.

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=200_000
        Reference events drawn from Exp(1).
    n_background : int, default=2_000
        Expected number ``N_0`` of background (Exp(1)) data events.
    deficit : float, default=1.0
        Share of the background events above ``cut`` that are removed, in [0, 1]:
        1 is the published truncation, 0 gives a null sample.
    cut : float, default=5.07
        Where the deficit starts (>= 0).
    poisson : bool, default=True
        Draw the background count from a Poisson law, as in the papers; False
        uses ``n_background`` as it is.

    Returns
    -------
    reference : ndarray of shape (n_reference, 1)
    data : ndarray of shape (n, 1)
        The background events that were kept, in drawing order.
    truth : dict
        See :mod:`sparker.scenarios`.  No data event is anomalous (the departure
        is a missing population), so ``is_anomaly`` is all False and ``centres`` is
        empty.  Extra keys: ``effect`` ("deficit"), ``n_removed`` (events removed),
        ``n_expected`` (``N_0 = n_background``, the data count expected under the
        reference), ``n_expected_alternative`` (``N_0 (1 - deficit e^-cut)``) and
        ``z_ideal`` (4.5 at the published settings -- ``n_background=2000``,
        ``deficit=1``, ``cut=5.07``, ``poisson=True`` -- and NaN at any other).

    Notes
    -----
    An event above ``cut`` is removed when its own uniform draw (from the
    departure stream) falls below ``deficit``: for a given seed the data shrink
    monotonically as ``deficit`` grows, and ``deficit=0`` gives the
    background-only sample of the other three alternatives.
    """
    p = _checked(n_reference, n_background, poisson)
    p["deficit"] = check_fraction(deficit, name="deficit")
    p["cut"] = check_real(cut, name="cut", minimum=0.0)
    reference, background, rng_sig, _ = _draw_background(seed, p, 0)
    removed = (background > p["cut"]) & (rng_sig.uniform(0.0, 1.0, len(background)) < p["deficit"])  # (n_b,)
    data = background[~removed][:, None]
    published = (p["poisson"] and p["n_background"] == _N_BACKGROUND and p["deficit"] == 1.0
                 and p["cut"] == EXPO1D_ALTERNATIVES["H4"]["cut"])
    n_alt = p["n_background"] * (1.0 - p["deficit"] * math.exp(-p["cut"]))
    truth = make_truth(np.zeros(len(data), dtype=bool), np.empty((0, 1)), p, ["x"], effect="deficit",
                       n_removed=int(removed.sum()), n_expected=float(p["n_background"]),
                       n_expected_alternative=n_alt, z_ideal=_z_ideal("H4", published))
    return as_f64(reference), as_f64(data), truth
