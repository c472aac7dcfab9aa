"""Configuration dataclasses: one per concern, saved beside every result.

Each field maps 1:1 onto a command-line flag (``--n-kernels`` for
``n_kernels`` ...), see :mod:`sparker.cli`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ._validation import is_int, is_real
from .core.kernels import COMPETITIONS
from .core.schedules import MIN_WIDTH, SCHEDULES

__all__ = ["TrainingConfig", "LayerConfig", "validate_config", "A_MAX_LIMIT"]

#: Largest accepted ``a_max``: with ``|f| <= a_max`` (one layer, softmax gates), exp(f)
#: and its sums over many points stay finite in float32.
A_MAX_LIMIT = 50.0


@dataclass(frozen=True)
class LayerConfig:
    """Overrides for one block of a multi-scale stack (None = inherit)."""

    n_kernels: int | None = None
    epochs: int | None = None
    schedule: str | None = None
    sigma_start: float | None = None
    sigma_end: float | None = None
    sigma_start_quantile: float | None = None
    sigma_end_quantile: float | None = None
    sigma_end_contrast: float | None = None


@dataclass(frozen=True)
class TrainingConfig:
    """How one SparKer model is trained (see ``SPEC.md`` sections 2-3).

    Widths are in standardised units (features scaled by the reference's
    standard deviation).  ``sigma_start``/``sigma_end`` of None are derived from
    pairwise-distance quantiles of the standardised reference.
    """

    n_kernels: int = 8
    competition: str = "kernel-softmax"
    epochs: int = 1000
    schedule: str = "geometric"
    sigma_start: float | None = None
    sigma_end: float | None = None
    sigma_start_quantile: float = 0.9
    sigma_end_quantile: float = 0.003
    sigma_end_contrast: float = 1e-2
    lr_centres: float = 0.07
    lr_amplitudes: float = 0.05
    a_max: float = 10.0
    l1: float = 0.5
    reseed: bool = True
    chunk_rows: int | None = None
    record_every: int = 10
    layers: tuple[LayerConfig, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"settings: unknown training settings {sorted(unknown)}")
        d = dict(d)
        d["layers"] = tuple(LayerConfig(**layer) for layer in d.get("layers", ()))
        return cls(**d)

    def layer_configs(self) -> list["TrainingConfig"]:
        """One flat config per layer (a single layer when ``layers`` is empty)."""
        if not self.layers:
            return [self]
        out = []
        for layer in self.layers:
            over = {k: v for k, v in asdict(layer).items() if v is not None}
            out.append(replace(self, layers=(), **over))
        return out


def validate_config(cfg: TrainingConfig) -> None:
    """Raise a ValueError (TypeError for a wrong type) naming the offending setting."""
    for layer in cfg.layer_configs():
        if not is_int(layer.n_kernels) or layer.n_kernels < 1:
            raise ValueError(f"n_kernels: must be a positive integer, got {layer.n_kernels!r}")
        if not is_int(layer.epochs) or layer.epochs < 1:
            raise ValueError(f"epochs: must be a positive integer, got {layer.epochs!r}")
        if layer.schedule not in SCHEDULES:
            raise ValueError(f"schedule: unknown schedule {layer.schedule!r}; choose one of {sorted(SCHEDULES)}")
        for name in ("sigma_start", "sigma_end"):
            v = getattr(layer, name)
            if v is not None and not (is_real(v) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite width, got {v!r}")
            if v is not None and v < MIN_WIDTH:
                raise ValueError(f"{name}: must be at least {MIN_WIDTH:g} (the float32 resolution of "
                                 f"standardised features), got {v!r}")
        for name in ("sigma_start_quantile", "sigma_end_quantile"):
            v = getattr(layer, name)
            if not (is_real(v) and 0.0 < v < 1.0):
                raise ValueError(f"{name}: must lie in (0, 1), got {v!r}")
        v = layer.sigma_end_contrast
        if not (is_real(v) and 0.0 < v <= 1.0):
            raise ValueError(f"sigma_end_contrast: must lie in (0, 1] (1 = no cap), got {v!r}")
    if cfg.competition not in COMPETITIONS:
        raise ValueError(f"competition: unknown mode {cfg.competition!r}; choose one of {sorted(COMPETITIONS)}")
    for name in ("lr_centres", "lr_amplitudes", "a_max"):
        v = getattr(cfg, name)
        if not (is_real(v) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}: must be a positive number, got {v!r}")
    if cfg.a_max > A_MAX_LIMIT:
        raise ValueError(f"a_max: must be at most {A_MAX_LIMIT:g} so that exp(f) stays finite in "
                         f"float32, got {cfg.a_max!r}")
    if not (is_real(cfg.l1) and math.isfinite(cfg.l1) and cfg.l1 >= 0):
        raise ValueError(f"l1: must be >= 0, got {cfg.l1!r}")
    if not isinstance(cfg.reseed, (bool, np.bool_)):
        raise TypeError(f"reseed: must be True or False, got {cfg.reseed!r}")
    if cfg.chunk_rows is not None and (not is_int(cfg.chunk_rows) or cfg.chunk_rows < 1):
        raise ValueError(f"chunk_rows: must be a positive integer, got {cfg.chunk_rows!r}")
    if not is_int(cfg.record_every) or cfg.record_every < 0:
        raise ValueError(f"record_every: must be an integer >= 0, got {cfg.record_every!r}")
