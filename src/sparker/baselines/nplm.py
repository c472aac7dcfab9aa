r"""Kernel NPLM (Letizia, Losapio, Rando, Grosso, Wulzer, Pierini, Zanetti, Rosasco 2022).

The log density ratio is a Nyström kernel expansion over ``M_c`` centres
:math:`c_j` drawn uniformly from the pooled sample (default 1000, capped by
its size), with the Gaussian kernel of :mod:`sparker.baselines._kernels` and
the width :math:`\sigma` = 90th percentile of the pairwise distances of the
standardised reference (the same estimate, on the same subsample, as
SparKer's start width; with ``permutation`` toys, of the standardised pooled
sample, so that the width ignores which rows are data):

.. math::

    f(x) = \sum_{j=1}^{M_c} \alpha_j K(x, c_j).

**Loss.**  ``loss="logistic"`` (default, as in the paper, where Falkon fits a
weighted logistic regression) minimises the weighted cross-entropy of data
(label 1, weight 1) against reference (label 0, weight :math:`w_x`, sum
:math:`N_D`) plus a ridge term,

.. math::

    L(\alpha) = \sum_{x \in R} w_x \log(1 + e^{f(x)})
              + \sum_{x \in D} \log(1 + e^{-f(x)})
              + \lambda N \alpha^\top K_{MM} \alpha ,

with :math:`N` the number of points in the fit.  ``loss="nplm"`` minimises
the NPLM extended-likelihood loss
:math:`\sum_R w_x (e^{f} - 1) - \sum_D f + \lambda N \alpha^\top K_{MM} \alpha`
instead.  Both have the population minimiser
:math:`f^* = \log(n_D / (w\, n_R))`.  Either way the test statistic is the
NPLM likelihood ratio at the fitted :math:`\hat f`:

.. math::

    t = 2 \Big[\sum_{x \in D} \hat f(x) - \sum_{x \in R} w_x (e^{\hat f(x)} - 1)\Big],

which is :math:`\ge 0` for ``loss="nplm"`` and may be slightly negative for
the logistic fit.

**Solver.**  Both losses are convex in :math:`\alpha`.  Two changes of
variables make the problem well conditioned (the idea of Falkon's
preconditioner, with the exact Gram matrix instead of its Nyström estimate):

1. :math:`K_{MM} = V S V^\top`; keep the eigenvalues above ``1e-12`` of the
   largest (``r`` of them) and set :math:`T = V_r S_r^{-1/2}`, so that the
   Nyström features :math:`\Phi = K_{NM} T` (``N x r``) carry the ridge as
   :math:`\lambda N \lVert\beta\rVert^2` with :math:`\alpha = T\beta`.  The
   dropped directions sit at the float64 noise floor of :math:`K_{MM}`; like
   Falkon's jitter this is a tiny extra regularisation, the same for the
   observed fit and every toy, which matters only when the width is so large
   that the problem is conditioned beyond float64 (then the exact minimiser
   is not computable anyway).
2. :math:`c\,\Phi^\top\Phi + 2\lambda N I = L L^\top` (Cholesky), where
   ``c`` is the loss curvature at :math:`f = 0` averaged over the points (the
   Hessian of an average toy at :math:`H_0`); :math:`\beta = L^{-\top}\gamma`.

In :math:`\gamma` the features are :math:`\Psi = \Phi L^{-\top}`, the ridge
is :math:`\lambda N \gamma^\top G \gamma` with :math:`G = (L^\top L)^{-1}`,
and the Hessian :math:`\Psi^\top \mathrm{diag}(\ell'') \Psi + 2\lambda N G`
is the identity for an average toy at :math:`H_0`.  Each fit is solved by
Newton's method, each step by conjugate gradients (Hessian-vector products
:math:`O(N r)`), with an Armijo backtracking line search, until the Newton
decrement :math:`g^\top H^{-1} g / 2` falls below ``tol`` times the total
weight of the fit.  The one-off cost of the basis is :math:`O(N M_c^2)`
(three ``N x M_c x r`` products); each Newton-CG iteration costs
:math:`O(N r)` per fit.

**Toys.**  The centres are a label-free function of the pool and the seed
(stream ``(3,)``), so every toy on one pool shares them, and with them
:math:`\Psi` and :math:`G`: the basis is built once per pool and the toys
are solved together, as the columns of ``(N, n_toys)`` weight matrices, in
batches of ``toy_chunk`` (every column has its own line search and stopping
rule, so the batch size does not change the result beyond rounding).  With
``permutation`` toys the observed fit uses the same pool, centres and basis,
and the standardisation and width come from the pooled sample, which keeps
the permutation test exact; with ``resample`` toys the pool is
the reference (toy data are reference rows) while the observed fit draws its
centres from ``[reference; data]``.  Several widths run on the same toys and
are aggregated (min-p by default, :func:`sparker.stats.aggregate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_array, check_choice, check_fraction, check_int, check_n_features, check_real
from .._warnings import ConvergenceWarning
from ..core.schedules import pairwise_distance_quantiles
from ..results import TestResult
from ..stats import AGGREGATIONS
from . import _common as C
from ._kernels import gaussian_kernel

__all__ = ["LOSSES", "KernelNPLM", "newton_cg", "nplm_kernel", "nplm_statistic", "nystrom_basis"]

_DT = torch.float64


# ------------------------------------------------------------------ losses
@dataclass(frozen=True)
class Loss:
    """Pointwise loss of the fit, summed over rows; ``r``, ``d``, ``f`` are (N, B).

    ``value`` -> (B,); ``derivatives`` -> gradient and curvature w.r.t. ``f``, (N, B) each;
    ``curvature0(total_ref, total_data, n)`` -> the average curvature at ``f = 0``.
    """

    name: str
    value: Callable
    derivatives: Callable
    curvature0: Callable


def _logistic_value(f, r, d):
    return (r * F.softplus(f) + d * F.softplus(-f)).sum(0)


def _logistic_derivatives(f, r, d):
    s = torch.sigmoid(f)
    return (r + d) * s - d, (r + d) * s * (1.0 - s)


def _nplm_value(f, r, d):
    return (r * torch.expm1(f) - d * f).sum(0)


def _nplm_derivatives(f, r, d):
    e = torch.exp(f)
    return r * e - d, r * e


#: losses by name: ``logistic`` (weighted cross-entropy, as in the paper) and ``nplm``
LOSSES = {
    "logistic": Loss("logistic", _logistic_value, _logistic_derivatives,
                     lambda tr, td, n: (tr + td) / (4.0 * n)),
    "nplm": Loss("nplm", _nplm_value, _nplm_derivatives, lambda tr, td, n: tr / n),
}


def nplm_statistic(f: torch.Tensor, r: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    r"""``t = 2 [sum_D f - sum_R w (e^f - 1)]`` per column: (N, B) -> (B,), float64."""
    return 2.0 * (d * f - r * torch.expm1(f)).sum(0)


# ------------------------------------------------------------------ basis
def nystrom_basis(
    X: torch.Tensor,
    centres: torch.Tensor,
    sigma: float,
    *,
    curvature: float,
    lam_n: float,
    block_size: int = 4096,
    eig_rtol: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Preconditioned Nyström features of the pool.

    Parameters
    ----------
    X : Tensor of shape (N, d)
    centres : Tensor of shape (M, d)
    sigma : float
    curvature : float
        ``c`` in :math:`c\,\Phi^\top\Phi + 2 \lambda N I`.
    lam_n : float
        :math:`\lambda N`.
    eig_rtol : float
        Eigenvalues of :math:`K_{MM}` below this fraction of the largest are dropped.

    Returns
    -------
    Psi : Tensor of shape (N, r)
        :math:`K_{NM} A`.
    G : Tensor of shape (r, r)
        :math:`A^\top K_{MM} A`.
    A : Tensor of shape (M, r)
        :math:`\alpha = A \gamma`.
    """
    Kmm = gaussian_kernel(centres, centres, sigma)  # (M, M)
    s, V = torch.linalg.eigh(0.5 * (Kmm + Kmm.T))  # ascending
    keep = s > eig_rtol * s[-1]
    T = V[:, keep] / torch.sqrt(s[keep])  # (M, r): T^T K_MM T = I
    Phi = torch.cat([gaussian_kernel(X[lo: lo + block_size], centres, sigma) @ T
                     for lo in range(0, X.shape[0], block_size)])  # (N, r) Nystrom features
    Qb = torch.addmm(torch.eye(T.shape[1], dtype=X.dtype, device=X.device), Phi.T, Phi,
                     beta=2.0 * lam_n, alpha=curvature)  # (r, r) c Phi^T Phi + 2 lam N I
    L = torch.linalg.cholesky(0.5 * (Qb + Qb.T))
    eye = torch.eye(L.shape[0], dtype=X.dtype, device=X.device)
    Linv = torch.linalg.solve_triangular(L, eye, upper=False)
    A = T @ Linv.T  # (M, r)
    Psi = Phi @ Linv.T  # (N, r)
    G = Linv @ Linv.T  # (r, r) = A^T K_MM A
    return Psi, 0.5 * (G + G.T), A


