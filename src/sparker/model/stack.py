r"""The fitted model as one object: a stack of Gaussian kernel layers.

See ``docs/method.md``, sections "The model" and "Competition modes".  Layer
:math:`l` holds :math:`M_l` centres :math:`\mu_{li}` (standardised units), their
amplitudes :math:`a_{li}` and one width :math:`\sigma_l`; with the gates
:math:`\phi_{li}` of the competition mode (:mod:`sparker.core.kernels`) the
learned log density ratio at a standardised point :math:`z` is

.. math::

    f(z) = \sum_l \sum_i a_{li}\, \phi_{li}(z; \mu_l, \sigma_l) .

A single-scale model is a stack of one layer.  :class:`KernelStack` keeps the
parameters as registered buffers of a :class:`torch.nn.Module` (they are fitted
by :func:`sparker.model.trainer.train_replicas`, not by autograd), so that
``stack.to(device)`` moves them and ``state_dict()`` lists them.
:func:`replica_log_ratio` evaluates ``f`` for a batch of B replicas during
training; :meth:`KernelStack.log_ratio` is the same computation for the one
fitted model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..core.kernels import evaluate, get_competition, log_kernels
from ..core.streaming import row_chunks

__all__ = ["KernelStack", "replica_log_ratio"]


def replica_log_ratio(X: torch.Tensor, layers, competition: str) -> torch.Tensor:
    """Log ratio ``f`` of B replicas of a stack at points ``X``, in float64.

    Parameters
    ----------
    X : Tensor of shape (n, d)
        Standardised points (any float dtype; each chunk is cast to float64).
    layers : sequence of (centres, amplitudes, sigma)
        Per layer: centres of shape (B, M_l, d), amplitudes of shape (B, M_l), float width.
    competition : str
        Registered competition mode.

    Returns
    -------
    Tensor of shape (n, B), float64, on ``X``'s device
        Evaluated over row chunks (no float64 copy of a large ``X``); every row's
        value is the same as in one piece.
    """
    comp = get_competition(competition)
    B = layers[0][0].shape[0]
    f = torch.zeros(X.shape[0], B, dtype=torch.float64, device=X.device)  # (n, B)
    for lo, hi in row_chunks(X.shape[0], X.shape[1]):
        X64 = X[lo:hi].to(torch.float64)  # (n_chunk, d)
        for centres, amplitudes, sigma in layers:
            f[lo:hi] += evaluate(X64, centres.to(X.device), amplitudes.to(X.device), sigma, comp)[0]
    return f


class KernelStack(torch.nn.Module):
    """A fitted stack of kernel layers: centres, amplitudes and width per layer.

    Parameters
    ----------
    centres : sequence of Tensor, one of shape (M_l, d) per layer
        Kernel centres in standardised units.
    amplitudes : sequence of Tensor, one of shape (M_l,) per layer
    sigmas : sequence of float
        Kernel width of each layer (standardised units).
    competition : str
        How the kernels of a layer combine (:data:`sparker.core.kernels.COMPETITIONS`).

    Raises
    ------
    ValueError
        If a layer's parameters are not floating point, have inconsistent shapes,
        are not finite, or its width is not a positive number; or if the
        competition mode is unknown.

    Notes
    -----
    The parameters are stored in float64 as buffers ``centres_<l>``,
    ``amplitudes_<l>`` and ``sigma_<l>`` (a 0-d tensor).
    """

    def __init__(self, centres: Sequence[torch.Tensor], amplitudes: Sequence[torch.Tensor],
                 sigmas: Sequence[float], competition: str):
        super().__init__()
        get_competition(competition)
        if not (len(centres) == len(amplitudes) == len(sigmas)) or not len(centres):
            raise ValueError(f"layers: need one centres, amplitudes and sigma per layer, got "
                             f"{len(centres)}, {len(amplitudes)} and {len(sigmas)}")
        self.competition = competition
        self.n_layers = len(centres)
        n_features = None
        for k, (c, a, s) in enumerate(zip(centres, amplitudes, sigmas)):
            c, a, s = torch.as_tensor(c), torch.as_tensor(a), float(s)
            n_features = _check_layer(k, c, a, s, n_features)
            self.register_buffer(f"centres_{k}", c.to(torch.float64))  # (M_l, d)
            self.register_buffer(f"amplitudes_{k}", a.to(torch.float64))  # (M_l,)
            self.register_buffer(f"sigma_{k}", torch.tensor(s, dtype=torch.float64))  # ()

    @classmethod
    def from_layers(cls, layers, competition: str, replica: int = 0) -> "KernelStack":
        """One replica of the trainer's per-layer results.

        Parameters
        ----------
        layers : sequence of TrainResult
            One :class:`~sparker.model.trainer.TrainResult` per layer, broad first
            (``centres`` (B, M_l, d), ``amplitudes`` (B, M_l), ``sigma``).
        competition : str
        replica : int, default=0
            Which of the B replicas.
        """
        return cls([layer.centres[replica].clone() for layer in layers],
                   [layer.amplitudes[replica].clone() for layer in layers],
                   [float(layer.sigma) for layer in layers], competition)

    # ------------------------------------------------------------------ parameters
    @property
    def centres(self) -> list[torch.Tensor]:
        """Centres of every layer, tensors of shape (M_l, d)."""
        return [getattr(self, f"centres_{k}") for k in range(self.n_layers)]

    @property
    def amplitudes(self) -> list[torch.Tensor]:
        """Amplitudes of every layer, tensors of shape (M_l,)."""
        return [getattr(self, f"amplitudes_{k}") for k in range(self.n_layers)]

    @property
    def sigmas(self) -> list[float]:
        """Width of every layer."""
        return [float(getattr(self, f"sigma_{k}")) for k in range(self.n_layers)]

    @property
    def n_kernels(self) -> list[int]:
        """Number of kernels of every layer."""
        return [int(a.shape[0]) for a in self.amplitudes]

    @property
    def n_features(self) -> int:
        return int(self.centres_0.shape[1])

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """``(centres, amplitudes, sigma)`` of every layer, broad first."""
        return list(zip(self.centres, self.amplitudes, self.sigmas))

    def to_dicts(self) -> list[dict]:
        """Copies of the parameters as one dict per layer: ``centres``, ``amplitudes``, ``sigma``."""
        return [{"centres": c.clone(), "amplitudes": a.clone(), "sigma": s} for c, a, s in self.layers()]

    # ------------------------------------------------------------------ evaluation
    def log_ratio(self, Z: torch.Tensor) -> torch.Tensor:
        """Learned log density ratio ``f(z)`` at standardised points.

        Parameters
        ----------
        Z : Tensor of shape (n, d)

        Returns
        -------
        Tensor of shape (n,), float64
        """
        layers = [(c[None], a[None], s) for c, a, s in self.layers()]  # (1, M_l, d), (1, M_l)
        return replica_log_ratio(Z, layers, self.competition)[:, 0]

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`log_ratio`."""
        return self.log_ratio(Z)

    def gates(self, Z: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer gates ``phi`` at standardised points, float64.

        Parameters
        ----------
        Z : Tensor of shape (n, d)

        Returns
        -------
        list of Tensor, one of shape (n, M_l) per layer
        """
        comp = get_competition(self.competition)
        Z = torch.as_tensor(Z, dtype=torch.float64)
        return [
            evaluate(Z, c[None].to(torch.float64), a[None].to(torch.float64), s, comp)[1][:, 0]  # (n, M_l)
            for c, a, s in self.layers()
        ]

    def log_kernels(self, Z: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer log-kernels ``l_i(z)`` at standardised points, float64.

        Parameters
        ----------
        Z : Tensor of shape (n, d), float64

        Returns
        -------
        list of Tensor, one of shape (n, M_l) per layer
        """
        return [log_kernels(Z, c.to(torch.float64), s) for c, _, s in self.layers()]  # (n, M_l) each

    def extra_repr(self) -> str:
        return f"competition={self.competition!r}, n_kernels={self.n_kernels}, sigmas={self.sigmas}"


def _check_layer(k: int, c: torch.Tensor, a: torch.Tensor, s: float, n_features: int | None) -> int:
    """Shapes, types and finiteness of layer ``k`` (ValueError naming the layer if wrong).

    ``n_features`` is that of the layers before (None for the first); returns this layer's.
    """
    if not (c.is_floating_point() and a.is_floating_point()):
        raise ValueError(f"layer {k} has non-float centres or amplitudes")
    d = c.shape[1] if c.ndim == 2 else -1
    if d < 1 or c.shape[0] < 1 or (n_features is not None and d != n_features) or a.shape != (c.shape[0],):
        where = "" if n_features is None else f" for {n_features} features"
        raise ValueError(f"layer {k} has centres of shape {tuple(c.shape)} and amplitudes of "
                         f"shape {tuple(a.shape)}{where}")
    if not (torch.isfinite(c).all() and torch.isfinite(a).all() and math.isfinite(s) and s > 0):
        raise ValueError(f"layer {k} has non-finite parameters or a width <= 0")
    return d
