r"""Batched full-batch trainer for SparKer kernel ensembles.

B independent problems ("replicas") share one pool of points X (N x d). Replica
b gives every pool point a reference weight r_b(x) >= 0 and a data weight
d_b(x) >= 0, and minimises the extended-likelihood (NPLM) loss

.. math::

    L_b = \sum_x r_b(x)\,(e^{f_b(x)} - 1) - d_b(x)\, f_b(x),
    \qquad f_b(x) = \sum_i a_{bi}\, \phi_i(x; \mu_b, \sigma)

over its own centres :math:`\mu_b` (M x d) and amplitudes :math:`a_b` (M).
The observed fit is one replica (r = w on reference rows, d = 1 on data rows);
null toys are more replicas over the same pool.

Gradients are analytic (no autograd graph).  With :math:`g = r e^{f} - d` and
:math:`G_{bi}(x) = g_b(x)\, \partial f_b / \partial l_{bi}(x)`:

.. math::

    \partial L / \partial a_{bi} = \sum_x g_b(x) \phi_{bi}(x), \qquad
    \partial L / \partial \mu_{bi} = \sigma^{-2}
        \Big(\sum_x G_{bi}(x)\, x - \mu_{bi} \sum_x G_{bi}(x)\Big).

Per step this costs two (N x d) by (d x B*M) products plus O(N B M)
element-wise work, done over row chunks so memory stays O(chunk x B x M);
chunk sums are added in float64, so the result does not depend on the chunking
beyond float rounding.  Adam is element-wise and every replica's loss depends
only on its own parameters, so training B replicas together gives each the
same updates as training it alone.

See ``docs/method.md``, sections "The loss and training" and "Width annealing";
re-seeding is in :mod:`sparker.model.reseed` (section "Re-seeding").  The
keyword defaults of :func:`train_replicas` are those of
:class:`~sparker.config.TrainingConfig`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import TrainingConfig, resolve_data_batch, resolve_reference_batch
from ..core.kernels import augment_centres, augment_pool, get_competition
from ..core.schedules import MIN_WIDTH
from ..core.threads import adapted_threads
from .batches import RowBatches, batch_loss_and_grad
from .polish import batch_rows, pool_rows, solve_amplitudes as solve_amplitudes_at, solve_epoch
from .reseed import candidate_block, candidate_rows, reseed_kernels
from .step import centre_gradient, chunk_terms as _chunk_terms, terms as _terms

__all__ = ["TrainResult", "train_replicas", "default_chunk_rows", "chunk_elements", "evaluate_loss"]

log = logging.getLogger(__name__)

#: The training defaults, written once in :class:`~sparker.config.TrainingConfig`.
_DEFAULT = TrainingConfig()

#: element budget (rows x B x M) of one chunk's activations: a few MB, cache friendly
_CHUNK_ELEMENTS = 1 << 18


#: on a CUDA device, the float32 temporaries of one chunk (about 12 arrays of rows x B*M)
#: may take this fraction of the free device memory ...
_GPU_MEMORY_FRACTION = 0.25
#: ... up to this many elements per array (256 MB): beyond it launches are already amortised
_GPU_CHUNK_ELEMENTS_MAX = 1 << 26


def chunk_elements(device=None) -> int:
    """Element budget (rows x columns) of one chunk's activations on ``device``.

    On the CPU, ~1 MB of float32 keeps the chunk in cache.  On a CUDA device small
    chunks would leave the GPU idle between kernel launches, so the budget is set
    from the free device memory instead (a quarter of it for ~12 temporaries),
    capped at 2**26 elements.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cuda":
        return _CHUNK_ELEMENTS
    free, _ = torch.cuda.mem_get_info(dev)
    return int(min(_GPU_CHUNK_ELEMENTS_MAX, max(_CHUNK_ELEMENTS, free * _GPU_MEMORY_FRACTION / (4 * 12))))