# ------------------------------------------------------------------ solver
def _cg(hvp: Callable, b: torch.Tensor, rtol: torch.Tensor, max_iter: int) -> torch.Tensor:
    """Solve ``H x = b`` column by column (batched CG, H SPD): (r, B) -> (r, B)."""
    x = torch.zeros_like(b)
    res = b.clone()
    p = res.clone()
    rs = (res * res).sum(0)  # (B,)
    thresh = (rtol * torch.sqrt(rs)) ** 2
    for _ in range(max_iter):
        live = rs > thresh
        if not bool(live.any()):
            break
        Hp = hvp(p)
        pHp = (p * Hp).sum(0)
        ok = live & (pHp > 0)
        a = torch.where(ok, rs / torch.where(ok, pHp, 1.0), 0.0)
        x += a * p
        res -= a * Hp
        rs_new = (res * res).sum(0)
        beta = torch.where(ok, rs_new / torch.where(ok, rs, 1.0), 0.0)
        p = res + beta * p
        rs = torch.where(ok, rs_new, rs)
        thresh = torch.where(ok, thresh, rs)  # columns that broke down stop here
    return x


def newton_cg(
    Psi: torch.Tensor,
    G: torch.Tensor,
    r: torch.Tensor,
    d: torch.Tensor,
    lam_n: float,
    loss: Loss,
    *,
    tol: float = 1e-12,
    max_iter: int = 50,
    cg_max_iter: int = 200,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    r"""Minimise ``loss(Psi @ gamma) + lam_n gamma^T G gamma`` for every column of ``r``, ``d``.

    Parameters
    ----------
    Psi : Tensor of shape (N, k)
    G : Tensor of shape (k, k)
    r, d : Tensor of shape (N, B)
        Reference and data weights of B independent fits.
    lam_n : float
    loss : Loss
    tol : float
        Stop a column when its Newton decrement ``g^T H^{-1} g / 2`` is below
        ``tol * sum(r + d)``.

    Returns
    -------
    gamma : Tensor of shape (k, B)
    f : Tensor of shape (N, B)
        ``Psi @ gamma``.
    converged : ndarray of bool, shape (B,)
    n_iter : ndarray of int, shape (B,)
    """
    N, B = r.shape
    k = Psi.shape[1]
    gamma = torch.zeros(k, B, dtype=Psi.dtype, device=Psi.device)
    f = torch.zeros(N, B, dtype=Psi.dtype, device=Psi.device)
    converged = np.zeros(B, dtype=bool)
    n_iter = np.zeros(B, dtype=np.int64)
    stop = (tol * (r + d).sum(0)).cpu().numpy()  # (B,)
    active = np.arange(B)
    for _ in range(max_iter):
        if active.size == 0:
            break
        idx = torch.as_tensor(active, device=Psi.device)
        ra, da, fa, ga = r[:, idx], d[:, idx], f[:, idx], gamma[:, idx]
        gf, cf = loss.derivatives(fa, ra, da)  # (N, Ba) each
        Gg = G @ ga
        g = Psi.T @ gf + (2.0 * lam_n) * Gg  # (k, Ba)

        def hvp(v, cf=cf):
            return Psi.T @ (cf * (Psi @ v)) + (2.0 * lam_n) * (G @ v)

        gnorm = torch.sqrt((g * g).sum(0))
        p = _cg(hvp, -g, torch.clamp(torch.sqrt(gnorm), max=0.1), cg_max_iter)
        dec = -(g * p).sum(0)  # (Ba,) Newton decrement squared
        # Armijo backtracking, each column on its own
        Pp = Psi @ p  # (N, Ba)
        r0, r1, r2 = (ga * Gg).sum(0), (p * Gg).sum(0), (p * (G @ p)).sum(0)
        L0 = loss.value(fa, ra, da) + lam_n * r0
        step = torch.ones_like(dec)
        accepted = torch.zeros_like(dec, dtype=torch.bool)
        for _ls in range(60):
            Ln = loss.value(fa + step * Pp, ra, da) + lam_n * (r0 + 2.0 * step * r1 + step * step * r2)
            ok = torch.isfinite(Ln) & (Ln <= L0 - 1e-4 * step * dec.clamp(min=0.0))
            accepted |= ok
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, 0.5 * step)
        step = torch.where(accepted, step, 0.0)
        gamma[:, idx] = ga + step * p
        f[:, idx] = fa + step * Pp
        n_iter[active] += 1
        dec_np = dec.cpu().numpy()
        done = (dec_np <= 2.0 * stop[active]) | ~accepted.cpu().numpy()
        converged[active[done]] = dec_np[done] <= 2.0 * stop[active[done]]
        active = active[~done]
    return gamma, f, converged, n_iter


