"""Synthetic scenarios drawn from known distributions: ``square2d``, ``expo1d``, ``gauss_highd``.

They need only NumPy; see :mod:`sparker.scenarios` for the conventions every generator
follows.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_bool, check_choice, check_fraction, check_int, check_real
from ._common import as_f64, count_anomalous, random_streams, make_truth
from .registry import register

__all__ = ["EXPO1D_SIGNALS", "SQUARE2D_CENTRES", "expo1d", "gauss_highd", "square2d"]

# ---------------------------------------------------------------------------
# square2d
# ---------------------------------------------------------------------------

SQUARE2D_CENTRES = ((0.25, 0.3), (0.7, 0.75), (0.75, 0.25))


@register("square2d")
def square2d(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_background: int = 2_000,
    n_per_clump: int = 30,
    clump_std: float = 0.02,
    centres=SQUARE2D_CENTRES,
):
    """Uniform unit square; the data add small Gaussian clumps (paper, fig. 4).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points, uniform on [0, 1]^2.
    n_background : int, default=2_000
        Uniform data points.
    n_per_clump : int, default=30
        Points in each Gaussian clump; 0 gives a null sample.
    clump_std : float, default=0.02
        Standard deviation of each clump, per coordinate.
    centres : array-like of shape (k, 2), default ((0.25, 0.3), (0.7, 0.75), (0.75, 0.25))
        Clump centres.

    Returns
    -------
    reference : ndarray of shape (n_reference, 2)
    data : ndarray of shape (n_background + k * n_per_clump, 2)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` are the clump centres.
    """
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_background = check_int(n_background, name="n_background", minimum=0)
    n_per_clump = check_int(n_per_clump, name="n_per_clump", minimum=0)
    clump_std = check_real(clump_std, name="clump_std", positive=True)
    try:
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"centres: expected an array of shape (k, 2), got {centres!r}") from err
    if n_background + n_per_clump * len(centres) < 1:
        raise ValueError("n_background: the data sample would be empty")
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0.0, 1.0, size=(n_reference, 2))
    background = rng.uniform(0.0, 1.0, size=(n_background, 2))
    clumps = [c + clump_std * rng.standard_normal((n_per_clump, 2)) for c in centres]
    data = np.concatenate([background, *clumps]) if n_per_clump else background
    is_anomaly = np.zeros(len(data), dtype=bool)
    is_anomaly[n_background:] = True
    params = {
        "n_reference": n_reference,
        "n_background": n_background,
        "n_per_clump": n_per_clump,
        "clump_std": clump_std,
    }
    truth = make_truth(is_anomaly, centres if n_per_clump else np.empty((0, 2)), params, ["x0", "x1"])
    return as_f64(reference), as_f64(data), truth


# ---------------------------------------------------------------------------
# expo1d
# ---------------------------------------------------------------------------

EXPO1D_SIGNALS = {"tail": 6.4, "bulk": 1.6}


@register("expo1d")
def expo1d(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_background: int = 2_000,
    n_signal: int = 20,
    signal: str | float = "tail",
    signal_std: float = 0.16,
    extra_dims: int = 0,
    poisson: bool = False,
):
    """Exponential spectrum with a narrow Gaussian bump (the NPLM physics benchmark).

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points drawn from Exp(1). The physics benchmark uses 200_000;
        the default is the CI size.
    n_background : int, default=2_000
        Background data points drawn from Exp(1) (the expected count when
        ``poisson=True``).
    n_signal : int, default=20
        Points of the Gaussian bump (the expected count when ``poisson=True``);
        0 gives a null sample. The benchmark range is 10 to 30.
    signal : {"tail", "bulk"} or float, default="tail"
        Bump location: "tail" is 6.4, "bulk" is 1.6, a number is used as is.
    signal_std : float, default=0.16
        Bump width.
    extra_dims : int, default=0
        Number of Uniform(0, 1) nuisance columns appended to both samples
        (the same distribution in reference, background and signal).
    poisson : bool, default=False
        Draw the data counts from Poisson(n_background) and Poisson(n_signal).

    Returns
    -------
    reference : ndarray of shape (n_reference, 1 + extra_dims)
    data : ndarray of shape (n_background + n_signal, 1 + extra_dims)
        With ``poisson=True`` the number of rows is random.
    truth : dict
        See :mod:`sparker.scenarios`. ``centres`` has one row: the bump location in
        column 0 and 0.5 (the mean of the uniform) in the nuisance columns, along
        which the bump is not localised.

    Notes
    -----
    The reference, the background and the bump come from independent child
    streams of ``seed``: for a given seed the reference does not change with
    ``n_signal`` or ``signal``, so power curves use common random numbers.
    A bump placed near 0 puts some points at x < 0, outside the reference support.
    """
    p = _expo1d_params(n_reference, n_background, n_signal, signal, signal_std, extra_dims, poisson)
    location = EXPO1D_SIGNALS[p["signal"]] if isinstance(p["signal"], str) else p["signal"]
    extra_dims = p["extra_dims"]
    rng_count, rng_ref, rng_bkg, rng_sig = random_streams(seed, 4)
    n_b = int(rng_count.poisson(p["n_background"])) if p["poisson"] else p["n_background"]
    n_s = int(rng_count.poisson(p["n_signal"])) if p["poisson"] else p["n_signal"]
    reference = _expo1d_rows(rng_ref, p["n_reference"], extra_dims, lambda r, n: r.exponential(1.0, n))
    background = _expo1d_rows(rng_bkg, n_b, extra_dims, lambda r, n: r.exponential(1.0, n))
    bump = _expo1d_rows(rng_sig, n_s, extra_dims, lambda r, n: r.normal(location, p["signal_std"], n))
    data = np.concatenate([background, bump])
    is_anomaly = np.arange(len(data)) >= n_b
    centres = np.array([[location] + [0.5] * extra_dims]) if p["n_signal"] else np.empty((0, 1 + extra_dims))
    names = ["x"] + [f"nuisance{i}" for i in range(extra_dims)]
    return as_f64(reference), as_f64(data), make_truth(is_anomaly, centres, p, names)


def _expo1d_params(n_reference, n_background, n_signal, signal, signal_std, extra_dims, poisson) -> dict:
    """Validated settings of :func:`expo1d`, as reported in ``truth["params"]``."""
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_background = check_int(n_background, name="n_background", minimum=0)
    n_signal = check_int(n_signal, name="n_signal", minimum=0)
    if isinstance(signal, str):
        check_choice(signal, EXPO1D_SIGNALS, name="signal")
    else:
        signal = check_real(signal, name="signal")
    signal_std = check_real(signal_std, name="signal_std", positive=True)
    extra_dims = check_int(extra_dims, name="extra_dims", minimum=0)
    poisson = check_bool(poisson, name="poisson")
    if not poisson and n_background + n_signal < 1:
        raise ValueError("n_background: the data sample would be empty (n_background + n_signal = 0)")
    return {
        "n_reference": n_reference,
        "n_background": n_background,
        "n_signal": n_signal,
        "signal": signal,
        "signal_std": signal_std,
        "extra_dims": extra_dims,
        "poisson": poisson,
    }


def _expo1d_rows(rng, n, extra_dims, first_column) -> np.ndarray:
    """``n`` rows (n, 1 + extra_dims): ``first_column(rng, n)``, then Uniform(0, 1) nuisances."""
    out = np.empty((n, 1 + extra_dims))
    out[:, 0] = first_column(rng, n)
    out[:, 1:] = rng.uniform(0.0, 1.0, size=(n, extra_dims))
    return out


# ---------------------------------------------------------------------------
# gauss_highd
# ---------------------------------------------------------------------------


@register("gauss_highd")
def gauss_highd(
    seed: int = 0,
    *,
    n_reference: int = 20_000,
    n_data: int = 2_000,
    d: int = 64,
    eps: float = 0.01,
    shift: float = 2.5,
    subspace_dim: int = 2,
    cluster_std: float = 0.1,
    orthogonal_std: float = 0.5,
):
    """Standard normal in d dimensions; a rare tight cluster displaced within a random subspace.

    Parameters
    ----------
    seed : int, default=0
    n_reference : int, default=20_000
        Reference points drawn from N(0, I_d).
    n_data : int, default=2_000
        Data points; ``round(eps * n_data)`` of them are anomalous.
    d : int, default=64
        Dimension (the benchmark goes up to 2048; memory is 8 * d * n bytes per sample).
    eps : float, default=0.01
        Fraction of anomalous data points, in [0, 1]; 0 gives a null sample.
    shift : float, default=2.5
        Distance of the cluster centre from the origin. Along one direction the
        reference density at 2.5 is still about 4% of its peak, so the cluster
        sits inside the bulk, not in an empty tail.
    subspace_dim : int, default=2
        Dimension k of the random subspace where the cluster is tight, 1 <= k <= d.
    cluster_std : float, default=0.1
        Standard deviation of the cluster within the subspace.
    orthogonal_std : float, default=0.5
        Standard deviation of the cluster in the d - k directions orthogonal to
        the subspace (the reference has 1 there).  Below 1 the cluster is tight
        in every direction, like a new class in an embedding space: its points
        lie closer to each other than typical reference points do.  With 1 it
        is anomalous only inside the subspace; in high dimensions the d - k
        unit-variance directions then dominate every Euclidean distance, so no
        isotropic kernel (SparKer's, MMD's, kernel NPLM's) can single it out:
        a hard variant, kept for studies of that limit.

    Returns
    -------
    reference : ndarray of shape (n_reference, d)
    data : ndarray of shape (n_data, d)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` has one row, the cluster centre
        (mean of the anomalous points). Extra key ``subspace``: orthonormal basis
        of the subspace, shape (subspace_dim, d).

    Notes
    -----
    Let Q (d, k) be an orthonormal basis of a uniformly random k-dimensional
    subspace and u a uniformly random unit vector of R^k. The centre is
    c = shift * Q u. An anomalous point is

        x = orthogonal_std * (I - Q Q^T) z + Q (shift * u + cluster_std * g),
        z ~ N(0, I_d), g ~ N(0, I_k),

    so it is displaced from the bulk only inside the subspace (its mean is c)
    and no single coordinate need stand out.  Its squared distance to c is about
    ``orthogonal_std**2 * (d - k)``, against about ``d + shift**2`` for a
    reference point.
    """
    p = _gauss_highd_params(n_reference, n_data, d, eps, shift, subspace_dim, cluster_std, orthogonal_std)
    n_data, d, shift, subspace_dim = p["n_data"], p["d"], p["shift"], p["subspace_dim"]
    rng_geom, rng_ref, rng_bkg, rng_sig = random_streams(seed, 4)
    basis, direction = _random_direction(rng_geom, d, subspace_dim)  # (d, k), (k,)
    n_anom = count_anomalous(p["eps"], n_data)
    reference = rng_ref.standard_normal((p["n_reference"], d))
    background = rng_bkg.standard_normal((n_data - n_anom, d))
    cluster = _subspace_cluster(rng_sig, n_anom, basis, direction, p)
    data = np.concatenate([background, cluster])
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    centres = (shift * basis @ direction)[None] if n_anom else np.empty((0, d))  # (1, d): the centre
    names = [f"x{i}" for i in range(d)]
    return as_f64(reference), as_f64(data), make_truth(is_anomaly, centres, p, names, subspace=as_f64(basis.T))


def _gauss_highd_params(n_reference, n_data, d, eps, shift, subspace_dim, cluster_std,
                        orthogonal_std) -> dict:
    """Validated settings of :func:`gauss_highd`, as reported in ``truth["params"]``."""
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_data = check_int(n_data, name="n_data", minimum=1)
    d = check_int(d, name="d", minimum=1)
    eps = check_fraction(eps, name="eps")
    shift = check_real(shift, name="shift", minimum=0.0)
    subspace_dim = check_int(subspace_dim, name="subspace_dim", minimum=1, maximum=d)
    cluster_std = check_real(cluster_std, name="cluster_std", positive=True)
    orthogonal_std = check_real(orthogonal_std, name="orthogonal_std", positive=True)
    return {
        "n_reference": n_reference,
        "n_data": n_data,
        "d": d,
        "eps": eps,
        "shift": shift,
        "subspace_dim": subspace_dim,
        "cluster_std": cluster_std,
        "orthogonal_std": orthogonal_std,
    }


def _random_direction(rng, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis Q (d, k) of a uniformly random subspace and a random unit u (k,)."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, k)))  # (d, k), orthonormal columns
    direction = rng.standard_normal(k)
    direction /= np.linalg.norm(direction)  # (k,)
    return basis, direction


def _subspace_cluster(rng, n_anom: int, basis: np.ndarray, direction: np.ndarray, p: dict) -> np.ndarray:
    """The anomalous points (n_anom, d) of :func:`gauss_highd`, tight along ``basis``."""
    z = rng.standard_normal((n_anom, basis.shape[0]))
    z -= (z @ basis) @ basis.T  # (n_anom, d): component orthogonal to the subspace
    g = p["shift"] * direction + p["cluster_std"] * rng.standard_normal((n_anom, basis.shape[1]))  # (n, k)
    return p["orthogonal_std"] * z + g @ basis.T