def default_chunk_rows(n_rows: int, n_columns: int, device=None) -> int:
    """Rows per chunk so that one (rows x ``n_columns``) float32 activation fits
    :func:`chunk_elements` (~1 MB on the CPU, sized from free memory on a GPU)."""
    return int(min(n_rows, max(256, chunk_elements(device) // max(1, n_columns))))


@dataclass
class TrainResult:
    """What :func:`train_replicas` returns (all tensors on the CPU, float64).

    Attributes
    ----------
    centres : Tensor of shape (B, M, d)
        Final centres (standardised units).
    amplitudes : Tensor of shape (B, M)
    sigma : float
        Final width.
    statistic : ndarray of shape (B,)
        ``t = -2 L`` at the final parameters, computed in float64.
    loss : ndarray of shape (epochs, B)
        Loss before each update.
    history : dict
        ``epoch`` (R,), ``sigma`` (R,), ``loss`` (R, B_rec), ``centres``
        (R, B_rec, M, d), ``amplitudes`` (R, B_rec, M) for the recorded
        replicas ``replicas`` (B_rec,), every ``record_every`` epochs and at
        the end.
    n_reseeded : ndarray of int, shape (B,)
        Kernels moved by re-seeding, per replica.
    converged : ndarray of bool, shape (B,)
        Whether the loss changed by less than ``max(0.5, tol |L|)`` (0.5 in loss
        units is one unit of t)
        over the last tenth of the epochs.
    """

    centres: torch.Tensor
    amplitudes: torch.Tensor
    sigma: float
    statistic: np.ndarray
    loss: np.ndarray
    history: dict = field(default_factory=dict)
    converged: np.ndarray | None = None
    n_reseeded: np.ndarray | None = None


class _Kernels:
    """Chooses between eager hot-path functions and torch.compile'd ones.

    ``fused``: "eager", "compile" or "auto" (compile when the run is large
    enough for the one-off compilation to pay, falling back to eager if
    compilation is unavailable).  ``get`` returns the chunk function of the
    training step, the candidate-kernel function of re-seeding and the element-wise
    part of the step on gathered rows (``reference_batch``).
    """

    _compiled: dict = {}  # one compiled wrapper per function (torch caches the code itself)

    @classmethod
    def get(cls, fused: str, work: float):
        if fused not in ("auto", "eager", "compile"):
            raise ValueError(f"fused: expected 'auto', 'eager' or 'compile', got {fused!r}")
        eager = (_chunk_terms, candidate_block, _terms)
        if fused == "eager" or (fused == "auto" and work < _COMPILE_WORK):
            return eager
        for fn in eager:
            if fn.__name__ not in cls._compiled:
                cls._compiled[fn.__name__] = _Compiled(fn)
        return tuple(cls._compiled[fn.__name__] for fn in eager)


class _Compiled:
    """torch.compile'd version of ``fn``; falls back to eager for good on failure."""

    def __init__(self, fn):
        self.eager = fn
        self.fn = torch.compile(fn, dynamic=True)

    def __call__(self, *args):
        if self.fn is not self.eager:
            try:
                return self.fn(*args)
            except Exception as exc:  # no compiler tool chain, unsupported platform
                log.warning("torch.compile failed (%s: %s); using the eager trainer",
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                self.fn = self.eager
        return self.eager(*args)


#: elements x epochs above which "auto" compiles the chunk function: a block of 16
#: calibration toys at N = 20,000, M = 8, 1000 epochs (2.6e9) compiles, a single fit
#: at that size (1.6e8) does not; the compiled code is reused by later blocks
_COMPILE_WORK = 1e9


def _loss_and_grad(Xa, chunks, centres, amps, sigma, r, dw, off, comp, need_grad=True, fn=_chunk_terms,
                   Xl=None):
    """Loss (B,), amplitude gradient (B, M) and centre gradient (B, M, d), float64.

    ``Xl``: the pool for the log-kernels (:func:`logit_pool`; default ``Xa``).
    """
    B, M, d = centres.shape
    Xl = Xa if Xl is None else Xl
    Ca = augment_centres(centres.transpose(0, 1).to(Xl.dtype), sigma)  # (d+2, M*B), kernel-major
    aT = amps.T.to(Xa.dtype).contiguous()  # (M, B)
    loss = torch.zeros(B, dtype=torch.float64, device=Xa.device)
    ga = torch.zeros(M, B, dtype=torch.float64, device=Xa.device)
    gs = torch.zeros(M * B, dtype=torch.float64, device=Xa.device)
    gx = torch.zeros(M * B, d, dtype=torch.float64, device=Xa.device)
    for lo, hi in chunks:
        o = None if off is None else off[lo:hi]
        terms = fn(Xa[lo:hi], Xl[lo:hi], Ca, aT, r[lo:hi], dw[lo:hi], o, comp.k_power, comp.softmax,
                   need_grad)
        loss += terms[0]
        if need_grad:
            ga += terms[1]
            gs += terms[2]
            gx += terms[3]
    if not need_grad:
        return loss, None, None
    return loss, ga.T, centre_gradient(gs, gx, centres, sigma)


def evaluate_loss(X, centres, amplitudes, sigma, ref_weight, data_weight, *, competition,
                  offset=None, chunk_rows=None) -> np.ndarray:
    """NPLM loss of each replica at given parameters, entirely in float64.

    Parameters
    ----------
    X : Tensor of shape (N, d)
    centres : Tensor of shape (B, M, d)
    amplitudes : Tensor of shape (B, M)
    ref_weight, data_weight : Tensor of shape (N, B)
    offset : Tensor of shape (N, B), optional

    Returns
    -------
    ndarray of shape (B,)
    """
    comp = get_competition(competition) if isinstance(competition, str) else competition
    B, M, _ = centres.shape
    N = X.shape[0]
    step = chunk_rows or default_chunk_rows(N, B * M, X.device)
    Ca = augment_centres(centres.transpose(0, 1).to(torch.float64), sigma)  # kernel-major
    a64 = amplitudes.T.to(torch.float64).contiguous()  # (M, B)
    total = torch.zeros(B, dtype=torch.float64, device=X.device)
    for lo in range(0, N, step):
        hi = min(N, lo + step)
        Xa = augment_pool(X[lo:hi].to(torch.float64))
        o = None if offset is None else offset[lo:hi].to(torch.float64)
        total += _chunk_terms(
            Xa, Xa, Ca, a64, ref_weight[lo:hi].to(torch.float64), data_weight[lo:hi].to(torch.float64),
            o, comp.k_power, comp.softmax, need_grad=False,
        )[0]
    return total.cpu().numpy()


#: Largest error of a float32 log-kernel the trainer accepts (about 1% of a kernel's value).
LOGIT_TOLERANCE = 1e-2


def logit_pool(Xa: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """The augmented pool in which the log-kernels are computed: ``Xa``, or a float64 copy.

    ``l = x.mu / s2 - |x|^2 / (2 s2) - |mu|^2 / (2 s2)`` in float32 cancels: near a kernel
    (where it matters) its error is about ``eps32 |x|^2 / s2``.  Far from the origin in
    units of the width (a narrow kernel in the tail of a standardised 1-d sample: |x| = 6.5,
    s = 0.003 gives about 0.5) that error makes the loss and gradients jitter by whole units
    of t from epoch to epoch; there the product is done in float64, with ``|x|^2`` in
    float64 too (the rest of the step stays float32).
    """
    if Xa.dtype == torch.float64 or not len(Xa):
        return Xa
    err = torch.finfo(torch.float32).eps * float(Xa[:, -1].max()) / sigma_min**2
    return augment_pool(Xa[:, :-2].double()) if err > LOGIT_TOLERANCE else Xa


class _Adam:
    """Element-wise Adam on float64 tensors of shape (B, M, ...), one step size each.

    Step counts are kept per kernel (b, i), so that a re-seeded kernel restarts
    with fresh moments and its own bias correction.
    """

    def __init__(self, params, lrs, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lrs, self.betas, self.eps = params, lrs, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = torch.zeros(params[0].shape[:2], dtype=torch.float64, device=params[0].device)

    def reset(self, index):
        self.t[index] = 0.0
        for m, v in zip(self.m, self.v):
            m[index] = 0.0
            v[index] = 0.0

    def step(self, grads, lr_scale=(1.0, 1.0)):
        self.t += 1.0
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t  # (B, M)
        for p, g, m, v, lr, s in zip(self.params, grads, self.m, self.v, self.lrs, lr_scale):
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            shape = c1.shape + (1,) * (p.dim() - 2)
            denom = (v / c2.view(shape)).sqrt_().add_(self.eps)
            p.addcdiv_(m / c1.view(shape), denom, value=-lr * s)


def train_replicas(
    X: torch.Tensor,
    ref_weight: torch.Tensor,
    data_weight: torch.Tensor,
    init_centres: torch.Tensor,
    widths: np.ndarray,
    *,
    competition: str = _DEFAULT.competition,
    lr_centres: float = _DEFAULT.lr_centres,
    lr_amplitudes: float = _DEFAULT.lr_amplitudes,
    centre_lr_follows_width: bool = True,
    a_max: float = _DEFAULT.a_max,
    l1: float = _DEFAULT.l1,
    reseed: bool = _DEFAULT.reseed,
    reseed_at=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    reseed_margin: float = 1.0,
    solve_amplitudes: bool = _DEFAULT.solve_amplitudes,
    n_candidates: int = 256,
    offset: torch.Tensor | None = None,
    augmented: torch.Tensor | None = None,
    chunk_rows: int | None = _DEFAULT.chunk_rows,
    record_every: int = _DEFAULT.record_every,
    record_replicas=(0,),
    convergence_tol: float = 1e-2,
    fused: str = "auto",
    callback=None,
    reference_batch: int | None = None,
    data_batch: int | str | None = None,
    reference_rows: torch.Tensor | None = None,
    batch_rng: np.random.Generator | None = None,
) -> TrainResult:
    """Train B kernel ensembles at once, one per column of the weight matrices.

    Parameters
    ----------
    X : Tensor of shape (N, d)
        Shared pool (standardised units), float32 (or float64 for exactness checks).
    ref_weight, data_weight : Tensor of shape (N, B)
        Per-replica reference and data weights of every pool point.
    init_centres : Tensor of shape (B, M, d)
        Starting centres; amplitudes start at 0, so every replica starts at H0.
    widths : ndarray of shape (epochs,)
        Kernel width at every epoch (see :mod:`sparker.core.schedules`).
    competition : str
        Registered competition mode (:data:`sparker.core.kernels.COMPETITIONS`).
    lr_centres, lr_amplitudes : float
        Adam step sizes.  With ``centre_lr_follows_width`` the per-coordinate
        centre step is ``lr_centres * sigma(epoch) / sqrt(d)``, so a centre
        moves by about ``lr_centres`` widths per step in any dimension (Adam
        normalises every coordinate, so a per-coordinate step ``s`` moves a
        centre by about ``s * sqrt(d)``).
    a_max : float
        Amplitudes are clamped to ``[-a_max, a_max]`` after every step.
    l1 : float
        L1 penalty on the amplitudes (0 = off), as ``TrainingConfig.l1``.
    reseed : bool
        Re-seed each replica's least useful kernel onto the largest unexplained
        excess or deficit at the epochs ``reseed_at`` (fractions of ``epochs``),
        when that gains more than ``reseed_margin`` in loss units; candidates
        are up to ``n_candidates`` data points per replica.
    solve_amplitudes : bool
        At the epoch where the width schedule ends (90% of ``epochs``, after that epoch's
        re-seeding), set the amplitudes to the minimum of each replica's penalised loss for
        the current centres and width (:func:`~sparker.model.polish.solve_amplitudes`: on
        the whole pool, or with ``reference_batch`` on every data row and re-seeding's
        reference rows), and clear their Adam momentum.
    offset : Tensor of shape (N, B), optional
        Fixed log ratio added to ``f`` (earlier layers of a multi-scale stack).
    augmented : Tensor of shape (N, d+2), optional
        ``augment_pool(X)`` when the caller already holds it: no second copy of the pool.
    chunk_rows : int, optional
        Rows per chunk (default: ~1 MB of activations).
    record_every : int
        Stride (epochs) of the recorded trajectory; 0 records nothing.
    record_replicas : sequence of int
        Which replicas' centres and amplitudes are recorded.
    fused : {"auto", "eager", "compile"}
        Whether the chunk computation is compiled with ``torch.compile``
        (fused element-wise work); "auto" compiles only large runs.
    callback : callable(epoch, loss), optional
    reference_batch : int, "auto" or None
        Reference rows per epoch (None: all of them; "auto": see
        :func:`~sparker.config.resolve_reference_batch`).  Each epoch then evaluates a
        slice of ``reference_batch`` rows of ``reference_rows``, shared by the replicas and
        weighted to estimate the reference term without bias, and the data rows of every
        replica (:class:`~sparker.model.batches.RowBatches`; ``docs/method.md``, "Reference
        and data batches"); ``loss`` then holds these estimates, while the settling check
        and the statistic use the whole pool, and re-seeding scores its best candidates on
        the whole reference (at most ``RESEED_REFERENCE_ROWS`` rows of it).
    data_batch : int, "auto" or None
        Data rows per epoch and replica (None: all of them; "auto": see
        :func:`~sparker.config.resolve_data_batch`): a replica with more data rows reads a
        fresh slice of this many, weighted to estimate its data term without bias; the
        statistic and the settling check use every row, and re-seeding scores its best
        candidates on every row.
    reference_rows : Tensor of bool, shape (N,), optional
        The rows the slices are cut from; they must include every row with a reference
        weight (default: the rows with a reference weight in some replica).  Observation
        and toys must be given the same law (resample toys: the whole pool; the observed
        fit: its reference rows, held-out ones included).
    batch_rng : numpy.random.Generator, optional
        Orders the slices (default: ``default_rng(0)``).

    Returns
    -------
    TrainResult
    """
    comp = get_competition(competition)
    widths = _checked_widths(X, ref_weight, data_weight, init_centres, widths, augmented)
    N = X.shape[0]
    B, M, _ = init_centres.shape
    epochs = len(widths)
    dtype = X.dtype
    Xa = augment_pool(X) if augmented is None else augmented  # (N, d+2), built once per fit
    Xl = logit_pool(Xa, float(widths.min())) if epochs else Xa  # where the log-kernels are computed
    r = ref_weight.to(dtype).contiguous()
    dw = data_weight.to(dtype).contiguous()
    off = None if offset is None else offset.to(dtype).contiguous()
    step = chunk_rows or default_chunk_rows(N, B * M, X.device)
    chunks = [(lo, min(N, lo + step)) for lo in range(0, N, step)]

    centres = init_centres.to(device=X.device, dtype=torch.float64).clone()
    amps = torch.zeros(B, M, dtype=torch.float64, device=X.device)
    opt = _Adam([centres, amps], [lr_centres, lr_amplitudes])

    rec = _Recorder(list(record_replicas) if record_every else [], centres, amps)
    losses = np.empty((epochs, B))

    # epoch -> index of the re-seeding there (each call scores its own candidate subset)
    reseed_step = {e: i for i, e in enumerate(sorted({int(round(q * epochs)) for q in reseed_at}))
                   } if reseed and epochs else {}
    n_moved = np.zeros(B, dtype=np.int64)
    batches = None
    if (reference_batch is not None or data_batch is not None) and epochs:
        if reference_rows is None:
            reference_rows = (r > 0).any(1)
        elif reference_rows.shape != (N,) or bool(((r > 0).any(1) & ~reference_rows.to(r.device)).any()):
            raise ValueError("reference_rows: expected a boolean mask of the pool's N rows that includes "
                             "every row with a reference weight")
        n_ref = int(reference_rows.sum())
        m = resolve_reference_batch(reference_batch, n_ref)
        dm = resolve_data_batch(data_batch, int((dw > 0).sum(0).max()))
        if m is not None or dm is not None:
            batches = RowBatches(Xa, Xl, r, dw, off, n_ref if m is None else m, reference_rows.to(r.device),
                                 batch_rng if batch_rng is not None else np.random.default_rng(0), data_m=dm)
            if batches.data_m is None and batches.rows >= N:  # nothing to save: the whole pool is no more rows
                batches = None
    if batches is not None:
        step_g = default_chunk_rows(batches.rows, B * M, X.device)
        settle_at = set(np.unique(np.linspace(_settle_start(epochs, max(reseed_step, default=0)), epochs - 1,
                                              _SETTLE_CHECKS).round().astype(int)).tolist())
        exact = {}
    fn, block, terms = _Kernels.get(fused, float(N if batches is None else batches.rows) * B * M * epochs)

    sqrt_d = math.sqrt(centres.shape[-1])
    solve_at = solve_epoch(epochs) if solve_amplitudes else -1
    with adapted_threads(X.device):  # fewer torch threads while other processes keep the CPU's cores busy
        for e in range(epochs):
            sigma = float(widths[e])
            if e in reseed_step:
                cand_idx = candidate_rows(dw, n_candidates, step=reseed_step[e])
                n_moved += reseed_kernels(Xl, chunks, centres, amps, sigma, r, dw, off, comp, opt, cand_idx,
                                          reseed_margin, budget=chunk_elements(X.device), block=block,
                                          batches=batches)
            if e == solve_at:
                rows = (pool_rows(Xa, Xl, r, dw, off, chunks) if batches is None
                        else batch_rows(batches, chunks, r, off))
                amps.copy_(solve_amplitudes_at(rows, centres, amps, sigma, comp, l1=l1, a_min=-a_max,
                                               a_max=a_max, dtype=dtype))
                opt.m[1].zero_()  # no momentum carried past the solution
            if batches is None:
                loss, ga, gmu = _loss_and_grad(Xa, chunks, centres, amps, sigma, r, dw, off, comp, fn=fn, Xl=Xl)
            else:
                if e in settle_at:  # the settling check looks at the whole pool's loss
                    exact[e] = _loss_and_grad(Xa, chunks, centres, amps, sigma, r, dw, off, comp, need_grad=False,
                                              fn=fn, Xl=Xl)[0].cpu().numpy()
                loss, ga, gmu = batch_loss_and_grad(batches, step_g, centres, amps, sigma, comp, fn, terms)
            loss_np = loss.cpu().numpy()
            losses[e] = loss_np
            if rec.replicas and e % record_every == 0:
                rec.record(e, sigma, loss_np)
            if l1:
                ga = ga + l1 * torch.sign(amps)
            # Adam moves every coordinate by about its step, a centre by sqrt(d) times it: a step
            # of lr * sigma / sqrt(d) per coordinate moves a centre by about lr * sigma
            opt.step([gmu, ga], lr_scale=(sigma / sqrt_d if centre_lr_follows_width else 1.0, 1.0))
            amps.clamp_(-a_max, a_max)
            if callback is not None:
                callback(e, loss_np)

    sigma = float(widths[-1]) if epochs else 1.0
    final = evaluate_loss(
        X, centres, amps, sigma, r, dw, competition=comp, offset=off, chunk_rows=step
    )
    if rec.replicas:
        rec.record(epochs, sigma, final)
    if batches is None:
        converged = _settled(losses, final, convergence_tol, since=max(reseed_step, default=0))
    else:
        converged = _spread_settled(np.asarray([exact[e] for e in sorted(exact)]), final, convergence_tol)
    history = rec.arrays()
    history["n_reseeded"] = n_moved[rec.replicas]
    return TrainResult(
        centres=centres.cpu(),
        amplitudes=amps.cpu(),
        sigma=sigma,
        statistic=-2.0 * final,
        loss=losses,
        history=history,
        converged=converged,
        n_reseeded=n_moved,
    )


def _checked_widths(X, ref_weight, data_weight, init_centres, widths, augmented) -> np.ndarray:
    """Shape checks of :func:`train_replicas`' inputs; the widths as float64, floored at MIN_WIDTH."""
    N, d = X.shape
    B, _, d2 = init_centres.shape
    if d2 != d or ref_weight.shape != (N, B) or data_weight.shape != (N, B):
        raise ValueError(
            f"shape mismatch: X {tuple(X.shape)}, centres {tuple(init_centres.shape)}, "
            f"ref_weight {tuple(ref_weight.shape)}, data_weight {tuple(data_weight.shape)}"
        )
    widths = np.asarray(widths, dtype=np.float64)
    if len(widths) and widths.min() < MIN_WIDTH:
        log.warning("kernel widths down to %.3g are below the float32 resolution; using %g instead",
                    widths.min(), MIN_WIDTH)
        widths = np.maximum(widths, MIN_WIDTH)
    if augmented is not None and (augmented.shape != (X.shape[0], X.shape[1] + 2)
                                  or augmented.dtype != X.dtype or augmented.device != X.device):
        raise ValueError(f"augmented: expected augment_pool(X), shape {(X.shape[0], X.shape[1] + 2)}, "
                         f"{X.dtype} on {X.device}; got {tuple(augmented.shape)}, {augmented.dtype}")
    return widths


class _Recorder:
    """Trajectory of the recorded replicas: epoch, width, loss, centres, amplitudes.

    ``centres`` (B, M, d) and ``amps`` (B, M) are the trainer's parameter tensors,
    read (copied) at every :meth:`record`.
    """

    def __init__(self, replicas: list[int], centres: torch.Tensor, amps: torch.Tensor):
        self.replicas, self.centres, self.amps = replicas, centres, amps
        self.hist = {"epoch": [], "sigma": [], "loss": [], "centres": [], "amplitudes": []}

    def record(self, e: int, sigma: float, loss_b: np.ndarray) -> None:
        rec = self.replicas
        self.hist["epoch"].append(e)
        self.hist["sigma"].append(sigma)
        self.hist["loss"].append(loss_b[rec])
        self.hist["centres"].append(self.centres[rec].cpu().numpy().copy())  # (B_rec, M, d)
        self.hist["amplitudes"].append(self.amps[rec].cpu().numpy().copy())  # (B_rec, M)

    def arrays(self) -> dict:
        """The trajectory as arrays, plus ``replicas`` (B_rec,)."""
        history = {k: np.asarray(v) for k, v in self.hist.items()}
        history["replicas"] = np.asarray(self.replicas, dtype=np.int64)
        return history


#: whole-pool losses the settling check of a fit with ``reference_batch`` looks at
_SETTLE_CHECKS = 11


def _settle_start(epochs: int, since: int) -> int:
    """First epoch of the settling window: the last tenth of the epochs, or the second half of
    those after ``since`` (the last re-seeding, which moves a kernel on purpose) when shorter."""
    return max(0, min(max(epochs - max(2, epochs // 10), since + (epochs - since) // 2), epochs - 2))


def _settled(losses: np.ndarray, final: np.ndarray, tol: float, since: int = 0) -> np.ndarray:
    """Whether each replica's loss settled at the end of training, shape (B,): see
    :func:`_spread_settled`, over the window of :func:`_settle_start`."""
    epochs, B = losses.shape
    tail = losses[_settle_start(epochs, since):] if epochs >= 2 else np.zeros((1, B))
    return _spread_settled(tail, final, tol)


def _spread_settled(tail: np.ndarray, final: np.ndarray, tol: float) -> np.ndarray:
    """Settled: the losses ``tail`` (R, B) of the settling window moved by less than ``tol``
    of the final loss, or by less than 0.5 (one unit of t)."""
    spread = tail.max(0) - tail.min(0)
    return spread <= np.maximum(0.5, tol * np.abs(final))