# ------------------------------------------------------------------ model
class KernelNPLM:
    """A fitted kernel NPLM log-ratio (the observed fit of :func:`nplm_kernel`).

    Attributes
    ----------
    centres_ : ndarray of shape (M, n_features)
        Nyström centres in original units.
    alpha_ : ndarray of shape (M,)
        Coefficients.
    sigma_ : float
        Kernel width in standardised units.
    statistic_ : float
        ``t`` of the fit.
    converged_ : bool
    n_iter_ : int
        Newton iterations.
    loss : str
    lam : float
    """

    def __init__(self, *, centres_std, alpha, sigma, standardizer, statistic, converged, n_iter, loss, lam):
        self._centres_std = np.asarray(centres_std, dtype=np.float64)
        self.standardizer = standardizer
        self.centres_ = standardizer.inverse(self._centres_std)
        self.alpha_ = np.asarray(alpha, dtype=np.float64)
        self.sigma_ = float(sigma)
        self.statistic_ = float(statistic)
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.loss = loss
        self.lam = float(lam)

    def log_ratio(self, X) -> np.ndarray:
        """``f(x)`` for every row of X (n, n_features): (n,), higher = more anomalous."""
        X, _, _ = check_array(X, name="X")
        check_n_features(self.centres_.shape[1], X.shape[1], name="X")
        Xs = torch.as_tensor(self.standardizer.transform(X), dtype=_DT)
        K = gaussian_kernel(Xs, torch.as_tensor(self._centres_std, dtype=_DT), self.sigma_)
        return (K @ torch.as_tensor(self.alpha_, dtype=_DT)).numpy()


