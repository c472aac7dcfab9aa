"""Configuration dataclasses: one per concern, saved beside every result.

Each field maps 1:1 onto a command-line flag (``--n-kernels`` for
``n_kernels`` ...), see :mod:`sparker.cli`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

__all__ = ["TrainingConfig", "LayerConfig"]


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