# ------------------------------------------------------------------ public API
@dataclass(frozen=True)
class _Fitter:
    """What fits on one pool share: the basis and the solver settings."""

    Psi: torch.Tensor
    G: torch.Tensor
    A: torch.Tensor
    centres: torch.Tensor
    lam_n: float
    loss: Loss
    tol: float
    max_iter: int

    def fit(self, r: np.ndarray, d: np.ndarray):
        dev = self.Psi.device
        rw = torch.as_tensor(r, dtype=_DT, device=dev)
        dw = torch.as_tensor(d, dtype=_DT, device=dev)
        gamma, f, conv, n_iter = newton_cg(self.Psi, self.G, rw, dw, self.lam_n, self.loss,
                                           tol=self.tol, max_iter=self.max_iter)
        return nplm_statistic(f, rw, dw).cpu().numpy(), gamma, conv, n_iter


def _fitter(X: np.ndarray, sigma, n_centres, lam, loss, tol, max_iter, seed, n_data, device) -> _Fitter:
    n = X.shape[0]
    M = min(n_centres, n)
    pick = np.sort(np.random.default_rng(C.seq(seed, C.CENTRE_KEY)).choice(n, size=M, replace=False))
    Xt = torch.as_tensor(X, dtype=_DT, device=device)
    centres = Xt[pick]
    lam_n = lam * n
    c = loss.curvature0(float(n_data), float(n_data), float(n))
    Psi, G, A = nystrom_basis(Xt, centres, sigma, curvature=c, lam_n=lam_n)
    return _Fitter(Psi, G, A, centres, lam_n, loss, tol, max_iter)


def _chunks(n: int, size: int):
    return [list(range(lo, min(n, lo + size))) for lo in range(0, n, size)]


def _settings(n_centres, lam, tol, max_iter, toy_chunk, loss, aggregation):
    """Validated settings of :func:`nplm_kernel`; ``loss`` comes back as its :class:`Loss`."""
    n_centres = check_int(n_centres, name="n_centres", minimum=1)
    lam = check_real(lam, name="lam", positive=True)
    tol = check_real(tol, name="tol", positive=True)
    max_iter = check_int(max_iter, name="max_iter", minimum=1)
    toy_chunk = check_int(toy_chunk, name="toy_chunk", minimum=1)
    loss_fn = LOSSES[check_choice(loss, LOSSES, name="loss")]
    check_choice(aggregation, AGGREGATIONS, name="aggregation")
    return n_centres, lam, tol, max_iter, toy_chunk, loss_fn


def _widths(problem: C.TwoSample, sigma, sigma_quantile) -> list[float]:
    """Kernel widths: ``sigma`` checked, or quantiles of the pairwise distances of the
    reference (``resample``) or of the pooled sample (``permutation``: label-free)."""
    if sigma is not None:
        return C.as_float_list(sigma, name="sigma", check=check_real, positive=True)
    qs = C.as_float_list(sigma_quantile, name="sigma_quantile", check=check_fraction, open_interval=True)
    rng = np.random.default_rng(C.seq(problem.seed, C.WIDTH_KEY))
    return [float(s) for s in np.atleast_1d(pairwise_distance_quantiles(problem.width_rows(), qs, rng=rng))]


def _observed_fit(problem: C.TwoSample, observed, args: tuple, want_model: bool):
    """Observed fit of one width.

    Returns its statistic, its :class:`KernelNPLM` (None unless ``want_model``), whether
    it converged, and its fitter when the toys share its pool and basis (``permutation``),
    else None.
    """
    X_obs, r_obs, d_obs = observed
    obs_fit = _fitter(X_obs, *args)
    t, gamma, conv, n_it = obs_fit.fit(r_obs[:, None], d_obs[:, None])
    model = None
    if want_model:
        sigma, _, lam, loss_fn = args[:4]
        alpha = (obs_fit.A @ gamma[:, 0]).cpu().numpy()
        model = KernelNPLM(centres_std=obs_fit.centres.cpu().numpy(), alpha=alpha, sigma=sigma,
                           standardizer=problem.standardizer, statistic=t[0], converged=conv[0],
                           n_iter=n_it[0], loss=loss_fn.name, lam=lam)
    return t[0], model, bool(conv[0]), obs_fit if problem.mode == "permutation" else None


def _toy_fits(problem: C.TwoSample, args: tuple, toy_fit: _Fitter | None, out: np.ndarray,
              toy_chunk: int) -> dict:
    """Statistics of every toy for one width, written into ``out`` (n_toys,); the width's settings.

    ``toy_fit`` is the observed fitter for ``permutation`` toys; None builds one on the pool.
    """
    sigma, _, lam, loss_fn, tol = args[:5]
    if toy_fit is None:
        toy_fit = _fitter(problem.pool(), *args)
    n_bad = 0
    for ids in _chunks(out.shape[0], toy_chunk):
        r, d = problem.toys(ids)
        t, _, conv, _ = toy_fit.fit(r, d)
        out[ids] = t
        n_bad += int((~conv).sum())
    if n_bad:
        warnings.warn(f"nplm_kernel: {n_bad} of {out.shape[0]} toys did not converge (sigma={sigma:.3g})",
                      ConvergenceWarning, stacklevel=2)
    return {"sigma": sigma, "n_centres": int(toy_fit.centres.shape[0]), "lam": lam, "loss": loss_fn.name,
            "rank": int(toy_fit.Psi.shape[1]), "tol": tol}


def nplm_kernel(
    reference,
    data,
    *,
    n_null: int = 100,
    seed: int = 0,
    null: str = "auto",
    reference_weight=None,
    n_centres: int = 1000,
    sigma=None,
    sigma_quantile=0.9,
    lam: float = 1e-6,
    loss: str = "logistic",
    aggregation: str = "minp",
    toy_chunk: int = 64,
    tol: float = 1e-12,
    max_iter: int = 50,
    device=None,
) -> TestResult:
    r"""Kernel NPLM test (Nyström Gaussian-kernel logistic regression), calibrated on null toys.

    Parameters
    ----------
    reference : array-like of shape (n_reference, n_features)
    data : array-like of shape (n_data, n_features)
    n_null : int
        Number of null toys.
    seed : int
    null : {"auto", "resample", "permutation"}
        How toys are made (:mod:`sparker.core.nulls`), as in :func:`sparker.test`.
    reference_weight : array-like of shape (n_reference,), optional
        Per-point reference weights (rescaled to sum to ``n_data``; resampling only).
    n_centres : int
        Nyström centres ``M_c`` drawn from the pooled sample (capped by its size).
    sigma : float or list of float, optional
        Kernel width(s) in standardised units; default the ``sigma_quantile``
        quantile(s) of the reference's pairwise distances (of the pooled
        sample's with ``permutation`` toys).
    sigma_quantile : float or list of float
        Used when ``sigma`` is None (0.9, as in the paper).
    lam : float
        Ridge :math:`\lambda` (the penalty is :math:`\lambda N \alpha^\top K_{MM} \alpha`).
    loss : {"logistic", "nplm"}
        Fitting loss (see the module notes); ``t`` is the NPLM statistic either way.
    aggregation : {"minp", "fisher", "meanp"}
        Combination of several widths on the same toys.
    toy_chunk : int
        Toys solved together (memory about ``10 * N * toy_chunk`` doubles).
    tol, max_iter : float, int
        Newton stopping rule (decrement below ``tol`` times the fit's total
        weight) and iteration cap.
    device : str or torch.device, optional

    Returns
    -------
    TestResult
        ``model`` is the observed fit of the first width (:class:`KernelNPLM`);
        ``chi2`` is fitted for a single width.
    """
    problem = C.prepare(reference, data, n_null=n_null, seed=seed, null=null,
                        reference_weight=reference_weight, method="nplm_kernel", device=device)
    n_centres, lam, tol, max_iter, toy_chunk, loss_fn = _settings(n_centres, lam, tol, max_iter, toy_chunk,
                                                                   loss, aggregation)
    sigmas = _widths(problem, sigma, sigma_quantile)
    t_obs, null_t = np.empty(len(sigmas)), np.empty((int(n_null), len(sigmas)))
    observed = problem.observed()
    settings, model, obs_converged = [], None, True
    for k, s in enumerate(sigmas):
        args = (s, n_centres, lam, loss_fn, tol, max_iter, problem.seed, problem.n_data, problem.device)
        t_obs[k], fitted, conv, toy_fit = _observed_fit(problem, observed, args, k == 0)
        if k == 0:
            model, obs_converged = fitted, conv
        settings.append(_toy_fits(problem, args, toy_fit, null_t[:, k], toy_chunk))
        del toy_fit  # one basis in memory at a time
    statistic, null_dist, per_config = C.combine(t_obs, null_t, aggregation)
    if per_config is not None:
        per_config["sigmas"] = sigmas
    return C.make_result("nplm_kernel", statistic, null_dist, problem, settings=settings,
                         per_config=per_config, chi2=True, model=model, converged=obs_converged)
